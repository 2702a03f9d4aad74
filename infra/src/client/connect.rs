//! How to reach NATS, from the environment: servers, auth, TLS, JetStream domain. Shared by
//! provisioning and the worker so both read the same variables the same way.

use std::path::PathBuf;
use std::time::Duration;

use crate::env::{self, EnvReader, Secret};

pub const ENV_NATS_SERVERS: &str = "NATS_SERVERS";
pub const ENV_NATS_URL: &str = "NATS_URL";
pub const ENV_NATS_AUTH_TOKEN: &str = "NATS_AUTH_TOKEN";
pub const ENV_NATS_USER: &str = "NATS_USER";
pub const ENV_NATS_PASSWORD: &str = "NATS_PASSWORD";
pub const ENV_NATS_CREDS_FILE: &str = "NATS_CREDS_FILE";
pub const ENV_NATS_TLS_CA: &str = "NATS_TLS_CA";
pub const ENV_NATS_TLS_CERT: &str = "NATS_TLS_CERT";
pub const ENV_NATS_TLS_KEY: &str = "NATS_TLS_KEY";
pub const ENV_JETSTREAM_DOMAIN: &str = "JETSTREAM_DOMAIN";
pub const ENV_NATS_CONNECT_TIMEOUT_MS: &str = "NATS_CONNECT_TIMEOUT_MS";
pub const ENV_NATS_INBOX_PREFIX: &str = "NATS_INBOX_PREFIX";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Token(Secret),
    UserPassword { user: String, password: Secret },
    CredsFile(PathBuf),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca: Option<PathBuf>,
    /// Client certificate and key, for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsConfig {
    /// `NATS_SERVERS`, else `NATS_URL`; `None` when neither is set (the caller picks a default).
    pub servers: Option<Vec<String>>,
    pub auth: Auth,
    pub tls: Tls,
    pub domain: Option<String>,
    pub connect_timeout: Duration,
    /// Reply subjects under this prefix instead of `_INBOX`: a user of a secured deployment may
    /// only subscribe under its own (`_INBOX_<user>`).
    pub inbox_prefix: Option<String>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            servers: None,
            auth: Auth::None,
            tls: Tls::default(),
            domain: None,
            connect_timeout: Duration::from_secs(5),
            inbox_prefix: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {servers}: {reason}; check that the servers run (`cargo xtask status`) and {ENV_NATS_SERVERS} is right")]
pub struct ConnectError {
    pub servers: String,
    pub reason: String,
}

impl NatsConfig {
    /// Reads every connection variable; problems are recorded in `env`.
    pub fn from_env(env: &mut EnvReader) -> NatsConfig {
        let defaults = NatsConfig::default();
        let servers = env
            .parse_url(ENV_NATS_SERVERS, env::parse_servers)
            .or_else(|| env.parse_url(ENV_NATS_URL, env::parse_servers));
        let token = env.secret(ENV_NATS_AUTH_TOKEN);
        let user = env.string(ENV_NATS_USER);
        let password = env.secret(ENV_NATS_PASSWORD);
        let creds = env.parse(ENV_NATS_CREDS_FILE, existing_file);
        let methods = [token.is_some(), user.is_some(), creds.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if methods > 1 {
            // Name the variables that were actually set, not one the user may never have set.
            let set: Vec<&str> = [
                (token.is_some(), ENV_NATS_AUTH_TOKEN),
                (user.is_some(), ENV_NATS_USER),
                (creds.is_some(), ENV_NATS_CREDS_FILE),
            ]
            .into_iter()
            .filter_map(|(is_set, var)| is_set.then_some(var))
            .collect();
            env.reject(
                set[0],
                "<redacted>",
                format!(
                    "{} are set together: set only one of NATS_AUTH_TOKEN, NATS_USER/NATS_PASSWORD, NATS_CREDS_FILE",
                    set.join(" and ")
                ),
            );
        }
        let auth = match (token, user, password, creds) {
            (Some(t), _, _, _) => Auth::Token(t),
            (None, Some(user), Some(password), _) => Auth::UserPassword { user, password },
            (None, Some(user), None, _) => {
                env.reject(ENV_NATS_USER, user, "NATS_USER needs NATS_PASSWORD as well");
                Auth::None
            }
            (None, None, Some(_), _) => {
                env.reject(
                    ENV_NATS_PASSWORD,
                    "<redacted>",
                    "NATS_PASSWORD needs NATS_USER as well",
                );
                Auth::None
            }
            (None, None, None, Some(path)) => Auth::CredsFile(path),
            (None, None, None, None) => Auth::None,
        };
        let ca = env.parse(ENV_NATS_TLS_CA, existing_file);
        let cert = env.parse(ENV_NATS_TLS_CERT, existing_file);
        let key = env.parse(ENV_NATS_TLS_KEY, existing_file);
        let client = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (Some(c), None) => {
                env.reject(
                    ENV_NATS_TLS_CERT,
                    c.display().to_string(),
                    "needs NATS_TLS_KEY as well",
                );
                None
            }
            (None, Some(k)) => {
                env.reject(
                    ENV_NATS_TLS_KEY,
                    k.display().to_string(),
                    "needs NATS_TLS_CERT as well",
                );
                None
            }
            (None, None) => None,
        };
        NatsConfig {
            servers,
            auth,
            tls: Tls { ca, client },
            domain: env.parse(ENV_JETSTREAM_DOMAIN, env::parse_name),
            connect_timeout: env
                .parse(ENV_NATS_CONNECT_TIMEOUT_MS, env::parse_millis(100))
                .unwrap_or(defaults.connect_timeout),
            inbox_prefix: env.parse(ENV_NATS_INBOX_PREFIX, parse_inbox_prefix),
        }
    }

