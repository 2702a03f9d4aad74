//! The outbox relay with real workers: rows inserted with only `id`, `subject`, `payload` are
//! published once each, even with several relays, and a crash between publish and mark adds no
//! duplicate to the stream.

mod common;

use std::time::Duration;

use common::*;
use sea_infra::model::topology::Profile;

#[tokio::test]
async fn rows_inserted_while_three_workers_run_are_published_exactly_once() {
    let env = Env::start(Profile::Ha).await;
    let workers = env
        .ready_workers(3, "g", &[("OUTBOX_POLL_INTERVAL_MS", "20")])
        .await;
    const N: u64 = 5_000;
    for start in (0..N).step_by(500) {
        env.insert_outbox("row", start..start + 500).await;
    }
    wait_until(Duration::from_secs(120), "every row published", || async {
        env.outbox().await.published == env.outbox().await.rows
    })
    .await;
    assert_outbox_published_once(&env, &workers, N).await;
}

#[tokio::test]
async fn a_relay_killed_between_publish_and_mark_adds_no_duplicate() {
    let env = Env::start(Profile::Single).await;
    // Start once to create the tables, then insert while nobody relays.
    let mut setup = env.worker("g", &[("OUTBOX_ENABLED", "false")]);
    setup.ready().await;
    env.insert_outbox("crash", 0..300).await;
    assert_eq!(setup.terminate(Duration::from_secs(15)).code(), Some(0));

    let mut crashing = env.worker(
        "g",
        &[
            ("WORKER_FAILPOINT", "outbox-after-publish"),
            ("OUTBOX_LEASE_MS", "500"),
        ],
    );
    let status = crashing.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "the failpoint aborted the relay");
    assert_eq!(
        env.store.outbox_progress("crash-").await.unwrap().published,
        0,
        "published, but nothing marked"
    );
    let (published_before, _) = stream_counts(&env.js, "SEA_EVENTS", "sea.event.outbox.>").await;
    assert!(
        published_before > 0,
        "the first batch reached the stream before the crash"
    );

    let relay = env.worker("g", &[("OUTBOX_LEASE_MS", "500")]);
    wait_until(Duration::from_secs(30), "every row published", || async {
        env.outbox().await.published == env.outbox().await.rows
    })
    .await;
    assert_eq!(
        stream_counts(&env.js, "SEA_EVENTS", "sea.event.outbox.>").await,
        (300, 300),
        "JetStream dropped the republished ids"
    );
    drop(relay);
}

/// While NATS is unreachable the relay claims nothing (a claim would only park rows in the
/// client's buffer and count attempts); once the servers are back every row goes out once.
#[tokio::test]
async fn the_relay_claims_nothing_while_nats_is_unreachable() {
    let env = Env::start(Profile::Single).await;
    let server = "nats-1";
    env.cluster.kill(server);
    let worker = env.worker("g", &[("OUTBOX_POLL_INTERVAL_MS", "20")]);
    // /healthz answers once the database is open and the (retrying) connect has returned.
    wait_until(Duration::from_secs(30), "worker alive", || async {
        matches!(worker.get("/healthz").await, Some((200, _)))
    })
    .await;
    env.insert_outbox("offline", 0..100).await;
    // 50 poll intervals: before the fix the first one claimed every row.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.outbox().await.max_attempts,
        0,
        "rows claimed while disconnected"
    );

    env.cluster.start_server(server);
    wait_until(Duration::from_secs(60), "every row published", || async {
        env.outbox().await.published == env.outbox().await.rows
    })
    .await;
    assert_eq!(env.outbox().await.max_attempts, 1, "each row claimed once");
    assert_eq!(
        stream_counts(&env.js, "SEA_EVENTS", "sea.event.outbox.>").await,
        (100, 100)
    );
}
