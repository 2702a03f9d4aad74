//! Fetching one scrape's answers: every endpoint of every server at once, each request bounded
//! by the timeout, so a scrape takes about one timeout at worst whatever the number of servers.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{ExporterConfig, MonitorUrl};

/// The endpoints polled, with the query prometheus-nats-exporter sends for each (its `-varz
/// -connz -routez -gatewayz -leafz -healthz -jsz=all` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Varz,
    Connz,
    Routez,
    Gatewayz,
    Leafz,
    Healthz,
    Jsz,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Varz,
        Endpoint::Connz,
        Endpoint::Routez,
        Endpoint::Gatewayz,
        Endpoint::Leafz,
        Endpoint::Healthz,
        Endpoint::Jsz,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Varz => "varz",
            Endpoint::Connz => "connz",
            Endpoint::Routez => "routez",
            Endpoint::Gatewayz => "gatewayz",
            Endpoint::Leafz => "leafz",
            Endpoint::Healthz => "healthz",
            Endpoint::Jsz => "jsz",
        }
    }

    /// Path and query; `-jsz=all` asks for consumers (which implies streams and accounts),
    /// their config and the raft group names.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Varz => "/varz",
            Endpoint::Connz => "/connz",
            Endpoint::Routez => "/routez",
            Endpoint::Gatewayz => "/gatewayz",
            Endpoint::Leafz => "/leafz",
            Endpoint::Healthz => "/healthz",
            Endpoint::Jsz => "/jsz?consumers=true&config=true&raft=true",
        }
    }

    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: not JSON: {source}")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("NATS_MONITOR_CA_FILE {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// One server's answers of one scrape: per endpoint its JSON, or why it did not answer.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    pub url: String,
    pub answers: Vec<(Endpoint, Result<Value, String>)>,
    pub took: Duration,
}

impl Answers {
    pub fn get(&self, endpoint: Endpoint) -> Option<&Value> {
        self.answers
            .iter()
            .find(|(e, _)| *e == endpoint)
            .and_then(|(_, a)| a.as_ref().ok())
    }

    /// Answers read from JSON values (fixtures, tests).
    pub fn from_values(url: &str, values: impl IntoIterator<Item = (Endpoint, Value)>) -> Self {
        Answers {
            url: url.to_owned(),
            answers: values.into_iter().map(|(e, v)| (e, Ok(v))).collect(),
            took: Duration::ZERO,
        }
    }
}

/// The HTTP side of the exporter: one client, the servers to poll.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    servers: Vec<MonitorUrl>,
}

impl Fetcher {
    pub fn new(cfg: &ExporterConfig) -> Result<Fetcher, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(path) = &cfg.ca_file {
            let ca_err = |reason: String| ClientError::Ca {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            for cert in
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Fetcher {
            http: builder.build().map_err(ClientError::Build)?,
            servers: cfg.servers.clone(),
        })
    }

    pub fn servers(&self) -> &[MonitorUrl] {
        &self.servers
    }

    /// Every endpoint of every server, concurrently.
    pub async fn scrape(&self) -> Vec<Answers> {
        futures::future::join_all(self.servers.iter().map(|s| self.server(s))).await
    }

    async fn server(&self, server: &MonitorUrl) -> Answers {
        let began = Instant::now();
        let answers = futures::future::join_all(Endpoint::ALL.into_iter().map(|e| async move {
            let answer = self.get(server, e).await.map_err(|err| {
                let text = err.to_string();
                tracing::debug!(server = %server, endpoint = e.name(), error = %text, "no answer");
                // reqwest errors quote the URL: keep passwords out of logs and labels.
                text.replace(server.as_str(), &server.redacted())
            });
            (e, answer)
        }))
        .await;
        Answers {
            url: server.redacted(),
            answers,
            took: began.elapsed(),
        }
    }

    async fn get(&self, server: &MonitorUrl, endpoint: Endpoint) -> Result<Value, FetchError> {
        let url = format!("{}{}", server.as_str(), endpoint.path());
        let shown = format!("{}{}", server.redacted(), endpoint.path());
        let http = |source| FetchError::Http {
            url: shown.clone(),
            source,
        };
        let resp = self.http.get(&url).send().await.map_err(http)?;
        let status = resp.status();
        // /healthz answers 503 with a JSON body when unhealthy: that is an answer.
        let unhealthy = endpoint == Endpoint::Healthz && status.as_u16() == 503;
        if !(status.is_success() || unhealthy) {
            return Err(FetchError::Status {
                url: shown,
                status: status.as_u16(),
            });
        }
        let body = resp.bytes().await.map_err(http)?;
        serde_json::from_slice(&body).map_err(|source| FetchError::Json { url: shown, source })
    }
}
