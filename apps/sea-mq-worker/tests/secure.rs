//! The worker on a secured deployment (TLS on every listener, accounts): as the worker user it
//! runs the whole inbox, outbox and DLQ loop, and the server refuses it everything else (judged
//! by nats-py, not this project's code); certificates rotate under load without a disconnect,
//! a failed publish or a lost event.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use common::*;
use sea_infra::deployment::certs;
use sea_infra::model::topology::Profile;
use sea_infra::model::{Role, Spec};
use sea_infra::testing::{independent_check, require, Prerequisite};
use serde_json::json;

/// The worker user's permissions name the spec's consumer: its group is the default one.
const GROUP: &str = "sea-mq-worker";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_user_runs_the_whole_loop_and_is_refused_everything_else() {
    let test = "the_worker_user_runs_the_whole_loop_and_is_refused_everything_else";
    if !require(test, Prerequisite::NatsPy) {
        return;
    }
    let env = Env::start_secured(Profile::Ha).await;
    let mut worker = env.worker(GROUP, &[]);
    worker.ready().await;

    // A publishing service, as the publisher user: events, and one poison message.
    let publisher = jetstream::new(env.cluster.connect_as(Role::Publisher).await);
    publish_events(&publisher, "sec", 0..50).await;
    publisher
        .publish("sea.event.orders.created", "not json {".into())
        .await
        .expect("the publisher may publish events")
        .await
        .expect("acked");
    // The outbox, relayed by the worker user; the relayed events come back into its inbox.
    env.insert_outbox("sec-out", 0..20).await;

    wait_drained(&env.js, "SEA_EVENTS", GROUP, Duration::from_secs(60)).await;
    wait_until(
        Duration::from_secs(30),
        "inbox holds every event",
        || async { env.inbox_counts(GROUP).await == (70, 70) },
    )
    .await;
    let dlq = read_stream(&env.js, "SEA_DLQ", "sea.dlq.>").await;
    assert_eq!(dlq.len(), 1, "the poison message, once");
    assert_eq!(worker.metric("sea_worker_dlq_total").await, 1.0);
    assert_eq!(env.outbox().await.published, 20);

    // Another consumer's messages exist to be refused.
    env.js
        .get_stream("SEA_EVENTS")
        .await
        .unwrap()
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("audit".to_owned()),
            ..Default::default()
        })
        .await
        .expect("the operator creates another consumer");
    let mut config = env.cluster.checker_config(Role::Worker);
    let (_, first) = env.cluster.topology().server("nats-1").unwrap();
    config["url"] = json!(env.cluster.topology().client_url(first));
    config["stream"] = json!("SEA_EVENTS");
    config["other_durable"] = json!("audit");
    let answer = independent_check("denials", &config);
    for denied in [
        "delete_stream",
        "purge_stream",
        "publish_outside",
        "read_other_consumer",
    ] {
        assert_eq!(answer[denied]["violation"], true, "{denied}: {answer}");
    }
    assert_eq!(answer["stream_info"]["result"], "ok", "{answer}");
    assert_eq!(answer["stream_info"]["violation"], false, "{answer}");
    let stream = env.js.get_stream("SEA_EVENTS").await.unwrap();
    assert!(
        stream.cached_info().state.messages >= 71,
        "nothing was deleted"
    );

    let password = env
        .cluster
        .deployment()
        .access()
        .unwrap()
        .secrets()
        .passwords[&Role::Worker]
        .expose()
        .to_owned();
    assert!(
        !worker.log_text().contains(&password),
        "the worker logged its password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_load_without_a_disconnect_a_failed_publish_or_a_lost_event() {
    let test =
        "certificates_rotate_under_load_without_a_disconnect_a_failed_publish_or_a_lost_event";
    if !require(test, Prerequisite::NatsPy) {
        return;
    }
    let env = Env::start_secured(Profile::Ha).await;
    let workers = env.ready_workers(2, GROUP, &[]).await;
    let dep = env.cluster.deployment();
    let before = env.cluster.served_serial("nats-1");

    // A publisher that counts what a rotation could break: disconnects and failed publishes.
    let disconnects = Arc::new(AtomicU64::new(0));
    let seen = disconnects.clone();
    let client = dep
        .nats(Role::Publisher)
        .connect_tuned(&env.cluster.server_urls(), move |o| {
            o.event_callback(move |event| {
                let seen = seen.clone();
                async move {
                    if matches!(event, async_nats::Event::Disconnected) {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .await
        .expect("connect the publisher");
    let js = jetstream::new(client);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (js, stop) = (js.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut acked, mut failed) = (0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                let id = format!("rot-{acked}-{failed}");
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                let payload = json!({ "id": id }).to_string();
                let ack = match js
                    .publish_with_headers("sea.event.rotation", headers, payload.into())
                    .await
                {
                    Ok(ack) => ack.await,
                    Err(e) => Err(e),
                };
                match ack {
                    Ok(_) => acked += 1,
                    Err(_) => failed += 1,
                }
            }
            (acked, failed)
        })
    };
    let before_rotation = Duration::from_secs(2);
    tokio::time::sleep(before_rotation).await; // load runs while the rotation happens

    let access = dep.access().unwrap();
    let issued = certs::ensure(
        access.tls_dir(),
        &certs::requests(certs::DEFAULT_NAMESPACE),
        true,
    )
    .expect("rotate");
    let new_serial = issued
        .iter()
        .find(|c| c.name == "nats-1")
        .unwrap()
        .serial
        .clone();
    let reloaded = dep.reload(&Spec::builtin()).expect("reload");
    assert_eq!(reloaded.len(), 3);
    let norm = |s: &str| s.to_ascii_lowercase().trim_start_matches('0').to_owned();
    wait_until(
        Duration::from_secs(10),
        "new handshakes see the new certificate",
        || {
            let served = env.cluster.served_serial("nats-1");
            let expected = norm(&new_serial);
            async move { norm(&served) == expected }
        },
    )
    .await;
    assert_ne!(norm(&before), norm(&new_serial));
    tokio::time::sleep(before_rotation).await; // and keeps running after it

    stop.store(true, Ordering::SeqCst);
    let (acked, failed) = load.await.unwrap();
    assert!(acked > 100, "the load ran: {acked} acked");
    assert_eq!(failed, 0, "publishes failed during the rotation");
    assert_eq!(
        disconnects.load(Ordering::SeqCst),
        0,
        "the publisher was disconnected"
    );
    wait_drained(&env.js, "SEA_EVENTS", GROUP, Duration::from_secs(60)).await;
    let (rows, distinct) = env.inbox_counts(GROUP).await;
    assert_eq!(
        (rows, distinct),
        (acked, acked),
        "every acked event in the inbox, once"
    );
    for w in &workers {
        assert_eq!(
            w.metric("sea_worker_nats_disconnects_total").await,
            0.0,
            "a worker was disconnected"
        );
    }
}
