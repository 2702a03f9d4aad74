//! Checks that federation works, seen from clients: messages cross between clusters or cells
//! (or stay local), and mirrors hold every sequence of their source. The test suite, the seed's
//! e2e test and `verify` for the federated profiles share them.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::context::{GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::ErrorCode;
use futures::StreamExt;

use crate::client::connect::NatsConfig;

#[derive(Debug, thiserror::Error)]
pub enum CrossError {
    #[error("connect to {servers}: {reason}")]
    Connect { servers: String, reason: String },
    #[error("{what}: {reason}")]
    Failed { what: String, reason: String },
}

fn failed(what: impl Into<String>) -> impl FnOnce(String) -> CrossError {
    let what = what.into();
    move |reason| CrossError::Failed { what, reason }
}

/// Connects to `servers` as `nats` says (a role of a secured deployment, or plain).
pub async fn connect(
    nats: &NatsConfig,
    servers: &[String],
) -> Result<async_nats::Client, CrossError> {
    nats.connect(servers)
        .await
        .map_err(|e| CrossError::Connect {
            servers: servers.join(","),
            reason: e.to_string(),
        })
}

/// Publishes on `subject` through `from` and waits up to `within` for it on `to`; the time it
/// took, or `None` when it did not arrive.
pub async fn crosses(
    from: &async_nats::Client,
    to: &async_nats::Client,
    subject: &str,
    within: Duration,
) -> Result<Option<Duration>, CrossError> {
    let mut sub = to
        .subscribe(subject.to_owned())
        .await
        .map_err(|e| failed(format!("subscribe {subject}"))(e.to_string()))?;
    to.flush()
        .await
        .map_err(|e| failed("flush the subscription")(e.to_string()))?;
    // Interest travels over gateways and leafnodes asynchronously: publish until it arrives.
    let began = Instant::now();
    while began.elapsed() < within {
        from.publish(subject.to_owned(), "cross-check".into())
            .await
            .map_err(|e| failed(format!("publish {subject}"))(e.to_string()))?;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(250), sub.next()).await {
            return Ok(Some(began.elapsed()));
        }
    }
    Ok(None)
}

