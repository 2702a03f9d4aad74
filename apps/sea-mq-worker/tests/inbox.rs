//! Exactly-once into the inbox with real workers on a real `ha` cluster: duplicates, a second
//! group, a worker killed mid-way, the stream leader killed mid-way.

mod common;

use std::time::Duration;

use common::*;
use sea_infra::model::topology::Profile;

const GROUP: &str = "billing";

fn expected_ids(prefix: &str, n: u64) -> std::collections::BTreeSet<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test]
async fn three_workers_share_a_group_exactly_once_and_a_second_group_gets_everything() {
    let env = Env::start(Profile::Ha).await;
    let workers = env.ready_workers(3, GROUP, &[]).await;
    const N: u64 = 10_000;
    publish_events(&env.js, "evt", 0..N).await;
    // 5 % duplicates: half with the same Nats-Msg-Id (JetStream drops them), half without the
    // header (stored again; only the inbox can tell, by CloudEvents id).
    publish_events(&env.js, "evt", 0..N / 40).await;
    for i in (N / 2)..(N / 2 + N / 40) {
        publish_without_header(&env.js, "evt", i).await;
    }

    wait_drained(&env.js, "SEA_EVENTS", GROUP, Duration::from_secs(120)).await;
    assert_eq!(env.inbox_counts(GROUP).await, (N, N));
    assert_eq!(env.inbox_ids(GROUP).await, expected_ids("evt", N));
    let inserted = sum_metric(&workers, "sea_worker_events_total{outcome=\"inserted\"}").await;
    assert_eq!(inserted, N as f64, "metrics count what happened");
    assert_eq!(
        sum_metric(&workers, "sea_worker_duplicates_skipped_total").await,
        (N / 40) as f64,
        "the header-less duplicates were skipped by the inbox"
    );

    // A second group receives every event too, into its own rows.
    let other = env.worker("audit", &[]);
    wait_drained(&env.js, "SEA_EVENTS", "audit", Duration::from_secs(120)).await;
    assert_eq!(env.inbox_counts("audit").await, (N, N));
    drop(other);
}

#[tokio::test]
async fn a_worker_killed_mid_way_leaves_exactly_once() {
    let env = Env::start(Profile::Ha).await;
    let mut workers = env
        .ready_workers(3, GROUP, &[("WORKER_BATCH_SIZE", "32")])
        .await;
    const N: u64 = 5_000;
    let publisher = publish_while(&env, "k", N, GROUP, N / 5).await;
    workers[0].kill();
    publisher.await.unwrap();
    wait_drained(&env.js, "SEA_EVENTS", GROUP, Duration::from_secs(120)).await;
    assert_eq!(env.inbox_counts(GROUP).await, (N, N));
    assert_eq!(env.inbox_ids(GROUP).await, expected_ids("k", N));
}

#[tokio::test]
async fn the_stream_leader_killed_mid_way_leaves_exactly_once() {
    let env = Env::start(Profile::Ha).await;
    let _workers = env.ready_workers(2, GROUP, &[]).await;
    const N: u64 = 3_000;
    let publisher = publish_while(&env, "l", N, GROUP, N / 3).await;
    let leader = stream_leader(&env.js, "SEA_EVENTS")
        .await
        .expect("SEA_EVENTS has a leader");
    env.cluster.kill(&leader);
    publisher.await.unwrap();
    wait_drained(&env.js, "SEA_EVENTS", GROUP, Duration::from_secs(120)).await;
    assert_eq!(env.inbox_counts(GROUP).await, (N, N));
    assert_eq!(env.inbox_ids(GROUP).await, expected_ids("l", N));
    let new_leader = stream_leader(&env.js, "SEA_EVENTS").await;
    assert!(
        new_leader.is_some_and(|l| l != leader),
        "a new leader was elected"
    );
}

#[tokio::test]
async fn a_deleted_consumer_is_recreated_and_nothing_is_doubled() {
    let env = Env::start(Profile::Single).await;
    let mut worker = env.worker(GROUP, &[("WORKER_PULL_EXPIRES_MS", "1000")]);
    worker.ready().await;
    publish_events(&env.js, "d", 0..100).await;
    wait_drained(&env.js, "SEA_EVENTS", GROUP, Duration::from_secs(30)).await;

    // Someone deletes the durable under the running worker (nats.rs #1584: the pull stream
    // never recovers by itself).
    env.js
        .get_stream("SEA_EVENTS")
        .await
        .unwrap()
        .delete_consumer(GROUP)
        .await
        .unwrap();
    publish_events(&env.js, "d", 100..200).await;
    wait_until(Duration::from_secs(30), "consumer rebuilt", || async {
        worker.metric("sea_worker_consumer_rebuilds_total").await >= 1.0
    })
    .await;
    wait_drained(&env.js, "SEA_EVENTS", GROUP, Duration::from_secs(30)).await;
    // The recreated consumer starts from the beginning: the first 100 come again as duplicates.
    assert_eq!(env.inbox_counts(GROUP).await, (200, 200));
    assert_eq!(
        worker.metric("sea_worker_duplicates_skipped_total").await,
        100.0
    );
}
