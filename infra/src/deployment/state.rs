//! Where a deployment keeps its state, and what it recorded there.
//!
//! Layout of a state directory (one per profile, `.sea/<profile>/` by default):
//!
//! ```text
//! topology.json        the topology the servers were started from (status and down read it)
//! compose-project      present when the compose backend started them: the project's name
//! nats-1.conf          rendered config; the server runs with this directory as its cwd
//! data/nats-1/         JetStream store
//! logs/nats-1.log      stdout and stderr of the server
//! pids/nats-1.pid      pid, checked against /proc/<pid>/cmdline before any signal is sent
//! cut-off              present while servers are partitioned: their names, one per line
//! max-file-store       present when the store limit was changed on running servers
//! ```
//!
//! The compose backend writes only `topology.json` and `compose-project`; its servers' files live in
//! containers and volumes.

use std::fs;
use std::path::{Path, PathBuf};

use crate::model::{Server, Topology};
use crate::render::nats_conf;

/// Env var overriding the project-local state root (`<project>/.sea`).
pub const ENV_STATE_DIR: &str = "SEA_STATE_DIR";

/// The state root: `SEA_STATE_DIR`, else `.sea` at the project root.
pub fn state_root() -> PathBuf {
    match std::env::var_os(ENV_STATE_DIR).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => crate::project_root().join(".sea"),
    }
}

/// Downloads and builds kept between runs (nats-server, busybox, Python tools).
pub fn cache_dir() -> PathBuf {
    state_root().join("cache")
}

/// A state directory could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("state directory {} is not writable ({}); set {ENV_STATE_DIR} to a writable directory", .dir.display(), .path.display())]
pub struct StateError {
    pub dir: PathBuf,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A state file that exists but cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("state file {} cannot be read back; remove it, or run `cargo xtask down --purge --profile <profile>` (it finds the servers by their config paths)", .path.display())]
pub struct CorruptState {
    pub path: PathBuf,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Paths of one server's files.
#[derive(Clone, Debug)]
pub(crate) struct ServerPaths {
    pub conf: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
    pub pid: PathBuf,
}

const TOPOLOGY_FILE: &str = "topology.json";
const COMPOSE_MARKER: &str = "compose-project";

/// One deployment's state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub(crate) fn new(dir: PathBuf) -> StateDir {
        StateDir { dir }
    }

    pub(crate) fn paths(&self, server: &Server) -> ServerPaths {
        ServerPaths {
            conf: self.dir.join(nats_conf::conf_file_name(server)),
            data: self.dir.join("data").join(&server.name),
            log: self.dir.join("logs").join(format!("{}.log", server.name)),
            pid: self.dir.join("pids").join(format!("{}.pid", server.name)),
        }
    }

    /// Writes `contents` to `path` (inside this directory), creating parents.
    pub(crate) fn write(&self, path: &Path, contents: &str) -> Result<(), StateError> {
        let parent = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(parent)
            .and_then(|()| fs::write(path, contents))
            .map_err(|source| self.error(path, source))
    }

    pub(crate) fn create_dirs(&self, subdirs: &[&str]) -> Result<(), StateError> {
        for sub in subdirs {
            let path = self.dir.join(sub);
            fs::create_dir_all(&path).map_err(|source| self.error(&path, source))?;
        }
        Ok(())
    }

    pub(crate) fn error(&self, path: &Path, source: std::io::Error) -> StateError {
        StateError {
            dir: self.dir.clone(),
            path: path.to_path_buf(),
            source,
        }
    }

    /// Records the topology `up` starts, and the compose project running it (none for
    /// processes), for the commands that only look or stop.
    pub(crate) fn record(
        &self,
        topology: &Topology,
        compose_project: Option<&str>,
    ) -> Result<(), StateError> {
        let json = serde_json::to_string_pretty(topology).expect("a topology always serializes");
        self.write(&self.dir.join(TOPOLOGY_FILE), &json)?;
        let marker = self.dir.join(COMPOSE_MARKER);
        match compose_project {
            Some(project) => self.write(&marker, project),
            None => {
                let _ = fs::remove_file(marker);
                Ok(())
            }
        }
    }

    /// The topology recorded by the last `up`; `None` when nothing was recorded.
    pub(crate) fn recorded_topology(&self) -> Result<Option<Topology>, CorruptState> {
        let path = self.dir.join(TOPOLOGY_FILE);
        let text = match fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CorruptState {
                    path,
                    source: Box::new(e),
                })
            }
            Ok(text) => text,
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| CorruptState {
                path,
                source: Box::new(e),
            })
    }

    /// Whether the last `up` here recorded anything (readable or not).
    pub fn has_record(&self) -> bool {
        self.dir.join(TOPOLOGY_FILE).exists()
    }

    /// Whether the last `up` here used the compose backend.
    pub(crate) fn recorded_compose(&self) -> bool {
        self.dir.join(COMPOSE_MARKER).is_file()
    }

    /// Forgets the compose project (its containers were removed).
    pub(crate) fn forget_compose(&self) {
        let _ = fs::remove_file(self.dir.join(COMPOSE_MARKER));
    }
}
