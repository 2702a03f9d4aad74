//! The worker in containers, for real: its image built FROM scratch from this build's binary
//! (as `cargo xtask image --worker` builds it), run by the compose `worker` profile of a private
//! `ha` rendering beside the servers, reaching them by service name. Events published from
//! here land in its inbox exactly once and outbox rows inserted here reach the stream exactly
//! once, across a `docker kill` of the `SEA_EVENTS` leader; its `/readyz` answers 200 from the
//! host. And the operator's bring-up as it is documented: `up -d` of the compose file with the
//! `worker` profile and nothing else, the one-shot `sea-provision` provisioning before the
//! worker starts, `/readyz` 200 from the host. Skipped without a Docker engine unless SEA_REQUIRE_DOCKER=1 (CI sets it).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use sea_infra::client::connect::NatsConfig;
use sea_infra::client::{crosscheck, observe, provision};
use sea_infra::model::{Profile, Spec};
use sea_infra::render::compose_worker::{WorkerService, PROVISION_SERVICE};
use sea_infra::testing::{publish_until_acked, require, Prerequisite, TestCluster, TestImage};
use sea_mq_worker::child;
use sea_mq_worker::config::Database;
use sea_mq_worker::db::{NewOutboxRow, Store};

/// Events published from the test, and the outbox rows it inserts (both in `SEA_EVENTS`, so
/// the worker also consumes the relayed rows into its inbox).
const EVENTS: &str = "sea.event.containers.published";
const OUTBOX: &str = "sea.event.containers.outbox";
const PER_PHASE: usize = 100;
const ROWS_PER_PHASE: usize = 25;

/// Waits until the worker's `/readyz` answers 200 (how long it took); panics with its log
/// otherwise.
async fn wait_ready(cluster: &TestCluster, worker: &WorkerService, timeout: Duration) -> Duration {
    let url = format!("{}/readyz", worker.http_url());
    let ready = observe::time_until(timeout, || async {
        matches!(child::get(&url).await, Some((200, _)))
    })
    .await;
    match ready {
        Some(took) => took,
        None => panic!(
            "{url} not 200 within {timeout:?} (last answer {:?}); its log:\n{}",
            child::get(&url).await,
            cluster.container_log(&worker.service)
        ),
    }
}

/// Inserts outbox rows `prefix-i`, as a service would.
async fn insert_outbox(store: &Store, prefix: &str, n: usize) {
    let rows = (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            NewOutboxRow {
                payload: serde_json::json!({ "id": id }).to_string(),
                id,
                subject: OUTBOX.to_owned(),
                headers: None,
            }
        })
        .collect();
    store.insert_outbox(rows).await.expect("insert outbox rows");
}

