//! age keys, through Debian's `age-keygen` (package `age`): a development key for the secrets
//! file and the recipient (public key) of a key file. The key itself goes from `age-keygen`'s
//! stdout into a 0600 file, never onto a command line or into an error.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::files::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum AgeError {
    #[error("`age-keygen` is not installed; install Debian's age package: `apt-get install age`")]
    NotInstalled,
    #[error("cannot run {}: {source}", .path.display())]
    Run {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("age key {} does not exist; set SEA_AGE_KEY_FILE (or SOPS_AGE_KEY_FILE) to your age key, or run `cargo xtask secrets init` to create a development key", .path.display())]
    MissingKey { path: PathBuf },
    #[error("{} is not an age identity file `age-keygen -y` can read; point SEA_AGE_KEY_FILE at a file written by `age-keygen -o`", .path.display())]
    BadKey { path: PathBuf },
    #[error("`age-keygen` failed (exit {code:?}) and printed no key")]
    Keygen { code: Option<i32> },
    #[error("cannot write the age key {}: {source}; check the permissions of its directory or set SEA_AGE_KEY_FILE", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `age-keygen` on `PATH`.
pub fn keygen() -> Result<PathBuf, AgeError> {
    which::which("age-keygen").map_err(|_| AgeError::NotInstalled)
}

fn run(cmd: &mut Command, bin: &Path) -> Result<std::process::Output, AgeError> {
    cmd.output().map_err(|source| AgeError::Run {
        path: bin.to_path_buf(),
        source,
    })
}

/// Generates a new key into `path` (0600, written atomically; an existing file is replaced, so
/// callers check first) and returns its recipient.
pub fn generate(path: &Path) -> Result<String, AgeError> {
    let bin = keygen()?;
    let out = run(&mut Command::new(&bin), &bin)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .map(str::to_owned);
    let (true, Some(recipient)) = (out.status.success(), recipient) else {
        return Err(AgeError::Keygen {
            code: out.status.code(),
        });
    };
    write_atomic(path, &out.stdout, 0o600).map_err(|source| AgeError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(recipient)
}

/// The recipient (`age1…`) of the key in `path`.
pub fn recipient(path: &Path) -> Result<String, AgeError> {
    if !path.is_file() {
        return Err(AgeError::MissingKey {
            path: path.to_path_buf(),
        });
    }
    let bin = keygen()?;
    let out = run(Command::new(&bin).arg("-y").arg(path), &bin)?;
    // age-keygen's own message may quote the file: never shown.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("age1"))
        .filter(|_| out.status.success())
        .map(str::to_owned)
        .ok_or_else(|| AgeError::BadKey {
            path: path.to_path_buf(),
        })
}
