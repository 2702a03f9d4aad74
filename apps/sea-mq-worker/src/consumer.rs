//! The shared durable pull consumer: bind it (create it with the spec's settings only when it is
//! absent), pull in small bounded batches, hand ready messages to the inbox, and rebuild after
//! repeated errors. `messages()` keeps yielding non-terminal heartbeat errors and never recovers
//! on its own when the consumer vanished (nats.rs #1584), hence the error count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::inbox;
use crate::metrics::Metrics;
use crate::run::Worker;

/// Consecutive stream errors after which the consumer is bound again.
const REBUILD_AFTER_ERRORS: u32 = 3;

/// Binds the group's durable on the configured stream, creating it when absent. The first
/// successful bind (`check_window`) also checks the stream's duplicate window, once per process.
async fn bind(worker: &Worker, check_window: bool) -> anyhow::Result<Consumer<pull::Config>> {
    let cfg = &worker.cfg;
    let name = &cfg.stream.name;
    let durable = cfg.spec.consumer.durable_name();
    let mut stream = worker.js.get_stream(name).await.with_context(|| {
        format!("stream {name} is not available (provision it with `cargo xtask provision`)")
    })?;
    if check_window {
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

/// A batch handed to the committer, with the bound consumer's `max_deliver`.
type Batch = (Vec<(jetstream::Message, Instant)>, i64);

/// Batches the pull loop may queue for the committer while it commits.
const QUEUED_BATCHES: usize = 2;

/// Writes batches to the inbox and acks them while the pull loop gathers the next batch: a
/// commit waits for an fsync, and pulling does not wait with it. What queued up during one
/// commit goes into the next as one transaction (group commit: one fsync for up to
/// `QUEUED_BATCHES` batches when the database is the bottleneck, one per batch when it is not).
/// At most `2 * QUEUED_BATCHES + 1` batches are unacked (committing, queued, gathering).
fn spawn_committer(worker: Arc<Worker>) -> (mpsc::Sender<Batch>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Batch>(QUEUED_BATCHES);
    let handle = tokio::spawn(async move {
        while let Some((mut batch, mut max_deliver)) = rx.recv().await {
            while let Ok((more, latest)) = rx.try_recv() {
                batch.extend(more);
                // The consumer bound last is the one the server has.
                max_deliver = latest;
            }
            inbox::process_batch(&worker, batch, max_deliver).await;
        }
    });
    (tx, handle)
}

/// What one item of the pull stream means for the loop.
// Lives on the stack for one step: boxing the message would allocate for every event.
#[allow(clippy::large_enum_variant)]
enum Pulled {
    Message(jetstream::Message),
    /// A transient pull error: keep going.
    Error,
    /// The stream ended or keeps failing: bind the consumer again.
    Rebuild,
}

fn pulled(
    next: Option<Result<jetstream::Message, pull::MessagesError>>,
    errors: &mut u32,
) -> Pulled {
    match next {
        None => Pulled::Rebuild,
        Some(Ok(msg)) => {
            *errors = 0;
            Pulled::Message(msg)
        }
        Some(Err(e)) => {
            *errors += 1;
            tracing::warn!(error = %e, errors = *errors, "pull error");
            // These never heal on the same stream (nats.rs #1584); heartbeats might.
            let fatal = matches!(
                e.kind(),
                MessagesErrorKind::NoResponders | MessagesErrorKind::ConsumerDeleted
            );
            if fatal || *errors >= REBUILD_AFTER_ERRORS {
                Pulled::Rebuild
            } else {
                Pulled::Error
            }
        }
    }
}

/// Runs until `shutdown` turns true: bind, pull, hand batches to the committer, rebuild on
/// trouble. On shutdown the batches in hand are committed and acked before it returns. When the
/// worker halts (its database is gone) it stops pulling and hands back what it has not
/// committed.
pub async fn run(worker: Arc<Worker>, mut shutdown: watch::Receiver<bool>) {
    let cfg = &worker.cfg;
    // The server requires the idle heartbeat to be well under the pull expiry.
    let heartbeat = (cfg.pull_expires / 2).min(Duration::from_secs(5));
    let (mut to_commit, mut committer) = spawn_committer(worker.clone());
    let mut attempt = 0u32;
    let mut bound_before = false;
    let mut halt = worker.health.watch_halt();
    while !*shutdown.borrow() && halt.borrow().is_none() {
        let consumer = match bind(&worker, !bound_before).await {
            Ok(c) => {
                bound_before = true;
                c
            }
            Err(e) => {
                worker.set_consumer_bound(false);
                attempt += 1;
                tracing::warn!(error = %format!("{e:#}"), "consumer not bound; retrying");
                let wait = Duration::from_millis(250 * u64::from(attempt.min(20)));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = shutdown.changed() => break,
                    _ = halt.changed() => break,
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
        worker.set_consumer_bound(true);
        tracing::info!(stream = %cfg.stream.name, durable = cfg.spec.consumer.durable_name(), "consuming");
        let mut errors = 0u32;
        let mut batch = Vec::with_capacity(cfg.batch_size);
        let exit = loop {
            // Gather until the committer can take the batch (one transaction per batch);
            // with nothing in hand, just wait for the next message.
            let next = tokio::select! {
                biased;
                _ = shutdown.changed() => break Exit::Shutdown,
                _ = halt.changed() => break Exit::Halted,
                permit = to_commit.reserve(), if !batch.is_empty() => {
                    let Ok(permit) = permit else { break Exit::CommitterGone };
                    permit.send((std::mem::take(&mut batch), max_deliver));
                    continue;
                }
                next = messages.next(), if batch.len() < cfg.batch_size => next,
            };
            match pulled(next, &mut errors) {
                Pulled::Message(msg) => batch.push((msg, Instant::now())),
                Pulled::Error => continue,
                Pulled::Rebuild => break Exit::Rebuild,
            }
            // Take whatever else is already here, without waiting.
            while batch.len() < cfg.batch_size {
                match messages.next().now_or_never() {
                    Some(Some(Ok(msg))) => batch.push((msg, Instant::now())),
                    _ => break,
                }
            }
        };
        worker.set_consumer_bound(false);
        let held = stop_pulling(messages);
        if exit == Exit::CommitterGone {
            // Only a bug (a panic) ends the committer early: say so and start another.
            let error = committer.await.err();
            tracing::error!(?error, "the inbox committer stopped; starting a new one");
            (to_commit, committer) = spawn_committer(worker.clone());
        }
        if exit == Exit::Halted {
            // Nothing more can be committed where anyone will read it: what was gathered or
            // buffered goes back to the group at once (the committer's batch stays unacked).
            hand_back(batch.into_iter().map(|(msg, _)| msg).chain(held).collect()).await;
            break;
        }
        let stopping = exit == Exit::Shutdown || *shutdown.borrow();
        // What was pulled is committed and acked rather than left to time out; on shutdown,
        // what was only buffered goes back to the group instead.
        let held = if stopping {
            held
        } else {
            batch.extend(held.into_iter().map(|msg| (msg, Instant::now())));
            Vec::new()
        };
        if !batch.is_empty() {
            let _ = to_commit.send((batch, max_deliver)).await;
        }
        if stopping {
            hand_back(held).await;
            break;
        }
        if exit == Exit::Rebuild {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Metrics::add(&worker.metrics.consumer_rebuilds, 1);
            tracing::warn!("rebuilding the pull consumer");
        }
    }
    drop(to_commit);
    let _ = committer.await;
}

/// Why the pull loop stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Exit {
    Shutdown,
    Rebuild,
    CommitterGone,
    /// The worker halted (see `health`).
    Halted,
}

/// Ends the pull stream and returns what it had buffered. Dropping the stream unsubscribes; the
/// UNSUB travels ahead of any later nak on the one connection, so the server no longer has this
/// worker's pull requests when a nak arrives (before, a nak'ed message came straight back to
/// the stopping worker and its next redelivery waited for the backoff, a minute).
fn stop_pulling(mut messages: pull::Stream) -> Vec<jetstream::Message> {
    let mut held = Vec::new();
    while let Some(Some(Ok(msg))) = messages.next().now_or_never() {
        held.push(msg);
    }
    held
}

/// On shutdown, hands messages buffered but not processed back at once (instead of after
/// `ack_wait`), so the other workers of the group take them immediately.
async fn hand_back(held: Vec<jetstream::Message>) {
    for msg in &held {
        let _ = msg
            .ack_with(async_nats::jetstream::AckKind::Nak(None))
            .await;
    }
    if !held.is_empty() {
        tracing::info!(
            released = held.len(),
            "handed buffered messages back to the group"
        );
    }
}
