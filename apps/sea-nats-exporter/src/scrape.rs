//! One scrape: fetch every server's answers, turn them into metric families.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::collect::{self, Options};
use crate::config::ExporterConfig;
use crate::family::Snapshot;
use crate::fetch::{ClientError, Fetcher};

pub struct Scraper {
    fetcher: Fetcher,
    opts: Options,
    /// The `server_name` each URL last answered with: the `server_id` of its `up` series
    /// while it does not answer (the URL before it ever did).
    names: Mutex<HashMap<String, String>>,
}

impl Scraper {
    pub fn new(cfg: &ExporterConfig) -> Result<Scraper, ClientError> {
        Ok(Scraper {
            fetcher: Fetcher::new(cfg)?,
            opts: Options {
                ephemeral_consumers: cfg.ephemeral_consumers,
            },
            names: Mutex::new(HashMap::new()),
        })
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub async fn scrape(&self) -> Snapshot {
        let answers = self.fetcher.scrape().await;
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Snapshot::default();
        let mut this_scrape = HashSet::new();
        for server in &answers {
            let known = names.get(&server.url).map(String::as_str);
            let (mut families, name) = collect::server(server, known, self.opts);
            if let Some(name) = name {
                // Two URLs reaching one server would export every series twice, and Prometheus
                // rejects a scrape with duplicates: keep the first, and only `up` of the other.
                if !this_scrape.insert(name.clone()) {
                    tracing::warn!(server = %name, url = %server.url, "two monitoring URLs reach the same server; exporting it once");
                    families.families.retain(|n, _| n == "nats_exporter_up");
                }
                names.insert(server.url.clone(), name);
            }
            out.merge(families);
        }
        out
    }
}
