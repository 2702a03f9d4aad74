//! Outbox relay: database -> JetStream, de-duplicated. Unpublished rows are claimed oldest first,
//! published with `Nats-Msg-Id` = row id, their acks awaited, then marked published. A crash
//! between publish and mark republishes the same ids, which JetStream drops as duplicates within
//! the stream's duplicate window. Rows whose publish was not acknowledged return after the lease
//! (`OUTBOX_LEASE_MS`).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::HeaderMap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Failpoint;
use crate::db::OutboxRow;
use crate::health::Write;
use crate::metrics::Metrics;
use crate::run::Worker;

/// A published batch whose acks are still on their way.
struct InFlight {
    acks: Vec<(String, PublishAckFuture)>,
}

/// Published batches not yet settled (acks awaited, rows marked): once more than this many are,
/// the relay waits for the oldest. Each is settled by a task of its own, so waiting for acks
/// overlaps the next claim and publish (the mark and the next claim still take turns on the
/// one database connection): the relay keeps the servers as busy as a windowed publisher.
const IN_FLIGHT_BATCHES: usize = 3;

/// The batches being settled, oldest first, and their row ids: a row claimed again while still
/// in flight (its lease ran out during an ack stall) is not sent a second time.
#[derive(Default)]
struct Pipeline {
    settling: VecDeque<(Vec<String>, JoinHandle<()>)>,
    ids: HashSet<String>,
}

impl Pipeline {
    fn push(&mut self, worker: &Arc<Worker>, batch: InFlight) {
        let ids: Vec<String> = batch.acks.iter().map(|(id, _)| id.clone()).collect();
        self.ids.extend(ids.iter().cloned());
        let worker = worker.clone();
        let settle = tokio::spawn(async move { settle_logged(&worker, batch).await });
        self.settling.push_back((ids, settle));
    }

    /// Waits for the oldest batch to be settled.
    async fn settle_oldest(&mut self) {
        if let Some((ids, settle)) = self.settling.pop_front() {
            let _ = settle.await;
            for id in &ids {
                self.ids.remove(id);
            }
        }
    }

    /// Waits until at most `n` batches are unsettled.
    async fn settle_down_to(&mut self, n: usize) {
        while self.settling.len() > n {
            self.settle_oldest().await;
        }
    }
}

/// Runs until `shutdown` turns true; batches in flight are finished first.
///
/// Pipelined like a windowed publisher: the next batches are claimed and published while the
/// earlier ones' acks travel and their rows are marked; once `IN_FLIGHT_BATCHES` are unsettled,
/// the relay waits for the oldest. Claims exclude rows already in flight (each claimed row carries
/// a deadline, and the pipeline knows its ids), so no row is sent twice by one relay.
pub async fn run(worker: Arc<Worker>, mut shutdown: watch::Receiver<bool>) {
    let cfg = &worker.cfg.outbox;
    let mut last_gauge = Instant::now() - Duration::from_secs(60);
    let mut pipeline = Pipeline::default();
    while !*shutdown.borrow() && worker.health.halted().is_none() {
        // Claimed rows would only wait in the client's buffer (at start-up with
        // `retry_on_initial_connect`, or during an outage), their leases running out.
        if worker.client.connection_state() != async_nats::connection::State::Connected {
            pipeline.settle_down_to(0).await;
            pause(cfg.poll_interval, &mut shutdown).await;
            continue;
        }
        let (claimed, next) = match publish_batch(&worker, &pipeline.ids).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "outbox relay failed; retrying");
                (0, None)
            }
        };
        if let Some(batch) = next {
            pipeline.push(&worker, batch);
        }
        pipeline.settle_down_to(IN_FLIGHT_BATCHES).await;
        if last_gauge.elapsed() >= Duration::from_secs(1) {
            last_gauge = Instant::now();
            if let Ok(n) = worker.store.outbox_pending().await {
                Metrics::set(&worker.metrics.outbox_pending, n);
            }
        }
        // A full batch means more are waiting: go again at once. Otherwise settle first, so
        // rows are not left unmarked for a whole poll interval.
        if claimed < cfg.batch_size {
            pipeline.settle_down_to(0).await;
            pause(cfg.poll_interval, &mut shutdown).await;
        }
    }
    pipeline.settle_down_to(0).await;
}

/// Waits one poll interval, or less if shutdown is asked for.
async fn pause(interval: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(interval) => {}
        _ = shutdown.changed() => {}
    }
}

