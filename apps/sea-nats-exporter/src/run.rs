//! Start-up and shutdown: build the HTTP client, bind the port, serve until SIGTERM or SIGINT.

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::ExporterConfig;
use crate::fetch::ClientError;
use crate::scrape::Scraper;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("EXPORTER_ADDR={addr}: cannot listen ({source}); pick a free port")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch for signals: {0}")]
    Signals(#[source] std::io::Error),
}

/// Runs until SIGTERM or SIGINT; returns the signal's name.
pub async fn run(cfg: ExporterConfig) -> Result<&'static str, RunError> {
    let scraper = Arc::new(Scraper::new(&cfg)?);
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.addr,
            source,
        })?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let servers: Vec<String> = cfg.servers.iter().map(|s| s.redacted()).collect();
    tracing::info!(addr = %cfg.addr, servers = %servers.join(","), timeout_ms = cfg.timeout.as_millis() as u64,
        "sea-nats-exporter serving /metrics");
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(crate::serve::serve(listener, scraper, stop_rx));
    let sig = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    tracing::info!(signal = sig, "shutting down");
    let _ = stop_tx.send(true);
    let _ = server.await;
    Ok(sig)
}
