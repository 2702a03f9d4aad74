//! A deployment nobody else will ever see: a profile on free ports, its state in a temporary
//! directory, every server killed and every container and volume removed when it is dropped.
//! What `--private` runs on (next to a developer's own cluster), and what tests build on.

use std::time::Duration;

use super::{compose::Compose, ports, Access, AccessError, BackendKind, ComposeError, Deployment};
use crate::model::{Profile, Security, Topology};

pub struct Throwaway {
    pub deployment: Deployment,
    // Removed after `Drop::drop` stopped the servers.
    dir: tempfile::TempDir,
}

#[derive(Debug, thiserror::Error)]
pub enum ThrowawayError {
    #[error("create a temporary state directory")]
    TempDir(#[source] std::io::Error),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Access(#[from] AccessError),
}

impl Throwaway {
    /// The profile on free host ports, run by `kind`. Nothing is started yet.
    pub fn new(profile: Profile, kind: BackendKind) -> Result<Throwaway, ThrowawayError> {
        let topology = Topology::for_profile(profile).remap_ports(ports::free_port);
        Throwaway::with_topology(topology, kind)
    }

    /// A given topology (ports already chosen), run by `kind`.
    pub fn with_topology(
        topology: Topology,
        kind: BackendKind,
    ) -> Result<Throwaway, ThrowawayError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sea-{}-", topology.profile))
            .tempdir()
            .map_err(ThrowawayError::TempDir)?;
        let state = dir.path().join("state");
        let deployment = match kind {
            BackendKind::Process => Deployment::processes(topology, state),
            BackendKind::Compose => {
                let prefix = unique_prefix(dir.path());
                let compose = Compose::private(&topology, &dir.path().join("compose"), &prefix)?;
                Deployment::containers(topology, state, compose)
            }
        };
        Ok(Throwaway { deployment, dir })
    }

    /// The same, secured: TLS on every listener and `security`'s authentication, with fresh
    /// development secrets held in memory and certificates issued under this directory.
    pub fn secured(self, security: Security) -> Result<Throwaway, ThrowawayError> {
        if !security.is_secure() {
            return Ok(self);
        }
        let access = Access::generate(security, self.dir.path().join("tls"))?;
        self.with_access(access)
    }

    /// The same, secured with the given secrets.
    pub fn with_access(mut self, access: Access) -> Result<Throwaway, ThrowawayError> {
        self.deployment = self.deployment.clone().with_access(access)?;
        Ok(self)
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Names for a private compose project (containers, network, volumes): unique per process and
/// directory, and per run, since pids repeat across fresh CI machines sharing a daemon.
fn unique_prefix(dir: &std::path::Path) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 1_000_000);
    let tail: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("seatest{}x{tail}t{now}", std::process::id())
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let dep = &self.deployment;
        match dep.compose() {
            None => {
                for name in dep.server_names() {
                    let _ = dep.kill_server(&name);
                }
            }
            Some(c) => {
                // No grace: a throw-away cluster has nothing to flush.
                if let Err(e) = c.down(true, Duration::ZERO) {
                    eprintln!("warning: compose project {} not removed: {e}", c.project);
                }
            }
        }
    }
}
