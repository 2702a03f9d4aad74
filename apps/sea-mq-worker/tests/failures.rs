//! Failure handling with a real worker: poison to the DLQ with provenance headers, a database
//! outage nak'ed and recovered with nothing lost, a still-failing event dead-lettered on its last
//! delivery, bad configuration refused.

mod common;

use std::time::Duration;

use common::*;
use sea_infra::model::topology::Profile;

#[tokio::test]
async fn poison_lands_on_the_dlq_with_headers_and_is_not_retried() {
    let env = Env::start(Profile::Single).await;
    let mut worker = env.worker("g", &[]);
    worker.ready().await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "poison-1");
    let ack = env
        .js
        .publish_with_headers("sea.event.orders.created", headers, "not json {".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // JSON, but with no id anywhere.
    env.js
        .publish("sea.event.orders.updated", r#"{"data":1}"#.into())
        .await
        .unwrap()
        .await
        .unwrap();
    publish_events(&env.js, "ok", 0..10).await;

    wait_drained(&env.js, "SEA_EVENTS", "g", Duration::from_secs(30)).await;
    let dlq = read_stream(&env.js, "SEA_DLQ", "sea.dlq.>").await;
    assert_eq!(dlq.len(), 2, "both poison events, once each");
    let first = dlq
        .iter()
        .find(|m| m.subject.as_str() == "sea.dlq.orders.created")
        .expect("on sea.dlq.<rest of subject>");
    let h = first.headers.as_ref().unwrap();
    let get = |name: &str| {
        h.get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(get("Sea-Dlq-Original-Subject"), "sea.event.orders.created");
    assert_eq!(get("Sea-Dlq-Stream"), "SEA_EVENTS");
    assert_eq!(get("Sea-Dlq-Stream-Sequence"), ack.sequence.to_string());
    assert_eq!(get("Sea-Dlq-Delivery-Count"), "1");
    assert!(
        get("Sea-Dlq-Error").starts_with("payload is not JSON"),
        "{}",
        get("Sea-Dlq-Error")
    );
    assert_eq!(&first.payload[..], b"not json {");
    assert_eq!(env.inbox_counts("g").await, (10, 10));
    assert_eq!(worker.metric("sea_worker_dlq_total").await, 2.0);
    assert_eq!(
        worker.metric("sea_worker_redeliveries_total").await,
        0.0,
        "terminated, not retried"
    );
}

#[tokio::test]
async fn a_database_outage_naks_and_recovers_with_nothing_lost() {
    let env = Env::start(Profile::Single).await;
    let mut worker = env.worker("g", &[("DATABASE_BUSY_TIMEOUT_MS", "100")]);
    worker.ready().await;

    // Another process holds the write lock: the worker's inserts fail as in an outage.
    let blocker = rusqlite::Connection::open(env.db()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    publish_events(&env.js, "o", 0..50).await;
    wait_until(
        Duration::from_secs(30),
        "naks during the outage",
        || async {
            worker
                .metric("sea_worker_events_total{outcome=\"retried\"}")
                .await
                >= 50.0
        },
    )
    .await;
    assert_eq!(
        worker
            .metric("sea_worker_events_total{outcome=\"inserted\"}")
            .await,
        0.0
    );
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);

    wait_drained(&env.js, "SEA_EVENTS", "g", Duration::from_secs(60)).await;
    assert_eq!(env.inbox_counts("g").await, (50, 50));
    assert_eq!(worker.metric("sea_worker_dlq_total").await, 0.0);
    assert!(worker.metric("sea_worker_redeliveries_total").await >= 50.0);
}

#[tokio::test]
async fn an_event_still_failing_on_its_last_delivery_goes_to_the_dlq() {
    let env = Env::start(Profile::Single).await;
    // This group's consumer does not exist yet: the worker creates it with max_deliver 2.
    let mut worker = env.worker(
        "short",
        &[
            ("DATABASE_BUSY_TIMEOUT_MS", "50"),
            ("CONSUMER_MAX_DELIVER", "2"),
        ],
    );
    worker.ready().await;
    let blocker = rusqlite::Connection::open(env.db()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    publish_events(&env.js, "s", 0..3).await;
    wait_drained(&env.js, "SEA_EVENTS", "short", Duration::from_secs(30)).await;
    blocker.execute_batch("COMMIT").unwrap();

    let dlq = read_stream(&env.js, "SEA_DLQ", "sea.dlq.>").await;
    assert_eq!(dlq.len(), 3);
    for m in &dlq {
        let h = m.headers.as_ref().unwrap();
        assert_eq!(h.get("Sea-Dlq-Delivery-Count").unwrap().as_str(), "2");
        assert!(h
            .get("Sea-Dlq-Error")
            .unwrap()
            .as_str()
            .starts_with("still failing on delivery 2: database"));
    }
    assert_eq!(env.inbox_counts("short").await, (0, 0));
}

#[test]
fn every_invalid_variable_is_reported_at_once_with_exit_64_and_no_secret() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sea-mq-worker"))
        .env_clear()
        .envs([
            ("NATS_SERVERS", "nats://a:4222, bogus"),
            ("NATS_RECONNECT_MAX", "-1"),
            ("CONSUMER_MAX_DELIVER", "0"),
            ("DATABASE_URL", "postgres-ish://admin:db-secret@x"),
            ("HTTP_ADDR", "everywhere"),
            ("LOG_FORMAT", "yaml"),
            ("NATS_USER", "svc"),
            ("NATS_PASSWORD", "nats-secret"),
            ("NATS_AUTH_TOKEN", "token-secret"),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(64), "{text}");
    sea_infra::testing::assert_mentions(
        &text,
        &[
            "NATS_SERVERS=",
            "NATS_RECONNECT_MAX=",
            "CONSUMER_MAX_DELIVER=",
            "DATABASE_URL=",
            "HTTP_ADDR=",
            "LOG_FORMAT=",
            "NATS_AUTH_TOKEN=",
        ],
    );
    for secret in ["nats-secret", "token-secret", "db-secret"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
}

#[tokio::test]
async fn an_exhausted_reconnect_budget_ends_the_worker_with_exit_69() {
    let env = Env::start(Profile::Single).await;
    let mut worker = env.worker(
        "g",
        &[
            ("NATS_RECONNECT_MAX", "3"),
            ("NATS_RECONNECT_DELAY_MS", "50"),
            ("NATS_RECONNECT_DELAY_MAX_MS", "100"),
        ],
    );
    worker.ready().await;
    assert_eq!(worker.metric("sea_worker_nats_connected").await, 1.0);
    env.cluster.kill("nats-1");
    let status = worker.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(69), "{}", worker.log_text());
    assert!(worker
        .log_text()
        .contains("could not reach NATS within NATS_RECONNECT_MAX attempts"));
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_0() {
    let env = Env::start(Profile::Single).await;
    let mut worker = env.worker("g", &[]);
    worker.ready().await;
    let publisher = {
        let js = env.js.clone();
        tokio::spawn(async move { publish_events(&js, "t", 0..2000).await })
    };
    wait_until(Duration::from_secs(30), "work in progress", || async {
        env.inbox_counts("g").await.0 > 200
    })
    .await;
    assert_eq!(
        worker.terminate(Duration::from_secs(15)).code(),
        Some(0),
        "{}",
        worker.log_text()
    );
    assert!(worker.log_text().contains("stopped"));
    publisher.await.unwrap();
    // Whatever the stopped worker had pulled was acked or handed back: a new worker finishes
    // the rest without waiting for ack_wait and without doubles.
    let _next = env.worker("g", &[]);
    wait_drained(&env.js, "SEA_EVENTS", "g", Duration::from_secs(60)).await;
    assert_eq!(env.inbox_counts("g").await, (2000, 2000));
}

/// A poison event whose payload, once the DLQ headers are added, no longer fits the server's
/// `max_payload` (or the DLQ stream's message size): it is dead-lettered by reference (source
/// stream and sequence, size, why the body was left out), promptly, and nothing claims a retry
/// that never happens.
#[tokio::test]
async fn a_poison_event_too_large_for_the_dlq_is_dead_lettered_by_reference() {
    let env = Env::start(Profile::Single).await;
    let mut worker = env.worker("g", &[]);
    worker.ready().await;
    // Not JSON, so poison; within the 1 MiB limits on its own (payload plus its one header),
    // but not once the DLQ's provenance headers (about 250 bytes) are added.
    let max_payload = env.client.server_info().max_payload;
    assert_eq!(max_payload, 1 << 20, "the server's default max_payload");
    const SIZE: usize = (1 << 20) - 200;
    let payload = vec![b'x'; SIZE];
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "too-big-1");
    let ack = env
        .js
        .publish_with_headers("sea.event.blobs.big", headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
    publish_events(&env.js, "ok", 0..10).await;

    wait_until(Duration::from_secs(30), "a DLQ entry", || async {
        read_stream(&env.js, "SEA_DLQ", "sea.dlq.>").await.len() == 1
    })
    .await;
    wait_drained(&env.js, "SEA_EVENTS", "g", Duration::from_secs(30)).await;
    let dlq = read_stream(&env.js, "SEA_DLQ", "sea.dlq.>").await;
    assert_eq!(dlq.len(), 1, "dead-lettered once");
    let entry = &dlq[0];
    assert_eq!(entry.subject.as_str(), "sea.dlq.blobs.big");
    let h = entry.headers.as_ref().expect("DLQ headers");
    let get = |name: &str| {
        h.get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(get("Sea-Dlq-Original-Subject"), "sea.event.blobs.big");
    assert_eq!(get("Sea-Dlq-Stream"), "SEA_EVENTS");
    assert_eq!(get("Sea-Dlq-Stream-Sequence"), ack.sequence.to_string());
    assert_eq!(get("Sea-Dlq-Payload-Size"), SIZE.to_string());
    assert!(
        get("Sea-Dlq-Body-Omitted").contains("exceed"),
        "says why the body is not here: {:?}",
        get("Sea-Dlq-Body-Omitted")
    );
    assert!(get("Sea-Dlq-Error").starts_with("payload is not JSON"));
    assert!(entry.payload.is_empty(), "a reference, not the body");
    // The body is where the reference says.
    let original = env
        .js
        .get_stream("SEA_EVENTS")
        .await
        .unwrap()
        .get_raw_message(ack.sequence)
        .await
        .unwrap();
    assert_eq!(original.payload.len(), SIZE);
    assert_eq!(env.inbox_counts("g").await, (10, 10));
    assert_eq!(worker.metric("sea_worker_dlq_total").await, 1.0);
    let log = worker.log_text();
    assert!(!log.contains("will retry"), "{log}");
}
