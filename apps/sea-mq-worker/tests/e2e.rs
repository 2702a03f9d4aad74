//! The seed's end-to-end federation test. Against a mesh someone else started:
//!
//! ```sh
//! cargo xtask mesh-up --provision
//! E2E_NATS_A_URL=nats://localhost:4422 E2E_NATS_B_URL=nats://localhost:5422 \
//!     cargo test -p sea-mq-worker e2e_federation_pubsub_across_clusters
//! ```
//!
//! It provisions what it needs first (idempotent: a provisioned mesh is left as it is), so the
//! seed's sequence also works right after `docker compose ... --profile nats-mesh up -d`.
//! Without those variables it starts a mesh of its own on free ports, so the suite always runs
//! it for real.

use sea_infra::client::connect::NatsConfig;
use sea_infra::client::{crosscheck, federation};
use sea_infra::model::{Profile, Spec, Topology};
use sea_infra::testing::TestCluster;
use sea_mq_worker::provision::{self, ProvisionConfig};

/// A client URL (or comma-separated list) of the first cluster, `sea-a`.
pub const ENV_E2E_NATS_A_URL: &str = "E2E_NATS_A_URL";
/// A client URL (or comma-separated list) of the second cluster, `sea-b`.
pub const ENV_E2E_NATS_B_URL: &str = "E2E_NATS_B_URL";

fn urls(var: &str) -> Option<Vec<String>> {
    let value = std::env::var(var).ok()?;
    Some(sea_infra::env::parse_servers(&value).unwrap_or_else(|e| panic!("{var}={value:?}: {e}")))
}

#[tokio::test]
async fn e2e_federation_pubsub_across_clusters() {
    let given = (urls(ENV_E2E_NATS_A_URL), urls(ENV_E2E_NATS_B_URL));
    let own;
    let (a, b) = match given {
        (Some(a), Some(b)) => (a, b),
        (None, None) => {
            eprintln!(
                "{ENV_E2E_NATS_A_URL} and {ENV_E2E_NATS_B_URL} unset: starting a mesh of its own"
            );
            own = TestCluster::start(Profile::Mesh).await;
            let t = own.topology();
            (t.client_urls(&t.clusters[0]), t.client_urls(&t.clusters[1]))
        }
        _ => panic!("set both {ENV_E2E_NATS_A_URL} and {ENV_E2E_NATS_B_URL}, or neither"),
    };
    // The mesh's spec (SEA_EVENTS placed in sea-a, its mirror in sea-b) on the servers given.
    let mesh = Topology::for_profile(Profile::Mesh);
    let domain = &federation::domains(&mesh)[0];
    let spec = federation::spec_for(&Spec::builtin(), &mesh, domain);
    let servers: Vec<String> = a.iter().chain(&b).cloned().collect();
    // Right after `up -d` the mesh may still be electing its meta leader: provisioned as the
    // compose files' one-shot provisioner does it, trying again while the cluster gets there.
    let cfg = ProvisionConfig {
        nats: NatsConfig::default(),
        groups: vec![federation::DomainSpec {
            label: "mesh".to_owned(),
            servers: servers.clone(),
            spec,
        }],
        explicit_replicas: false,
    };
    provision::run(cfg, &|line| eprintln!("{line}"))
        .await
        .unwrap_or_else(|e| panic!("provision the mesh at {}: {e:#}", servers.join(",")));
    let report = crosscheck::mesh_checks(&NatsConfig::default(), &a, &b)
        .await
        .unwrap_or_else(|e| panic!("federation check failed: {e}"));
    eprintln!("{report:?}");
}
