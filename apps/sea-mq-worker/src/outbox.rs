//! Outbox relay: database -> JetStream, de-duplicated. Unpublished rows are claimed oldest first,
//! published with `Nats-Msg-Id` = row id, their acks awaited, then marked published. A crash
//! between publish and mark republishes the same ids, which JetStream drops as duplicates within
//! the stream's duplicate window.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use tokio::sync::watch;

use crate::config::Failpoint;
use crate::db::OutboxRow;
use crate::metrics::Metrics;
use crate::run::Worker;

/// Runs until `shutdown` turns true; a batch in progress is finished first.
pub async fn run(worker: &Worker, mut shutdown: watch::Receiver<bool>) {
    let cfg = &worker.cfg.outbox;
    let mut last_gauge = Instant::now() - Duration::from_secs(60);
    while !*shutdown.borrow() {
        let relayed = match relay_once(worker).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "outbox relay failed; retrying");
                0
            }
        };
        if last_gauge.elapsed() >= Duration::from_secs(1) {
            last_gauge = Instant::now();
            if let Ok(n) = worker.store.outbox_pending().await {
                Metrics::set(&worker.metrics.outbox_pending, n);
            }
        }
        // A full batch means more are waiting: go again at once.
        if relayed < cfg.batch_size {
            tokio::select! {
                _ = tokio::time::sleep(cfg.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Relays one batch; returns how many rows were claimed.
pub async fn relay_once(worker: &Worker) -> anyhow::Result<usize> {
    let cfg = &worker.cfg;
    let rows = worker
        .store
        .claim_outbox(&cfg.name, cfg.outbox.batch_size, cfg.outbox.lease)
        .await?;
    let claimed = rows.len();
    let mut pending = Vec::with_capacity(claimed);
    for row in rows {
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
            Ok(ack) => pending.push((row.id, ack)),
            Err(e) => {
                tracing::warn!(id = %row.id, error = %e, "outbox publish not sent; will retry")
            }
        }
    }
    let acks = futures::future::join_all(
        pending
            .into_iter()
            .map(|(id, ack)| async move { (id, ack.await) }),
    )
    .await;
    let mut published = Vec::with_capacity(acks.len());
    for (id, result) in acks {
        match result {
            Ok(_) => published.push(id),
            Err(e) => {
                tracing::warn!(%id, error = %e, "outbox publish not acknowledged; will retry")
            }
        }
    }
    if cfg.failpoint == Some(Failpoint::OutboxAfterPublish) && !published.is_empty() {
        tracing::error!(
            rows = published.len(),
            "failpoint outbox-after-publish: aborting before marking"
        );
        std::process::abort();
    }
    let n = published.len() as u64;
    if n > 0 {
        worker.store.mark_published(published).await?;
        Metrics::add(&worker.metrics.outbox_published, n);
    }
    Ok(claimed)
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
