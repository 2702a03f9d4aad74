//! Inbox: JetStream -> database, effectively once. Each event becomes one row per consumer
//! group, keyed by its `Nats-Msg-Id` header (else its CloudEvents `id`); the batch is committed,
//! then acked. A redelivered or duplicated event finds its row and is acked without a second.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};

use crate::db::InboxRow;
use crate::dlq;
use crate::health::Write;
use crate::metrics::Metrics;
use crate::run::Worker;

/// What a message is, before any I/O.
#[derive(Debug, PartialEq, Eq)]
pub enum Classified {
    Event(InboxRow),
    /// Can never succeed: straight to the DLQ.
    Poison(String),
}

/// Checks the payload is JSON and finds the event id.
pub fn classify(
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
    stream_seq: u64,
) -> Classified {
    let header_id = headers
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str().to_owned())
        .filter(|v| !v.is_empty());
    // JSON text is UTF-8; checked here once, so the row stores the payload exactly.
    let text = match std::str::from_utf8(payload) {
        Ok(t) => t,
        Err(e) => return Classified::Poison(format!("payload is not JSON: not UTF-8 ({e})")),
    };
    let message_id = match header_id {
        // With the id in a header, the payload only has to be JSON: check it without building
        // a tree (a quarter of the worker's CPU per event went to that tree).
        Some(id) => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => id,
            Err(e) => return Classified::Poison(format!("payload is not JSON: {e}")),
        },
        None => {
            let json: serde_json::Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => return Classified::Poison(format!("payload is not JSON: {e}")),
            };
            match json
                .get("id")
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
            {
                Some(id) => id.to_owned(),
                None => {
                    return Classified::Poison(
                        "no Nats-Msg-Id header and no CloudEvents `id` field".into(),
                    )
                }
            }
        }
    };
    let headers = headers
        .filter(|h| !h.is_empty())
        .map(|h| serde_json::to_string(&HeadersJson(h)).expect("strings serialize"));
    Classified::Event(InboxRow {
        message_id,
        subject: subject.to_owned(),
        payload: text.to_owned(),
        headers,
        stream_seq,
    })
}

/// Headers as a JSON object, a header's values joined with `,`, written straight into the
/// string (no map of owned keys and values per event); names in sorted order, as before.
struct HeadersJson<'a>(&'a async_nats::HeaderMap);

impl serde::Serialize for HeadersJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut names: Vec<(&str, &Vec<async_nats::HeaderValue>)> = self
            .0
            .iter()
            .map(|(name, values)| (name.as_ref(), values))
            .collect();
        names.sort_unstable_by_key(|(name, _)| *name);
        s.collect_map(names.into_iter().map(|(name, values)| {
            let value = match values.as_slice() {
                [one] => std::borrow::Cow::Borrowed(one.as_str()),
                many => std::borrow::Cow::Owned(
                    many.iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            };
            (name, value)
        }))
    }
}

/// Nak delay for a transient failure: doubling from 1 s, capped at 30 s.
pub fn retry_delay(delivered: i64) -> Duration {
    let exp = u32::try_from(delivered.saturating_sub(1).clamp(0, 5)).unwrap_or(5);
    Duration::from_secs(1 << exp).min(Duration::from_secs(30))
}

