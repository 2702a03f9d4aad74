//! The PostgreSQL backend with real workers sharing one database: exactly once into the inbox,
//! and outbox rows relayed once each by competing relays. Each test runs its own server (see
//! `common/pg.rs`); without PostgreSQL installed they are skipped unless SEA_REQUIRE_POSTGRES=1.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use common::*;
use pg::PgServer;
use sea_infra::model::topology::Profile;

const GROUP: &str = "billing";

fn assert_no_password(workers: &[WorkerProc]) {
    for w in workers {
        assert!(
            !w.log_text().contains(pg::PASSWORD),
            "password printed:\n{}",
            w.log_text()
        );
    }
}

#[tokio::test]
async fn three_workers_on_one_database_fill_the_inbox_exactly_once() {
    let Some(pg) =
        PgServer::start("three_workers_on_one_database_fill_the_inbox_exactly_once").await
    else {
        return;
    };
    let env = Env::start(Profile::Single).await;
    let url = pg.url();
    // Started together: their schema creation races, which the advisory lock serialises.
    let mut workers: Vec<_> = (0..3)
        .map(|_| env.worker(GROUP, &[("DATABASE_URL", url.as_str())]))
        .collect();
    for w in &mut workers {
        w.ready().await;
    }
    const N: u64 = 2_000;
    const DUPLICATES: u64 = 50;
    publish_events(&env.js, "pg", 0..N).await;
    // Stored again by JetStream (no Nats-Msg-Id): only the inbox's key can drop them.
    for i in 0..DUPLICATES {
        publish_without_header(&env.js, "pg", i).await;
    }
    wait_drained(&env.js, "SEA_EVENTS", GROUP, Duration::from_secs(120)).await;

    let rows = pg.store().await.inbox_ids(GROUP).await.unwrap();
    assert_eq!(rows.len() as u64, N, "one row per event");
    let ids: std::collections::BTreeSet<String> = rows.into_iter().collect();
    assert_eq!(ids, (0..N).map(|i| format!("pg-{i}")).collect());
    let (mut inserted, mut duplicates) = (0.0, 0.0);
    for w in &workers {
        inserted += w
            .metric("sea_worker_events_total{outcome=\"inserted\"}")
            .await;
        duplicates += w.metric("sea_worker_duplicates_skipped_total").await;
    }
    assert_eq!((inserted, duplicates), (N as f64, DUPLICATES as f64));
    assert_no_password(&workers);
}

#[tokio::test]
async fn outbox_rows_inserted_while_three_workers_run_are_published_exactly_once() {
    let Some(pg) =
        PgServer::start("outbox_rows_inserted_while_three_workers_run_are_published_exactly_once")
            .await
    else {
        return;
    };
    let env = Env::start(Profile::Single).await;
    let url = pg.url();
    let mut workers: Vec<_> = (0..3)
        .map(|_| {
            env.worker(
                "g",
                &[
                    ("DATABASE_URL", url.as_str()),
                    ("OUTBOX_POLL_INTERVAL_MS", "20"),
                ],
            )
        })
        .collect();
    for w in &mut workers {
        w.ready().await;
    }
    const N: u64 = 2_000;
    let store = pg.store().await;
    // The way a service would: just id, subject and payload, a few transactions.
    for start in (0..N).step_by(250) {
        store
            .insert_outbox(outbox_rows("row", start..start + 250))
            .await
            .unwrap();
    }
    wait_until(Duration::from_secs(120), "every row published", || async {
        store.outbox_progress("row-").await.unwrap().published == N
    })
    .await;

    assert_outbox_published_once(&env, &workers, N).await;
    let progress = store.outbox_progress("row-").await.unwrap();
    assert_eq!(
        (
            progress.min_attempts,
            progress.max_attempts,
            progress.claimed
        ),
        (1, 1, 0),
        "each row was claimed once, and its claim cleared when published"
    );
    assert_no_password(&workers);
}

/// The store on its own: claims skip rows another relay holds, an expired claim is taken over
/// (its age counted from the first attempt), failed rows leave the queue, inbox duplicates are
/// reported as such, a lost connection is reopened.
#[tokio::test]
async fn claims_exclude_each_other_until_they_expire() {
    use sea_mq_worker::db::InboxRow;

    let Some(pg) = PgServer::start("claims_exclude_each_other_until_they_expire").await else {
        return;
    };
    let store = pg.store().await;
    store.ping().await.unwrap();
    for i in [3, 1, 2, 0] {
        let row = outbox_row(&format!("r{i}"), "sea.event.x");
        store.insert_outbox(vec![row]).await.unwrap();
    }
    let ids = |rows: &[sea_mq_worker::db::OutboxRow]| -> Vec<String> {
        rows.iter().map(|r| r.id.clone()).collect()
    };
    let lease = Duration::from_millis(300);
    let a = store.claim_outbox("a", 2, lease).await.unwrap();
    assert_eq!(ids(&a), ["r3", "r1"], "oldest first");
    assert!(a.iter().all(|r| r.first_attempt_age == Duration::ZERO));
    let b = store.claim_outbox("b", 10, lease).await.unwrap();
    assert_eq!(ids(&b), ["r2", "r0"], "rows claimed by a are skipped");
    assert!(store.claim_outbox("c", 10, lease).await.unwrap().is_empty());

    store.mark_published(vec!["r3".into()]).await.unwrap();
    store
        .mark_failed("r2".into(), "bad headers".into())
        .await
        .unwrap();
    assert_eq!(store.outbox_pending().await.unwrap(), 2);
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let c = store.claim_outbox("c", 10, lease).await.unwrap();
    assert_eq!(ids(&c), ["r1", "r0"], "expired claims are taken over");
    assert!(c.iter().all(|r| r.first_attempt_age >= lease));
    assert_eq!(store.outbox_progress("r1").await.unwrap().max_attempts, 2);

    let row = |id: &str| InboxRow {
        message_id: id.into(),
        subject: "sea.event.x".into(),
        payload: "{}".into(),
        headers: None,
        stream_seq: 1,
    };
    let first = store
        .insert_inbox("g", vec![row("m1"), row("m2"), row("m1")])
        .await
        .unwrap();
    assert_eq!(first, [true, true, false]);
    let again = store
        .insert_inbox("g", vec![row("m2"), row("m3")])
        .await
        .unwrap();
    assert_eq!(again, [false, true]);

    // A dropped connection is reopened on next use (the first use may still see the error).
    let db = pg.client().await;
    let pids: Vec<i32> = db
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'sea-mq-worker'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(pids.len(), 1, "the store holds one connection");
    db.execute("SELECT pg_terminate_backend($1)", &[&pids[0]])
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "the store reconnected", || async {
        store.ping().await.is_ok()
    })
    .await;
    assert_eq!(store.outbox_pending().await.unwrap(), 2);
}
