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