/// Waits until `mirror` (read through `mirror_js`) holds the source's last sequence (a mirror
/// keeps sequence numbers, so every sequence is then present; message counts may differ when
/// the source was purged since); the time it took, or the last state seen after `timeout`.
pub async fn mirror_caught_up(
    source_js: &jetstream::Context,
    source: &str,
    mirror_js: &jetstream::Context,
    mirror: &str,
    timeout: Duration,
) -> Result<Duration, CrossError> {
    let began = Instant::now();
    loop {
        // A stream just restarted may not answer yet: a failed read is "not yet" until timeout.
        let seen = match (
            state(source_js, source).await,
            state(mirror_js, mirror).await,
        ) {
            (Ok(src), Ok(dst)) if dst.0 >= src.0 => return Ok(began.elapsed()),
            (Ok(src), Ok(dst)) => format!(
                "source last sequence {} with {} messages, mirror {} with {}",
                src.0, src.1, dst.0, dst.1
            ),
            (Err(e), _) | (_, Err(e)) => e.to_string(),
        };
        if began.elapsed() >= timeout {
            return Err(failed(format!("mirror {mirror} of {source}"))(format!(
                "after {timeout:?}: {seen}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How the streams of a running profile are created, for errors about missing ones.
const PROVISION_HINT: &str =
    "cargo xtask provision --profile <profile> (add --backend compose for containers)";

async fn info(
    js: &jetstream::Context,
    stream: &str,
) -> Result<jetstream::stream::Info, CrossError> {
    let read = failed(format!("read stream {stream}"));
    match js.get_stream(stream).await {
        Ok(st) => Ok(st.cached_info().clone()),
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) => {
            Err(read(format!(
                "stream {stream} does not exist; create it with `{PROVISION_HINT}`"
            )))
        }
        Err(e) => Err(read(e.to_string())),
    }
}

/// (last sequence, messages) of a stream.
pub async fn state(js: &jetstream::Context, stream: &str) -> Result<(u64, u64), CrossError> {
    let info = info(js, stream).await?;
    Ok((info.state.last_sequence, info.state.messages))
}

/// The cluster a stream is placed in (its leader's cluster).
pub async fn stream_cluster(
    js: &jetstream::Context,
    stream: &str,
) -> Result<Option<String>, CrossError> {
    let info = info(js, stream).await?;
    Ok(info.cluster.as_ref().and_then(|c| c.name.clone()))
}

/// Publishes `n` events with ids `<prefix>-<i>` on `subject`, each ack awaited.
pub async fn publish_acked(
    js: &jetstream::Context,
    subject: &str,
    prefix: &str,
    n: usize,
) -> Result<(), CrossError> {
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let payload = serde_json::json!({ "id": id }).to_string();
        js.publish_with_headers(subject.to_owned(), headers, payload.into())
            .await
            .map_err(|e| failed(format!("publish {id}"))(e.to_string()))?
            .await
            .map_err(|e| {
                let reason = match e.kind() {
                    PublishErrorKind::StreamNotFound => format!(
                        "no stream stores {subject}: the streams are not provisioned on these servers; run `{PROVISION_HINT}`"
                    ),
                    _ => e.to_string(),
                };
                failed(format!("ack of {id}"))(reason)
            })?;
    }
    Ok(())
}

/// What [`mesh_checks`] measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MeshReport {
    pub pubsub_ms: u64,
    pub events: usize,
    pub mirror_caught_up_ms: u64,
}

/// The federation checks of a mesh, from clients of each cluster: core pub/sub from `a` reaches
/// `b`, and events published to `SEA_EVENTS` through `a` appear in its mirror through `b`.
pub async fn mesh_checks(
    nats: &NatsConfig,
    a: &[String],
    b: &[String],
) -> Result<MeshReport, CrossError> {
    let (ca, cb) = (connect(nats, a).await?, connect(nats, b).await?);
    let pubsub = crosses(&ca, &cb, "sea.event.crosscheck", Duration::from_secs(10))
        .await?
        .ok_or_else(|| {
            failed("core pub/sub from the first cluster to the second")(
                "nothing arrived within 10s".into(),
            )
        })?;
    let (js_a, js_b) = (jetstream::new(ca), jetstream::new(cb));
    let events = 20;
    let prefix = format!("crosscheck-{}", std::process::id());
    publish_acked(&js_a, "sea.event.crosscheck", &prefix, events).await?;
    let mirror = crate::client::federation::mirror_name("SEA_EVENTS", "sea-a");
    let caught_up =
        mirror_caught_up(&js_a, "SEA_EVENTS", &js_b, &mirror, Duration::from_secs(30)).await?;
    Ok(MeshReport {
        pubsub_ms: pubsub.as_millis() as u64,
        events,
        mirror_caught_up_ms: caught_up.as_millis() as u64,
    })
}

/// What [`leaf_checks`] measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LeafReport {
    /// Subjects that crossed the link, with the time it took.
    pub crossed: Vec<(String, u64)>,
    /// Subjects that stayed in their cell, as they must.
    pub stayed_local: Vec<String>,
    pub mirror_caught_up_ms: u64,
}

/// The federation checks of two cells: the federated subjects cross both ways, other subjects
/// stay in their cell, and `SEA_EVENTS` of cell `a` is mirrored into cell `b`.
pub async fn leaf_checks(
    nats: &NatsConfig,
    a: &[String],
    b: &[String],
    a_name: &str,
) -> Result<LeafReport, CrossError> {
    let (ca, cb) = (connect(nats, a).await?, connect(nats, b).await?);
    let mut crossed = Vec::new();
    for (from, to, subject) in [
        (&ca, &cb, "sea.event.crosscheck"),
        (&cb, &ca, "sea.event.crosscheck-back"),
        (&ca, &cb, "vibespro.dlq.crosscheck"),
    ] {
        let took = crosses(from, to, subject, Duration::from_secs(10))
            .await?
            .ok_or_else(|| {
                failed(format!("{subject} across the leafnode link"))(
                    "nothing arrived within 10s".into(),
                )
            })?;
        crossed.push((subject.to_owned(), took.as_millis() as u64));
    }
    let mut stayed_local = Vec::new();
    for (from, to, subject) in [
        (&ca, &cb, "private.crosscheck"),
        (&cb, &ca, "sea.internal.crosscheck"),
    ] {
        if crosses(from, to, subject, Duration::from_secs(2))
            .await?
            .is_some()
        {
            return Err(failed(format!("{subject} must stay in its cell"))(
                "it crossed the leafnode link".into(),
            ));
        }
        stayed_local.push(subject.to_owned());
    }
    let (js_a, js_b) = (jetstream::new(ca), jetstream::new(cb));
    let prefix = format!("leafcheck-{}", std::process::id());
    publish_acked(&js_a, "sea.event.crosscheck", &prefix, 20).await?;
    let mirror = crate::client::federation::mirror_name("SEA_EVENTS", a_name);
    let caught_up =
        mirror_caught_up(&js_a, "SEA_EVENTS", &js_b, &mirror, Duration::from_secs(30)).await?;
    Ok(LeafReport {
        crossed,
        stayed_local,
        mirror_caught_up_ms: caught_up.as_millis() as u64,
    })
}