    /// async-nats options for these settings (auth, TLS, timeout), without the server list.
    pub async fn connect_options(&self) -> Result<async_nats::ConnectOptions, std::io::Error> {
        let mut opts = async_nats::ConnectOptions::new().connection_timeout(self.connect_timeout);
        opts = match &self.auth {
            Auth::None => opts,
            Auth::Token(t) => opts.token(t.expose().to_owned()),
            Auth::UserPassword { user, password } => {
                opts.user_and_password(user.clone(), password.expose().to_owned())
            }
            Auth::CredsFile(path) => opts.credentials_file(path).await?,
        };
        if let Some(prefix) = &self.inbox_prefix {
            opts = opts.custom_inbox_prefix(prefix.clone());
        }
        if let Some(ca) = &self.tls.ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.tls.client {
            opts = opts
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        Ok(opts)
    }

    /// Connects once to `servers`, failing within the connect timeout (for one-shot commands).
    pub async fn connect(&self, servers: &[String]) -> Result<async_nats::Client, ConnectError> {
        self.connect_tuned(servers, |opts| opts).await
    }

    /// [`Self::connect`] with client options of the caller's on top (a shorter ping interval
    /// for a client that must notice a frozen server within seconds).
    pub async fn connect_tuned(
        &self,
        servers: &[String],
        tune: impl FnOnce(async_nats::ConnectOptions) -> async_nats::ConnectOptions,
    ) -> Result<async_nats::Client, ConnectError> {
        // Server URLs may carry credentials (`nats://user:password@host`), and the client's own
        // errors may quote them.
        let err = |reason: String| ConnectError {
            servers: env::redact_credentials(&servers.join(",")),
            reason: env::redact_credentials(&reason),
        };
        let opts = tune(
            self.connect_options()
                .await
                .map_err(|e| err(e.to_string()))?,
        );
        let addrs: Vec<async_nats::ServerAddr> = servers
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e: std::io::Error| err(format!("{s}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        // The whole attempt is bounded, whatever the per-server timeout does.
        let attempt = opts.connect(addrs);
        match tokio::time::timeout(self.connect_timeout * 2, attempt).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(err(e.to_string())),
            Err(_) => Err(err(format!(
                "no answer within {:?}",
                self.connect_timeout * 2
            ))),
        }
    }

    /// The JetStream context, in the configured domain.
    pub fn jetstream(&self, client: async_nats::Client) -> async_nats::jetstream::Context {
        match &self.domain {
            Some(domain) => async_nats::jetstream::with_domain(client, domain),
            None => async_nats::jetstream::new(client),
        }
    }
}

/// One or more subject tokens without wildcards (the client appends `.<id>`).
fn parse_inbox_prefix(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.split('.').all(|t| {
            !t.is_empty() && !t.contains(['*', '>']) && !t.chars().any(char::is_whitespace)
        });
    if valid {
        Ok(s.to_owned())
    } else {
        Err("not a subject prefix: dot-separated tokens without `*`, `>` or spaces, e.g. _INBOX_worker".to_owned())
    }
}

fn existing_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.is_file() {
        Ok(path)
    } else {
        Err("no such file".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> (NatsConfig, Result<(), crate::env::ConfigErrors>) {
        let mut env = EnvReader::from_pairs(pairs.iter().copied());
        let cfg = NatsConfig::from_env(&mut env);
        (cfg, env.finish())
    }

    #[test]
    fn servers_fall_back_to_nats_url() {
        let (cfg, ok) = parse(&[("NATS_URL", "nats://x:1")]);
        ok.unwrap();
        assert_eq!(cfg.servers, Some(vec!["nats://x:1".to_owned()]));
        let (cfg, _) = parse(&[
            ("NATS_URL", "nats://x:1"),
            ("NATS_SERVERS", "nats://a:1, nats://b:2"),
        ]);
        assert_eq!(cfg.servers.unwrap().len(), 2);
        assert_eq!(parse(&[]).0.servers, None);
    }

    #[test]
    fn auth_combinations_are_checked_and_secrets_hidden() {
        let (cfg, ok) = parse(&[("NATS_USER", "svc"), ("NATS_PASSWORD", "pw-123")]);
        ok.unwrap();
        assert!(!format!("{cfg:?}").contains("pw-123"));
        let (_, errs) = parse(&[("NATS_USER", "svc")]);
        assert!(errs
            .unwrap_err()
            .to_string()
            .contains("NATS_USER needs NATS_PASSWORD"));
        let (_, errs) = parse(&[
            ("NATS_AUTH_TOKEN", "tok-456"),
            ("NATS_USER", "svc"),
            ("NATS_PASSWORD", "x"),
        ]);
        let text = errs.unwrap_err().to_string();
        assert!(
            text.contains("set only one of") && !text.contains("tok-456"),
            "{text}"
        );
        // A token was never set here: it is not blamed.
        let creds = std::env::temp_dir().join("sea-connect-test.creds");
        std::fs::write(&creds, "x").unwrap();
        let path = creds.display().to_string();
        let (_, errs) = parse(&[
            ("NATS_USER", "svc"),
            ("NATS_PASSWORD", "x"),
            ("NATS_CREDS_FILE", path.as_str()),
        ]);
        let text = errs.unwrap_err().to_string();
        assert!(
            text.contains("NATS_USER=")
                && text.contains("NATS_USER and NATS_CREDS_FILE are set together")
                && !text.contains("NATS_AUTH_TOKEN="),
            "{text}"
        );
    }

    #[test]
    fn tls_files_must_exist_and_pair() {
        let (_, errs) = parse(&[
            ("NATS_TLS_CA", "/no/such/ca.pem"),
            ("NATS_TLS_CERT", "/etc/hostname"),
        ]);
        let text = errs.unwrap_err().to_string();
        assert!(
            text.contains("NATS_TLS_CA=\"/no/such/ca.pem\": no such file"),
            "{text}"
        );
        assert!(
            text.contains("NATS_TLS_CERT=\"/etc/hostname\": needs NATS_TLS_KEY"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_connect_error_shows_no_credentials() {
        let servers = [
            "nats://svc:pw-s3cret@127.0.0.1:1".to_owned(),
            "nats://t0ken-s3cret@127.0.0.1:1".to_owned(),
        ];
        let cfg = NatsConfig {
            connect_timeout: Duration::from_millis(100),
            ..NatsConfig::default()
        };
        let text = cfg.connect(&servers).await.unwrap_err().to_string();
        assert!(
            text.contains("nats://svc:<redacted>@127.0.0.1:1") && !text.contains("s3cret"),
            "{text}"
        );
    }

    #[test]
    fn domain_and_timeout() {
        let (cfg, ok) = parse(&[
            ("JETSTREAM_DOMAIN", "cell-a"),
            ("NATS_CONNECT_TIMEOUT_MS", "1500"),
        ]);
        ok.unwrap();
        assert_eq!(cfg.domain.as_deref(), Some("cell-a"));
        assert_eq!(cfg.connect_timeout, Duration::from_millis(1500));
        let (_, errs) = parse(&[("JETSTREAM_DOMAIN", "cell.a")]);
        assert!(errs.is_err());
        let (cfg, ok) = parse(&[("NATS_INBOX_PREFIX", "_INBOX_worker")]);
        ok.unwrap();
        assert_eq!(cfg.inbox_prefix.as_deref(), Some("_INBOX_worker"));
        for bad in ["_INBOX.>", "a..b", "a b"] {
            assert!(parse(&[("NATS_INBOX_PREFIX", bad)]).1.is_err(), "{bad}");
        }
    }
}
