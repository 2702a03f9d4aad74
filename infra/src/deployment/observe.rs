//! Observing a deployment (`cargo xtask up --observe`): the `sea-nats-exporter` binary watching
//! every server and a real Prometheus scraping it (and the workers it is told of) with the alert
//! rules loaded, both as processes beside the deployment, their files under `observe/` in its
//! state directory:
//!
//! ```text
//! observe/observe.json     what was started: URLs, pids, binaries (status and down read it)
//! observe/prometheus.yml   the rendered scrape configuration
//! observe/alerts.yml       the rules Prometheus evaluates (a copy of the file it was given)
//! observe/data/            Prometheus's TSDB
//! observe/logs/*.log       stdout and stderr of each
//! ```
//!
//! A pid is only signalled while `/proc/<pid>/exe` is still the recorded binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{ports, procfs, Deployment};

// The renderer of the scrape configuration and its names live in the render layer (the compose
// files' Prometheus loads the same configuration); re-exported here for `up --observe`'s users.
pub use crate::render::prometheus::{
    prometheus_config, DEFAULT_EXPORTER_PORT, DEFAULT_INTERVAL, DEFAULT_PROMETHEUS_PORT,
    EXPORTER_JOB, WORKER_JOB,
};

/// What to run and how.
#[derive(Clone, Debug)]
pub struct ObserveOptions {
    /// The `sea-nats-exporter` binary.
    pub exporter: PathBuf,
    /// The `prometheus` binary.
    pub prometheus: PathBuf,
    /// The rule file Prometheus loads (`infra/prometheus/alerts.yml`).
    pub rules: PathBuf,
    /// Prometheus's scrape and evaluation interval.
    pub interval: Duration,
    /// The workers' metrics addresses (`host:port`), scraped as job `sea-mq-worker`.
    pub workers: Vec<String>,
    /// Try the default ports first (fixed profiles); tests take free ones.
    pub default_ports: bool,
    /// Bound on waiting for both to answer.
    pub timeout: Duration,
    /// SIGKILL both when this process dies (tests).
    pub die_with_parent: bool,
}

impl ObserveOptions {
    /// The defaults of `up --observe` for these binaries: the committed rules, 5 s intervals.
    pub fn new(exporter: PathBuf, prometheus: PathBuf) -> ObserveOptions {
        ObserveOptions {
            exporter,
            prometheus,
            rules: crate::project_root().join("infra/prometheus/alerts.yml"),
            interval: DEFAULT_INTERVAL,
            workers: Vec::new(),
            default_ports: true,
            timeout: Duration::from_secs(60),
            die_with_parent: false,
        }
    }
}

/// One process started beside the deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observer {
    pub name: String,
    pub pid: i32,
    pub binary: PathBuf,
    pub url: String,
}

/// What `observe` started, as recorded in `observe/observe.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub exporter: Observer,
    pub prometheus: Observer,
    /// The worker targets Prometheus scrapes.
    pub workers: Vec<String>,
}

