//! The seed's end-to-end federation test, against a mesh someone else started:
//!
//! ```sh
//! cargo xtask mesh-up --provision
//! E2E_NATS_A_URL=nats://localhost:4422 E2E_NATS_B_URL=nats://localhost:5422 \
//!     cargo test -p sea-mq-worker e2e_federation_pubsub_across_clusters
//! ```
//!
//! Unset, it says it skipped and why; the project's own suite runs the same checks
//! (`sea_infra::crosscheck::mesh_checks`) on a mesh it starts itself (`infra/tests/federation.rs`).

/// A client URL (or comma-separated list) of the first cluster, `sea-a`.
pub const ENV_E2E_NATS_A_URL: &str = "E2E_NATS_A_URL";
/// A client URL (or comma-separated list) of the second cluster, `sea-b`.
pub const ENV_E2E_NATS_B_URL: &str = "E2E_NATS_B_URL";

fn urls(var: &str) -> Option<Vec<String>> {
    let value = std::env::var(var).ok()?;
    sea_infra::env::parse_servers(&value).ok()
}

#[tokio::test]
async fn e2e_federation_pubsub_across_clusters() {
    let (Some(a), Some(b)) = (urls(ENV_E2E_NATS_A_URL), urls(ENV_E2E_NATS_B_URL)) else {
        eprintln!(
            "SKIPPED e2e_federation_pubsub_across_clusters: set {ENV_E2E_NATS_A_URL} and \
             {ENV_E2E_NATS_B_URL} to a running, provisioned mesh (cargo xtask mesh-up --provision: \
             nats://localhost:4422 and nats://localhost:5422); the suite's own mesh test covers CI"
        );
        return;
    };
    let report = sea_infra::crosscheck::mesh_checks(&a, &b)
        .await
        .unwrap_or_else(|e| panic!("federation check failed: {e}"));
    eprintln!("{report:?}");
}
