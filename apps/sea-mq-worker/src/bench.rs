//! Measurements behind `cargo xtask bench`, run from the release-built `sea-mq-bench` binary so
//! the raw async-nats client and the worker are compiled alike and compared side by side.
//!
//! Rates are taken over the span of the work itself (first message to last ack, first claim to
//! last mark), so process start-up does not count for either side.

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde::Serialize;

/// `events` handled in `seconds`; `cpu_seconds`: the CPU time (user + system) the probe process
/// used over its whole run, start-up included, as the workers' is counted (set by the probe's
/// `main`; 0 for the database reads).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Span {
    pub events: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
}

impl Span {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Connects as the worker does: TLS and credentials from the `NATS_*` variables (none on a
/// plaintext cluster), so `bench --secure` measures the same client over TLS.
async fn connect(servers: &str) -> anyhow::Result<async_nats::Client> {
    let mut env = sea_infra::env::EnvReader::from_process();
    let nats = sea_infra::client::connect::NatsConfig::from_env(&mut env);
    env.finish()?;
    let list: Vec<String> = servers.split(',').map(|s| s.trim().to_owned()).collect();
    Ok(nats.connect(&list).await?)
}

/// A JSON event of exactly `size` bytes (padded), with its id in the payload.
pub fn event_payload(id: &str, size: usize) -> Vec<u8> {
    let mut body = format!(r#"{{"id":"{id}","type":"bench","pad":""}}"#).into_bytes();
    let pad = size.saturating_sub(body.len());
    let at = body.len() - 2;
    body.splice(at..at, std::iter::repeat_n(b'x', pad));
    body
}

/// Publishes `count` events with `Nats-Msg-Id`, keeping at most `window` acks outstanding.
pub async fn raw_publish(
    servers: &str,
    prefix: &str,
    count: u64,
    size: usize,
    window: usize,
) -> anyhow::Result<Span> {
    let js = jetstream::new(connect(servers).await?);
    let began = Instant::now();
    let mut outstanding = std::collections::VecDeque::with_capacity(window);
    for i in 0..count {
        let id = format!("{prefix}-{i}");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let ack = js
            .publish_with_headers(
                format!("sea.event.bench.{}", i % 16),
                headers,
                event_payload(&id, size).into(),
            )
            .await?;
        outstanding.push_back(ack);
        if outstanding.len() >= window {
            outstanding.pop_front().expect("non-empty").await?;
        }
    }
    for ack in outstanding {
        ack.await?;
    }
    Ok(Span {
        events: count,
        seconds: began.elapsed().as_secs_f64(),
        cpu_seconds: 0.0,
    })
}

/// Pulls and acks `count` messages through an existing durable, in batches of `batch`, with
/// `clients` connections sharing it (as workers of one group do); the span runs from the first
/// message any client got to the `count`-th ack.
pub async fn raw_consume(
    servers: &str,
    stream: &str,
    durable: &str,
    count: u64,
    batch: usize,
    clients: usize,
) -> anyhow::Result<Span> {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let began = std::sync::Arc::new(std::sync::OnceLock::new());
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = connect(servers).await?;
        let (seen, began) = (seen.clone(), began.clone());
        let (stream, durable) = (stream.to_owned(), durable.to_owned());
        tasks.push(tokio::spawn(async move {
            let c: consumer::PullConsumer = jetstream::new(client.clone())
                .get_stream(&stream)
                .await?
                .get_consumer(&durable)
                .await
                .map_err(|e| anyhow::anyhow!("bind {durable}: {e}"))?;
            let mut messages = c.stream().max_messages_per_batch(batch).messages().await?;
            while seen.load(std::sync::atomic::Ordering::Relaxed) < count {
                let next = tokio::time::timeout(Duration::from_millis(200), messages.next()).await;
                let Ok(next) = next else { continue };
                let msg = next
                    .ok_or_else(|| anyhow::anyhow!("stream ended"))?
                    .map_err(|e| anyhow::anyhow!("pull: {e}"))?;
                began.get_or_init(Instant::now);
                msg.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            client.flush().await?;
            anyhow::Ok(())
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for t in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, t)
            .await
            .map_err(|_| anyhow::anyhow!("no {count} messages within 120 s"))???;
    }
    Ok(Span {
        events: seen.load(std::sync::atomic::Ordering::Relaxed),
        seconds: began.get().map_or(0.0, |b| b.elapsed().as_secs_f64()),
        cpu_seconds: 0.0,
    })
}

/// Opens the database (a SQLite file's path or a `DATABASE_URL`), creating the worker's tables
/// first (a probe may run before the worker).
async fn open(db: &str) -> anyhow::Result<crate::db::Store> {
    let database = if db.contains("://") {
        crate::config::parse_database_url(db).map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?
    } else {
        crate::config::Database::Sqlite(Path::new(db).to_path_buf())
    };
    Ok(crate::db::Store::open(&database, Duration::from_secs(10)).await?)
}

/// Inserts `count` outbox rows (only id, subject, payload) with ids `<prefix>-<n>` in one
/// transaction, creating the tables first.
pub async fn fill_outbox(db: &str, prefix: &str, count: u64, size: usize) -> anyhow::Result<()> {
    let rows = (0..count)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            let payload = String::from_utf8(event_payload(&id, size))?;
            Ok(crate::db::NewOutboxRow {
                subject: format!("sea.event.bench.outbox.{}", i % 16),
                id,
                payload,
                headers: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(open(db).await?.insert_outbox(rows).await?)
}

/// Inbox rows of `group` and the time between the first and the last insert.
pub async fn inbox_span(db: &str, group: &str) -> anyhow::Result<Span> {
    let (events, seconds) = open(db).await?.inbox_span(group).await?;
    Ok(Span {
        events,
        seconds,
        cpu_seconds: 0.0,
    })
}

/// Published outbox rows filled with `prefix` and the time from their first claim to their
/// last mark.
pub async fn outbox_span(db: &str, prefix: &str) -> anyhow::Result<Span> {
    let (events, seconds) = open(db).await?.outbox_span(&format!("{prefix}-")).await?;
    Ok(Span {
        events,
        seconds,
        cpu_seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_requested_size_and_stay_json() {
        let p = event_payload("e-1", 128);
        assert_eq!(p.len(), 128);
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["id"], "e-1");
    }
}
