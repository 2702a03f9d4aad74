//! The secret material of a secure deployment: what the decrypted secrets file holds
//! ([`Secrets`]), where that file and its age key are ([`secrets_file`], [`age_key_file`]),
//! and the private directory the servers read at start ([`write_dir`]).
//!
//! Keys of the secrets file (a sops-encrypted dotenv file, see [`super::sops`]):
//!
//! ```text
//! NATS_AUTH_TOKEN               token mode only (no users, so no passwords)
//! NATS_TLS_CA                   optional: the operator's CA (else the development CA)
//! NATS_TLS_CERT, NATS_TLS_KEY   optional: one certificate and key for every server
//! NATS_PASSWORD_<ROLE>          one per role: ADMIN, WORKER, PUBLISHER, MONITOR, SYS, LEAF
//! ```
//!
//! Values are never shown: not in `Debug`, not in errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::files::{create_private_dir, write_atomic};
use super::state::state_root;
use crate::env::{ConfigErrors, EnvReader, Secret};
use crate::model::security::{CertFiles, AUTH_FILE, CA_FILE, SHARED_SERVER_CERT};
use crate::model::Role;

/// Env var: the encrypted secrets file (default `<state root>/secrets/secrets.env.sops`).
pub const ENV_SEA_SECRETS_FILE: &str = "SEA_SECRETS_FILE";
/// Env var: the age key that decrypts it (default `<state root>/secrets/age.key`).
pub const ENV_SEA_AGE_KEY_FILE: &str = "SEA_AGE_KEY_FILE";
/// sops's own variable for the age key, honoured when `SEA_AGE_KEY_FILE` is unset.
pub const ENV_SOPS_AGE_KEY_FILE: &str = "SOPS_AGE_KEY_FILE";

/// Keys of the secrets file besides the passwords.
pub const KEY_TOKEN: &str = "NATS_AUTH_TOKEN";
pub const KEY_TLS_CA: &str = "NATS_TLS_CA";
pub const KEY_TLS_CERT: &str = "NATS_TLS_CERT";
pub const KEY_TLS_KEY: &str = "NATS_TLS_KEY";

/// Shortest password or token accepted.
pub const MIN_SECRET_LEN: usize = 12;
/// Length of a generated password.
pub const GENERATED_LEN: usize = 32;

/// `<state root>/secrets`: the age key, the secrets file, `tls/`.
pub fn secrets_root() -> PathBuf {
    state_root().join("secrets")
}

/// `<state root>/secrets/tls`: the development certificates of `cargo xtask certs`.
pub fn tls_dir() -> PathBuf {
    secrets_root().join("tls")
}

fn path_var(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `SEA_SECRETS_FILE`, else `<state root>/secrets/secrets.env.sops`.
pub fn secrets_file() -> PathBuf {
    path_var(ENV_SEA_SECRETS_FILE).unwrap_or_else(|| secrets_root().join("secrets.env.sops"))
}

/// `SEA_AGE_KEY_FILE`, else `SOPS_AGE_KEY_FILE`, else `<state root>/secrets/age.key`.
pub fn age_key_file() -> PathBuf {
    path_var(ENV_SEA_AGE_KEY_FILE)
        .or_else(|| path_var(ENV_SOPS_AGE_KEY_FILE))
        .unwrap_or_else(|| secrets_root().join("age.key"))
}

/// A certificate and key given by path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the servers' TLS files come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSource {
    /// `NATS_TLS_CA`: the operator's CA; `None`: the development CA (`cargo xtask certs`).
    pub ca: Option<PathBuf>,
    /// `NATS_TLS_CERT` + `NATS_TLS_KEY`: one certificate for every server; `None`: one per
    /// server from the development certificates directory.
    pub server: Option<CertPair>,
}

/// The secret material of a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secrets {
    /// Token mode: every client presents this token; no users, so no passwords.
    pub token: Option<Secret>,
    pub tls: TlsSource,
    /// Accounts mode: a password per role.
    pub passwords: BTreeMap<Role, Secret>,
}

/// A token together with users: nats-server refuses to start ("Can not have a token and a
/// users array").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{KEY_TOKEN} is set together with passwords ({}): nats-server refuses a token with users (\"Can not have a token and a users array\"); remove {KEY_TOKEN} to use the accounts and their users, or remove every NATS_PASSWORD_* for token mode", .roles.join(", "))]
pub struct TokenWithAccounts {
    /// The password keys set beside the token.
    pub roles: Vec<String>,
}

/// Why a value is refused (never quoting it).
fn check_secret(value: &str) -> Result<(), String> {
    if value.chars().count() < MIN_SECRET_LEN {
        return Err(format!("too short: at least {MIN_SECRET_LEN} characters"));
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
    {
        return Err("contains whitespace, a control character, `\"` or `\\`, which the server configuration cannot quote".to_owned());
    }
    Ok(())
}

fn check_path(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err("not an absolute path".to_owned())
    }
}

const REDACTED: &str = "<redacted>";

