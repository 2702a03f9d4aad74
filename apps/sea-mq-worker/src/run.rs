//! Start-up and shutdown: open the database, bind the HTTP port, connect, then run the inbox
//! consumer and the outbox relay until SIGTERM/SIGINT or an exhausted reconnect budget.
//!
//! Shutdown: stop pulling, commit and ack the batches in hand, settle the outbox batches, flush,
//! drain the connection and wait for `Closed` (async-nats' `drain()` returns at once), all within
//! the grace period.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::WorkerConfig;
use crate::connection::{self, Lifecycle};
use crate::db::Store;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::{consumer, http, outbox};

/// What every task of the worker shares.
pub struct Worker {
    pub cfg: WorkerConfig,
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub consumer_bound: AtomicBool,
    /// Local faults that stop the work (see `health`).
    pub health: Health,
}

impl Worker {
    /// Readiness (`/readyz`) and its gauge move together.
    pub fn set_consumer_bound(&self, bound: bool) {
        self.consumer_bound
            .store(bound, std::sync::atomic::Ordering::Relaxed);
        Metrics::set(&self.metrics.consumer_bound, u64::from(bound));
    }
}

/// Why the worker stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    Signal(&'static str),
    ReconnectBudgetExhausted,
}

pub async fn run(cfg: WorkerConfig) -> anyhow::Result<Stop> {
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(cfg.http_addr)
        .await
        .with_context(|| {
            format!(
                "HTTP_ADDR={}: cannot listen; pick a free port",
                cfg.http_addr
            )
        })?;
    let store = Store::open_with(&cfg.database, cfg.db_busy_timeout, cfg.sqlite_synchronous)
        .await
        .with_context(|| format!("DATABASE_URL={:?}", cfg.database))?;
    let (client, mut lifecycle) = connection::connect(&cfg, metrics.clone()).await?;
    let servers = sea_infra::env::redact_credentials(&cfg.servers.join(","));
    tracing::info!(%servers, stream = %cfg.stream.name, group = %cfg.spec.consumer.group,
        http = %cfg.http_addr, database = ?cfg.database, "sea-mq-worker starting");
    let js = cfg.nats.jetstream(client.clone());
    let health = Health::new(cfg.unready_after_failed_writes);
    let worker = Arc::new(Worker {
        cfg,
        client,
        js,
        store,
        metrics,
        consumer_bound: AtomicBool::new(false),
        health,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let http = tokio::spawn(http::serve(listener, worker.clone(), stop_rx.clone()));
    let inbox = tokio::spawn({
        let (w, rx) = (worker.clone(), stop_rx.clone());
        consumer::run(w, rx)
    });
    let relay = worker.cfg.outbox.enabled.then(|| {
        let (w, rx) = (worker.clone(), stop_rx.clone());
        tokio::spawn(outbox::run(w, rx))
    });

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let stop = tokio::select! {
        _ = sigterm.recv() => Stop::Signal("SIGTERM"),
        _ = sigint.recv() => Stop::Signal("SIGINT"),
        Some(Lifecycle::MaxReconnects) = lifecycle.recv() => Stop::ReconnectBudgetExhausted,
    };
    tracing::info!(?stop, grace = ?worker.cfg.shutdown_grace, "stopping: finishing in-flight work");
    let _ = stop_tx.send(true);

    let graceful = async {
        let _ = inbox.await;
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        if stop != Stop::ReconnectBudgetExhausted {
            // Acks are buffered in the client: push them out, then drain and wait for Closed.
            let _ = worker.client.flush().await;
            let _ = worker.client.drain().await;
            while let Some(event) = lifecycle.recv().await {
                if event == Lifecycle::Closed {
                    break;
                }
            }
        }
    };
    if tokio::time::timeout(worker.cfg.shutdown_grace, graceful)
        .await
        .is_err()
    {
        tracing::warn!(grace = ?worker.cfg.shutdown_grace, "grace period over; exiting with work unfinished (it will be redelivered)");
    }
    http.abort();
    tracing::info!("stopped");
    Ok(stop)
}
