//! The worker's database link as libpq users write it: `sslmode` and `sslrootcert` in
//! `DATABASE_URL` (URL query or `key=value`), else libpq's own `PGSSLMODE` and `PGSSLROOTCERT`.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and no CA file, so those two
//! parameters are taken out of the connection string here (with the same tokenizing rules as
//! tokio-postgres, so both read the same parameters) and the rest is left to tokio-postgres.
//! Every reason given here names the parameter and the fix, never a value of the string but
//! the CA file's path.

use std::fmt;
use std::path::PathBuf;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres::config::Host;

use crate::config::{
    ENV_DATABASE_URL as DATABASE_URL, ENV_PGSSLMODE as PGSSLMODE,
    ENV_PGSSLROOTCERT as PGSSLROOTCERT,
};

/// libpq's `sslmode`, all six of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS when the server refuses a plaintext session.
    Allow,
    /// TLS when the server offers it, else plaintext (libpq's default).
    Prefer,
    /// TLS or nothing; the server's certificate is checked only against a CA given.
    Require,
    /// TLS, the server's certificate signed by the CA.
    VerifyCa,
    /// TLS, the server's certificate signed by the CA and holding the host name dialled.
    VerifyFull,
}

const MODES: [(&str, SslMode); 6] = [
    ("disable", SslMode::Disable),
    ("allow", SslMode::Allow),
    ("prefer", SslMode::Prefer),
    ("require", SslMode::Require),
    ("verify-ca", SslMode::VerifyCa),
    ("verify-full", SslMode::VerifyFull),
];

impl SslMode {
    /// libpq's spelling (lowercase, as libpq requires). The value is never echoed: in a
    /// connection string it sits next to credentials.
    pub fn parse(s: &str) -> Result<SslMode, String> {
        MODES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, mode)| *mode)
            .ok_or_else(|| {
                "unknown sslmode: use disable, allow, prefer, require, verify-ca or verify-full (lowercase, as libpq spells them)"
                    .to_owned()
            })
    }

    pub fn as_str(self) -> &'static str {
        MODES
            .iter()
            .find(|(_, mode)| *mode == self)
            .map_or("prefer", |(name, _)| name)
    }

    /// Whether the server's certificate must chain to a CA given.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CA certificates (PEM) the server's certificate is checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    /// Where the path was given: `sslrootcert in DATABASE_URL` or `PGSSLROOTCERT`.
    pub given_by: &'static str,
    pub certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for CaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.given_by)
    }
}

impl CaFile {
    /// Reads and checks every certificate of a PEM file: readable, PEM, at least one
    /// certificate, each usable as a trust anchor.
    pub fn load(path: &str, given_by: &'static str) -> Result<CaFile, String> {
        const FIX: &str = "give the PEM file of the CA that signed the server's certificate";
        if path.is_empty() {
            return Err(format!("no path: {FIX}"));
        }
        if path == "system" {
            return Err(format!(
                "sslrootcert=system (the system's CA store) is not supported: give a PEM bundle's path instead, e.g. /etc/ssl/certs/ca-certificates.crt, or {FIX}"
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}; {FIX}"))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{path} is not a PEM file of certificates ({e}); {FIX}"))?;
        if certs.is_empty() {
            return Err(format!(
                "{path} holds no certificate (no -----BEGIN CERTIFICATE----- block); {FIX}"
            ));
        }
        let mut store = rustls::RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store.add(cert.clone()).map_err(|e| {
                format!(
                    "certificate {} of {path} cannot serve as a CA ({e}); {FIX}",
                    i + 1
                )
            })?;
        }
        Ok(CaFile {
            path: PathBuf::from(path),
            given_by,
            certs,
        })
    }
}

/// Where `given_by` says the CA path came from.
pub const CA_IN_URL: &str = "sslrootcert in DATABASE_URL";

/// What the environment adds to a connection string that does not say it itself (libpq's
/// `PGSSLMODE` and `PGSSLROOTCERT`), as read, unchecked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgEnv {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
}

/// A refusal, and the variable it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkError {
    /// `DATABASE_URL`, `PGSSLMODE` or `PGSSLROOTCERT`.
    pub var: &'static str,
    pub reason: String,
}

