//! A small client for the nats-server HTTP monitoring endpoints the health gate reads.
//!
//! Only the fields the project uses are typed; unknown fields are ignored so newer servers parse.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} returned an unexpected body: {reason}")]
    BadBody { url: String, reason: String },
}

/// `/healthz`: `{"status":"ok"}` when healthy, else a status and an error text.
#[derive(Clone, Debug, Deserialize)]
pub struct Healthz {
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
}

impl Healthz {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// The parts of `/jsz` the gate reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Jsz {
    #[serde(default)]
    pub meta_cluster: Option<MetaCluster>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaCluster {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default)]
    pub cluster_size: Option<usize>,
}

/// The parts of `/varz` the project reads: which server, which release.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Varz {
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub version: String,
}

/// The parts of `/routez` the gate reads. With route pooling a peer appears several times.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Routez {
    #[serde(default)]
    pub routes: Option<Vec<Route>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Route {
    #[serde(default)]
    pub remote_name: Option<String>,
}

impl Routez {
    /// Distinct names of the servers this one has a route to, sorted.
    pub fn peer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .routes
            .iter()
            .flatten()
            .filter_map(|r| r.remote_name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The parts of `/gatewayz` the gate reads: gateway names connected out and in.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Gatewayz {
    #[serde(default)]
    pub outbound_gateways: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub inbound_gateways: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

impl Gatewayz {
    /// Whether this server has its outbound connection to gateway `name`. Every server dials
    /// one server of each joined cluster, so when all servers of both clusters pass, the
    /// clusters are connected both ways; inbound connections land on whichever server was
    /// dialled, so a server may have none.
    pub fn connected_to(&self, name: &str) -> bool {
        self.outbound_gateways
            .as_ref()
            .is_some_and(|m| m.contains_key(name))
    }

    /// How many inbound gateway connections this server accepted.
    pub fn inbound(&self) -> usize {
        self.inbound_gateways
            .iter()
            .flatten()
            .map(|(_, v)| v.as_array().map_or(1, Vec::len))
            .sum()
    }
}

/// The parts of `/leafz` the gate reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Leafz {
    #[serde(default)]
    pub leafnodes: usize,
}

/// A CA file that cannot be used to verify the monitoring endpoints.
#[derive(Debug, thiserror::Error)]
#[error("the CA file {} cannot be used: {reason}; point it at the PEM CA bundle the servers' certificates were issued by", .path.display())]
pub struct CaError {
    pub path: PathBuf,
    pub reason: String,
}

/// An HTTP client builder bounded by `timeout`, trusting only the CAs in the PEM bundle `ca`
/// when given (the servers of a secured deployment serve `https://` with certificates of the
/// deployment's own CA; nats-server asks no client certificate there).
pub fn http_client(
    timeout: Duration,
    ca: Option<&Path>,
) -> Result<reqwest::ClientBuilder, CaError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout);
    if let Some(path) = ca {
        let err = |reason: String| CaError {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no certificate in it".to_owned()));
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

/// HTTP client with short timeouts: a gate polls, it must never hang on one request.
#[derive(Clone, Debug)]
pub struct Monitor {
    http: reqwest::Client,
    /// Bound on each request, connecting included.
    timeout: Duration,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor::new(Duration::from_secs(2))
    }
}

impl Monitor {
    /// Plain `http://` endpoints.
    pub fn new(timeout: Duration) -> Self {
        Monitor::trusting(timeout, None).expect("a client without a CA file always builds")
    }

    /// `https://` endpoints verified against the PEM bundle `ca` (and `http://` ones).
    pub fn trusting(timeout: Duration, ca: Option<&Path>) -> Result<Self, CaError> {
        let http = http_client(timeout, ca)?.build().map_err(|e| CaError {
            path: ca.map(Path::to_path_buf).unwrap_or_default(),
            reason: root_cause(&e),
        })?;
        Ok(Monitor { http, timeout })
    }

    /// The same client (and trust) with another bound on each request.
    pub fn with_timeout(&self, timeout: Duration) -> Monitor {
        Monitor {
            http: self.http.clone(),
            timeout,
        }
    }

    /// `/healthz`; the body is read whatever the status code (503 carries the reason).
    pub async fn healthz(&self, base: &str) -> Result<Healthz, MonitorError> {
        self.get_json(&format!("{base}/healthz")).await
    }

    pub async fn jsz(&self, base: &str) -> Result<Jsz, MonitorError> {
        self.get_json(&format!("{base}/jsz")).await
    }

    pub async fn varz(&self, base: &str) -> Result<Varz, MonitorError> {
        self.get_json(&format!("{base}/varz")).await
    }

    pub async fn routez(&self, base: &str) -> Result<Routez, MonitorError> {
        self.get_json(&format!("{base}/routez")).await
    }

    pub async fn gatewayz(&self, base: &str) -> Result<Gatewayz, MonitorError> {
        self.get_json(&format!("{base}/gatewayz")).await
    }

    pub async fn leafz(&self, base: &str) -> Result<Leafz, MonitorError> {
        self.get_json(&format!("{base}/leafz")).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, MonitorError> {
        let unreachable = |e: reqwest::Error| MonitorError::Unreachable {
            url: url.to_owned(),
            reason: root_cause(&e),
        };
        let body = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(unreachable)?
            .bytes()
            .await
            .map_err(unreachable)?;
        serde_json::from_slice(&body).map_err(|e| MonitorError::BadBody {
            url: url.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// reqwest wraps the interesting part (e.g. "Connection refused") several levels deep.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
