//! What a cluster says about itself through the JetStream API: stream leaders, replica state,
//! and the messages a stream holds. Drills, benchmarks and tests read their outcomes here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;

/// The server leading a stream right now, if it has a leader.
pub async fn stream_leader(js: &jetstream::Context, stream: &str) -> Option<String> {
    let mut st = js.get_stream(stream).await.ok()?;
    let leader = st.info().await.ok()?.cluster.as_ref()?.leader.clone()?;
    (!leader.is_empty()).then_some(leader)
}

/// Whether `server` is a follower of `stream` that is current (caught up with the leader), or
/// the leader itself.
pub async fn replica_current(js: &jetstream::Context, stream: &str, server: &str) -> bool {
    let Ok(mut st) = js.get_stream(stream).await else {
        return false;
    };
    let Ok(info) = st.info().await else {
        return false;
    };
    let Some(cluster) = info.cluster.as_ref() else {
        return false;
    };
    cluster.leader.as_deref() == Some(server)
        || cluster
            .replicas
            .iter()
            .any(|p| p.name == server && p.current && !p.offline && p.lag.unwrap_or(0) == 0)
}

/// Whether the stream has a leader and every other replica is current, online and has no lag:
/// what "every replica caught up again" means after a fault.
pub async fn all_replicas_current(js: &jetstream::Context, stream: &str) -> bool {
    let Ok(mut st) = js.get_stream(stream).await else {
        return false;
    };
    let Ok(info) = st.info().await else {
        return false;
    };
    let Some(cluster) = info.cluster.as_ref() else {
        return true;
    };
    let replicas = info.config.num_replicas.max(1);
    cluster.leader.as_deref().is_some_and(|l| !l.is_empty())
        && cluster.replicas.len() + 1 >= replicas
        && cluster
            .replicas
            .iter()
            .all(|p| p.current && !p.offline && p.lag.unwrap_or(0) == 0)
}

/// The `Nats-Msg-Id` of the message at `seq`, `None` when there is none (deleted, never
/// stored, or the stream cannot answer).
pub async fn msg_id_at(js: &jetstream::Context, stream: &str, seq: u64) -> Option<String> {
    let st = js.get_stream(stream).await.ok()?;
    let msg = st.get_raw_message(seq).await.ok()?;
    let id = msg.headers.get(async_nats::header::NATS_MESSAGE_ID)?;
    Some(id.as_str().to_owned())
}

/// Polls `cond` every 50 ms; the time it took, or `None` after `timeout`.
pub async fn time_until<F, Fut>(timeout: Duration, mut cond: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let began = Instant::now();
    loop {
        if cond().await {
            return Some(began.elapsed());
        }
        if began.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stream and a reading consumer created on it with `config`. A server can answer a
/// JetStream API request with "no responders" for a moment after start-up (seen once on
/// compose, 1.4 s after provisioning): tried again until `deadline`.
async fn open_reader(
    js: &jetstream::Context,
    stream: &str,
    config: consumer::pull::Config,
    deadline: Instant,
) -> Result<(jetstream::stream::Stream, consumer::PullConsumer), String> {
    loop {
        let opened = async {
            let st = js.get_stream(stream).await.map_err(|e| e.to_string())?;
            let c = st
                .create_consumer(config.clone())
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((st, c))
        };
        match opened.await {
            Err(e) if e.contains("no responders") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => return other,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("read stream {stream} ({filter}): {reason}")]
pub struct ReadError {
    stream: String,
    filter: String,
    reason: String,
}

/// All messages of a stream matching `filter`, read with an ephemeral consumer, bounded by
/// `timeout` overall.
pub async fn read_stream(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    timeout: Duration,
) -> Result<Vec<jetstream::Message>, ReadError> {
    let fail = |reason: String| ReadError {
        stream: stream.to_owned(),
        filter: filter.to_owned(),
        reason,
    };
    let deadline = Instant::now() + timeout;
    let (st, c) = open_reader(
        js,
        stream,
        consumer::pull::Config {
            filter_subject: filter.to_owned(),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        },
        deadline,
    )
    .await
    .map_err(fail)?;
    let total = c.cached_info().num_pending as usize;
    // A consumer just created on a replicated stream answers pulls once it has a leader.
    let name = c.cached_info().name.clone();
    let leader = time_until(
        deadline.saturating_duration_since(Instant::now()),
        || async {
            match st.consumer_info(&name).await {
                Ok(info) => info.cluster.is_none_or(|c| c.leader.is_some()),
                Err(_) => false,
            }
        },
    )
    .await;
    if leader.is_none() {
        return Err(fail("the reading consumer got no leader".into()));
    }
    let mut out = Vec::with_capacity(total);
    let mut messages = c.messages().await.map_err(|e| fail(e.to_string()))?;
    while out.len() < total {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, messages.next()).await {
            Ok(Some(Ok(msg))) => out.push(msg),
            Ok(Some(Err(e))) => return Err(fail(e.to_string())),
            Ok(None) => return Err(fail("the message stream ended".into())),
            Err(_) => {
                return Err(fail(format!(
                    "{} of {total} messages within {timeout:?}",
                    out.len()
                )))
            }
        }
    }
    let _ = st.delete_consumer(&name).await;
    Ok(out)
}

/// The sequence and `Nats-Msg-Id` of every message matching `filter` from sequence `from` on
/// (headers only, so long streams read quickly), bounded by `timeout` overall. Messages without
/// an id get the empty id.
pub async fn read_ids(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    from: u64,
    timeout: Duration,
) -> Result<Vec<(u64, String)>, ReadError> {
    let fail = |reason: String| ReadError {
        stream: stream.to_owned(),
        filter: filter.to_owned(),
        reason,
    };
    let deadline = Instant::now() + timeout;
    let (st, c) = open_reader(
        js,
        stream,
        consumer::pull::Config {
            filter_subject: filter.to_owned(),
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            headers_only: true,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        },
        deadline,
    )
    .await
    .map_err(fail)?;
    let total = c.cached_info().num_pending as usize;
    let name = c.cached_info().name.clone();
    let mut out = Vec::with_capacity(total);
    if total > 0 {
        let leader = time_until(
            deadline.saturating_duration_since(Instant::now()),
            || async {
                match st.consumer_info(&name).await {
                    Ok(info) => info.cluster.is_none_or(|c| c.leader.is_some()),
                    Err(_) => false,
                }
            },
        )
        .await;
        if leader.is_none() {
            return Err(fail("the reading consumer got no leader".into()));
        }
        let mut messages = c.messages().await.map_err(|e| fail(e.to_string()))?;
        while out.len() < total {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, messages.next()).await {
                Ok(Some(Ok(msg))) => {
                    let seq = msg.info().map_or(0, |i| i.stream_sequence);
                    let id = msg
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default();
                    out.push((seq, id));
                }
                Ok(Some(Err(e))) => return Err(fail(e.to_string())),
                Ok(None) => return Err(fail("the message stream ended".into())),
                Err(_) => {
                    return Err(fail(format!(
                        "{} of {total} messages within {timeout:?}",
                        out.len()
                    )))
                }
            }
        }
    }
    let _ = st.delete_consumer(&name).await;
    Ok(out)
}

/// How many times each `Nats-Msg-Id` occurs among `messages` (messages without one are counted
/// under the empty id).
pub fn msg_id_counts(messages: &[jetstream::Message]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for m in messages {
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}
