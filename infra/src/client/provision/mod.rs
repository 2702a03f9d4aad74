//! Declarative, idempotent provisioning of the spec's streams and consumers.
//!
//! [`plan`] reads the live configuration and compares only the fields the spec manages, field by
//! field, so a second run finds everything `unchanged` and sends nothing. Changes the server cannot
//! apply in place (storage, retention to or from work-queue, mirror, consumer ack / deliver /
//! replay policy, pull vs push) are `refused` up front, naming the field, unless the operator
//! asked to recreate that object. [`apply`] executes a plan and waits for replica changes to settle.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{self, IntoConsumerConfig};
use async_nats::jetstream::context::{
    ConsumerInfoError, ConsumerInfoErrorKind, CreateStreamError, CreateStreamErrorKind,
    GetStreamError, GetStreamErrorKind,
};
use async_nats::jetstream::stream::{ConsumerError, ConsumerErrorKind, ConsumerUpdateErrorKind};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{stream, Context};

pub mod diff;
pub use diff::{Action, Field, FieldChange, Fields, Kind, Stored};
use serde::Serialize;

use crate::model::spec::{subjects_overlap, Spec, ENV_STREAM_REPLICAS};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{ENV_STREAM_REPLICAS}={requested} but the JetStream cluster has {size} server(s); set it to {size} or less, or unset it")]
    ReplicasTooLarge { requested: usize, size: usize },
    #[error("refusing to change anything: {}", .0.join("; "))]
    Refused(Vec<String>),
    #[error("stream {stream} does not answer publishes on {subject} through {server} after {waited:?}; check the server's routes (`cargo xtask health`)")]
    Unreachable {
        stream: String,
        subject: String,
        server: String,
        waited: Duration,
    },
    #[error("stream {stream}: replicas not current after {waited:?}: {detail}")]
    ReplicaWait {
        stream: String,
        waited: Duration,
        detail: String,
    },
}

fn api(
    what: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> ProvisionError {
    ProvisionError::Api {
        what: what.into(),
        source: Box::new(e),
    }
}

/// The JetStream cluster provisioning talks to, as the connected server describes it.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectedCluster {
    pub servers: Vec<String>,
    /// Cluster name; `None` for an unclustered server.
    pub cluster: Option<String>,
    /// Servers of the cluster: those the connected server gossips (itself included), or those
    /// configured to reach it, whichever is more.
    pub cluster_size: usize,
}

impl ConnectedCluster {
    pub fn from_client(client: &async_nats::Client, servers: &[String]) -> ConnectedCluster {
        let info = client.server_info();
        let cluster = info.cluster.filter(|c| !c.is_empty());
        // The servers it gossips right after start-up can still be fewer than the cluster has
        // (a peer's client URL arrives in a later INFO): the servers configured to reach it
        // count too.
        let cluster_size = if cluster.is_some() {
            info.connect_urls.len().max(servers.len()).max(1)
        } else {
            1
        };
        ConnectedCluster {
            // Shown in plans and `--json`: never with the credentials a URL may carry.
            servers: servers
                .iter()
                .map(|s| crate::env::redact_credentials(s))
                .collect(),
            cluster,
            cluster_size,
        }
    }
}

/// Fits the spec's replica counts to the target. Without an explicit `STREAM_REPLICAS`, a lone
/// server gets 1 replica (said in the returned note); an explicit count larger than the cluster
/// is an error naming the fix.
pub fn fit_replicas(
    spec: &mut Spec,
    target: &ConnectedCluster,
    explicit: bool,
) -> Result<Vec<String>, ProvisionError> {
    let mut notes = Vec::new();
    let largest = spec.streams.iter().map(|s| s.replicas).max().unwrap_or(1);
    if largest <= target.cluster_size {
        return Ok(notes);
    }
    if explicit {
        return Err(ProvisionError::ReplicasTooLarge {
            requested: largest,
            size: target.cluster_size,
        });
    }
    if target.cluster.is_none() {
        for s in &mut spec.streams {
            s.replicas = 1;
        }
        notes.push(format!(
            "JetStream is not clustered (one server): using 1 replica instead of {largest}; set {ENV_STREAM_REPLICAS} to override"
        ));
    }
    Ok(notes)
}