/// A password or token, checked; a refusal is recorded without the value.
fn read_secret(env: &mut EnvReader, key: &str) -> Option<Secret> {
    let value = env.secret(key)?;
    match check_secret(value.expose()) {
        Ok(()) => Some(value),
        Err(reason) => {
            env.reject(key, REDACTED, reason);
            None
        }
    }
}

/// An absolute path; a refusal is recorded without the value.
fn read_path(env: &mut EnvReader, key: &str) -> Option<PathBuf> {
    let value = env.string(key)?;
    check_path(&value)
        .map_err(|reason| env.reject(key, REDACTED, reason))
        .ok()
}

impl Secrets {
    /// Reads the decrypted pairs of a secrets file. Every missing, unknown or invalid key is
    /// reported at once, by name; values never appear.
    pub fn from_dotenv(pairs: &[(String, Secret)]) -> Result<Secrets, ConfigErrors> {
        let known: Vec<String> = [KEY_TOKEN, KEY_TLS_CA, KEY_TLS_CERT, KEY_TLS_KEY]
            .map(str::to_owned)
            .into_iter()
            .chain(Role::ALL.map(Role::password_key))
            .collect();
        let mut env = EnvReader::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned())),
        );
        for (key, _) in pairs.iter().filter(|(k, _)| !known.contains(k)) {
            env.reject(
                key,
                REDACTED,
                format!(
                    "not a key of the secrets file (known: {})",
                    known.join(", ")
                ),
            );
        }
        let is_set = |key: &str| {
            pairs
                .iter()
                .any(|(k, v)| k == key && !v.expose().trim().is_empty())
        };
        let token = read_secret(&mut env, KEY_TOKEN);
        let mut passwords = BTreeMap::new();
        for role in Role::ALL {
            if let Some(p) = read_secret(&mut env, &role.password_key()) {
                passwords.insert(role, p);
            }
        }
        let ca = read_path(&mut env, KEY_TLS_CA);
        let cert = read_path(&mut env, KEY_TLS_CERT);
        let key = read_path(&mut env, KEY_TLS_KEY);
        let (has_cert, has_key) = (is_set(KEY_TLS_CERT), is_set(KEY_TLS_KEY));
        if has_cert != has_key {
            let (missing, other) = if has_cert {
                (KEY_TLS_KEY, KEY_TLS_CERT)
            } else {
                (KEY_TLS_CERT, KEY_TLS_KEY)
            };
            env.reject(missing, "", format!("missing: {other} is set, and a certificate needs its key (or remove {other} for per-server certificates)"));
        }
        if is_set(KEY_TOKEN) {
            let beside: Vec<String> = Role::ALL
                .map(Role::password_key)
                .into_iter()
                .filter(|k| is_set(k))
                .collect();
            if !beside.is_empty() {
                let refusal = TokenWithAccounts { roles: beside };
                env.reject(KEY_TOKEN, REDACTED, refusal.to_string());
            }
        } else {
            for key in Role::ALL.map(Role::password_key) {
                if !is_set(&key) {
                    env.reject(&key, "", format!("missing: every role needs a password (accounts mode), or set {KEY_TOKEN} alone for token mode"));
                }
            }
        }
        let secrets = Secrets {
            token,
            tls: TlsSource {
                ca,
                server: cert.zip(key).map(|(cert, key)| CertPair { cert, key }),
            },
            passwords,
        };
        env.finish().map(|()| secrets)
    }

    /// Development secrets for `security`: a random token of [`GENERATED_LEN`] URL-safe
    /// characters for token mode, else such a password per role; the development certificates.
    pub fn generate(security: crate::model::Security) -> Secrets {
        let mut secrets = Secrets::generate_dev();
        if security == crate::model::Security::Token {
            secrets.token = Some(Secret::new(random_password()));
            secrets.passwords.clear();
        }
        secrets
    }

    /// Development secrets: a random password of [`GENERATED_LEN`] URL-safe characters per role,
    /// no token, the development certificates.
    pub fn generate_dev() -> Secrets {
        Secrets {
            token: None,
            tls: TlsSource::default(),
            passwords: Role::ALL
                .into_iter()
                .map(|role| (role, Secret::new(random_password())))
                .collect(),
        }
    }

    /// Refuses a token beside passwords (what nats-server would refuse at start).
    pub fn token_with_accounts(&self) -> Result<(), TokenWithAccounts> {
        if self.token.is_none() || self.passwords.is_empty() {
            return Ok(());
        }
        Err(TokenWithAccounts {
            roles: self.passwords.keys().map(|r| r.password_key()).collect(),
        })
    }

    /// The dotenv text of the secrets file (what `sops encrypt` gets on stdin).
    pub fn to_dotenv(&self) -> Secret {
        let mut lines = Vec::new();
        if let Some(token) = &self.token {
            lines.push(format!("{KEY_TOKEN}={}", token.expose()));
        }
        if let Some(ca) = &self.tls.ca {
            lines.push(format!("{KEY_TLS_CA}={}", ca.display()));
        }
        if let Some(pair) = &self.tls.server {
            lines.push(format!("{KEY_TLS_CERT}={}", pair.cert.display()));
            lines.push(format!("{KEY_TLS_KEY}={}", pair.key.display()));
        }
        for (role, password) in &self.passwords {
            lines.push(format!("{}={}", role.password_key(), password.expose()));
        }
        Secret::new(lines.join("\n") + "\n")
    }

    /// The TLS files a secrets directory gets for `servers`, by source and fixed name:
    /// `ca.pem`, then `<server>.pem` and `<server>-key.pem` from `dev_tls_dir` for each server,
    /// or `server.pem` and `server-key.pem` when one certificate is given for all.
    pub fn tls_files(&self, dev_tls_dir: &Path, servers: &[String]) -> Vec<TlsFile> {
        let ca = self
            .tls
            .ca
            .clone()
            .unwrap_or_else(|| dev_tls_dir.join(CA_FILE));
        let mut out = vec![TlsFile {
            from: ca,
            name: CA_FILE.to_owned(),
        }];
        let pair = |from_cert: PathBuf, from_key: PathBuf, stem: &str| {
            let names = CertFiles::named(stem);
            [
                TlsFile {
                    from: from_cert,
                    name: names.cert,
                },
                TlsFile {
                    from: from_key,
                    name: names.key,
                },
            ]
        };
        match &self.tls.server {
            Some(p) => out.extend(pair(p.cert.clone(), p.key.clone(), SHARED_SERVER_CERT)),
            None => {
                for server in servers {
                    let dev = CertFiles::named(server);
                    out.extend(pair(
                        dev_tls_dir.join(dev.cert),
                        dev_tls_dir.join(dev.key),
                        server,
                    ));
                }
            }
        }
        out
    }
}