impl Observed {
    /// The processes, exporter first.
    pub fn all(&self) -> [&Observer; 2] {
        [&self.exporter, &self.prometheus]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {name} ({}): {source}", .binary.display())]
    Spawn {
        name: &'static str,
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited before it was ready; its log ({}) ends with:\n{tail}", .log.display())]
    Exited {
        name: &'static str,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} did not answer {url} within {waited:.0?}; its log: {}", .log.display())]
    NotReady {
        name: &'static str,
        url: String,
        waited: Duration,
        log: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ObserveError + '_ {
    move |source| ObserveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Deployment {
    /// Where the observers' files are.
    pub fn observe_dir(&self) -> PathBuf {
        self.state.dir.join("observe")
    }

    /// What the last `observe` recorded, when its processes still run.
    pub fn observed(&self) -> Option<Observed> {
        let text = fs::read_to_string(self.observe_dir().join(RECORD)).ok()?;
        let observed: Observed = serde_json::from_str(&text).ok()?;
        observed.all().iter().all(|o| runs(o)).then_some(observed)
    }

    /// Starts the exporter and Prometheus beside this deployment (stopping any previous pair
    /// first) and returns once Prometheus is ready (`/-/ready`) and the exporter answers.
    pub async fn observe(&self, opts: &ObserveOptions) -> Result<Observed, ObserveError> {
        self.stop_observing(Duration::from_secs(5));
        let dir = self.observe_dir();
        for sub in ["data", "logs"] {
            fs::create_dir_all(dir.join(sub)).map_err(io(&dir))?;
        }
        let host = self.topology.settings.host.clone();
        let port = |preferred: u16| {
            if opts.default_ports && ports::is_free(&host, preferred) {
                preferred
            } else {
                ports::free_port()
            }
        };
        let exporter_addr = format!("{host}:{}", port(DEFAULT_EXPORTER_PORT));
        let prometheus_addr = format!("{host}:{}", port(DEFAULT_PROMETHEUS_PORT));

        let rules = dir.join("alerts.yml");
        fs::copy(&opts.rules, &rules).map_err(io(&opts.rules))?;
        let config = dir.join("prometheus.yml");
        let text = prometheus_config(&exporter_addr, &opts.workers, &rules, opts.interval);
        fs::write(&config, text).map_err(io(&config))?;

        let urls: Vec<String> = self
            .topology
            .servers()
            .map(|(_, s)| self.topology.monitor_url(s))
            .collect();
        let mut exporter = Command::new(&opts.exporter);
        exporter
            .env("NATS_MONITOR_URLS", urls.join(","))
            .env("EXPORTER_ADDR", &exporter_addr);
        if let Some(access) = self.access() {
            exporter.env("NATS_MONITOR_CA_FILE", access.ca());
        }
        let exporter = self.spawn_observer(
            "exporter",
            exporter,
            &opts.exporter,
            format!("http://{exporter_addr}"),
            opts,
        )?;
        let mut prometheus = Command::new(&opts.prometheus);
        prometheus
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prometheus_addr}"))
            .arg("--web.enable-lifecycle");
        let prometheus = match self.spawn_observer(
            "prometheus",
            prometheus,
            &opts.prometheus,
            format!("http://{prometheus_addr}"),
            opts,
        ) {
            Ok(p) => p,
            Err(e) => {
                stop(&exporter, Duration::from_secs(5));
                return Err(e);
            }
        };
        let observed = Observed {
            exporter,
            prometheus,
            workers: opts.workers.clone(),
        };
        let record = dir.join(RECORD);
        let json = serde_json::to_string_pretty(&observed).expect("a record serializes");
        fs::write(&record, json).map_err(io(&record))?;
        let ready = async {
            self.wait_answering("exporter", &observed.exporter, "/healthz", opts.timeout)
                .await?;
            self.wait_answering("prometheus", &observed.prometheus, "/-/ready", opts.timeout)
                .await
        };
        match ready.await {
            Ok(()) => Ok(observed),
            Err(e) => {
                self.stop_observing(Duration::from_secs(5));
                Err(e)
            }
        }
    }

    fn spawn_observer(
        &self,
        name: &'static str,
        mut cmd: Command,
        binary: &Path,
        url: String,
        opts: &ObserveOptions,
    ) -> Result<Observer, ObserveError> {
        let log_path = self.observe_log(name);
        let log = fs::File::create(&log_path).map_err(io(&log_path))?;
        let stderr = log.try_clone().map_err(io(&log_path))?;
        cmd.current_dir(self.observe_dir())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let spawned = if opts.die_with_parent {
            super::process::spawn_tied_to_this_process(cmd)
        } else {
            cmd.spawn().map(|c| c.id() as i32)
        };
        let pid = spawned.map_err(|source| ObserveError::Spawn {
            name,
            binary: binary.to_path_buf(),
            source,
        })?;
        let binary = fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
        Ok(Observer {
            name: name.to_owned(),
            pid,
            binary,
            url,
        })
    }

    fn observe_log(&self, name: &str) -> PathBuf {
        self.observe_dir().join("logs").join(format!("{name}.log"))
    }

    /// Polls `path` of the observer until it answers 200, failing at once when it exits.
    async fn wait_answering(
        &self,
        name: &'static str,
        observer: &Observer,
        path: &str,
        timeout: Duration,
    ) -> Result<(), ObserveError> {
        let url = format!("{}{path}", observer.url);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("a plain HTTP client builds");
        let began = Instant::now();
        loop {
            if !runs(observer) {
                let log = self.observe_log(name);
                let text = fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                return Err(ObserveError::Exited { name, log, tail });
            }
            let ok = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if began.elapsed() >= timeout {
                return Err(ObserveError::NotReady {
                    name,
                    url,
                    waited: began.elapsed(),
                    log: self.observe_log(name),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the recorded exporter and Prometheus (SIGTERM, SIGKILL after `grace`); the names
    /// of those that ran.
    pub fn stop_observing(&self, grace: Duration) -> Vec<String> {
        let record = self.observe_dir().join(RECORD);
        let Some(observed) = fs::read_to_string(&record)
            .ok()
            .and_then(|t| serde_json::from_str::<Observed>(&t).ok())
        else {
            return Vec::new();
        };
        let stopped = observed
            .all()
            .into_iter()
            .filter(|o| stop(o, grace))
            .map(|o| o.name.clone())
            .collect();
        let _ = fs::remove_file(record);
        stopped
    }
}

const RECORD: &str = "observe.json";

/// Whether the recorded process still runs its recorded binary.
pub fn runs(o: &Observer) -> bool {
    let _ = waitpid(Pid::from_raw(o.pid), Some(WaitPidFlag::WNOHANG));
    procfs::is_alive(o.pid)
        && fs::read_link(format!("/proc/{}/exe", o.pid)).is_ok_and(|exe| {
            exe.to_string_lossy()
                .starts_with(&*o.binary.to_string_lossy())
        })
}

/// Stops one observer: SIGTERM, then SIGKILL after `grace`. False when it was not running.
pub fn stop(o: &Observer, grace: Duration) -> bool {
    if !runs(o) {
        return false;
    }
    let pid = Pid::from_raw(o.pid);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while runs(o) {
        if Instant::now() >= deadline {
            let _ = kill(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
