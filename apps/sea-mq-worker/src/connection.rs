//! The NATS connection: every server of the cluster, bounded reconnects with capped, jittered
//! backoff, and connection events turned into logs, metrics and lifecycle signals.
//!
//! With `retry_on_initial_connect` async-nats returns at once and an exhausted reconnect budget
//! only shows as `Event::ClientError(MaxReconnects)`, so that event is what ends the worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_nats::{ClientError, Event};
use tokio::sync::mpsc;

use crate::config::WorkerConfig;
use crate::metrics::Metrics;

/// Connection events the worker must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// The reconnect budget is spent: the worker exits non-zero.
    MaxReconnects,
    /// The connection is closed (after a drain).
    Closed,
}

/// Connects (in the background: this returns at once) and reports lifecycle events on the channel.
pub async fn connect(
    cfg: &WorkerConfig,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(async_nats::Client, mpsc::UnboundedReceiver<Lifecycle>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let reconnect = cfg.reconnect.clone();
    let ever_connected = Arc::new(AtomicBool::new(false));
    let opts = cfg
        .nats
        .connect_options()
        .await?
        .name(format!("sea-mq-worker/{}", cfg.name))
        .retry_on_initial_connect()
        .max_reconnects(cfg.reconnect.max_attempts)
        .reconnect_delay_callback(move |attempt| reconnect.delay(attempt))
        .event_callback(move |event| {
            let (metrics, tx, ever) = (metrics.clone(), tx.clone(), ever_connected.clone());
            async move {
                match event {
                    Event::Connected => {
                        Metrics::set(&metrics.nats_connected, 1);
                        if ever.swap(true, Ordering::Relaxed) {
                            Metrics::add(&metrics.nats_reconnects, 1);
                            tracing::info!("reconnected to NATS");
                        } else {
                            tracing::info!("connected to NATS");
                        }
                    }
                    Event::Disconnected => {
                        Metrics::set(&metrics.nats_connected, 0);
                        Metrics::add(&metrics.nats_disconnects, 1);
                        tracing::warn!("disconnected from NATS; reconnecting");
                    }
                    Event::ClientError(ClientError::MaxReconnects) => {
                        Metrics::set(&metrics.nats_connected, 0);
                        tracing::error!("NATS reconnect budget exhausted");
                        let _ = tx.send(Lifecycle::MaxReconnects);
                    }
                    Event::Closed => {
                        Metrics::set(&metrics.nats_connected, 0);
                        let _ = tx.send(Lifecycle::Closed);
                    }
                    Event::Draining => tracing::info!("draining the NATS connection"),
                    Event::LameDuckMode => {
                        tracing::info!("server entered lame-duck mode; will move to another server")
                    }
                    other => tracing::warn!(event = %other, "NATS connection event"),
                }
            }
        });
    let addrs: Vec<async_nats::ServerAddr> = cfg
        .servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("NATS_SERVERS: {e}"))?;
    let client = opts.connect(addrs).await?;
    Ok((client, rx))
}