/// Handles one batch: poison to the DLQ, the rest into the inbox in one transaction, then acks.
/// `max_deliver` is the bound consumer's: its last delivery of a failing event goes to the DLQ.
pub async fn process_batch(
    worker: &Worker,
    batch: Vec<(jetstream::Message, Instant)>,
    max_deliver: i64,
) {
    let m = &worker.metrics;
    let mut events = Vec::with_capacity(batch.len());
    let mut rows = Vec::with_capacity(batch.len());
    for (msg, arrived) in batch {
        let Ok(info) = msg.info() else {
            tracing::warn!(subject = %msg.subject, "message without JetStream metadata; skipped");
            continue;
        };
        let (seq, delivered) = (info.stream_sequence, info.delivered);
        if delivered > 1 {
            Metrics::add(&m.redeliveries, 1);
        }
        match classify(
            msg.subject.as_str(),
            msg.headers.as_ref(),
            &msg.payload,
            seq,
        ) {
            Classified::Poison(reason) => {
                dead_letter(
                    worker,
                    &msg,
                    &reason,
                    arrived,
                    last_delivery(delivered, max_deliver),
                )
                .await
            }
            Classified::Event(row) => {
                rows.push(row);
                events.push((msg, arrived, delivered));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let written = worker
        .store
        .insert_inbox(&worker.cfg.spec.consumer.group, rows)
        .await;
    worker.health.record(Write::Inbox, &written);
    match written {
        Ok(inserted) => {
            let new = inserted.iter().filter(|i| **i).count() as u64;
            Metrics::add(&m.events_inserted, new);
            Metrics::add(&m.events_duplicate, inserted.len() as u64 - new);
            for (msg, arrived, _) in &events {
                ack(msg, AckKind::Ack).await;
                m.processing.observe(arrived.elapsed());
            }
        }
        Err(e) if e.is_replaced() => {
            // Committed, perhaps, but into a file nobody will read: neither ack (they would be
            // lost) nor dead-letter (they are good events). Unacked, they are redelivered after
            // ack_wait, to another worker or to this one once restarted.
            tracing::error!(error = %e, events = events.len(), "inbox batch not acked");
        }
        Err(e) => {
            tracing::warn!(error = %e, events = events.len(), "inbox write failed; retrying later");
            for (msg, arrived, delivered) in &events {
                if last_delivery(*delivered, max_deliver) {
                    dead_letter(
                        worker,
                        msg,
                        &format!("still failing on delivery {delivered}: {e}"),
                        *arrived,
                        true,
                    )
                    .await;
                } else {
                    Metrics::add(&m.events_retried, 1);
                    ack(msg, AckKind::Nak(Some(retry_delay(*delivered)))).await;
                }
            }
        }
    }
}

/// Whether the server will not deliver this message again (`max_deliver` -1: unlimited).
fn last_delivery(delivered: i64, max_deliver: i64) -> bool {
    max_deliver > 0 && delivered >= max_deliver
}

/// Waits between attempts to dead-letter an event on its last delivery (15 s in all, within
/// which progress acks keep the delivery alive).
const LAST_DELIVERY_RETRIES: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// Publishes to the DLQ, then terminates the message. When the publish fails the event must
/// come back: before its last delivery a nak brings it back (after the consumer's backoff); on
/// its last delivery the server would not redeliver it, so the move is retried here, with
/// progress acks keeping the delivery alive, and if it still fails the log says what is left.
async fn dead_letter(
    worker: &Worker,
    msg: &jetstream::Message,
    reason: &str,
    arrived: Instant,
    last: bool,
) {
    let limit = dlq::size_limit(
        worker.client.server_info().max_payload,
        &worker.cfg.spec,
        &dlq::dlq_subject(msg.subject.as_str()),
    );
    let mut waits = LAST_DELIVERY_RETRIES.iter();
    let error = loop {
        match dlq::publish(&worker.js, msg, reason, limit).await {
            Ok(moved) => {
                tracing::warn!(subject = %msg.subject, reason, ?moved, "moved to the DLQ");
                Metrics::add(&worker.metrics.events_dlq, 1);
                ack(msg, AckKind::Term).await;
                worker.metrics.processing.observe(arrived.elapsed());
                return;
            }
            Err(e) if !last => {
                let delivered = msg.info().map_or(0, |i| i.delivered);
                tracing::warn!(subject = %msg.subject, error = %e, delivered,
                    "DLQ publish failed; nak'ed, the event comes back on its next delivery");
                ack(msg, AckKind::Nak(Some(retry_delay(delivered)))).await;
                return;
            }
            Err(e) => match waits.next() {
                Some(wait) => {
                    tracing::warn!(subject = %msg.subject, error = %e, retry_in = ?wait,
                        "DLQ publish failed on the last delivery; retrying it here");
                    ack(msg, AckKind::Progress).await;
                    tokio::time::sleep(*wait).await;
                    ack(msg, AckKind::Progress).await;
                }
                None => break e,
            },
        }
    };
    let (stream, seq) = msg.info().map_or((String::new(), 0), |i| {
        (i.stream.to_owned(), i.stream_sequence)
    });
    tracing::error!(subject = %msg.subject, error = %error, %stream, seq,
        "not dead-lettered: this was the last delivery, so the event stays only in its stream (and the server's MAX_DELIVERIES advisory in SEA_MAX_DELIVERIES)");
    Metrics::add(&worker.metrics.dlq_failed, 1);
}

/// Acks are fire-and-forget: a lost ack means a redelivery, which the inbox absorbs.
async fn ack(msg: &jetstream::Message, kind: AckKind) {
    if let Err(e) = msg.ack_with(kind).await {
        tracing::debug!(error = %e, "ack not sent; the message will be redelivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, *v);
        }
        h
    }

    #[test]
    fn id_comes_from_the_header_then_the_cloudevents_id() {
        let h = headers(&[("Nats-Msg-Id", "m-1")]);
        let Classified::Event(row) = classify("sea.event.a", Some(&h), br#"{"id":"ce-9"}"#, 7)
        else {
            panic!()
        };
        assert_eq!((row.message_id.as_str(), row.stream_seq), ("m-1", 7));
        assert!(row.headers.unwrap().contains("\"Nats-Msg-Id\":\"m-1\""));
        let Classified::Event(row) = classify("sea.event.a", None, br#"{"id":"ce-9","data":1}"#, 8)
        else {
            panic!()
        };
        assert_eq!(row.message_id, "ce-9");
        assert_eq!(row.headers, None);
    }

    #[test]
    fn poison_is_recognised() {
        assert!(
            matches!(classify("s", None, b"not json", 1), Classified::Poison(r) if r.starts_with("payload is not JSON"))
        );
        assert!(
            matches!(classify("s", None, br#"{"data":1}"#, 1), Classified::Poison(r) if r.contains("no Nats-Msg-Id"))
        );
        let h = headers(&[("Nats-Msg-Id", "")]);
        assert!(matches!(
            classify("s", Some(&h), b"[1]", 1),
            Classified::Poison(_)
        ));
        // With the id in a header, the payload is still checked: JSON, and UTF-8.
        let h = headers(&[("Nats-Msg-Id", "m-1")]);
        assert!(
            matches!(classify("s", Some(&h), br#"{"a":1"#, 1), Classified::Poison(r) if r.starts_with("payload is not JSON"))
        );
        assert!(
            matches!(classify("s", Some(&h), b"\"\xff\"", 1), Classified::Poison(r) if r.contains("not UTF-8"))
        );
    }

    #[test]
    fn headers_are_one_json_object_sorted_with_values_joined() {
        let mut h = headers(&[("Nats-Msg-Id", "m-1"), ("B-Trace", "x\"y")]);
        h.append("B-Trace", "z");
        let Classified::Event(row) = classify("s", Some(&h), b"{}", 1) else {
            panic!()
        };
        assert_eq!(
            row.headers.unwrap(),
            r#"{"B-Trace":"x\"y,z","Nats-Msg-Id":"m-1"}"#
        );
    }

    #[test]
    fn retry_delays_grow_to_a_cap() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(3), Duration::from_secs(4));
        assert_eq!(retry_delay(50), Duration::from_secs(30));
    }
}
