//! Secured deployments for real: TLS on every listener, accounts with least-privilege users (or
//! a token), checked against live nats-server processes. What each user may do is judged by
//! the server's own answers (permission violations), never by reading the config.

use std::time::Duration;

use async_nats::jetstream;
use sea_infra::model::{Profile, Role, Security};
use sea_infra::testing::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_cluster_comes_up_and_its_roles_connect_with_tls() {
    let cluster = TestCluster::secured(Profile::Ha, Security::Accounts);
    cluster.up().await;
    for url in cluster.server_urls() {
        assert!(url.starts_with("tls://"), "{url}");
    }
    let ops = cluster.connect_as(Role::Ops).await;
    let js = jetstream::new(ops.clone());
    let info = tokio::time::timeout(Duration::from_secs(10), js.query_account())
        .await
        .expect("account info within 10 s")
        .expect("JetStream is enabled in the application account");
    assert_eq!(info.streams, 0);
}