/// A PostgreSQL connection string, parsed: everything tokio-postgres connects with, and the
/// TLS the link must have.
#[derive(Clone, PartialEq, Eq)]
pub struct PgLink {
    /// Without `sslmode` and `sslrootcert`.
    pub(crate) config: tokio_postgres::Config,
    pub mode: SslMode,
    /// Which variable set the mode (`DATABASE_URL`, `PGSSLMODE`), or `None` for the default.
    pub mode_given_by: Option<&'static str>,
    pub ca: Option<CaFile>,
}

impl fmt::Debug for PgLink {
    /// The TLS settings only: the connection string itself is shown redacted by its owner.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sslmode={}", self.mode)?;
        if let Some(by) = self.mode_given_by {
            write!(f, " ({by})")?;
        }
        if let Some(ca) = &self.ca {
            write!(f, ", CA {ca:?}")?;
        }
        Ok(())
    }
}

impl PgLink {
    /// Parses a PostgreSQL URL or `key=value` string; `sslmode` and `sslrootcert` in it win
    /// over `env`'s, as in libpq. The CA file is read and checked here, so a bad one is refused
    /// at start.
    pub fn parse(conninfo: &str, env: &PgEnv) -> Result<PgLink, LinkError> {
        let url_error = |reason: String| LinkError {
            var: DATABASE_URL,
            reason,
        };
        let split = split_tls_params(conninfo).map_err(url_error)?;
        // tokio-postgres' errors name an option, never a value.
        let config: tokio_postgres::Config = split.rest.parse().map_err(|e| {
            let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(": {c}"));
            url_error(format!("not a PostgreSQL connection string: {e}{cause}"))
        })?;
        let (mode, mode_given_by) = match (&split.sslmode, &env.sslmode) {
            (Some(m), _) => (SslMode::parse(m).map_err(url_error)?, Some(DATABASE_URL)),
            (None, Some(m)) => (
                SslMode::parse(m).map_err(|reason| LinkError {
                    var: PGSSLMODE,
                    reason,
                })?,
                Some(PGSSLMODE),
            ),
            (None, None) => (SslMode::Prefer, None),
        };
        let ca =
            match (&split.sslrootcert, &env.sslrootcert) {
                (Some(path), _) => Some(
                    CaFile::load(path, CA_IN_URL)
                        .map_err(|r| url_error(format!("sslrootcert: {r}")))?,
                ),
                (None, Some(path)) => Some(CaFile::load(path, PGSSLROOTCERT).map_err(
                    |reason| LinkError {
                        var: PGSSLROOTCERT,
                        reason,
                    },
                )?),
                (None, None) => None,
            };
        if mode.verifies() && ca.is_none() {
            return Err(LinkError {
                var: mode_given_by.unwrap_or(DATABASE_URL),
                reason: format!(
                    "sslmode={mode} checks the server's certificate against a CA, and none is given: add sslrootcert=/path/to/ca.pem to DATABASE_URL or set PGSSLROOTCERT (or use sslmode=require to encrypt without checking the server)"
                ),
            });
        }
        Ok(PgLink {
            config,
            mode,
            mode_given_by,
            ca,
        })
    }

    /// Whether every host is a Unix socket, where PostgreSQL has no TLS and libpq ignores
    /// `sslmode`.
    pub(crate) fn only_unix_sockets(&self) -> bool {
        let hosts = self.config.get_hosts();
        !hosts.is_empty()
            && self.config.get_hostaddrs().is_empty()
            && hosts.iter().all(|h| !matches!(h, Host::Tcp(_)))
    }
}

