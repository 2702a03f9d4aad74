//! The outbox relay with real workers: rows inserted with only `id`, `subject`, `payload` are
//! published once each, even with several relays, and a crash between publish and mark adds no
//! duplicate to the stream.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use sea_infra::topology::Profile;

/// Inserts rows `{prefix}-{i}` the way a service would: just id, subject and payload.
fn insert_rows(db: &Path, prefix: &str, range: std::ops::Range<u64>) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let tx = conn.transaction().unwrap();
    for i in range {
        let id = format!("{prefix}-{i}");
        let payload = serde_json::json!({ "id": id, "n": i }).to_string();
        tx.execute(
            "INSERT INTO outbox (id, subject, payload) VALUES (?1, ?2, ?3)",
            [&id, &format!("sea.event.outbox.{}", i % 8), &payload],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn unpublished(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

#[tokio::test]
async fn rows_inserted_while_three_workers_run_are_published_exactly_once() {
    let env = Env::start(Profile::Ha).await;
    let workers = env
        .ready_workers(3, "g", &[("OUTBOX_POLL_INTERVAL_MS", "20")])
        .await;
    const N: u64 = 5_000;
    for start in (0..N).step_by(500) {
        insert_rows(&env.db(), "row", start..start + 500);
    }
    let db = env.db();
    wait_until(Duration::from_secs(120), "every row published", || async {
        unpublished(&db) == 0
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
    insert_rows(&env.db(), "crash", 0..300);
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
    assert_eq!(unpublished(&env.db()), 300, "published, but nothing marked");
    let (published_before, _) = stream_counts(&env.js, "SEA_EVENTS", "sea.event.outbox.>").await;
    assert!(
        published_before > 0,
        "the first batch reached the stream before the crash"
    );

    let relay = env.worker("g", &[("OUTBOX_LEASE_MS", "500")]);
    let db = env.db();
    wait_until(Duration::from_secs(30), "every row published", || async {
        unpublished(&db) == 0
    })
    .await;
    assert_eq!(
        stream_counts(&env.js, "SEA_EVENTS", "sea.event.outbox.>").await,
        (300, 300),
        "JetStream dropped the republished ids"
    );
    drop(relay);
}

fn max_attempts(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row("SELECT COALESCE(MAX(attempts), 0) FROM outbox", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// While NATS is unreachable the relay claims nothing (a claim would only park rows in the
/// client's buffer and count attempts); once the servers are back every row goes out once.
#[tokio::test]
async fn the_relay_claims_nothing_while_nats_is_unreachable() {
    let env = Env::start(Profile::Single).await;
    let node = "nats-1";
    assert!(env.cluster.deployment.kill_node(node));
    let worker = env.worker("g", &[("OUTBOX_POLL_INTERVAL_MS", "20")]);
    // /healthz answers once the database is open and the (retrying) connect has returned.
    wait_until(Duration::from_secs(30), "worker alive", || async {
        matches!(worker.get("/healthz").await, Some((200, _)))
    })
    .await;
    insert_rows(&env.db(), "offline", 0..100);
    // 50 poll intervals: before the fix the first one claimed every row.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        max_attempts(&env.db()),
        0,
        "rows claimed while disconnected"
    );

    env.cluster
        .deployment
        .start_node(node)
        .expect("restart nats-1");
    let db = env.db();
    wait_until(Duration::from_secs(60), "every row published", || async {
        unpublished(&db) == 0
    })
    .await;
    assert_eq!(max_attempts(&env.db()), 1, "each row claimed once");
    assert_eq!(
        stream_counts(&env.js, "SEA_EVENTS", "sea.event.outbox.>").await,
        (100, 100)
    );
}
