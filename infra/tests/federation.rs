//! Federation on real servers (free ports): a gateway-joined mesh and leafnode-joined cells.

use std::time::Duration;

use async_nats::jetstream;
use sea_infra::client::connect::NatsConfig;
use sea_infra::client::crosscheck;
use sea_infra::client::federation::{self, mirror_name};
use sea_infra::model::spec::Spec;
use sea_infra::model::topology::Profile;
use sea_infra::testing::TestCluster;

/// Client URLs of one cluster of a test deployment.
fn servers(cluster: &TestCluster, name: &str) -> Vec<String> {
    let t = cluster.topology();
    t.client_urls(t.cluster(name).expect("cluster exists"))
}

async fn js(servers: &[String]) -> (async_nats::Client, jetstream::Context) {
    let client = crosscheck::connect(&NatsConfig::default(), servers)
        .await
        .expect("connect");
    (client.clone(), jetstream::new(client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_crosses_clusters_places_streams_and_mirrors() {
    let mesh = TestCluster::start(Profile::Mesh).await;
    let plans =
        federation::provision_topology(mesh.topology(), &NatsConfig::default(), &Spec::builtin())
            .await
            .expect("provision");
    assert_eq!(plans.len(), 1, "a supercluster is one domain");
    let (a, b) = (servers(&mesh, "sea-a"), servers(&mesh, "sea-b"));
    // The same checks as the seed's e2e test (apps/sea-mq-worker/tests/e2e.rs).
    let report = crosscheck::mesh_checks(&NatsConfig::default(), &a, &b)
        .await
        .expect("federation checks");
    assert_eq!(report.events, 20);
    let (_, js_a) = js(&a).await;
    let (_, js_b) = js(&b).await;

    assert_eq!(
        crosscheck::stream_cluster(&js_a, "SEA_EVENTS")
            .await
            .unwrap()
            .as_deref(),
        Some("sea-a")
    );
    let mirror = mirror_name("SEA_EVENTS", "sea-a");
    assert_eq!(
        crosscheck::stream_cluster(&js_b, &mirror)
            .await
            .unwrap()
            .as_deref(),
        Some("sea-b")
    );

    let again =
        federation::provision_topology(mesh.topology(), &NatsConfig::default(), &Spec::builtin())
            .await
            .unwrap();
    assert!(again.iter().all(|(_, p)| p.is_unchanged()), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_cells_share_only_federated_subjects_and_mirror_across_domains() {
    let leaf = TestCluster::start(Profile::Leaf).await;
    let plans =
        federation::provision_topology(leaf.topology(), &NatsConfig::default(), &Spec::builtin())
            .await
            .expect("provision");
    assert_eq!(plans.len(), 2, "each cell is its own domain");
    let (a, b) = (servers(&leaf, "cell-a"), servers(&leaf, "cell-b"));
    let report = crosscheck::leaf_checks(&NatsConfig::default(), &a, &b, "cell-a")
        .await
        .expect("leaf checks");
    assert_eq!(report.crossed.len(), 3);
    assert_eq!(
        report.stayed_local,
        ["private.crosscheck", "sea.internal.crosscheck"]
    );
    // Each domain answers for its own streams: the same name is two streams.
    let (_, js_a) = js(&a).await;
    let (_, js_b) = js(&b).await;
    crosscheck::publish_acked(&js_b, "sea.event.cell-b-only", "b", 5)
        .await
        .unwrap();
    // cell-b's events cross the link into cell-a's own stream too (same subjects), so the
    // mirror follows cell-a's sequence, which it reaches once those copies are mirrored.
    let mirror = mirror_name("SEA_EVENTS", "cell-a");
    crosscheck::mirror_caught_up(&js_a, "SEA_EVENTS", &js_b, &mirror, Duration::from_secs(30))
        .await
        .expect("the mirror reaches cell-a's last sequence");
    let (a_last, _) = crosscheck::state(&js_a, "SEA_EVENTS").await.unwrap();
    let (m_last, _) = crosscheck::state(&js_b, &mirror).await.unwrap();
    assert_eq!(
        m_last, a_last,
        "the mirror copies cell-a's stream, not cell-b's events"
    );
}
