//! The worker run as a child process, by whoever needs real workers: `cargo xtask` (bench,
//! drills, verify) and this crate's tests. Configured with the same variables an operator
//! sets (the `ENV_*` constants of [`crate::config`]), killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::config::{
    ENV_DATABASE_URL, ENV_HTTP_ADDR, ENV_LOG_LEVEL, ENV_NATS_RECONNECT_DELAY_MAX_MS,
    ENV_NATS_RECONNECT_DELAY_MS,
};
use sea_infra::client::connect::ENV_NATS_SERVERS;
use sea_infra::env::Secret;
use sea_infra::model::spec::ENV_CONSUMER_GROUP;

/// How to start one worker: the binary, where it connects, its database and group, and any
/// other setting by its variable.
#[derive(Clone, Debug)]
pub struct Launch {
    pub bin: PathBuf,
    pub servers: Vec<String>,
    /// `DATABASE_URL`.
    pub database: String,
    pub group: String,
    /// Where its stderr (the log) goes; discarded when `None`.
    pub log: Option<PathBuf>,
    /// Further variables, e.g. `(ENV_OUTBOX_ENABLED, "false")`; later entries win.
    pub settings: Vec<(String, String)>,
    /// How it authenticates to a secured deployment (`NATS_TLS_*`, `NATS_USER`,
    /// `NATS_PASSWORD` or `NATS_AUTH_TOKEN`): kept apart so no `Debug` shows them.
    pub credentials: Vec<(String, Secret)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("start {}", .bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("create the worker log {}", .path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("worker at {http} exited with {status}; last lines of its log:\n{tail}")]
    Exited {
        http: String,
        status: ExitStatus,
        tail: String,
    },
    #[error("worker at {http} not ready within {waited:?}; last lines of its log:\n{tail}")]
    NotReady {
        http: String,
        waited: Duration,
        tail: String,
    },
}

impl Launch {
    /// A worker of `group` on `servers`, with a SQLite database file.
    pub fn sqlite(bin: &Path, servers: &[String], db: &Path, group: &str) -> Launch {
        Launch::new(bin, servers, format!("sqlite://{}", db.display()), group)
    }

    /// A worker of `group` on `servers`, with `database` as its `DATABASE_URL`.
    pub fn new(bin: &Path, servers: &[String], database: String, group: &str) -> Launch {
        Launch {
            bin: bin.to_path_buf(),
            servers: servers.to_vec(),
            database,
            group: group.to_owned(),
            log: None,
            settings: vec![
                // Quick reconnects: the servers of a drill or test come and go on purpose.
                (ENV_NATS_RECONNECT_DELAY_MS.into(), "100".into()),
                (ENV_NATS_RECONNECT_DELAY_MAX_MS.into(), "500".into()),
                (ENV_LOG_LEVEL.into(), "info".into()),
            ],
            credentials: Vec::new(),
        }
    }

    /// Connects with these variables (from `Access::client_env`).
    pub fn credentials(mut self, env: Vec<(String, Secret)>) -> Launch {
        self.credentials = env;
        self
    }

    /// Sets one variable (an `ENV_*` name of the worker's configuration).
    pub fn set(mut self, var: &str, value: impl ToString) -> Launch {
        self.settings.push((var.to_owned(), value.to_string()));
        self
    }

    pub fn log_to(mut self, path: PathBuf) -> Launch {
        self.log = Some(path);
        self
    }

    /// Starts the worker on a free HTTP port, with only these variables (and `PATH`).
    pub fn spawn(&self) -> Result<WorkerProcess, ChildError> {
        let port = sea_infra::deployment::ports::free_port();
        let stderr = match &self.log {
            Some(path) => {
                Stdio::from(
                    std::fs::File::create(path).map_err(|source| ChildError::Log {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => Stdio::null(),
        };
        let child = Command::new(&self.bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(ENV_NATS_SERVERS, self.servers.join(","))
            .env(ENV_DATABASE_URL, &self.database)
            .env(ENV_CONSUMER_GROUP, &self.group)
            .env(ENV_HTTP_ADDR, format!("127.0.0.1:{port}"))
            .envs(self.credentials.iter().map(|(k, v)| (k, v.expose())))
            .envs(self.settings.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| ChildError::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        Ok(WorkerProcess {
            child: Some(child),
            http: format!("http://127.0.0.1:{port}"),
            log: self.log.clone(),
        })
    }
}

/// A running worker; SIGKILLed on drop.
pub struct WorkerProcess {
    child: Option<Child>,
    /// Base URL of its HTTP port (`/healthz`, `/readyz`, `/metrics`).
    pub http: String,
    pub log: Option<PathBuf>,
}

impl WorkerProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still alive (not killed, not exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` and waits up to `within` for the exit; `None` when it did not exit (it is
    /// then killed) or was not running.
    pub fn stop(
        &mut self,
        signal: nix::sys::signal::Signal,
        within: Duration,
    ) -> Option<ExitStatus> {
        let child = self.child.as_ref()?;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        let status = self.wait_exit(within);
        if status.is_none() {
            self.kill();
        }
        status
    }

    /// Waits up to `within` for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its whole log so far.
    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// The last `lines` lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `GET path` on its HTTP port: status and body, `None` when it does not answer within a
    /// second.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        get(&format!("{}{path}", self.http)).await
    }

    /// One sample of its `/metrics`, named with its labels as printed
    /// (`sea_worker_events_total{outcome="inserted"}`); `None` when it does not answer or has
    /// no such sample.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        self.child.as_ref()?;
        let (_, text) = self.get("/metrics").await?;
        sample(&text, name)
    }

    /// Waits until `/readyz` answers 200; fails at once when the process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ChildError> {
        let began = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(ChildError::Exited {
                    http: self.http.clone(),
                    status,
                    tail: self.log_tail(20),
                });
            }
            if matches!(self.get("/readyz").await, Some((200, _))) {
                return Ok(());
            }
            if began.elapsed() >= timeout {
                return Err(ChildError::NotReady {
                    http: self.http.clone(),
                    waited: began.elapsed(),
                    tail: self.log_tail(20),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until every worker is ready; fails naming the first that is not.
pub async fn wait_all_ready(
    workers: &mut [WorkerProcess],
    timeout: Duration,
) -> Result<(), ChildError> {
    let deadline = Instant::now() + timeout;
    for w in workers.iter_mut() {
        w.wait_ready(deadline.saturating_duration_since(Instant::now()))
            .await?;
    }
    Ok(())
}

/// `GET url` (a worker's endpoint, wherever it runs): status and body, `None` when it does not
/// answer within a second.
pub async fn get(url: &str) -> Option<(u16, String)> {
    let resp = http().get(url).send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// A sample's value in Prometheus text: the line `<name> <value>`.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(' ')
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    })
}

fn http() -> &'static reqwest::Client {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("an HTTP client with a timeout builds")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let text = "# TYPE x counter\nsea_worker_events_total{outcome=\"inserted\"} 12\nsea_worker_events_total{outcome=\"duplicate\"} 3\nsea_worker_nats_connected 1\n";
        assert_eq!(
            sample(text, "sea_worker_events_total{outcome=\"inserted\"}"),
            Some(12.0)
        );
        assert_eq!(sample(text, "sea_worker_nats_connected"), Some(1.0));
        assert_eq!(sample(text, "sea_worker_nats"), None);
    }
}
