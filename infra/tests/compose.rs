//! The compose backend for real: the committed compose files validate with the Compose tool on
//! this machine, and a private copy of the `ha` one runs as containers that survive losing a
//! server. Skipped without a Docker engine unless SEA_REQUIRE_DOCKER=1 (CI sets it).

use std::time::Duration;

use async_nats::jetstream;
use sea_infra::client::connect::NatsConfig;
use sea_infra::client::{crosscheck, observe, provision};
use sea_infra::deployment::Compose;
use sea_infra::model::{Profile, Spec};
use sea_infra::testing::{publish_until_acked, require, Prerequisite, TestCluster};

const SUBJECT: &str = "sea.event.compose";

#[test]
fn committed_compose_files_validate() {
    if !require("committed_compose_files_validate", Prerequisite::Docker) {
        return;
    }
    let secrets = sea_infra::testing::scratch_dir("compose-secrets");
    for profile in [Profile::Ha, Profile::Mesh, Profile::Leaf] {
        for secure in [false, true] {
            let compose = Compose::committed(profile, secure)
                .expect("compose tool")
                .with_secrets_dir(secrets.path().to_path_buf());
            compose
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}", compose.file));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_in_containers_survives_losing_the_stream_leader() {
    if !require(
        "ha_in_containers_survives_losing_the_stream_leader",
        Prerequisite::Docker,
    ) {
        return;
    }
    let cluster = TestCluster::compose(Profile::Ha);
    let dep = cluster.deployment();
    let report = cluster.up().await;
    assert_eq!(report.started.len(), 3, "three containers started");
    assert!(report.health.is_healthy());

    let servers = dep.topology.client_urls(&dep.topology.clusters[0]);
    let plan = provision::provision_servers(&NatsConfig::default(), &servers, &mut Spec::builtin())
        .await
        .expect("provision");
    assert!(!plan.is_unchanged(), "a fresh cluster gets the streams");
    let client = crosscheck::connect(&NatsConfig::default(), &servers)
        .await
        .expect("connect");
    let js = jetstream::new(client);
    publish_until_acked(&js, SUBJECT, "before", 10).await;

    let (leader, _) = cluster.kill_stream_leader(&js, "SEA_EVENTS").await;
    assert!(dep.pid(&leader).is_none(), "{leader} is down");
    publish_until_acked(&js, SUBJECT, "after", 10).await;

    let messages = observe::read_stream(&js, "SEA_EVENTS", SUBJECT, Duration::from_secs(10))
        .await
        .expect("read back");
    let counts = observe::msg_id_counts(&messages);
    assert_eq!(
        counts.len(),
        20,
        "every acked event is in the stream: {counts:?}"
    );
    assert!(counts.values().all(|c| *c == 1), "none doubled: {counts:?}");

    cluster.start_server(&leader);
    let all = dep.server_names().into_iter().collect();
    dep.wait_healthy(&all, &[], Duration::from_secs(60), &|_| {})
        .await
        .expect("health gate after the restart");
}

/// The `INFO` line a server sends on `port` to a client or peer connecting from inside the
/// compose network (through `from`'s container), as JSON.
fn info_inside(cluster: &TestCluster, from: &str, to: &str, port: u16) -> serde_json::Value {
    let container = cluster.deployment().compose().unwrap().container(from);
    let port = port.to_string();
    let out =
        sea_infra::deployment::docker::docker(&["exec", &container, "nc", "-w", "1", to, &port])
            .unwrap_or_else(|e| e.to_string());
    let line = out
        .lines()
        .find(|l| l.starts_with("INFO "))
        .unwrap_or_else(|| panic!("no INFO from {to}:{port}: {out}"));
    serde_json::from_str(&line["INFO ".len()..]).unwrap()
}

/// What host clients are told (`connect_urls`): every entry reachable from the host.
async fn host_view(cluster: &TestCluster) -> Vec<String> {
    let mut told = Vec::new();
    for url in cluster.server_urls() {
        let client = crosscheck::connect(&NatsConfig::default(), std::slice::from_ref(&url))
            .await
            .expect("connect");
        told.extend(client.server_info().connect_urls.clone());
    }
    for addr in &told {
        assert!(
            std::net::TcpStream::connect(addr.as_str()).is_ok(),
            "a host client is told {addr}, which it cannot reach"
        );
    }
    told.sort();
    told
}

/// Servers in containers advertise the names peers dial (the service name), never a container
/// address that changes when it is re-created; clients are told nothing they cannot reach, from
/// the host or from inside the network, before and after a server's container is re-created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_advertise_stable_names_and_nothing_unreachable() {
    if !require(
        "containers_advertise_stable_names_and_nothing_unreachable",
        Prerequisite::Docker,
    ) {
        return;
    }
    let cluster = TestCluster::compose(Profile::Ha);
    cluster.up().await;
    let ports = sea_infra::model::CONTAINER_PORTS;
    let check = |cluster: &TestCluster| {
        let route = info_inside(cluster, "nats-1", "nats-2", ports.route);
        assert_eq!(route["ip"], "nats-route://nats-2:6222/", "{route}");
        let client = info_inside(cluster, "nats-1", "nats-2", ports.client);
        assert!(
            client["connect_urls"].as_array().is_none_or(Vec::is_empty),
            "a client inside the network is told container addresses: {client}"
        );
    };
    check(&cluster);
    let before = host_view(&cluster).await;

    let container = cluster.deployment().compose().unwrap().container("nats-2");
    sea_infra::deployment::docker::docker(&["rm", "--force", &container]).unwrap();
    let again = cluster.up().await;
    assert_eq!(again.started, ["nats-2"], "the container was re-created");
    check(&cluster);
    assert_eq!(
        host_view(&cluster).await,
        before,
        "what clients are told did not change"
    );
}
