//! Local database faults with a real worker on a real cluster: the SQLite file deleted under a
//! running worker (it must stop acking what nobody will read, say so, and lose nothing), and
//! writes failing while the database still answers reads (`/readyz` must say so).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use sea_infra::client::observe::time_until;
use sea_infra::model::topology::Profile;
use sea_mq_worker::config::Database;
use sea_mq_worker::db::Store;

/// Every id of `group`'s inbox rows in the SQLite file `db`, read by a connection of its own
/// (closed again, so it does not keep a deleted file alive).
async fn inbox_rows(db: &std::path::Path, group: &str) -> Vec<String> {
    let store = Store::open(&Database::Sqlite(db.to_path_buf()), Duration::from_secs(10))
        .await
        .expect("open the database");
    store.inbox_ids(group).await.expect("read the inbox")
}

#[tokio::test]
async fn a_database_file_deleted_under_the_worker_stops_it_and_loses_nothing() {
    let env = Env::start(Profile::Single).await;
    // Not the shared test database: the harness's own connection would keep that file alive.
    let db = env.dir.path().join("deleted.db");
    // Without the relay (whose claims would notice first) and with no /readyz polled until
    // the events are in: the inbox's own commits must notice.
    let mut worker = env.worker_on(&db, "g", &[("OUTBOX_ENABLED", "false")]);
    worker.ready().await;
    let publisher = {
        let js = env.js.clone();
        tokio::spawn(async move { publish_events(&js, "e", 0..3000).await })
    };
    let inserted = "sea_worker_events_total{outcome=\"inserted\"}";
    wait_until(Duration::from_secs(30), "events flowing", || async {
        worker.metric(inserted).await >= 300.0
    })
    .await;

    std::fs::remove_file(&db).expect("delete the database file");
    // Whatever the stream stores from now on was published after the deletion.
    let mut stream = env.js.get_stream("SEA_EVENTS").await.unwrap();
    let deleted_at = stream.info().await.unwrap().state.last_sequence;
    publish_events(&env.js, "late", 0..300).await;
    publisher.await.unwrap();
    let noticed = time_until(Duration::from_secs(20), || async {
        worker.log_text().contains("inbox batch not acked")
    })
    .await;
    let db_name = db.display().to_string();
    let unready = time_until(Duration::from_secs(20), || async {
        matches!(worker.get("/readyz").await, Some((503, body)) if body.contains(&db_name))
    })
    .await;
    let readyz = worker.get("/readyz").await;
    let healthz = worker.get("/healthz").await;

    // The operator restarts the worker; it creates a new file.
    assert_eq!(
        worker.terminate(Duration::from_secs(15)).code(),
        Some(0),
        "{}",
        worker.log_text()
    );
    let mut restarted = env.worker_on(&db, "g", &[]);
    restarted.ready().await;
    wait_drained(&env.js, "SEA_EVENTS", "g", Duration::from_secs(60)).await;
    let rows = inbox_rows(&db, "g").await;
    let in_file: BTreeSet<&String> = rows.iter().collect();
    let after: Vec<String> = read_stream(&env.js, "SEA_EVENTS", "sea.event.>")
        .await
        .iter()
        .filter(|m| m.info().is_ok_and(|i| i.stream_sequence > deleted_at))
        .filter_map(|m| Some(m.headers.as_ref()?.get("Nats-Msg-Id")?.as_str().to_owned()))
        .collect();
    let missing = after.iter().filter(|id| !in_file.contains(id)).count();

    assert!(
        unready.is_some() && missing == 0,
        "/readyz turned 503 naming {db_name}: {} (last answer {readyz:?}); \
         {missing} of {} events published after the deletion are missing from the new file",
        unready.is_some(),
        after.len()
    );
    assert!(
        after.len() >= 300,
        "{} events after the deletion",
        after.len()
    );
    assert_eq!(rows.len(), in_file.len(), "each exactly once");
    assert!(noticed.is_some(), "the inbox commit noticed");
    let (status, body) = readyz.expect("/readyz answers");
    assert_eq!(status, 503);
    assert!(body.contains("restart the worker"), "{body}");
    let (status, body) = healthz.expect("/healthz answers");
    assert_eq!(status, 503, "a halted worker is not healthy: {body}");
    assert!(body.contains(&db_name), "{body}");
}

#[tokio::test]
async fn readyz_is_503_while_every_write_fails_and_200_again_after() {
    let env = Env::start(Profile::Single).await;
    // Without the relay, whose claims would fail (and count) too: the inbox's commits must.
    let mut worker = env.worker(
        "g",
        &[
            ("DATABASE_BUSY_TIMEOUT_MS", "100"),
            ("OUTBOX_ENABLED", "false"),
        ],
    );
    worker.ready().await;

    // Another process holds the write lock: every insert fails, while `SELECT 1` still works.
    let blocker = rusqlite::Connection::open(env.db()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // One event at a time, so each is a failed commit of its own (3 make the worker unready).
    let retried = "sea_worker_events_total{outcome=\"retried\"}";
    for i in 0..3 {
        publish_events(&env.js, "w", i..i + 1).await;
        wait_until(Duration::from_secs(10), "a failed commit", || async {
            worker.metric(retried).await >= (i + 1) as f64
        })
        .await;
    }
    let unready = time_until(Duration::from_secs(10), || async {
        matches!(worker.get("/readyz").await, Some((503, body)) if body.contains("database writes failing"))
    })
    .await;
    let during = worker.get("/readyz").await;
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    assert!(
        unready.is_some(),
        "/readyz did not turn 503 while every write failed: {during:?}"
    );
    let (_, body) = during.unwrap();
    assert!(
        body.contains("inbox commits failed") && body.contains("database is locked"),
        "{body}"
    );

    // Ready again once a commit succeeds: the nak'ed events come back after a second.
    wait_until(Duration::from_secs(30), "/readyz 200 again", || async {
        matches!(worker.get("/readyz").await, Some((200, _)))
    })
    .await;
    publish_events(&env.js, "w", 3..20).await;
    wait_drained(&env.js, "SEA_EVENTS", "g", Duration::from_secs(60)).await;
    assert_eq!(env.inbox_counts("g").await, (20, 20));
    assert_eq!(
        worker.get("/healthz").await.map(|(status, _)| status),
        Some(200),
        "failing writes are not a reason to restart"
    );
}
