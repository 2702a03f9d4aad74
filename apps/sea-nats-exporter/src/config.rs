//! The exporter's configuration: environment variables only, all parsed before anything starts.
//! Every invalid variable is reported in one run (exit code 64); monitoring URLs may carry
//! `user:password@` and are only ever shown redacted.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sea_infra::env::{self, ConfigErrors, EnvReader};
use sea_infra::model::Topology;
use sea_infra::service::logs::{LogFormat, Logs};

/// Comma-separated monitoring URLs (`http://host:8222`, `https://...`), one per server.
pub const ENV_NATS_MONITOR_URLS: &str = "NATS_MONITOR_URLS";
/// PEM CA bundle trusted for `https://` monitoring URLs (besides the system roots).
pub const ENV_NATS_MONITOR_CA_FILE: &str = "NATS_MONITOR_CA_FILE";
/// `host:port` the exporter serves `/metrics` and `/healthz` on.
pub const ENV_EXPORTER_ADDR: &str = "EXPORTER_ADDR";
/// Per-request timeout towards a server, in ms; a scrape takes at most about this long.
pub const ENV_EXPORTER_TIMEOUT_MS: &str = "EXPORTER_TIMEOUT_MS";
/// `true` exports consumers without a durable name too (unbounded cardinality: off by default).
pub const ENV_EXPORTER_EPHEMERAL_CONSUMERS: &str = "EXPORTER_EPHEMERAL_CONSUMERS";

pub const DEFAULT_MONITOR_URL: &str = "http://127.0.0.1:8222";
/// prometheus-nats-exporter's default port, so scrape configs carry over.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7777";

/// One server's monitoring base URL (no trailing slash). Its `Debug`/`Display` redact credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct MonitorUrl(String);

impl MonitorUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced, for logs and labels.
    pub fn redacted(&self) -> String {
        env::redact_credentials(&self.0)
    }
}

impl fmt::Debug for MonitorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for MonitorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A comma-separated list of `http://` or `https://` URLs, split, trimmed, without trailing `/`.
pub fn parse_monitor_urls(s: &str) -> Result<Vec<MonitorUrl>, String> {
    let mut urls = Vec::new();
    for url in s.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| format!("`{url}` is not a monitoring URL: write http://host:8222"))?;
        let host = rest.rsplit('@').next().unwrap_or(rest);
        if host.is_empty() || host.starts_with([':', '/']) {
            return Err(format!("`{url}` has no host"));
        }
        if rest.contains(['?', '#']) {
            return Err(format!(
                "`{url}`: give the server's base URL, without query"
            ));
        }
        let url = url.trim_end_matches('/').to_owned();
        if urls.iter().any(|u: &MonitorUrl| u.0 == url) {
            return Err(format!("`{url}` is listed twice"));
        }
        urls.push(MonitorUrl(url));
    }
    if urls.is_empty() {
        return Err("no monitoring URL in the list".to_owned());
    }
    Ok(urls)
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "not a host:port address such as 0.0.0.0:7777".into())
}

/// A readable file holding at least one PEM certificate.
fn parse_ca_file(s: &str) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(s).map_err(|e| format!("cannot read it: {e}"))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err("holds no PEM certificate".into());
    }
    Ok(PathBuf::from(s))
}

#[derive(Clone, Debug)]
pub struct ExporterConfig {
    pub servers: Vec<MonitorUrl>,
    pub ca_file: Option<PathBuf>,
    pub addr: SocketAddr,
    pub timeout: Duration,
    pub ephemeral_consumers: bool,
    pub logs: Logs,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig {
            servers: vec![MonitorUrl(DEFAULT_MONITOR_URL.to_owned())],
            ca_file: None,
            addr: DEFAULT_ADDR.parse().expect("the default address parses"),
            timeout: Duration::from_secs(3),
            ephemeral_consumers: false,
            logs: Logs {
                level: "info".to_owned(),
                format: LogFormat::Text,
            },
        }
    }
}

