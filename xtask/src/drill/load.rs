//! A steady publisher for drills: one event at a time at a fixed pace, each with a unique
//! `Nats-Msg-Id`, retried with the same id until acknowledged or `retry_for` runs out. Every
//! acknowledgement and every failed attempt is recorded with its time, so what a fault did is
//! computed from records, not read from logs. The records can be read while it runs (chaos
//! audits after every fault).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde::Serialize;
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Events go to `<subject>.<n % 8>`.
    pub subject: String,
    /// Event `n` has the id `<id_prefix>-<n>`.
    pub id_prefix: String,
    /// Time between the starts of two events (the pace when nothing fails).
    pub interval: Duration,
    /// How long one attempt waits for its ack before it counts as failed.
    pub ack_timeout: Duration,
    /// How long an event is retried before the publisher gives it up.
    pub retry_for: Duration,
    /// After this many failed attempts in a row, the client reconnects (to another server of
    /// its list, at random): a client connected to a server on the minority side of a
    /// partition keeps its connection and fails until it moves. `None`: never.
    pub failover_after: Option<u32>,
}

impl LoadConfig {
    pub fn new(subject: &str, id_prefix: &str) -> LoadConfig {
        LoadConfig {
            subject: subject.to_owned(),
            id_prefix: id_prefix.to_owned(),
            interval: Duration::from_millis(5),
            ack_timeout: Duration::from_secs(2),
            retry_for: Duration::from_secs(30),
            failover_after: None,
        }
    }
}

/// An acknowledged event: its id, stream sequence and when (since the load started).
#[derive(Clone, Debug, Serialize)]
pub struct Acked {
    pub id: String,
    pub seq: u64,
    pub at: Duration,
}

/// An attempt that failed: when it started, how long it took to fail, and why.
#[derive(Clone, Debug, Serialize)]
pub struct FailedAttempt {
    pub id: String,
    pub at: Duration,
    pub took: Duration,
    pub error: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadRecords {
    pub acked: Vec<Acked>,
    pub failed_attempts: Vec<FailedAttempt>,
    /// Events given up after `retry_for` (or abandoned when the load stopped mid-retry).
    pub given_up: Vec<String>,
}

impl LoadRecords {
    /// The longest time between two consecutive acknowledgements.
    pub fn longest_ack_gap(&self) -> Duration {
        self.acked
            .windows(2)
            .map(|w| w[1].at.saturating_sub(w[0].at))
            .max()
            .unwrap_or_default()
    }

    /// The longest a failed attempt took to fail.
    pub fn slowest_failure(&self) -> Duration {
        self.failed_attempts
            .iter()
            .map(|f| f.took)
            .max()
            .unwrap_or_default()
    }
}

/// A running publisher; `stop` ends it and returns the records.
pub struct Load {
    started: Instant,
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    records: Arc<Mutex<LoadRecords>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(js: jetstream::Context, cfg: LoadConfig) -> Load {
        let started = Instant::now();
        let acked = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let records = Arc::new(Mutex::new(LoadRecords::default()));
        let (stop, stopped) = watch::channel(false);
        let counters = Counters {
            acked: acked.clone(),
            failed: failed.clone(),
            records: records.clone(),
        };
        let task = tokio::spawn(publish(js, cfg, started, counters, stopped));
        Load {
            started,
            acked,
            failed,
            records,
            stop,
            task,
        }
    }

    /// The instant the load's clock counts from.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// A copy of the records so far.
    pub fn snapshot(&self) -> LoadRecords {
        lock(&self.records).clone()
    }

    /// Time since the load started (the clock every record uses).
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until `n` more events than now are acknowledged; false after `timeout`.
    pub async fn wait_more_acked(&self, n: u64, timeout: Duration) -> bool {
        wait_count(&self.acked, n, timeout).await
    }

    /// Waits until `n` more attempts than now have failed; false after `timeout`.
    pub async fn wait_failed_attempts(&self, n: u64, timeout: Duration) -> bool {
        wait_count(&self.failed, n, timeout).await
    }

    pub async fn stop(self) -> LoadRecords {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        std::mem::take(&mut *lock(&self.records))
    }
}

fn lock(records: &Mutex<LoadRecords>) -> std::sync::MutexGuard<'_, LoadRecords> {
    records.lock().unwrap_or_else(|e| e.into_inner())
}

async fn wait_count(counter: &AtomicU64, n: u64, timeout: Duration) -> bool {
    let target = counter.load(Ordering::Relaxed) + n;
    sea_infra::client::observe::time_until(timeout, || async {
        counter.load(Ordering::Relaxed) >= target
    })
    .await
    .is_some()
}

/// Live counts, and the records the publisher appends to.
struct Counters {
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    records: Arc<Mutex<LoadRecords>>,
}

async fn publish(
    js: jetstream::Context,
    cfg: LoadConfig,
    started: Instant,
    counters: Counters,
    mut stop: watch::Receiver<bool>,
) {
    let mut in_a_row = 0u32;
    let mut pace = tokio::time::interval(cfg.interval);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        tokio::select! {
            _ = pace.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let id = format!("{}-{n}", cfg.id_prefix);
        let subject = format!("{}.{}", cfg.subject, n % 8);
        let payload = serde_json::json!({ "id": id, "type": "sea.drill", "n": n }).to_string();
        let first = Instant::now();
        loop {
            let at = started.elapsed();
            match attempt(&js, &subject, &id, &payload, cfg.ack_timeout).await {
                Ok(seq) => {
                    lock(&counters.records).acked.push(Acked {
                        id: id.clone(),
                        seq,
                        at: started.elapsed(),
                    });
                    counters.acked.fetch_add(1, Ordering::Relaxed);
                    in_a_row = 0;
                    break;
                }
                Err(error) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    lock(&counters.records).failed_attempts.push(FailedAttempt {
                        id: id.clone(),
                        at,
                        took: started.elapsed().saturating_sub(at),
                        error,
                    });
                    in_a_row += 1;
                    if cfg.failover_after.is_some_and(|n| in_a_row % n == 0) {
                        let _ = js.client().force_reconnect().await;
                    }
                }
            }
            if first.elapsed() >= cfg.retry_for || *stop.borrow() {
                lock(&counters.records).given_up.push(id.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One publish with its ack awaited; the error text is what a client would see.
async fn attempt(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: &str,
    ack_timeout: Duration,
) -> Result<u64, String> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
    let ack = js
        .publish_with_headers(subject.to_owned(), headers, payload.to_owned().into())
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(ack_timeout, ack).await {
        Ok(Ok(ack)) => Ok(ack.sequence),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no ack within {ack_timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(at_ms: u64) -> Acked {
        Acked {
            id: String::new(),
            seq: 0,
            at: Duration::from_millis(at_ms),
        }
    }

    #[test]
    fn the_longest_gap_comes_from_the_records() {
        let records = LoadRecords {
            acked: vec![acked(10), acked(20), acked(900), acked(905)],
            ..Default::default()
        };
        assert_eq!(records.longest_ack_gap(), Duration::from_millis(880));
        assert_eq!(LoadRecords::default().longest_ack_gap(), Duration::ZERO);
    }
}
