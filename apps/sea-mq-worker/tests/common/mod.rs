//! Shared by the worker's integration tests: a provisioned `ha` cluster on free ports, worker
//! processes that are killed on drop, and readers of the inbox and streams.

#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use sea_infra::client::provision;
use sea_infra::model::spec::{Spec, ENV_CONSUMER_ACK_WAIT_MS};
use sea_infra::model::topology::Profile;
use sea_infra::model::{Role, Security};
use sea_infra::testing::{scratch_dir, TestCluster};
use sea_mq_worker::child::{Launch, WorkerProcess};
use sea_mq_worker::config::Database;
use sea_mq_worker::db::{NewOutboxRow, Store};

/// Redelivery after a crashed worker must not take the default 30 s in tests.
pub const ACK_WAIT_MS: u64 = 2000;

pub struct Env {
    pub cluster: TestCluster,
    pub js: jetstream::Context,
    pub client: async_nats::Client,
    pub dir: tempfile::TempDir,
    /// The workers' SQLite database, as an auditor reads it.
    pub store: Store,
}

impl Env {
    /// An `ha` (or `single`) cluster with the spec provisioned, `ack_wait` shortened.
    pub async fn start(profile: Profile) -> Env {
        Env::on(TestCluster::start(profile).await).await
    }

    /// The same, secured (TLS, accounts): provisioned by the admin user, the test's own client
    /// the operator's, and the workers connect as the worker user.
    pub async fn start_secured(profile: Profile) -> Env {
        let cluster = TestCluster::secured(profile, Security::Accounts);
        cluster.up().await;
        Env::on(cluster).await
    }

