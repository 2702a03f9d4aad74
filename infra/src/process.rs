//! The process backend: `nats-server` processes on loopback, all state in one directory.
//!
//! Layout of a deployment directory (one per profile, `.sea/<profile>/` by default):
//!
//! ```text
//! topology.json        the topology the servers were started from (status/down read it)
//! nats-1.conf          rendered config; the server runs with this directory as its cwd
//! data/nats-1/         JetStream store
//! logs/nats-1.log      stdout and stderr of the server
//! pids/nats-1.pid      pid, checked against /proc/<pid>/cmdline before any signal is sent
//! ```
//!
//! With a [`Compose`] attached, the same `Deployment` runs the topology as containers instead
//! (the directory then only records `topology.json` and the `compose-project` marker): the
//! lifecycle methods below delegate to it (but `set_leaf_links`, which the compose files' read-only
//! configs rule out), and everything else is the same.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::compose::{Compose, ComposeError};
use crate::docker::DockerError;
use crate::health::{self, HealthReport};
use crate::monitor::Monitor;
use crate::ports;
use crate::render;
use crate::topology::{Node, PortUse, Topology, TopologyError};

/// Env var overriding the project-local state directory (`<workspace>/.sea`).
pub const ENV_STATE_DIR: &str = "SEA_STATE_DIR";

/// The state root: `SEA_STATE_DIR`, else `.sea` at the workspace root.
pub fn state_root() -> PathBuf {
    match std::env::var_os(ENV_STATE_DIR).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => crate::workspace_root().join(".sea"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("state directory {path} is not writable ({reason}); set {ENV_STATE_DIR} to a writable directory")]
    StateDir { path: String, reason: String },
    #[error("no server named `{0}` in this topology; `cargo xtask status` lists the servers")]
    UnknownNode(String),
    #[error("port {usage} is already in use{}; stop it (`cargo xtask down`) or free the port", holder_suffix(.holder))]
    PortBusy {
        usage: PortUse,
        holder: Option<String>,
    },
    #[error("cannot start {node} with {binary}: {reason}")]
    Spawn {
        node: String,
        binary: String,
        reason: String,
    },
    #[error("{} exited during start-up; last lines of {}:\n{}", .0.node, .0.log, .0.tail)]
    Exited(Box<NodeFailure>),
    #[error(
        "health gate failed after {waited:.1?}: {}: {}: {}; last lines of {}:\n{}",
        .failure.node, .failure.check, .failure.detail, .failure.log, .failure.tail
    )]
    Unhealthy {
        failure: Box<NodeFailure>,
        waited: Duration,
    },
    #[error("interrupted: stopped the servers this run had started")]
    Interrupted,
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error("{0} is not supported by the compose backend; use the process backend (the default)")]
    Unsupported(&'static str),
}

/// Which node failed which check, with the end of its log: what an operator needs first.
#[derive(Debug)]
pub struct NodeFailure {
    pub node: String,
    pub check: String,
    pub detail: String,
    pub log: String,
    pub tail: String,
}

fn holder_suffix(holder: &Option<String>) -> String {
    holder
        .as_ref()
        .map(|h| format!(" by {h}"))
        .unwrap_or_default()
}

/// What `up` should do.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Start only these nodes (when missing); `None` means every node.
    pub nodes: Option<Vec<String>>,
    /// Bound on waiting for the health gate.
    pub timeout: Duration,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            nodes: None,
            timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
pub struct UpReport {
    pub started: Vec<String>,
    pub already_running: Vec<String>,
    pub elapsed: Duration,
    pub health: HealthReport,
}

#[derive(Debug, Default)]
pub struct DownReport {
    pub stopped: Vec<String>,
    /// Pid files that no longer pointed at their server (removed, nothing signalled).
    pub stale: Vec<String>,
    pub purged: bool,
}

/// Paths of one node's files.
#[derive(Clone, Debug)]
pub struct NodePaths {
    pub conf: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
    pub pid: PathBuf,
}

/// A topology bound to a state directory and a nats-server binary.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub topology: Topology,
    pub dir: PathBuf,
    pub nats_server: PathBuf,
    /// Kill the servers when the thread that started them dies (test harness only).
    pub die_with_parent: bool,
    /// Run the servers as containers of this compose project instead of processes.
    pub compose: Option<Compose>,
}

const TOPOLOGY_FILE: &str = "topology.json";
/// Present in a deployment directory when its servers run under compose.
pub const COMPOSE_MARKER: &str = "compose-project";

