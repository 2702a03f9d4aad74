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

// ---- TLS: the link as `sslmode` says ------------------------------------------------------

/// Opens the worker's tables over `url`, as the worker does; the error as the worker shows it.
async fn open(url: &str) -> Result<sea_mq_worker::db::Store, String> {
    let db = sea_mq_worker::config::parse_database_url(url)?;
    sea_mq_worker::db::Store::open(&db, Duration::ZERO)
        .await
        .map_err(|e| e.to_string())
}

/// Every mode that encrypts reaches a server that accepts only TLS (`hostssl`), and the server
/// sees each session encrypted; SCRAM's channel binding works over it.
#[tokio::test]
async fn every_sslmode_that_encrypts_reaches_a_tls_only_server_encrypted() {
    let Some(pg) =
        PgServer::start_tls("every_sslmode_that_encrypts_reaches_a_tls_only_server_encrypted")
            .await
    else {
        return;
    };
    let ca = pg.ca().display().to_string();
    let verify = |mode: &str| format!("sslmode={mode}&sslrootcert={ca}");
    let cases = [
        ("require", pg.url_with("127.0.0.1", "sslmode=require")),
        ("prefer, the default", pg.url_with("127.0.0.1", "connect_timeout=5")),
        ("allow", pg.url_with("127.0.0.1", "sslmode=allow")),
        ("verify-ca", pg.url_with("127.0.0.1", &verify("verify-ca"))),
        ("verify-full, by address", pg.url_with("127.0.0.1", &verify("verify-full"))),
        ("verify-full, by name", pg.url_with("localhost", &verify("verify-full"))),
        (
            "verify-ca, dialled by a name the certificate lacks",
            pg.url_with(
                "db.elsewhere.example",
                &format!("hostaddr=127.0.0.1&{}", verify("verify-ca")),
            ),
        ),
        (
            "require, channel binding required",
            pg.url_with("127.0.0.1", "sslmode=require&channel_binding=require"),
        ),
        (
            "key=value, verify-full",
            format!(
                "host=localhost port={} user=postgres password={} dbname=sea sslmode=verify-full sslrootcert='{ca}'",
                pg.port(),
                pg::PASSWORD
            ),
        ),
    ];
    for (i, (what, url)) in cases.into_iter().enumerate() {
        let app = format!("tls-case-{i}");
        let sep = if url.contains("://") { "&" } else { " " };
        let store = open(&format!("{url}{sep}application_name={app}"))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        store.ping().await.unwrap();
        let sessions = pg.sessions_tls(&app).await;
        assert!(
            sessions.len() == 1 && sessions.iter().all(|(ssl, v)| *ssl && v.is_some()),
            "{what}: the server sees {sessions:?}"
        );
    }
}

/// What is refused, and that the message says why and what to change, without the password.
#[tokio::test]
async fn a_wrong_ca_a_wrong_name_and_plaintext_are_refused_with_the_fix() {
    let Some(pg) =
        PgServer::start_tls("a_wrong_ca_a_wrong_name_and_plaintext_are_refused_with_the_fix").await
    else {
        return;
    };
    let other = sea_infra::testing::scratch_dir("other-ca");
    sea_infra::deployment::certs::ensure(other.path(), &[], false).unwrap();
    let other_ca = other.path().join("ca.pem").display().to_string();
    let ca = pg.ca().display().to_string();
    let cases = [
        (
            "verify-full with another CA",
            pg.url_with(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={other_ca}"),
            ),
            vec!["not signed by the CA", other_ca.as_str()],
        ),
        (
            "require with another CA: checked once a CA is given, as libpq does",
            pg.url_with(
                "127.0.0.1",
                &format!("sslmode=require&sslrootcert={other_ca}"),
            ),
            vec!["not signed by the CA"],
        ),
        (
            "verify-full dialled by a name the certificate lacks",
            pg.url_with(
                "db.elsewhere.example",
                &format!("hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
            ),
            vec![
                "does not hold the host name `db.elsewhere.example`",
                "verify-ca",
            ],
        ),
        (
            "disable against hostssl only",
            pg.url_with("127.0.0.1", "sslmode=disable"),
            vec![
                "no pg_hba.conf entry",
                "sslmode=disable",
                "hostssl",
                "sslmode=verify-full",
            ],
        ),
    ];
    for (what, url, mentions) in cases {
        let err = match open(&url).await {
            Ok(_) => panic!("{what}: connected"),
            Err(e) => e,
        };
        for m in mentions {
            assert!(err.contains(m), "{what}: {m:?} not in: {err}");
        }
        assert!(!err.contains(pg::PASSWORD), "{what}: password shown: {err}");
    }

    // The worker itself: refused at start, the cause in its log, no password.
    let dir = sea_infra::testing::scratch_dir("tls-worker");
    let url = pg.url_with(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other_ca}"),
    );
    let mut worker = sea_mq_worker::child::Launch::sqlite(
        std::path::Path::new(env!("CARGO_BIN_EXE_sea-mq-worker")),
        &["nats://127.0.0.1:1".to_owned()],
        &dir.path().join("unused.db"),
        "g",
    )
    .set("DATABASE_URL", &url)
    .log_to(dir.path().join("worker.log"))
    .spawn()
    .unwrap();
    let status = worker.wait_exit(Duration::from_secs(30)).expect("exits");
    let log = worker.log_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("not signed by the CA"), "{log}");
    assert!(!log.contains(pg::PASSWORD), "{log}");
}