/// One TLS file of a secrets directory: where it is copied from, and its name there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFile {
    pub from: PathBuf,
    pub name: String,
}

/// What [`write_dir`] needs besides the secrets.
#[derive(Clone, Copy, Debug)]
pub struct DirInputs<'a> {
    /// The development certificates (`cargo xtask certs`), used for what the secrets do not
    /// give by path.
    pub dev_tls_dir: &'a Path,
    /// The servers that read this directory.
    pub servers: &'a [String],
    /// The rendered `auth.conf` (accounts and users, or the token).
    pub auth_conf: &'a str,
    /// Further rendered files by name (the leafnode URLs the dialling cells include).
    pub extra: &'a [(String, String)],
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot create the secrets directory {}: {source}; set SEA_STATE_DIR to a writable directory", .dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {} (for {name} in the secrets directory): {source}; {}", .from.display(), fix_for(name))]
    Read {
        from: PathBuf,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn fix_for(name: &str) -> String {
    format!("run `cargo xtask certs` for the development certificates, or fix {KEY_TLS_CA} / {KEY_TLS_CERT} / {KEY_TLS_KEY} in the secrets file (`{name}` comes from there when set)")
}

/// Writes the directory servers include: `dir` (0700) with `auth.conf` and the TLS files under
/// their fixed names, each 0600 and written atomically; any other `.pem` or `.conf` file left
/// from an earlier layout is removed. Returns the names written.
pub fn write_dir(
    dir: &Path,
    secrets: &Secrets,
    inputs: &DirInputs<'_>,
) -> Result<Vec<String>, SecretsError> {
    create_private_dir(dir).map_err(|source| SecretsError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let write = |name: &str, contents: &[u8]| {
        let path = dir.join(name);
        write_atomic(&path, contents, 0o600).map_err(|source| SecretsError::Write { path, source })
    };
    let mut written = Vec::new();
    for file in secrets.tls_files(inputs.dev_tls_dir, inputs.servers) {
        let contents = std::fs::read(&file.from).map_err(|source| SecretsError::Read {
            from: file.from.clone(),
            name: file.name.clone(),
            source,
        })?;
        write(&file.name, &contents)?;
        written.push(file.name);
    }
    write(AUTH_FILE, inputs.auth_conf.as_bytes())?;
    written.push(AUTH_FILE.to_owned());
    for (name, contents) in inputs.extra {
        write(name, contents.as_bytes())?;
        written.push(name.clone());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| SecretsError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".pem") || name.ends_with(".conf") || name.ends_with(".tmp");
        if ours && !written.contains(&name) && entry.path().is_file() {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|source| SecretsError::Write { path, source })?;
        }
    }
    Ok(written)
}

/// 32 characters of `A-Z a-z 0-9 - _` (6 bits each, no bias: 256 is a multiple of 64).
fn random_password() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; GENERATED_LEN];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b & 63)] as char)
        .collect()
}

impl fmt::Display for TlsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.ca, &self.server) {
            (None, None) => f.write_str("development CA, per-server certificates"),
            (Some(_), None) => f.write_str("operator CA, per-server certificates"),
            (None, Some(_)) => f.write_str("development CA, one certificate for every server"),
            (Some(_), Some(_)) => f.write_str("operator CA, one certificate for every server"),
        }
    }
}

#[cfg(test)]
mod tests;
