//! Real nats-server deployments for the exporter's tests: a profile on free ports, provisioned
//! (streams, durable consumers, mirrors), with a few events published so every JetStream series
//! has something to say.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use sea_infra::client::connect::NatsConfig;
use sea_infra::client::crosscheck;
use sea_infra::client::federation::{self, mirror_name};
use sea_infra::model::{Profile, Spec};
use sea_infra::testing::TestCluster;

pub struct Deployed {
    pub cluster: TestCluster,
    /// (server name, monitoring URL), in topology order.
    pub monitors: Vec<(String, String)>,
}

/// Client URLs of one cluster of the deployment.
pub fn client_urls(cluster: &TestCluster, name: &str) -> Vec<String> {
    let t = cluster.topology();
    t.client_urls(t.cluster(name).expect("cluster exists"))
}

pub async fn deploy(profile: Profile) -> Deployed {
    provisioned(TestCluster::start(profile).await, &Spec::builtin()).await
}

/// A started cluster provisioned with `spec` as [`deploy`] does (its topology says which
/// profile it is).
pub async fn provisioned(cluster: TestCluster, spec: &Spec) -> Deployed {
    let profile = cluster.topology().profile;
    federation::provision_topology(cluster.topology(), &NatsConfig::default(), spec)
        .await
        .expect("provision");
    let t = cluster.topology();
    let home = t.clusters[0].name.clone();
    let home_js = jetstream::new(
        crosscheck::connect(&NatsConfig::default(), &client_urls(&cluster, &home))
            .await
            .unwrap(),
    );
    crosscheck::publish_acked(&home_js, "sea.event.exporter", "exporter", 5)
        .await
        .expect("publish");
    if profile == Profile::Ha {
        // An ephemeral consumer: left out by default (cardinality), exported on request.
        let stream = home_js.get_stream("SEA_EVENTS").await.unwrap();
        stream
            .create_consumer(jetstream::consumer::pull::Config {
                inactive_threshold: Duration::from_secs(300),
                ..Default::default()
            })
            .await
            .expect("ephemeral consumer");
        // Deliveries and acks, so the consumer's last-delivery and last-ack series exist: three
        // fetched, two acked (ack floor 2, one pending ack, two not yet delivered).
        let durable: jetstream::consumer::PullConsumer = stream
            .get_consumer(Spec::builtin().consumer.durable_name())
            .await
            .expect("the worker's durable");
        let mut batch = durable
            .fetch()
            .max_messages(3)
            .messages()
            .await
            .expect("fetch");
        let mut n = 0;
        while let Some(msg) = futures::StreamExt::next(&mut batch).await {
            n += 1;
            if n <= 2 {
                msg.expect("message").double_ack().await.expect("ack");
            }
        }
        assert_eq!(n, 3, "fetched");
    }
    if let Some(other) = t.clusters.get(1) {
        // The mirror of the home cluster's stream lives in the other cluster (mesh) or cell (leaf).
        let other_js = jetstream::new(
            crosscheck::connect(&NatsConfig::default(), &client_urls(&cluster, &other.name))
                .await
                .unwrap(),
        );
        crosscheck::mirror_caught_up(
            &home_js,
            "SEA_EVENTS",
            &other_js,
            &mirror_name("SEA_EVENTS", &home),
            Duration::from_secs(30),
        )
        .await
        .expect("mirror caught up");
    }
    let monitors: Vec<(String, String)> = t
        .servers()
        .map(|(_, server)| (server.name.clone(), t.monitor_url(server)))
        .collect();
    wait_healthy(&monitors).await;
    Deployed { cluster, monitors }
}

/// Polls every server's `/healthz` until all answer ok (streams and consumers current).
pub async fn wait_healthy(monitors: &[(String, String)]) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let began = Instant::now();
    loop {
        let mut bad = Vec::new();
        for (name, url) in monitors {
            let ok = match http.get(format!("{url}/healthz")).send().await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            };
            if !ok {
                bad.push(name.clone());
            }
        }
        if bad.is_empty() {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "servers not healthy after 60s: {bad:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
