//! The process backend: `nats-server` processes on loopback, every file in the state directory
//! (see [`super::state`] for the layout). Nothing here knows about containers.

use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::error::ServerError;
use super::procfs;
use super::state::{StateDir, StateError};
use crate::model::{Server, Topology};
use crate::render::nats_conf;

/// Processes started by this backend.
#[derive(Clone, Debug, Default)]
pub(crate) struct Processes {
    /// Kill the servers when this process dies, however it dies (test deployments).
    pub die_with_parent: bool,
}

impl Processes {
    /// Creates the directory layout and writes every server's config (no server cut off).
    pub fn prepare(&self, state: &StateDir, topology: &Topology) -> Result<(), StateError> {
        state.create_dirs(&["data", "logs", "pids"])?;
        let _ = fs::remove_file(state.dir.join(CUT_OFF_FILE));
        let _ = fs::remove_file(state.dir.join(MAX_FILE_STORE_FILE));
        for file in nats_conf::server_configs(topology) {
            state.write(&state.dir.join(&file.path), &file.contents)?;
        }
        Ok(())
    }

    /// The pid of the server: the one its pid file names when that process runs the server's
    /// config, else any live process running that config (the pid file went stale, was
    /// corrupted, or the state directory was deleted under a running server). `None` when no
    /// process runs it.
    pub fn pid(&self, state: &StateDir, server: &Server) -> Option<i32> {
        let paths = state.paths(server);
        let recorded = fs::read_to_string(&paths.pid)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
            .filter(|pid| is_server(*pid, &paths.conf));
        recorded.or_else(|| servers_running(&state.dir).remove(&paths.conf))
    }