/// A connection string without its `sslmode` and `sslrootcert` (raw, still encoded), and
/// their values (decoded).
#[derive(Debug, PartialEq, Eq)]
struct Split {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

const TLS_KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

fn split_tls_params(s: &str) -> Result<Split, String> {
    let url = ["postgres://", "postgresql://"]
        .iter()
        .any(|p| s.starts_with(p));
    let (rest, params) = if url {
        split_url(s)?
    } else {
        split_key_values(s)?
    };
    let mut split = Split {
        rest,
        sslmode: None,
        sslrootcert: None,
    };
    // The last occurrence wins, as in tokio-postgres and libpq.
    for (key, value) in params {
        match key.as_str() {
            "sslmode" => split.sslmode = Some(value),
            _ => split.sslrootcert = Some(value),
        }
    }
    Ok(split)
}

/// A URL's query, read as tokio-postgres reads it: the userinfo ends at the first `@`, the
/// query starts at the next `?`, parameters are `key=value` separated by `&`, percent-encoded.
fn split_url(s: &str) -> Result<(String, Vec<(String, String)>), String> {
    let scheme_end = s.find("://").map_or(0, |i| i + 3);
    let after_userinfo = s[scheme_end..]
        .find('@')
        .map_or(scheme_end, |i| scheme_end + i + 1);
    let Some(q) = s[after_userinfo..].find('?').map(|i| after_userinfo + i) else {
        return Ok((s.to_owned(), Vec::new()));
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut found = Vec::new();
    let mut rest = &s[q + 1..];
    while !rest.is_empty() {
        // As tokio-postgres: the key runs to the next `=`, its value to the next `&`.
        let Some(eq) = rest.find('=') else {
            kept.push(rest);
            break;
        };
        let end = rest[eq + 1..].find('&').map_or(rest.len(), |i| eq + 1 + i);
        let key = decode(&rest[..eq]);
        if let Some(key) = key.filter(|k| TLS_KEYS.contains(&k.as_str())) {
            let value = decode(&rest[eq + 1..end])
                .ok_or_else(|| format!("{key}: not UTF-8 once percent-decoded"))?;
            found.push((key, value));
        } else {
            kept.push(&rest[..end]);
        }
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let mut out = s[..q].to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok((out, found))
}

fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// A `key=value` string, tokenized as tokio-postgres (and libpq) do: whitespace between
/// parameters, optional whitespace around `=`, a value either single-quoted or up to the next
/// whitespace, backslash escaping one character in both.
fn split_key_values(s: &str) -> Result<(String, Vec<(String, String)>), String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut found = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    loop {
        let start = skip_ws(s, i);
        if start >= s.len() {
            break;
        }
        let key_end = s[start..]
            .find(|c: char| c.is_whitespace() || c == '=')
            .map_or(s.len(), |k| start + k);
        let key = &s[start..key_end];
        let eq = skip_ws(s, key_end);
        if bytes.get(eq) != Some(&b'=') {
            // Not a parameter: tokio-postgres refuses the string, with its own message.
            break;
        }
        let v = skip_ws(s, eq + 1);
        let tls_key = TLS_KEYS.contains(&key);
        let Some((value, end)) = key_value(s, v) else {
            if tls_key {
                return Err(format!(
                    "{key}: the value is missing or its quote is not closed"
                ));
            }
            // tokio-postgres refuses the string, naming no value.
            break;
        };
        if tls_key {
            out.push_str(&s[copied..start]);
            copied = end;
            found.push((key.to_owned(), value));
        }
        i = end;
    }
    out.push_str(&s[copied..]);
    Ok((out, found))
}

fn skip_ws(s: &str, i: usize) -> usize {
    s[i..]
        .find(|c: char| !c.is_whitespace())
        .map_or(s.len(), |k| i + k)
}

/// The value starting at `v` (unescaped) and where it ends; `None` when a quote is not closed
/// or nothing is there.
fn key_value(s: &str, v: usize) -> Option<(String, usize)> {
    let quoted = s[v..].starts_with('\'');
    let from = if quoted { v + 1 } else { v };
    let mut value = String::new();
    let mut chars = s[from..].char_indices();
    while let Some((k, c)) = chars.next() {
        if quoted && c == '\'' {
            return Some((value, from + k + 1));
        }
        if !quoted && c.is_whitespace() {
            return (!value.is_empty()).then_some((value, from + k));
        }
        if c == '\\' {
            if let Some((_, escaped)) = chars.next() {
                value.push(escaped);
            }
        } else {
            value.push(c);
        }
    }
    (!quoted && !value.is_empty()).then_some((value, s.len()))
}

#[cfg(test)]
mod tests;