fn ids(prefix: &str, n: usize) -> impl Iterator<Item = String> + '_ {
    (0..n).map(move |i| format!("{prefix}-{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_in_containers_survives_losing_the_stream_leader() {
    if !require(
        "worker_in_containers_survives_losing_the_stream_leader",
        Prerequisite::Docker,
    ) {
        return;
    }
    let image = TestImage::worker(Path::new(env!("CARGO_BIN_EXE_sea-mq-worker")));
    let cluster = TestCluster::compose(Profile::Ha);
    cluster.up().await;
    let worker = cluster.workers()[0].clone();

    // The group's durable with a short ack_wait, so a batch whose ack died with the leader is
    // redelivered in seconds rather than the default 30.
    let servers = cluster.server_urls();
    let mut spec = Spec::builtin();
    spec.consumer.group = worker.group.clone();
    spec.consumer.ack_wait = Duration::from_secs(2);
    provision::provision_servers(&NatsConfig::default(), &servers, &mut spec)
        .await
        .expect("provision");
    cluster.start_workers(&image);
    let ready = wait_ready(&cluster, &worker, Duration::from_secs(60)).await;
    eprintln!("{} ready after {ready:?}", worker.container);

    let db = worker.host_database().expect("the database is on the host");
    let store = Store::open(&Database::Sqlite(db), Duration::from_secs(10))
        .await
        .expect("open the worker's database");
    let js = jetstream::new(
        crosscheck::connect(&NatsConfig::default(), &servers)
            .await
            .expect("connect"),
    );
    publish_until_acked(&js, EVENTS, "before", PER_PHASE).await;
    insert_outbox(&store, "out-before", ROWS_PER_PHASE).await;

    let (leader, elected) = cluster.kill_stream_leader(&js, "SEA_EVENTS").await;
    eprintln!("killed {leader}: a new SEA_EVENTS leader after {elected:?}");
    publish_until_acked(&js, EVENTS, "after", PER_PHASE).await;
    insert_outbox(&store, "out-after", ROWS_PER_PHASE).await;

    // Every published event and every relayed row, once.
    let outbox_ids: BTreeSet<String> = ids("out-before", ROWS_PER_PHASE)
        .chain(ids("out-after", ROWS_PER_PHASE))
        .collect();
    let expected: BTreeSet<String> = ids("before", PER_PHASE)
        .chain(ids("after", PER_PHASE))
        .chain(outbox_ids.iter().cloned())
        .collect();
    let done = observe::time_until(Duration::from_secs(90), || async {
        let inbox = store.inbox_ids(&worker.group).await.unwrap_or_default();
        let relayed = store.outbox_progress("out-").await.unwrap_or_default();
        inbox.len() >= expected.len() && relayed.published == outbox_ids.len() as u64
    })
    .await;
    let inbox = store
        .inbox_ids(&worker.group)
        .await
        .expect("read the inbox");
    let relayed = store
        .outbox_progress("out-")
        .await
        .expect("read the outbox");
    assert!(
        done.is_some(),
        "within 90 s: {} of {} events in the inbox, {} of {} rows relayed; the worker's log:\n{}",
        inbox.len(),
        expected.len(),
        relayed.published,
        outbox_ids.len(),
        cluster.container_log(&worker.service)
    );
    eprintln!(
        "{} events and {} relayed rows in the inbox {:?} after the last insert",
        PER_PHASE * 2,
        outbox_ids.len(),
        done.unwrap_or_default()
    );
    let distinct: BTreeSet<String> = inbox.iter().cloned().collect();
    assert_eq!(inbox.len(), distinct.len(), "an event twice in the inbox");
    assert_eq!(distinct, expected, "the inbox holds exactly what was sent");

    let relayed = observe::read_stream(&js, "SEA_EVENTS", OUTBOX, Duration::from_secs(10))
        .await
        .expect("read the relayed rows back");
    let counts = observe::msg_id_counts(&relayed);
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        outbox_ids,
        "every outbox row is in the stream"
    );
    assert!(counts.values().all(|c| *c == 1), "none doubled: {counts:?}");

    wait_ready(&cluster, &worker, Duration::from_secs(30)).await;
}

/// `docker-compose --profile nats-ha --profile worker up -d` on a private rendering (free ports,
/// names of its own, removed on drop) and nothing else: no health gate, no provisioning from
/// the test. The one-shot `sea-provision` provisions the spec, the worker's `/readyz` answers
/// 200 from the host, and a second `up -d` runs the provisioner again, which finds nothing to
/// do while the worker stays ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_up_with_the_worker_profile_provisions_and_the_worker_gets_ready() {
    if !require(
        "compose_up_with_the_worker_profile_provisions_and_the_worker_gets_ready",
        Prerequisite::Docker,
    ) {
        return;
    }
    let image = TestImage::worker(Path::new(env!("CARGO_BIN_EXE_sea-mq-worker")));
    let cluster = TestCluster::compose(Profile::Ha);
    let worker = cluster.workers()[0].clone();

    let began = Instant::now();
    cluster.up_with_workers(&image);
    let up = began.elapsed();
    let ready = wait_ready(&cluster, &worker, Duration::from_secs(60)).await;
    eprintln!(
        "up -d returned after {up:?}; {} ready {ready:?} later ({:?} in all)",
        worker.container,
        began.elapsed()
    );
    let first = cluster.container_log(PROVISION_SERVICE);
    assert!(
        first.contains("plan: ") && first.contains("applied: "),
        "sea-provision applied nothing:\n{first}"
    );
    let js = jetstream::new(
        crosscheck::connect(&NatsConfig::default(), &cluster.server_urls())
            .await
            .expect("connect"),
    );
    for stream in Spec::builtin().streams {
        if let Err(e) = js.get_stream(&stream.name).await {
            panic!(
                "stream {} not provisioned: {e}; sea-provision's log:\n{first}",
                stream.name
            );
        }
    }

    let again = Instant::now();
    cluster.up_with_workers(&image);
    let log = cluster.container_log(PROVISION_SERVICE);
    assert!(
        log.contains("nothing to do: the live configuration matches the spec"),
        "the second run was not a no-op:\n{log}"
    );
    wait_ready(&cluster, &worker, Duration::from_secs(30)).await;
    eprintln!(
        "second up -d (provisioner re-run, nothing to do) took {:?}",
        again.elapsed()
    );
}