impl Deployment {
    pub fn new(topology: Topology, dir: PathBuf, nats_server: PathBuf) -> Self {
        Deployment {
            topology,
            dir,
            nats_server,
            die_with_parent: false,
            compose: None,
        }
    }

    /// The same deployment run by the compose backend.
    pub fn with_compose(mut self, compose: Compose) -> Self {
        self.compose = Some(compose);
        self
    }

    /// Whether the last `up` in `dir` used the compose backend.
    pub fn recorded_compose(dir: &Path) -> bool {
        dir.join(COMPOSE_MARKER).is_file()
    }

    /// The topology recorded by the last `up` in `dir`, if any.
    pub fn recorded_topology(dir: &Path) -> Option<Topology> {
        let text = fs::read_to_string(dir.join(TOPOLOGY_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn paths(&self, node: &Node) -> NodePaths {
        NodePaths {
            conf: self.dir.join(render::conf_file_name(node)),
            data: self.dir.join("data").join(&node.name),
            log: self.dir.join("logs").join(format!("{}.log", node.name)),
            pid: self.dir.join("pids").join(format!("{}.pid", node.name)),
        }
    }

    fn node(&self, name: &str) -> Result<&Node, UpError> {
        self.topology
            .node(name)
            .map(|(_, n)| n)
            .ok_or_else(|| UpError::UnknownNode(name.to_owned()))
    }

    /// The pid of the node's server when its pid file points at a live process running this
    /// node's config; `None` otherwise (no file, dead process, or a reused pid).
    pub fn running_pid(&self, name: &str) -> Option<i32> {
        let node = self.node(name).ok()?;
        if let Some(c) = &self.compose {
            return c.running_pid(&node.name);
        }
        let paths = self.paths(node);
        let pid: i32 = fs::read_to_string(&paths.pid).ok()?.trim().parse().ok()?;
        is_server(pid, &paths.conf).then_some(pid)
    }

    pub fn running_nodes(&self) -> BTreeSet<String> {
        self.topology
            .nodes()
            .map(|(_, n)| n.name.clone())
            .filter(|n| self.running_pid(n).is_some())
            .collect()
    }

    /// Creates the directory layout and writes the configs and the recorded topology.
    pub fn prepare(&self) -> Result<(), UpError> {
        self.topology.validate()?;
        let state_err = |e: std::io::Error| UpError::StateDir {
            path: self.dir.display().to_string(),
            reason: e.to_string(),
        };
        fs::create_dir_all(&self.dir).map_err(state_err)?;
        match &self.compose {
            Some(c) => fs::write(self.dir.join(COMPOSE_MARKER), &c.project).map_err(state_err)?,
            None => {
                let _ = fs::remove_file(self.dir.join(COMPOSE_MARKER));
                for sub in ["data", "logs", "pids"] {
                    fs::create_dir_all(self.dir.join(sub)).map_err(state_err)?;
                }
                for file in render::node_configs(&self.topology) {
                    fs::write(self.dir.join(&file.path), file.contents).map_err(state_err)?;
                }
            }
        }
        let json =
            serde_json::to_string_pretty(&self.topology).expect("a topology always serializes");
        fs::write(self.dir.join(TOPOLOGY_FILE), json).map_err(state_err)?;
        Ok(())
    }

    /// Fails on the first port of these nodes that something else holds.
    pub fn check_ports(&self, nodes: &[String]) -> Result<(), UpError> {
        for usage in self
            .topology
            .ports()
            .into_iter()
            .filter(|u| nodes.contains(&u.node))
        {
            if !ports::is_free(&self.topology.settings.host, usage.port) {
                let holder = ports::holder(usage.port);
                return Err(UpError::PortBusy { usage, holder });
            }
        }
        Ok(())
    }

    /// Starts one node's server in its own process group (Ctrl-C in the terminal does not reach
    /// it) and records its pid. Does not wait for readiness.
    pub fn start_node(&self, name: &str) -> Result<i32, UpError> {
        let node = self.node(name)?;
        if let Some(c) = &self.compose {
            c.start(name)?;
            return Ok(self.running_pid(name).unwrap_or(0));
        }
        let paths = self.paths(node);
        let spawn_err = |reason: String| UpError::Spawn {
            node: name.to_owned(),
            binary: self.nats_server.display().to_string(),
            reason,
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&paths.log)
            .map_err(|e| UpError::StateDir {
                path: paths.log.display().to_string(),
                reason: e.to_string(),
            })?;
        let mut cmd = Command::new(&self.nats_server);
        cmd.arg("-c")
            .arg(&paths.conf)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| spawn_err(e.to_string()))?)
            .stderr(log)
            .process_group(0);
        if self.die_with_parent {
            set_parent_death_signal(&mut cmd);
        }
        let child = cmd.spawn().map_err(|e| spawn_err(e.to_string()))?;
        let pid = child.id() as i32;
        // The child is reaped by `is_server` (waitpid) when it dies while we still run.
        drop(child);
        fs::File::create(&paths.pid)
            .and_then(|mut f| writeln!(f, "{pid}"))
            .map_err(|e| UpError::StateDir {
                path: paths.pid.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(pid)
    }

    /// Sends `signal` to a node's server when it is running; returns whether it was.
    pub fn signal_node(&self, name: &str, signal: Signal) -> bool {
        if let Some(c) = &self.compose {
            return self.running_pid(name).is_some() && c.signal(name, signal.as_str()).is_ok();
        }
        match self.running_pid(name) {
            Some(pid) => kill(Pid::from_raw(pid), signal).is_ok(),
            None => false,
        }
    }

    /// Sends `signal`, waits up to `grace` for the process to go, then SIGKILLs it.
    /// Returns false when the node was not running (a container: or could not be stopped).
    pub fn stop_node(&self, name: &str, signal: Signal, grace: Duration) -> bool {
        let Ok(node) = self.node(name) else {
            return false;
        };
        if let Some(c) = &self.compose {
            if !c.is_up(name) {
                return false;
            }
            let _ = match signal {
                Signal::SIGTERM => c.stop(name, grace),
                other => c.signal(name, other.as_str()),
            };
            let deadline = Instant::now() + grace.max(Duration::from_secs(10));
            while c.is_up(name) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            // A restart-looping container ignores signals; `docker stop` ends it for good.
            if c.is_up(name) {
                let _ = c.stop(name, Duration::ZERO);
            }
            return !c.is_up(name);
        }
        let paths = self.paths(node);
        let Some(pid) = self.running_pid(name) else {
            return false;
        };
        let _ = kill(Pid::from_raw(pid), signal);
        // A stopped (SIGSTOP) process would ignore SIGTERM until resumed.
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        let deadline = Instant::now() + grace;
        while is_server(pid, &paths.conf) {
            if Instant::now() >= deadline {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // When this process started the server (verify, drills), reap it now rather than
        // leave a zombie until we exit; for anyone else's child this is a no-op.
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        let _ = fs::remove_file(&paths.pid);
        true
    }

    /// Cuts (or restores) the leafnode links of every cluster that dials others: rewrites those
    /// servers' configs with the remotes `disabled` and reloads the running ones (SIGHUP). The
    /// cells keep running; only the link goes. Returns the servers reloaded.
    pub fn set_leaf_links(&self, enabled: bool) -> Result<Vec<String>, UpError> {
        if self.compose.is_some() {
            return Err(UpError::Unsupported("cutting leafnode links"));
        }
        let mut topology = self.topology.clone();
        for c in &mut topology.clusters {
            c.leaf_links_disabled = !enabled && !c.leaf_remotes.is_empty();
        }
        let mut reloaded = Vec::new();
        for (cluster, node) in topology.nodes().filter(|(c, _)| !c.leaf_remotes.is_empty()) {
            let conf = self.paths(node).conf;
            fs::write(&conf, render::node_config(&topology, cluster, node)).map_err(|e| {
                UpError::StateDir {
                    path: conf.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
            if self.signal_node(&node.name, Signal::SIGHUP) {
                reloaded.push(node.name.clone());
            }
        }
        Ok(reloaded)
    }

    /// Cuts a node off its peers and clients while it keeps running: SIGSTOP for a process,
    /// `docker network disconnect` for a container. [`Deployment::rejoin_node`] undoes it.
    pub fn isolate_node(&self, name: &str) -> bool {
        match &self.compose {
            Some(c) => c.disconnect(name).is_ok(),
            None => self.signal_node(name, Signal::SIGSTOP),
        }
    }

    pub fn rejoin_node(&self, name: &str) -> bool {
        match &self.compose {
            Some(c) => c.connect(name).is_ok(),
            None => self.signal_node(name, Signal::SIGCONT),
        }
    }

    /// SIGKILL, as a crash would: no lame duck, no flush.
    pub fn kill_node(&self, name: &str) -> bool {
        self.stop_node(name, Signal::SIGKILL, Duration::ZERO)
    }

    /// The last `lines` lines of a node's log.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let Ok(node) = self.node(name) else {
            return String::new();
        };
        if let Some(c) = &self.compose {
            return c.log_tail(name, lines);
        }
        let text = fs::read_to_string(self.paths(node).log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn log_path(&self, name: &str) -> String {
        if let Some(c) = &self.compose {
            return format!("`docker logs {}`", c.container(name));
        }
        self.node(name)
            .map(|n| self.paths(n).log.display().to_string())
            .unwrap_or_default()
    }

    /// Brings the topology (or the chosen nodes) up and waits for the health gate.
    ///
    /// Idempotent: running nodes are left alone, only missing ones are started. If the gate
    /// fails, the wait times out, or `cancel` resolves (Ctrl-C), the servers this call started
    /// are stopped again and the cause is returned.
    pub async fn up(
        &self,
        opts: &UpOptions,
        progress: &dyn Fn(&str),
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<UpReport, UpError> {
        tokio::pin!(cancel);
        let began = Instant::now();
        let selected: Vec<String> = match &opts.nodes {
            Some(names) => {
                for n in names {
                    self.node(n)?;
                }
                names.clone()
            }
            None => self.topology.nodes().map(|(_, n)| n.name.clone()).collect(),
        };
        self.prepare()?;
        let running = self.running_nodes();
        let (already_running, to_start): (Vec<String>, Vec<String>) =
            selected.iter().cloned().partition(|n| running.contains(n));
        self.check_ports(&to_start)?;

        let started = match &self.compose {
            Some(c) => {
                self.start_containers(c, &to_start, progress, &mut cancel)
                    .await?
            }
            None => self.start_processes(&to_start, progress)?,
        };

        let expected: BTreeSet<String> = running
            .iter()
            .cloned()
            .chain(selected.iter().cloned())
            .collect();
        let gate = self.wait_healthy(&expected, &started, opts.timeout, progress);
        let result = tokio::select! {
            r = gate => r,
            () = &mut cancel => Err(UpError::Interrupted),
        };
        match result {
            Ok(health) => Ok(UpReport {
                started,
                already_running,
                elapsed: began.elapsed(),
                health,
            }),
            Err(e) => {
                self.stop_started(&started);
                Err(e)
            }
        }
    }

    /// Starts the servers as processes, one by one; on a failure stops those it started.
    fn start_processes(
        &self,
        to_start: &[String],
        progress: &dyn Fn(&str),
    ) -> Result<Vec<String>, UpError> {
        let mut started = Vec::new();
        for name in to_start {
            match self.start_node(name) {
                Ok(pid) => {
                    progress(&format!("started {name} (pid {pid})"));
                    started.push(name.clone());
                }
                Err(e) => {
                    self.stop_started(&started);
                    return Err(e);
                }
            }
        }
        Ok(started)
    }

    /// Creates the containers in one `compose up` (the image resolved first), on a blocking
    /// thread so Ctrl-C (`cancel`) is heard; on a failure or Ctrl-C stops them again.
    async fn start_containers(
        &self,
        c: &Compose,
        to_start: &[String],
        progress: &dyn Fn(&str),
        cancel: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Vec<String>, UpError> {
        if to_start.is_empty() {
            return Ok(Vec::new());
        }
        let image =
            crate::image::resolve(&self.nats_server, &state_root().join("cache"), progress)?;
        progress(&format!(
            "starting {} with {image} ({} -p {})",
            to_start.join(", "),
            c.file_path().display(),
            c.project
        ));
        let (job_compose, nodes) = (c.clone(), to_start.to_vec());
        let mut job = tokio::task::spawn_blocking(move || job_compose.up(&nodes, &image));
        let created = tokio::select! {
            r = &mut job => r.unwrap_or_else(|e| {
                Err(DockerError {
                    command: "compose up".into(),
                    reason: e.to_string(),
                })
            }),
            () = cancel.as_mut() => {
                let _ = job.await;
                self.stop_started(to_start);
                return Err(UpError::Interrupted);
            }
        };
        if let Err(e) = created {
            self.stop_started(to_start);
            return Err(e.into());
        }
        Ok(to_start.to_vec())
    }

    fn stop_started(&self, started: &[String]) {
        for name in started {
            self.stop_node(name, Signal::SIGTERM, Duration::from_secs(5));
        }
    }

    /// Polls the gate over `expected` until it passes or `timeout` runs out. Nodes in `watch`
    /// were just started: if one of them exits, fail at once with its log.
    pub async fn wait_healthy(
        &self,
        expected: &BTreeSet<String>,
        watch: &[String],
        timeout: Duration,
        progress: &dyn Fn(&str),
    ) -> Result<HealthReport, UpError> {
        let monitor = Monitor::new(Duration::from_secs(1));
        let began = Instant::now();
        let mut last_progress = began;
        loop {
            for name in watch {
                if self.running_pid(name).is_none() {
                    return Err(UpError::Exited(Box::new(NodeFailure {
                        node: name.clone(),
                        check: "process".into(),
                        detail: "exited".into(),
                        log: self.log_path(name),
                        tail: self.log_tail(name, 20),
                    })));
                }
            }
            let report = health::check(&monitor, &self.topology, Some(expected)).await;
            if report.is_healthy() {
                return Ok(report);
            }
            let waited = began.elapsed();
            if waited >= timeout {
                // Prefer blaming a node this run started: that is where the log explains most.
                let (node, check) = report
                    .nodes
                    .iter()
                    .filter(|n| watch.contains(&n.name))
                    .find_map(|n| n.first_failure().map(|c| (n, c)))
                    .or_else(|| report.first_failure())
                    .expect("an unhealthy report has a failing check");
                let failure = NodeFailure {
                    node: node.name.clone(),
                    check: check.name.to_owned(),
                    detail: check.detail.clone(),
                    log: self.log_path(&node.name),
                    tail: self.log_tail(&node.name, 20),
                };
                return Err(UpError::Unhealthy {
                    failure: Box::new(failure),
                    waited,
                });
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                progress(&format!(
                    "waiting for the health gate ({:.0?}): {}",
                    waited,
                    report.failures().join("; ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the chosen nodes (all when `None`) with SIGTERM, then SIGKILL after `grace`.
    /// `purge` removes their data, or the whole directory when every node is stopped.
    pub fn down(
        &self,
        nodes: Option<&[String]>,
        purge: bool,
        grace: Duration,
    ) -> Result<DownReport, UpError> {
        let names: Vec<String> = match nodes {
            Some(list) => {
                for n in list {
                    self.node(n)?;
                }
                list.to_vec()
            }
            None => self.topology.nodes().map(|(_, n)| n.name.clone()).collect(),
        };
        let mut report = DownReport::default();
        if let Some(c) = &self.compose {
            report.stopped = names.iter().filter(|n| c.is_up(n)).cloned().collect();
            match nodes {
                None => {
                    c.down(purge, grace)?;
                    let _ = fs::remove_file(self.dir.join(COMPOSE_MARKER));
                    report.purged = purge;
                }
                Some(_) if purge => return Err(UpError::Unsupported("--purge of single servers")),
                Some(_) => {
                    for name in &names {
                        self.stop_node(name, Signal::SIGTERM, grace);
                    }
                }
            }
            return Ok(report);
        }
        for name in &names {
            let pid_file = self.paths(self.node(name)?).pid;
            if self.stop_node(name, Signal::SIGTERM, grace) {
                report.stopped.push(name.clone());
            } else if pid_file.exists() {
                let _ = fs::remove_file(&pid_file);
                report.stale.push(name.clone());
            }
        }
        if purge {
            let state_err = |e: std::io::Error| UpError::StateDir {
                path: self.dir.display().to_string(),
                reason: e.to_string(),
            };
            if nodes.is_none() {
                if self.dir.exists() {
                    fs::remove_dir_all(&self.dir).map_err(state_err)?;
                }
            } else {
                for name in &names {
                    let data = self.paths(self.node(name)?).data;
                    if data.exists() {
                        fs::remove_dir_all(&data).map_err(state_err)?;
                    }
                }
            }
            report.purged = true;
        }
        Ok(report)
    }
}

/// True when `pid` is alive (not a zombie) and runs with `conf` as an argument.
fn is_server(pid: i32, conf: &Path) -> bool {
    // Reap it if it is our own dead child; harmless (ECHILD) otherwise.
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    let conf = conf.as_os_str().as_bytes();
    // A live process can briefly show an empty cmdline (measured right after start on 2.15.1):
    // read again for a moment before concluding it is not ours.
    for _ in 0..100 {
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        if !cmdline.is_empty() {
            return cmdline.split(|b| *b == 0).any(|arg| arg == conf);
        }
        if !is_alive(pid) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Whether `pid` exists and has not exited (a zombie has exited).
fn is_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may itself contain spaces.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// Asks Linux to SIGKILL the child when the spawning thread exits, so servers of a test that
/// is killed outright do not outlive it.
#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}