    /// Starts the server in its own process group (Ctrl-C in the terminal does not reach it)
    /// and records its pid. Does not wait for readiness.
    pub fn start(&self, state: &StateDir, bin: &Path, server: &Server) -> Result<i32, ServerError> {
        let paths = state.paths(server);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&paths.log)
            .map_err(|e| state.error(&paths.log, e))?;
        let stderr = log.try_clone().map_err(|e| state.error(&paths.log, e))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&paths.conf)
            .current_dir(&state.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .process_group(0);
        let spawned = if self.die_with_parent {
            spawn_tied_to_this_process(cmd)
        } else {
            cmd.spawn().map(|child| child.id() as i32)
        };
        let pid = spawned.map_err(|source| ServerError::Spawn {
            server: server.name.clone(),
            binary: bin.to_path_buf(),
            source,
        })?;
        fs::File::create(&paths.pid)
            .and_then(|mut f| writeln!(f, "{pid}"))
            .map_err(|e| state.error(&paths.pid, e))?;
        Ok(pid)
    }

    /// Sends `signal` when the server runs; whether it did.
    pub fn signal(&self, state: &StateDir, server: &Server, signal: Signal) -> bool {
        self.pid(state, server)
            .is_some_and(|pid| kill(Pid::from_raw(pid), signal).is_ok())
    }

    /// Sends `signal`, waits up to `grace` for the process to go, then SIGKILLs it. False when
    /// it was not running.
    pub fn stop(&self, state: &StateDir, server: &Server, signal: Signal, grace: Duration) -> bool {
        let paths = state.paths(server);
        let Some(pid) = self.pid(state, server) else {
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
        // When this process started the server, reap it now rather than leave a zombie until
        // we exit; for anyone else's child this is a no-op.
        let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        let _ = fs::remove_file(&paths.pid);
        true
    }

    /// Freezes the process (SIGSTOP): its sockets stay open, nothing answers.
    pub fn pause(&self, state: &StateDir, server: &Server) -> bool {
        self.signal(state, server, Signal::SIGSTOP)
    }

    pub fn resume(&self, state: &StateDir, server: &Server) -> bool {
        self.signal(state, server, Signal::SIGCONT)
    }

    /// A partition of one server: a real cut of its cluster links, without root. Every config is
    /// rendered again with the server cut off (it dials no peer, no peer dials it) and every
    /// running server reloads (SIGHUP), which closes the routes between them. The server keeps
    /// running and keeps its clients, as a server on the minority side of a network partition
    /// does. The cut-off set is kept in the state directory, so a server started while cut off
    /// stays cut off until [`Self::heal`]. True when the running servers were reloaded.
    pub fn partition(
        &self,
        state: &StateDir,
        topology: &Topology,
        server: &Server,
    ) -> Result<bool, StateError> {
        let mut cut = read_cut_off(state);
        if !cut.contains(&server.name) {
            cut.push(server.name.clone());
        }
        self.apply_cut_off(state, topology, cut)
    }

    /// Ends the partition of `server`: its routes (and its peers' routes to it) are rendered and
    /// reloaded again.
    pub fn heal(
        &self,
        state: &StateDir,
        topology: &Topology,
        server: &Server,
    ) -> Result<bool, StateError> {
        let mut cut = read_cut_off(state);
        cut.retain(|n| *n != server.name);
        self.apply_cut_off(state, topology, cut)
    }

    fn apply_cut_off(
        &self,
        state: &StateDir,
        topology: &Topology,
        cut: Vec<String>,
    ) -> Result<bool, StateError> {
        let path = state.dir.join(CUT_OFF_FILE);
        if cut.is_empty() {
            let _ = fs::remove_file(&path);
        } else {
            state.write(&path, &format!("{}\n", cut.join("\n")))?;
        }
        self.rewrite_and_reload(state, topology)
    }

    /// Sets every server's JetStream `max_file_store` to `size` (nats-server size syntax) and
    /// reloads the running ones: the server applies a new limit without a restart. True when
    /// every running server was reloaded.
    pub fn set_max_file_store(
        &self,
        state: &StateDir,
        topology: &Topology,
        size: &str,
    ) -> Result<bool, StateError> {
        let mut topology = topology.clone();
        topology.settings.max_file_store = size.to_owned();
        state.write(&state.dir.join(MAX_FILE_STORE_FILE), size)?;
        self.rewrite_and_reload(state, &topology)
    }

    /// Renders every config from `topology` with the cut-off set and store limit in force, and
    /// reloads the running servers (SIGHUP).
    fn rewrite_and_reload(
        &self,
        state: &StateDir,
        topology: &Topology,
    ) -> Result<bool, StateError> {
        let mut topology = topology.clone();
        let cut = read_cut_off(state);
        for c in &mut topology.clusters {
            c.cut_off = cut.clone();
        }
        if let Ok(size) = fs::read_to_string(state.dir.join(MAX_FILE_STORE_FILE)) {
            topology.settings.max_file_store = size.trim().to_owned();
        }
        let mut all = true;
        for (cluster, server) in topology.servers() {
            let conf = state.paths(server).conf;
            state.write(&conf, &nats_conf::server_config(&topology, cluster, server))?;
            if self.pid(state, server).is_some() {
                all &= self.signal(state, server, Signal::SIGHUP);
            }
        }
        Ok(all)
    }

    /// Rewrites the configs of the servers that dial other cells with their leafnode remotes
    /// enabled or `disabled`, and reloads the running ones (SIGHUP). Returns those reloaded.
    pub fn set_leaf_links(
        &self,
        state: &StateDir,
        topology: &Topology,
        enabled: bool,
    ) -> Result<Vec<String>, StateError> {
        let mut topology = topology.clone();
        let cut = read_cut_off(state);
        for c in &mut topology.clusters {
            c.leaf_links_disabled = !enabled && !c.leaf_remotes.is_empty();
            c.cut_off = cut.clone();
        }
        let mut reloaded = Vec::new();
        for (cluster, server) in topology
            .servers()
            .filter(|(c, _)| !c.leaf_remotes.is_empty())
        {
            let conf = state.paths(server).conf;
            state.write(&conf, &nats_conf::server_config(&topology, cluster, server))?;
            if self.signal(state, server, Signal::SIGHUP) {
                reloaded.push(server.name.clone());
            }
        }
        Ok(reloaded)
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, state: &StateDir, server: &Server, lines: usize) -> String {
        let text = fs::read_to_string(state.paths(server).log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn log_location(&self, state: &StateDir, server: &Server) -> String {
        state.paths(server).log.display().to_string()
    }

    /// Deletes one server's JetStream store, or the whole state directory.
    pub fn purge(&self, state: &StateDir, server: Option<&Server>) -> Result<(), StateError> {
        let path = match server {
            Some(s) => state.paths(s).data,
            None => state.dir.clone(),
        };
        match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(state.error(&path, e)),
            _ => Ok(()),
        }
    }
}

/// The servers cut off from their peers right now, one name per line (absent: none).
const CUT_OFF_FILE: &str = "cut-off";
/// The JetStream `max_file_store` set on the running servers, when not the topology's.
const MAX_FILE_STORE_FILE: &str = "max-file-store";

fn read_cut_off(state: &StateDir) -> Vec<String> {
    fs::read_to_string(state.dir.join(CUT_OFF_FILE))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Live processes whose command line is `... -c <conf>` with `conf` inside `dir`, by config
/// path: this project's servers found by what they run, whatever their pid files say.
pub(crate) fn servers_running(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, i32> {
    procfs::processes()
        .filter_map(|p| {
            let args = p.args();
            let conf = args
                .windows(2)
                .find(|w| w[0] == b"-c")
                .map(|w| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&w[1])))?;
            (conf.starts_with(dir) && p.is_alive()).then_some((conf, p.pid))
        })
        .collect()
}

/// True when `pid` is alive (not a zombie) and runs with `conf` as an argument.
fn is_server(pid: i32, conf: &Path) -> bool {
    // Reap it if it is our own dead child; harmless (ECHILD) otherwise.
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    let conf = conf.as_os_str().as_bytes();
    // A live process can briefly show an empty cmdline (measured right after start on 2.15.1,
    // for over a second on a loaded 2-core machine running a binary installed a moment ago):
    // read again for a while before concluding it is not ours.
    for _ in 0..500 {
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        if !cmdline.is_empty() {
            return cmdline.split(|b| *b == 0).any(|arg| arg == conf);
        }
        if !procfs::is_alive(pid) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<i32>>);

/// Spawns `cmd` so that Linux SIGKILLs it when this process dies. The parent-death signal is
/// tied to the *thread* that spawned the child, so every such child is spawned by one thread
/// that lives as long as the process (a pooled thread would take its servers with it when it
/// retires).
pub(crate) fn spawn_tied_to_this_process(cmd: Command) -> std::io::Result<i32> {
    static SPAWNER: OnceLock<std::sync::Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("sea-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    set_parent_death_signal(&mut cmd);
                    let _ = reply.send(cmd.spawn().map(|c| c.id() as i32));
                }
            })
            .expect("start the spawner thread");
        std::sync::Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

/// Asks Linux to SIGKILL the child when the spawning thread exits.
#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}