    async fn on(cluster: TestCluster) -> Env {
        let servers = cluster.server_urls();
        let mut spec = Spec::builtin();
        spec.consumer.ack_wait = Duration::from_millis(ACK_WAIT_MS);
        provision::provision_servers(&cluster.nats(Role::Admin), &servers, &mut spec)
            .await
            .expect("provision");
        let client = cluster.connect_as(Role::Ops).await;
        let js = jetstream::new(client.clone());
        let dir = scratch_dir("worker");
        let db = Database::Sqlite(dir.path().join("sea.db"));
        let store = Store::open(&db, Duration::from_secs(10))
            .await
            .expect("open the test database");
        Env {
            cluster,
            js,
            client,
            dir,
            store,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("sea.db")
    }

    /// Starts a worker process of `group` on the shared database.
    pub fn worker(&self, group: &str, extra: &[(&str, &str)]) -> WorkerProc {
        self.worker_on(&self.db(), group, extra)
    }

    /// Starts a worker process of `group` on the SQLite file `db`.
    pub fn worker_on(
        &self,
        db: &std::path::Path,
        group: &str,
        extra: &[(&str, &str)],
    ) -> WorkerProc {
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.dir.path().join(format!("worker-{group}-{n}.log"));
        let launch = Launch::sqlite(
            std::path::Path::new(env!("CARGO_BIN_EXE_sea-mq-worker")),
            &self.cluster.server_urls(),
            db,
            group,
        )
        .credentials(
            self.cluster
                .deployment()
                .access()
                .map(|a| a.client_env(Role::Worker))
                .unwrap_or_default(),
        )
        .set(ENV_CONSUMER_ACK_WAIT_MS, ACK_WAIT_MS)
        .log_to(log);
        let launch = extra.iter().fold(launch, |l, (k, v)| l.set(k, v));
        WorkerProc(launch.spawn().expect("start sea-mq-worker"))
    }

    /// `n` workers of `group`, each ready (`/readyz`) before this returns.
    pub async fn ready_workers(
        &self,
        n: usize,
        group: &str,
        extra: &[(&str, &str)],
    ) -> Vec<WorkerProc> {
        let mut workers: Vec<WorkerProc> = (0..n).map(|_| self.worker(group, extra)).collect();
        for w in &mut workers {
            w.ready().await;
        }
        workers
    }

    /// (rows, distinct message ids) of a group in the inbox.
    pub async fn inbox_counts(&self, group: &str) -> (u64, u64) {
        let ids = self.store.inbox_ids(group).await.unwrap_or_default();
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        (ids.len() as u64, distinct.len() as u64)
    }

    /// Every message id of a group in the inbox.
    pub async fn inbox_ids(&self, group: &str) -> std::collections::BTreeSet<String> {
        self.store
            .inbox_ids(group)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    /// How far the relay got with every outbox row.
    pub async fn outbox(&self) -> sea_mq_worker::db::OutboxProgress {
        self.store
            .outbox_progress("")
            .await
            .expect("read the outbox")
    }

    /// Inserts outbox rows `{prefix}-{i}` the way a service would: just id, subject, payload.
    pub async fn insert_outbox(&self, prefix: &str, range: std::ops::Range<u64>) {
        self.store
            .insert_outbox(outbox_rows(prefix, range))
            .await
            .expect("insert outbox rows");
    }
}

/// Outbox rows `{prefix}-{i}` on `sea.event.outbox.*`, as a service writes them.
pub fn outbox_rows(prefix: &str, range: std::ops::Range<u64>) -> Vec<NewOutboxRow> {
    range
        .map(|i| {
            outbox_row(
                &format!("{prefix}-{i}"),
                &format!("sea.event.outbox.{}", i % 8),
            )
        })
        .collect()
}

pub fn outbox_row(id: &str, subject: &str) -> NewOutboxRow {
    NewOutboxRow {
        id: id.to_owned(),
        subject: subject.to_owned(),
        payload: serde_json::json!({ "id": id }).to_string(),
        headers: None,
    }
}

/// A worker of a test: panics with its log when it does not do what the test expects.
pub struct WorkerProc(pub WorkerProcess);

impl WorkerProc {
    pub fn pid(&self) -> i32 {
        self.0.pid().map_or(0, |p| p as i32)
    }

    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// SIGTERM, then the exit status (bounded).
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.0
            .stop(nix::sys::signal::Signal::SIGTERM, within)
            .unwrap_or_else(|| {
                panic!(
                    "worker did not stop within {within:?}; log:\n{}",
                    self.log_text()
                )
            })
    }

    /// Waits until the process exits by itself.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        self.0.wait_exit(within).unwrap_or_else(|| {
            panic!(
                "worker did not exit within {within:?}; log:\n{}",
                self.log_text()
            )
        })
    }

    pub fn log_text(&self) -> String {
        self.0.log_text()
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        self.0.get(path).await
    }

    /// Waits until `/readyz` says ready.
    pub async fn ready(&mut self) {
        if let Err(e) = self.0.wait_ready(Duration::from_secs(30)).await {
            panic!("{e}");
        }
    }

    /// A counter or gauge from `/metrics` (`name` may include labels).
    pub async fn metric(&self, name: &str) -> f64 {
        self.0
            .metric(name)
            .await
            .unwrap_or_else(|| panic!("metric {name} not found"))
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.0.kill();
        if std::thread::panicking() {
            eprintln!("--- last lines of {:?}:", self.0.log);
            eprintln!("{}", self.0.log_tail(40));
        }
    }
}

/// The sum of one metric over several workers.
pub async fn sum_metric(workers: &[WorkerProc], name: &str) -> f64 {
    let mut total = 0.0;
    for w in workers {
        total += w.metric(name).await;
    }
    total
}

/// Publishes `prefix-0..n` in the background (see [`publish_events`]) and returns once the
/// group's inbox holds at least `before` rows, so a fault can be injected mid-stream.
pub async fn publish_while(
    env: &Env,
    prefix: &str,
    n: u64,
    group: &str,
    before: u64,
) -> tokio::task::JoinHandle<()> {
    let (js, prefix_owned) = (env.js.clone(), prefix.to_owned());
    let publisher = tokio::spawn(async move { publish_events(&js, &prefix_owned, 0..n).await });
    wait_until(Duration::from_secs(60), "events in progress", || async {
        env.inbox_counts(group).await.0 >= before
    })
    .await;
    publisher
}

#[allow(unused_imports)] // not every test binary needs it
pub use sea_infra::client::observe::stream_leader;