/// What the operator allowed beyond lossless in-place changes, by stream (or `STREAM/DURABLE`)
/// name.
#[derive(Clone, Debug, Default)]
pub struct Allowed {
    /// Delete and create again, for a change the server cannot make in place.
    pub recreate: BTreeSet<String>,
    /// Apply an update that discards stored messages or stops storing some subjects.
    pub loss: BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlanItem {
    pub kind: Kind,
    /// `SEA_EVENTS`, or `SEA_EVENTS/sea-mq-worker` for a consumer.
    pub name: String,
    pub action: Action,
    pub changes: Vec<FieldChange>,
    /// Why a `refused` item is refused, each with how to allow it (when it can be allowed).
    pub refusals: Vec<String>,
    /// What an allowed update loses (`--allow-loss`).
    pub losses: Vec<String>,
    #[serde(skip)]
    stream: String,
    #[serde(skip)]
    replicas_changed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub target: ConnectedCluster,
    pub notes: Vec<String>,
    pub items: Vec<PlanItem>,
}

impl Plan {
    /// True when the live configuration matches the spec (nothing to do).
    pub fn is_unchanged(&self) -> bool {
        self.items.iter().all(|i| i.action == Action::Unchanged)
    }

    /// `2 create, 1 update, 3 unchanged`.
    pub fn summary(&self) -> String {
        Action::ALL
            .iter()
            .filter_map(|a| {
                let n = self.items.iter().filter(|i| i.action == *a).count();
                (n > 0).then(|| format!("{n} {}", a.as_str()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Human-readable lines, one per object plus one per changed field, loss and refusal.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for item in &self.items {
            out.push(format!(
                "{:<8} {:<32} {}",
                item.kind.as_str(),
                item.name,
                item.action.as_str()
            ));
            if item.action != Action::Create {
                for c in &item.changes {
                    let how = if c.in_place { "" } else { "  (not in place)" };
                    out.push(format!(
                        "           {}: {} -> {}{how}",
                        c.field.as_str(),
                        c.live,
                        c.desired
                    ));
                }
            }
            if item.action != Action::Refused {
                for loss in &item.losses {
                    out.push(format!("           allowed loss: {loss}"));
                }
            }
            for why in &item.refusals {
                out.push(format!("           refused: {why}"));
            }
        }
        out
    }
}

/// Compares the spec with what the server has. Sends only reads.
pub async fn plan(
    js: &Context,
    spec: &Spec,
    target: ConnectedCluster,
    notes: Vec<String>,
    allowed: &Allowed,
) -> Result<Plan, ProvisionError> {
    let mut items = Vec::new();
    let others = other_streams(js, spec).await?;
    for s in &spec.streams {
        let desired = s.config();
        let read = retry_leaderless(
            || js.get_stream(&s.name),
            |e: &GetStreamError| e.kind() == GetStreamErrorKind::Request,
        )
        .await;
        let live = match read {
            Ok(st) => Some(st.cached_info().clone()),
            Err(e) if is_not_found(e.kind()) => None,
            Err(e) => return Err(api(format!("read stream {}", s.name), e)),
        };
        let mut item = plan_item(
            Kind::Stream,
            s.name.clone(),
            &s.name,
            live.as_ref().map(|l| diff::stream_fields(&l.config)),
            diff::stream_fields(&desired),
            &allowed.recreate,
        );
        for (other, subjects) in &others {
            let clash = s
                .subjects
                .iter()
                .any(|a| subjects.iter().any(|b| subjects_overlap(a, b)));
            if clash && s.mirror.is_none() {
                item.refuse(format!(
                    "its subjects {} overlap those of stream {other} ({}), which is not in the spec: change or delete {other} first",
                    s.subjects.join(", "),
                    subjects.join(", ")
                ));
            }
        }
        if let (Some(live), Action::Update) = (&live, item.action) {
            let stored = stored(js, live, &desired).await?;
            item.losses = diff::losses(&live.config, &desired, stored);
            if !item.losses.is_empty() && !allowed.loss.contains(&s.name) {
                for loss in item.losses.clone() {
                    item.refuse(format!(
                        "{loss}; rerun with `--allow-loss {}` to accept that",
                        s.name
                    ));
                }
            }
        }
        items.push(item);
    }
    let desired_consumer = spec.consumer.config().into_consumer_config();
    // A group's durable goes only where its filter can match (a durable that never receives
    // anything would look healthy while the group starves).
    let durables = spec
        .matching(spec.event_streams())
        .filter(|_| spec.worker_durables);
    for s in durables {
        let durable = spec.consumer.durable_name();
        let name = format!("{}/{durable}", s.name);
        let live = match js.get_stream_no_info(&s.name).await {
            Ok(st) => match retry_leaderless(
                || st.consumer_info(durable),
                |e: &ConsumerInfoError| {
                    matches!(
                        e.kind(),
                        ConsumerInfoErrorKind::Request
                            | ConsumerInfoErrorKind::TimedOut
                            | ConsumerInfoErrorKind::NoResponders
                    )
                },
            )
            .await
            {
                Ok(info) => Some(info.config),
                Err(e)
                    if matches!(
                        e.kind(),
                        ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                    ) =>
                {
                    None
                }
                Err(e) => return Err(api(format!("read consumer {name}"), e)),
            },
            Err(e) if is_not_found(e.kind()) => None,
            Err(e) => return Err(api(format!("read stream {}", s.name), e)),
        };
        // Recreating a stream drops its consumers, so they are recreated with it.
        let stream_recreated = items
            .iter()
            .any(|i| i.kind == Kind::Stream && i.name == s.name && i.action == Action::Recreate);
        let live_fields = if stream_recreated {
            None
        } else {
            live.map(|l| diff::consumer_fields(&l))
        };
        items.push(plan_item(
            Kind::Consumer,
            name,
            &s.name,
            live_fields,
            diff::consumer_fields(&desired_consumer),
            &allowed.recreate,
        ));
    }
    Ok(Plan {
        target,
        notes,
        items,
    })
}

/// How long a request may keep failing while a stream, consumer or the meta group has no leader.
const LEADERLESS_BOUND: Duration = Duration::from_secs(30);

/// Sends a request again while it fails in a way a missing or busy leader explains (a request
/// timing out right after a restart, or on a loaded machine), for at most `LEADERLESS_BOUND`.
/// Only for idempotent requests: a create or update with the same config that did land the
/// first time succeeds again.
async fn retry_leaderless<T, E, Fut>(
    mut read: impl FnMut() -> Fut,
    transient: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let began = Instant::now();
    loop {
        match read().await {
            Err(e) if transient(&e) && began.elapsed() < LEADERLESS_BOUND => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// A create or update the cluster could not take yet: it timed out, or the meta leader does
/// not see enough peers online (measured right after the health gate passed on a cluster of
/// containers: `no suitable peers for placement, peer offline`). `fit_replicas` has already
/// refused replicas the cluster can never place, so this clears within the bound.
fn stream_not_yet(e: &CreateStreamError) -> bool {
    match e.kind() {
        CreateStreamErrorKind::TimedOut => true,
        CreateStreamErrorKind::JetStream(js) => js.error_code() == ErrorCode::CLUSTER_NO_PEERS,
        _ => false,
    }
}

fn consumer_timed_out(e: &ConsumerError) -> bool {
    e.kind() == ConsumerErrorKind::TimedOut
}

fn is_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// One plan item from what is live (`None`: absent) and what the spec wants.
fn plan_item(
    kind: Kind,
    name: String,
    stream: &str,
    live: Option<Fields>,
    desired: Fields,
    recreate: &BTreeSet<String>,
) -> PlanItem {
    let allowed = recreate.contains(stream) || recreate.contains(&name);
    let (action, changes) = diff::decide(live.as_ref(), &desired, allowed);
    let fixed: Vec<String> = changes
        .iter()
        .filter(|c| !c.in_place)
        .map(|c| format!("{} {} -> {}", c.field.as_str(), c.live, c.desired))
        .collect();
    let refusals = match action {
        Action::Refused => vec![format!(
            "({}) cannot change in place: rerun with `--recreate {name}` to delete and recreate it (its messages are lost)",
            fixed.join(", ")
        )],
        _ => Vec::new(),
    };
    PlanItem {
        kind,
        name,
        action,
        replicas_changed: changes.iter().any(|c| c.field == Field::Replicas),
        changes,
        refusals,
        losses: Vec::new(),
        stream: stream.to_owned(),
    }
}

impl PlanItem {
    fn refuse(&mut self, why: String) {
        self.action = Action::Refused;
        self.refusals.push(why);
    }
}

/// Streams on the server that the spec does not name, with their subjects (mirrors have none).
async fn other_streams(
    js: &Context,
    spec: &Spec,
) -> Result<Vec<(String, Vec<String>)>, ProvisionError> {
    use futures::TryStreamExt;
    let infos: Vec<stream::Info> = js
        .streams()
        .try_collect()
        .await
        .map_err(|e| api("list the streams", e))?;
    Ok(infos
        .into_iter()
        .filter(|i| spec.stream(&i.config.name).is_none())
        .map(|i| (i.config.name, i.config.subjects))
        .collect())
}

/// What the live stream holds that an update to `desired` could lose: counted by the server
/// through a short-lived consumer where the count depends on message times or subjects.
async fn stored(
    js: &Context,
    live: &stream::Info,
    desired: &stream::Config,
) -> Result<Stored, ProvisionError> {
    let mut out = Stored {
        messages: live.state.messages,
        bytes: live.state.bytes,
        ..Default::default()
    };
    if live.state.messages == 0 {
        return Ok(out);
    }
    let count = |config: consumer::pull::Config| async move {
        let what = format!("count the messages of {}", live.config.name);
        let st = js
            .get_stream_no_info(&live.config.name)
            .await
            .map_err(|e| api(&what, e))?;
        let mut c = st
            .create_consumer(config)
            .await
            .map_err(|e| api(&what, e))?;
        let pending = c.info().await.map_err(|e| api(&what, e))?.num_pending;
        let _ = st.delete_consumer(&c.cached_info().name).await;
        Ok::<u64, ProvisionError>(pending)
    };
    let base = || consumer::pull::Config {
        ack_policy: consumer::AckPolicy::None,
        inactive_threshold: Duration::from_secs(10),
        ..Default::default()
    };
    if diff::age_shrinks(&live.config, desired) {
        let since = time::OffsetDateTime::now_utc() - desired.max_age;
        out.within_new_age = Some(
            count(consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time: since },
                ..base()
            })
            .await?,
        );
    }
    let removed = diff::removed_subjects(&live.config.subjects, &desired.subjects);
    if !removed.is_empty() {
        out.on_removed_subjects = Some(
            count(consumer::pull::Config {
                filter_subjects: removed,
                ..base()
            })
            .await?,
        );
    }
    Ok(out)
}

/// What `apply` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub recreated: Vec<String>,
    /// Messages deleted with recreated streams.
    pub messages_lost: u64,
    pub elapsed_ms: u128,
}

/// Executes a plan. Refuses as a whole (changing nothing) when any item is `refused`.
pub async fn apply(
    js: &Context,
    spec: &Spec,
    plan: &Plan,
    replica_wait: Duration,
    progress: &dyn Fn(&str),
) -> Result<ApplyReport, ProvisionError> {
    let refused: Vec<String> = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Refused)
        .map(|i| format!("{} {} {}", i.kind.as_str(), i.name, i.refusals.join("; ")))
        .collect();
    if !refused.is_empty() {
        return Err(ProvisionError::Refused(refused));
    }
    let began = Instant::now();
    let mut report = ApplyReport::default();
    for item in &plan.items {
        match (item.kind, item.action) {
            (_, Action::Unchanged | Action::Refused) => {}
            (Kind::Stream, action) => {
                let s = spec
                    .stream(&item.name)
                    .expect("plan items come from the spec");
                let what = format!("{} stream {}", action.as_str(), s.name);
                match action {
                    Action::Create => {
                        retry_leaderless(|| js.create_stream(s.config()), stream_not_yet)
                            .await
                            .map_err(|e| api(&what, e))?;
                        report.created.push(item.name.clone());
                    }
                    Action::Update => {
                        retry_leaderless(|| js.update_stream(s.config()), stream_not_yet)
                            .await
                            .map_err(|e| api(&what, e))?;
                        report.updated.push(item.name.clone());
                    }
                    _ => {
                        let mut live = js.get_stream(&s.name).await.map_err(|e| api(&what, e))?;
                        let lost = live.info().await.map_err(|e| api(&what, e))?.state.messages;
                        progress(&format!(
                            "recreating stream {}: deleting {lost} message(s)",
                            s.name
                        ));
                        js.delete_stream(&s.name).await.map_err(|e| api(&what, e))?;
                        retry_leaderless(|| js.create_stream(s.config()), stream_not_yet)
                            .await
                            .map_err(|e| api(&what, e))?;
                        report.messages_lost += lost;
                        report.recreated.push(item.name.clone());
                    }
                }
                progress(&format!("{what}: done"));
                if item.replicas_changed || action != Action::Update {
                    wait_replicas_current(js, &s.name, s.replicas, replica_wait, progress).await?;
                }
            }
            (Kind::Consumer, action) => {
                let what = format!("{} consumer {}", action.as_str(), item.name);
                let st = js
                    .get_stream_no_info(&item.stream)
                    .await
                    .map_err(|e| api(&what, e))?;
                let config = spec.consumer.config();
                match action {
                    Action::Create => {
                        retry_leaderless(|| st.create_consumer(config.clone()), consumer_timed_out)
                            .await
                            .map_err(|e| api(&what, e))?;
                        report.created.push(item.name.clone());
                    }
                    Action::Update => {
                        retry_leaderless(
                            || st.update_consumer(config.clone()),
                            |e| e.kind() == ConsumerUpdateErrorKind::TimedOut,
                        )
                        .await
                        .map_err(|e| api(&what, e))?;
                        report.updated.push(item.name.clone());
                    }
                    _ => {
                        st.delete_consumer(spec.consumer.durable_name())
                            .await
                            .map_err(|e| api(&what, e))?;
                        retry_leaderless(|| st.create_consumer(config.clone()), consumer_timed_out)
                            .await
                            .map_err(|e| api(&what, e))?;
                        report.recreated.push(item.name.clone());
                    }
                }
                progress(&format!("{what}: done"));
            }
        }
    }
    report.elapsed_ms = began.elapsed().as_millis();
    Ok(report)
}

/// Plans and applies the spec on `servers` in one go (tests, benchmarks): connects, fits the
/// replica counts to the cluster, and returns the plan that was applied.
pub async fn provision_servers(
    nats: &crate::client::connect::NatsConfig,
    servers: &[String],
    spec: &mut Spec,
) -> Result<Plan, ProvisionError> {
    provision_servers_with(nats, servers, spec, false, &|_| {}).await
}

/// [`provision_servers`] telling `progress` the target, the plan line by line and each step
/// applied (the compose one-shot provisioner's output). `explicit_replicas`: `STREAM_REPLICAS`
/// was set, so a count larger than the cluster is an error rather than fitted.
pub async fn provision_servers_with(
    nats: &crate::client::connect::NatsConfig,
    servers: &[String],
    spec: &mut Spec,
    explicit_replicas: bool,
    progress: &dyn Fn(&str),
) -> Result<Plan, ProvisionError> {
    let client = nats.connect(servers).await.map_err(|e| api("connect", e))?;
    let target = ConnectedCluster::from_client(&client, servers);
    let notes = fit_replicas(spec, &target, explicit_replicas)?;
    let js = nats.jetstream(client);
    let plan = plan(&js, spec, target, notes, &Allowed::default()).await?;
    progress(&format!(
        "JetStream at {} ({}, {} server(s))",
        plan.target.servers.join(","),
        plan.target.cluster.as_deref().unwrap_or("unclustered"),
        plan.target.cluster_size
    ));
    for line in plan
        .notes
        .iter()
        .map(|n| format!("note: {n}"))
        .chain(plan.lines())
    {
        progress(&line);
    }
    progress(&format!("plan: {}", plan.summary()));
    apply(&js, spec, &plan, Duration::from_secs(60), progress).await?;
    wait_reachable(nats, servers, spec, Duration::from_secs(30)).await?;
    Ok(plan)
}

/// The `Nats-Expected-Stream` of a probe: no stream has this name, so the stream that receives
/// the probe refuses it and stores nothing, but answers.
const PROBE_STREAM: &str = "sea-reachability-probe";

/// Waits until every stream of `spec` answers a publish on its subjects through each of
/// `servers`. Right after a stream is created its interest takes a moment to reach every
/// server, and a publish through one it has not reached yet fails with "no stream found for
/// given subject": provisioning is done only once every server can reach every stream. A server
/// that cannot be connected to at all is passed over (it is down, not lagging).
pub async fn wait_reachable(
    nats: &crate::client::connect::NatsConfig,
    servers: &[String],
    spec: &Spec,
    timeout: Duration,
) -> Result<(), ProvisionError> {
    let began = Instant::now();
    for server in servers {
        let Ok(client) = nats.connect(std::slice::from_ref(server)).await else {
            continue;
        };
        for s in spec.streams.iter().filter(|s| s.mirror.is_none()) {
            let subject = crate::model::security::probe(&s.subjects[0]);
            loop {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_EXPECTED_STREAM, PROBE_STREAM);
                let answer = client
                    .request_with_headers(subject.clone(), headers, Default::default())
                    .await;
                if answer.is_ok() {
                    break;
                }
                if began.elapsed() >= timeout {
                    return Err(ProvisionError::Unreachable {
                        stream: s.name.clone(),
                        subject,
                        server: server.clone(),
                        waited: began.elapsed(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(())
}

/// Waits until the stream has a leader and `replicas - 1` followers, all current.
pub async fn wait_replicas_current(
    js: &Context,
    name: &str,
    replicas: usize,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<(), ProvisionError> {
    let began = Instant::now();
    let mut last_note = began;
    loop {
        let detail = match js.get_stream(name).await {
            Ok(mut st) => match st.info().await {
                Ok(info) => match replica_state(info, replicas) {
                    None => return Ok(()),
                    Some(detail) => detail,
                },
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if began.elapsed() >= timeout {
            return Err(ProvisionError::ReplicaWait {
                stream: name.to_owned(),
                waited: began.elapsed(),
                detail,
            });
        }
        if last_note.elapsed() >= Duration::from_secs(2) {
            last_note = Instant::now();
            progress(&format!(
                "waiting for {name} replicas ({:.0?}): {detail}",
                began.elapsed()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `None` when settled, else what is still missing.
fn replica_state(info: &stream::Info, replicas: usize) -> Option<String> {
    let Some(cluster) = &info.cluster else {
        // An unclustered server has no peers to wait for.
        return (replicas > 1).then(|| "no cluster information".to_owned());
    };
    if cluster.leader.as_deref().unwrap_or("").is_empty() {
        return Some("no leader".into());
    }
    let followers = &cluster.replicas;
    let current = followers.iter().filter(|p| p.current && !p.offline).count();
    if followers.len() + 1 != replicas || current + 1 != replicas {
        return Some(format!(
            "{} of {} replica(s) current",
            current + 1,
            replicas
        ));
    }
    None
}