async fn settle_logged(worker: &Worker, batch: InFlight) {
    if let Err(e) = settle(worker, batch).await {
        tracing::warn!(error = %format!("{e:#}"), "outbox batch not marked; its rows return after the lease");
    }
}

/// Claims one batch and sends the rows not already `in_flight`; returns how many rows were
/// claimed and the acks to await.
async fn publish_batch(
    worker: &Worker,
    in_flight: &HashSet<String>,
) -> anyhow::Result<(usize, Option<InFlight>)> {
    let cfg = &worker.cfg;
    let claimed = worker
        .store
        .claim_outbox(&cfg.name, cfg.outbox.batch_size, cfg.outbox.lease)
        .await;
    worker.health.record(Write::Outbox, &claimed);
    let rows = claimed?;
    let claimed = rows.len();
    let mut acks = Vec::with_capacity(claimed);
    for row in rows.into_iter().filter(|r| !in_flight.contains(&r.id)) {
        let headers = match headers(&row) {
            Ok(h) => h,
            Err(reason) => {
                tracing::error!(id = %row.id, reason, "outbox row can never be published");
                Metrics::add(&worker.metrics.outbox_failed, 1);
                worker.store.mark_failed(row.id, reason).await?;
                continue;
            }
        };
        if row.first_attempt_age > cfg.outbox.retry_horizon {
            tracing::warn!(id = %row.id, age = ?row.first_attempt_age, "republishing past the retry horizon");
            Metrics::add(&worker.metrics.outbox_late_republish, 1);
        }
        match worker
            .js
            .publish_with_headers(row.subject.clone(), headers, row.payload.into())
            .await
        {
            Ok(ack) => acks.push((row.id, ack)),
            Err(e) => {
                tracing::warn!(id = %row.id, error = %e, "outbox publish not sent; retried after the lease")
            }
        }
    }
    Ok((claimed, (!acks.is_empty()).then_some(InFlight { acks })))
}

/// Awaits a batch's acks and marks the acknowledged rows published.
async fn settle(worker: &Worker, batch: InFlight) -> anyhow::Result<()> {
    let acks = futures::future::join_all(
        batch
            .acks
            .into_iter()
            .map(|(id, ack)| async move { (id, ack.await) }),
    )
    .await;
    let mut published = Vec::with_capacity(acks.len());
    for (id, result) in acks {
        match result {
            Ok(_) => published.push(id),
            Err(e) => {
                tracing::warn!(%id, error = %e, "outbox publish not acknowledged; retried after the lease")
            }
        }
    }
    if worker.cfg.failpoint == Some(Failpoint::OutboxAfterPublish) && !published.is_empty() {
        tracing::error!(
            rows = published.len(),
            "failpoint outbox-after-publish: exiting before marking"
        );
        // A hard stop like a crash (no shutdown, nothing marked), without leaving a core file.
        std::process::exit(70);
    }
    let n = published.len() as u64;
    if n > 0 {
        let marked = worker.store.mark_published(published).await;
        worker.health.record(Write::Outbox, &marked);
        marked?;
        Metrics::add(&worker.metrics.outbox_published, n);
    }
    Ok(())
}

/// `Nats-Msg-Id` = row id, plus the row's own headers (a JSON object of strings).
fn headers(row: &OutboxRow) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    if let Some(text) = row.headers.as_deref().filter(|t| !t.trim().is_empty()) {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| format!("headers are not a JSON object: {e}"))?;
        for (name, value) in map {
            let value = value
                .as_str()
                .ok_or_else(|| format!("header {name} is not a string"))?;
            headers.insert(name.as_str(), value);
        }
    }
    headers.insert(async_nats::header::NATS_MESSAGE_ID, row.id.as_str());
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(headers: Option<&str>) -> OutboxRow {
        OutboxRow {
            id: "row-1".into(),
            subject: "sea.event.a".into(),
            payload: b"{}".to_vec(),
            headers: headers.map(str::to_owned),
            first_attempt_age: Duration::ZERO,
        }
    }

    #[test]
    fn message_id_is_the_row_id_and_row_headers_are_kept() {
        let h = headers(&row(Some(r#"{"ce-type":"order.created"}"#))).unwrap();
        assert_eq!(h.get("Nats-Msg-Id").unwrap().as_str(), "row-1");
        assert_eq!(h.get("ce-type").unwrap().as_str(), "order.created");
        assert!(headers(&row(None)).is_ok());
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert!(headers(&row(Some("[1,2]")))
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(headers(&row(Some(r#"{"n":1}"#)))
            .unwrap_err()
            .contains("not a string"));
    }
}