impl ExporterConfig {
    pub fn from_process_env() -> Result<ExporterConfig, ConfigErrors> {
        ExporterConfig::from_env(EnvReader::from_process())
    }

    pub fn from_env(mut env: EnvReader) -> Result<ExporterConfig, ConfigErrors> {
        let d = ExporterConfig::default();
        let config = ExporterConfig {
            servers: env
                .parse_url(ENV_NATS_MONITOR_URLS, parse_monitor_urls)
                .unwrap_or(d.servers),
            ca_file: env.parse(ENV_NATS_MONITOR_CA_FILE, parse_ca_file),
            addr: env.parse(ENV_EXPORTER_ADDR, parse_addr).unwrap_or(d.addr),
            timeout: env
                .parse(ENV_EXPORTER_TIMEOUT_MS, env::parse_millis(100))
                .unwrap_or(d.timeout),
            ephemeral_consumers: env
                .parse(ENV_EXPORTER_EPHEMERAL_CONSUMERS, env::parse_bool)
                .unwrap_or(d.ephemeral_consumers),
            logs: Logs::from_env(&mut env),
        };
        env.finish()?;
        Ok(config)
    }

    /// Every server of a topology (a profile's, or a test deployment's on free ports).
    pub fn for_topology(topology: &Topology) -> ExporterConfig {
        let urls = topology
            .servers()
            .map(|(_, server)| topology.monitor_url(server));
        ExporterConfig::for_servers(urls).expect("the topology's monitor URLs are http URLs")
    }

    /// The monitoring URLs of given servers.
    pub fn for_servers(urls: impl IntoIterator<Item = String>) -> Result<ExporterConfig, String> {
        let joined: Vec<String> = urls.into_iter().collect();
        Ok(ExporterConfig {
            servers: parse_monitor_urls(&joined.join(","))?,
            ..ExporterConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ExporterConfig, ConfigErrors> {
        ExporterConfig::from_env(EnvReader::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.servers, [MonitorUrl(DEFAULT_MONITOR_URL.into())]);
        assert_eq!(c.addr.to_string(), "127.0.0.1:7777");
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert!(!c.ephemeral_consumers);
    }

    #[test]
    fn monitor_urls_are_split_trimmed_and_checked() {
        let urls = parse_monitor_urls(" http://a:8222/ , https://b:8223,").unwrap();
        assert_eq!(
            urls.iter().map(MonitorUrl::as_str).collect::<Vec<_>>(),
            ["http://a:8222", "https://b:8223"]
        );
        for bad in [
            "nats://a:4222",
            "a:8222",
            "http://",
            "http://:8222",
            " , ",
            "http://a:8222/varz?x=1",
            "http://a:1,http://a:1",
        ] {
            assert!(parse_monitor_urls(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_invalid_variable_is_reported_and_no_password_shown() {
        let err = parse(&[
            ("NATS_MONITOR_URLS", "ftp://mon:hunter2@a:8222"),
            ("NATS_MONITOR_CA_FILE", "/nonexistent/ca.pem"),
            ("EXPORTER_ADDR", "7777"),
            ("EXPORTER_TIMEOUT_MS", "5"),
            ("EXPORTER_EPHEMERAL_CONSUMERS", "maybe"),
            ("LOG_LEVEL", "loud=="),
            ("LOG_FORMAT", "xml"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 7, "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("mon:<redacted>@a:8222"), "{text}");
    }

    #[test]
    fn a_profile_gives_every_servers_monitor_url() {
        let mesh = Topology::for_profile(sea_infra::model::Profile::Mesh);
        let c = ExporterConfig::for_topology(&mesh);
        assert_eq!(c.servers.len(), 6);
        assert_eq!(c.servers[0].as_str(), "http://127.0.0.1:8422");
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let c = parse(&[("NATS_MONITOR_URLS", "https://mon:s3cret@a:8222")]).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.servers[0].as_str(), "https://mon:s3cret@a:8222");
    }
}