/// The outbox rows reached `SEA_EVENTS` exactly once each: `n` messages with `n` distinct
/// `Nats-Msg-Id`, and the relays' own counters add up to `n` (JetStream would hide a row
/// published twice by competing relays; the counters would not).
pub async fn assert_outbox_published_once(env: &Env, workers: &[WorkerProc], n: u64) {
    assert_eq!(
        stream_counts(&env.js, "SEA_EVENTS", "sea.event.outbox.>").await,
        (n as usize, n as usize)
    );
    assert_eq!(
        sum_metric(workers, "sea_worker_outbox_published_total").await,
        n as f64,
        "no row was published twice by competing relays"
    );
}

/// Polls `cond` every 50 ms until true; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(
        sea_infra::client::observe::time_until(timeout, cond)
            .await
            .is_some(),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// Publishes events `evt-{from}..evt-{to}` with `Nats-Msg-Id`, acks awaited in windows of 256,
/// retrying a publish whose ack fails (e.g. while a leader moves).
pub async fn publish_events(js: &jetstream::Context, prefix: &str, range: std::ops::Range<u64>) {
    let ids: Vec<u64> = range.collect();
    for chunk in ids.chunks(256) {
        let mut acks = Vec::new();
        for i in chunk {
            acks.push((*i, publish_one(js, prefix, *i, true).await));
        }
        // One deadline for the whole window: acks lost with a dead server must not each wait
        // their own timeout in turn.
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        for (i, ack) in acks {
            if !matches!(tokio::time::timeout_at(deadline, ack).await, Ok(Ok(_))) {
                retry_publish(js, prefix, i).await;
            }
        }
    }
}

async fn publish_one(
    js: &jetstream::Context,
    prefix: &str,
    i: u64,
    with_header: bool,
) -> jetstream::context::PublishAckFuture {
    let id = format!("{prefix}-{i}");
    let payload = serde_json::json!({ "id": id, "type": "test", "n": i }).to_string();
    let mut headers = async_nats::HeaderMap::new();
    if with_header {
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
    }
    loop {
        match js
            .publish_with_headers(
                format!("sea.event.test.{}", i % 16),
                headers.clone(),
                payload.clone().into(),
            )
            .await
        {
            Ok(ack) => return ack,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// How long a publish waits for its ack before it is retried (async-nats' default is 30 s, far
/// longer than a leader election).
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

async fn retry_publish(js: &jetstream::Context, prefix: &str, i: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ack = publish_one(js, prefix, i, true).await;
        if let Ok(Ok(_)) = tokio::time::timeout(ACK_TIMEOUT, ack).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not publish {prefix}-{i} within 60s");
}

/// Re-publishes an event without `Nats-Msg-Id`: JetStream stores it again and only the inbox
/// (through its CloudEvents id) can tell it is a duplicate.
pub async fn publish_without_header(js: &jetstream::Context, prefix: &str, i: u64) {
    publish_one(js, prefix, i, false)
        .await
        .await
        .expect("publish duplicate");
}

/// All messages of a stream matching `filter`.
pub async fn read_stream(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> Vec<jetstream::Message> {
    sea_infra::client::observe::read_stream(js, stream, filter, Duration::from_secs(30))
        .await
        .expect("read the stream")
}

/// (messages, distinct `Nats-Msg-Id`) of a stream's messages matching `filter`.
pub async fn stream_counts(js: &jetstream::Context, stream: &str, filter: &str) -> (usize, usize) {
    let msgs = read_stream(js, stream, filter).await;
    let ids = sea_infra::client::observe::msg_id_counts(&msgs);
    (msgs.len(), ids.keys().filter(|id| !id.is_empty()).count())
}

/// Waits until the group's consumer has acknowledged (or terminated) everything in the stream:
/// its ack floor reached the stream's last sequence and nothing is outstanding. (A consumer just
/// created can briefly report nothing pending, so `num_pending` alone is not enough.)
pub async fn wait_drained(js: &jetstream::Context, stream: &str, durable: &str, timeout: Duration) {
    wait_until(timeout, "consumer drained", || async {
        let Ok(mut st) = js.get_stream(stream).await else {
            return false;
        };
        let Ok(last) = st.info().await.map(|i| i.state.last_sequence) else {
            return false;
        };
        match st.consumer_info(durable).await {
            Ok(info) => {
                info.ack_floor.stream_sequence >= last
                    && info.num_ack_pending == 0
                    && info.num_pending == 0
            }
            Err(_) => false,
        }
    })
    .await;
}
