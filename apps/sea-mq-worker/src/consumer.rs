//! The shared durable pull consumer: bind it (create it with the spec's settings only when it is
//! absent), pull in small bounded batches, hand ready messages to the inbox, and rebuild after
//! repeated errors. `messages()` keeps yielding non-terminal heartbeat errors and never recovers
//! on its own when the consumer vanished (nats.rs #1584), hence the error count.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::inbox;
use crate::metrics::Metrics;
use crate::run::Worker;

/// Consecutive stream errors after which the consumer is bound again.
const REBUILD_AFTER_ERRORS: u32 = 3;

/// Binds the group's durable on the configured stream, creating it when absent.
pub async fn bind(worker: &Worker) -> anyhow::Result<Consumer<pull::Config>> {
    let cfg = &worker.cfg;
    let name = &cfg.stream.name;
    let durable = cfg.spec.consumer.durable_name();
    let mut stream = worker.js.get_stream(name).await.with_context(|| {
        format!("stream {name} is not available (provision it with `cargo xtask provision`)")
    })?;
    let window = stream
        .info()
        .await
        .map(|i| i.config.duplicate_window)
        .unwrap_or_default();
    if window < cfg.outbox.retry_horizon {
        tracing::warn!(
            stream = %name,
            duplicate_window = ?window,
            retry_horizon = ?cfg.outbox.retry_horizon,
            "the stream's duplicate window is shorter than the outbox retry horizon: a late republish may store a duplicate"
        );
    }
    match stream.consumer_info(durable).await {
        Ok(_) => stream
            .get_consumer(durable)
            .await
            .map_err(|e| anyhow::anyhow!("bind consumer {name}/{durable}: {e}")),
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
            tracing::info!(stream = %name, durable, "consumer absent: creating it with the spec's settings");
            stream
                .create_consumer(cfg.spec.consumer.config())
                .await
                .with_context(|| format!("create consumer {name}/{durable}"))
        }
        Err(e) => Err(anyhow::anyhow!("read consumer {name}/{durable}: {e}")),
    }
}

/// Runs until `shutdown` turns true: bind, pull, process, rebuild on trouble.
pub async fn run(worker: &Worker, mut shutdown: watch::Receiver<bool>) {
    let cfg = &worker.cfg;
    // The server requires the idle heartbeat to be well under the pull expiry.
    let heartbeat = (cfg.pull_expires / 2).min(Duration::from_secs(5));
    let mut attempt = 0u32;
    while !*shutdown.borrow() {
        let consumer = match bind(worker).await {
            Ok(c) => c,
            Err(e) => {
                worker.consumer_bound.store(false, Ordering::Relaxed);
                attempt += 1;
                tracing::warn!(error = %format!("{e:#}"), "consumer not bound; retrying");
                let wait = Duration::from_millis(250 * u64::from(attempt.min(20)));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        };
        attempt = 0;
        let messages = consumer
            .stream()
            .max_messages_per_batch(cfg.batch_size)
            .expires(cfg.pull_expires)
            .heartbeat(heartbeat)
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "pull stream not started; binding again");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // The last delivery is decided by the consumer the server has, not by our own env.
        let max_deliver = consumer.cached_info().config.max_deliver;
        worker.consumer_bound.store(true, Ordering::Relaxed);
        tracing::info!(stream = %cfg.stream.name, durable = cfg.spec.consumer.durable_name(), "consuming");
        let mut errors = 0u32;
        loop {
            let first = tokio::select! {
                next = messages.next() => next,
                _ = shutdown.changed() => break,
            };
            let mut batch = Vec::with_capacity(cfg.batch_size);
            match first {
                None => break,
                Some(Ok(msg)) => batch.push((msg, Instant::now())),
                Some(Err(e)) => {
                    errors += 1;
                    tracing::warn!(error = %e, errors, "pull error");
                    // These never heal on the same stream (nats.rs #1584); heartbeats might.
                    let fatal = matches!(
                        e.kind(),
                        MessagesErrorKind::NoResponders | MessagesErrorKind::ConsumerDeleted
                    );
                    if fatal || errors >= REBUILD_AFTER_ERRORS {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                    continue;
                }
            }
            errors = 0;
            // Take whatever else is already here, without waiting: one transaction per batch.
            while batch.len() < cfg.batch_size {
                match messages.next().now_or_never() {
                    Some(Some(Ok(msg))) => batch.push((msg, Instant::now())),
                    _ => break,
                }
            }
            inbox::process_batch(worker, batch, max_deliver).await;
        }
        worker.consumer_bound.store(false, Ordering::Relaxed);
        if *shutdown.borrow() {
            release_buffered(&mut messages).await;
            break;
        }
        Metrics::add(&worker.metrics.consumer_rebuilds, 1);
        tracing::warn!("rebuilding the pull consumer");
    }
}

/// On shutdown, hands messages already pulled but not processed back at once (instead of after
/// `ack_wait`), so the other workers of the group take them immediately.
async fn release_buffered(messages: &mut pull::Stream) {
    let mut released = 0;
    while let Some(Some(Ok(msg))) = messages.next().now_or_never() {
        let _ = msg
            .ack_with(async_nats::jetstream::AckKind::Nak(None))
            .await;
        released += 1;
    }
    if released > 0 {
        tracing::info!(released, "handed buffered messages back to the group");
    }
}