/// Against a server without TLS: `prefer` (the default) falls back to plaintext, `require`
/// refuses.
#[tokio::test]
async fn prefer_falls_back_to_plaintext_and_require_refuses_a_server_without_tls() {
    let Some(pg) =
        PgServer::start("prefer_falls_back_to_plaintext_and_require_refuses_a_server_without_tls")
            .await
    else {
        return;
    };
    let store = open(&pg.url_with("127.0.0.1", "sslmode=prefer&application_name=plain"))
        .await
        .unwrap();
    store.ping().await.unwrap();
    assert_eq!(pg.sessions_tls("plain").await, [(false, None)]);
    let err = match open(&pg.url_with("127.0.0.1", "sslmode=require")).await {
        Ok(_) => panic!("require connected without TLS"),
        Err(e) => e,
    };
    assert!(err.contains("server does not support TLS"), "{err}");
}

/// The whole loop over a verified TLS link: two workers relay the outbox once and fill the
/// inbox exactly once (with the events published and the relayed rows), every one of their
/// sessions encrypted; the CA comes from `PGSSLROOTCERT`.
#[tokio::test]
async fn workers_run_the_inbox_and_outbox_over_verified_tls() {
    let Some(pg) = PgServer::start_tls("workers_run_the_inbox_and_outbox_over_verified_tls").await
    else {
        return;
    };
    let env = Env::start(Profile::Single).await;
    let url = pg.url_with("localhost", "sslmode=verify-full");
    let ca = pg.ca().display().to_string();
    let mut workers: Vec<_> = (0..2)
        .map(|_| {
            env.worker(
                GROUP,
                &[
                    ("DATABASE_URL", url.as_str()),
                    ("PGSSLROOTCERT", ca.as_str()),
                    ("OUTBOX_POLL_INTERVAL_MS", "20"),
                ],
            )
        })
        .collect();
    for w in &mut workers {
        w.ready().await;
    }
    const N: u64 = 500;
    publish_events(&env.js, "tls", 0..N).await;
    let store = pg.store().await;
    store.insert_outbox(outbox_rows("row", 0..N)).await.unwrap();
    wait_until(Duration::from_secs(120), "every row published", || async {
        store.outbox_progress("row-").await.unwrap().published == N
    })
    .await;
    // The relayed rows land in SEA_EVENTS too, so the group consumes them back: the full loop.
    wait_drained(&env.js, "SEA_EVENTS", GROUP, Duration::from_secs(120)).await;

    let rows = store.inbox_ids(GROUP).await.unwrap();
    let ids: std::collections::BTreeSet<String> = rows.iter().cloned().collect();
    let expected: std::collections::BTreeSet<String> = (0..N)
        .flat_map(|i| [format!("tls-{i}"), format!("row-{i}")])
        .collect();
    assert_eq!((rows.len(), &ids), (expected.len(), &expected));
    assert_eq!(
        sum_metric(&workers, "sea_worker_events_total{outcome=\"inserted\"}").await,
        2.0 * N as f64
    );
    assert_outbox_published_once(&env, &workers, N).await;
    // The workers' sessions and the auditor's: all encrypted.
    let sessions = pg.sessions_tls("sea-mq-worker").await;
    assert!(
        sessions.len() >= 3 && sessions.iter().all(|(ssl, _)| *ssl),
        "{sessions:?}"
    );
    for w in &workers {
        assert!(
            w.log_text().contains("connected to PostgreSQL"),
            "{}",
            w.log_text()
        );
        assert!(w.log_text().contains("tls=true"), "{}", w.log_text());
    }
    assert_no_password(&workers);
}
