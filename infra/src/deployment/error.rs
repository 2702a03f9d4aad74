//! The errors of running a deployment: one type per family of operations (bring-up, teardown,
//! one server's lifecycle), each keeping its cause as `source()`.

use std::path::PathBuf;
use std::time::Duration;

use super::access::AccessError;
use super::docker::DockerError;
use super::image::ImageError;
use super::state::StateError;
use super::{BackendKind, Operation};
use crate::model::{PortUse, TopologyError};

/// A backend asked for something it cannot do; refused before anything changes.
#[derive(Debug, thiserror::Error)]
#[error("the {backend} backend cannot {}; {}", .operation.describe(), .operation.alternative())]
pub struct Unsupported {
    pub backend: BackendKind,
    pub operation: Operation,
}

#[derive(Debug, thiserror::Error)]
#[error("no server named `{0}` in this topology; `cargo xtask status` lists the servers")]
pub struct UnknownServer(pub String);

/// Starting, stopping, signalling, partitioning one server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    UnknownServer(#[from] UnknownServer),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error("cannot start {server} with {}", .binary.display())]
    Spawn {
        server: String,
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Which server failed which check, with the end of its log: what an operator needs first.
#[derive(Debug)]
pub struct ServerFailure {
    pub server: String,
    pub check: String,
    pub detail: String,
    /// Where the whole log is (a file, or the `docker logs` command).
    pub log: String,
    pub tail: String,
}

/// Bringing a deployment up behind the health gate.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    UnknownServer(#[from] UnknownServer),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the secrets of this secured deployment: {0}")]
    Access(#[from] AccessError),
    #[error("this deployment is secured ({0}) but was given no secrets; run it with `--secure` (the secrets file is SEA_SECRETS_FILE, created by `cargo xtask secrets init`)")]
    NoSecrets(&'static str),
    #[error("port {usage} is already in use{}; {}", holder_suffix(.holder), port_hint(.ours))]
    PortBusy {
        usage: PortUse,
        /// The process holding it, when `/proc` tells.
        holder: Option<String>,
        /// Whether the holder is one of this project's servers (its config is under the state
        /// root).
        ours: bool,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("{} exited during start-up; last lines of {}:\n{}", .0.server, .0.log, .0.tail)]
    Exited(Box<ServerFailure>),
    #[error(
        "health gate failed after {waited:.1?}: {}: {}: {}{}; last lines of {}:\n{}",
        .failure.server, .failure.check, .failure.detail, account_hint(&.failure.detail),
        .failure.log, .failure.tail
    )]
    Unhealthy {
        failure: Box<ServerFailure>,
        waited: Duration,
    },
    #[error("interrupted: stopped the servers this run had started")]
    Interrupted,
}

/// A server whose data holds JetStream state of an account its configuration lacks (it ran
/// secured, with accounts, and was started again without): its health never passes.
fn account_hint(detail: &str) -> &'static str {
    if detail.contains("JetStream account") && detail.contains("could not be resolved") {
        " (the data directory holds streams of an account this configuration does not define: the profile ran secured before; start it with --secure, or delete that data with `cargo xtask down --purge`)"
    } else {
        ""
    }
}

fn holder_suffix(holder: &Option<String>) -> String {
    holder
        .as_ref()
        .map(|h| format!(" by {h}"))
        .unwrap_or_default()
}

fn port_hint(ours: &bool) -> &'static str {
    if *ours {
        "it is a server of this project: stop it with `cargo xtask down`"
    } else {
        "it is not a server this project started, so `cargo xtask down` will not stop it: stop that program or free the port"
    }
}

/// Stopping a deployment (or some of its servers).
#[derive(Debug, thiserror::Error)]
pub enum DownError {
    #[error(transparent)]
    UnknownServer(#[from] UnknownServer),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Docker(#[from] DockerError),
}
