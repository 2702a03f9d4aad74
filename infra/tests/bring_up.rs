//! Bring-up, health gate, partial restarts and teardown against real nats-server processes on
//! free ports (never the fixed ones).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use futures::StreamExt;
use sea_infra::deployment::{Deployment, UpError, UpOptions, UpReport};
use sea_infra::model::{Profile, Topology};
use sea_infra::probes::{health, CheckName, Monitor};
use sea_infra::testing::{nats_server, scratch_dir, TestCluster};

fn no_progress(_: &str) {}

async fn up(deployment: &Deployment, opts: &UpOptions) -> Result<UpReport, UpError> {
    up_with(deployment, &nats_server().path, opts).await
}

async fn up_with(
    deployment: &Deployment,
    bin: &std::path::Path,
    opts: &UpOptions,
) -> Result<UpReport, UpError> {
    deployment
        .up(bin, opts, &no_progress, std::future::pending())
        .await
}

fn only(servers: &[&str]) -> UpOptions {
    UpOptions {
        servers: Some(servers.iter().map(|s| s.to_string()).collect()),
        ..UpOptions::default()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Publishes on one server until a subscriber on another receives it (interest crosses the
/// route asynchronously, so the first publishes may find no subscriber yet).
async fn message_crosses(from: &str, to: &str) {
    let sub_client = async_nats::connect(to).await.expect("connect subscriber");
    let mut sub = sub_client.subscribe("sea.test.cross").await.unwrap();
    sub_client.flush().await.unwrap();
    let pub_client = async_nats::connect(from).await.expect("connect publisher");
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            pub_client
                .publish("sea.test.cross", "hello".into())
                .await
                .unwrap();
            pub_client.flush().await.unwrap();
            if let Ok(Some(msg)) =
                tokio::time::timeout(Duration::from_millis(200), sub.next()).await
            {
                return msg;
            }
        }
    })
    .await
    .expect("a message published on one server reaches a subscriber on another");
    assert_eq!(&received.payload[..], b"hello");
}

/// A dead process has no /proc entry, or an empty cmdline while it is an unreaped zombie.
fn assert_process_gone(pid: i32) {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(cmdline.is_empty(), "pid {pid} still alive after down");
}

#[tokio::test]
async fn single_comes_up_is_idempotent_and_goes_down() {
    let cluster = TestCluster::new(Profile::Single);
    let first = cluster.up().await;
    assert_eq!(first.started, ["nats-1"]);
    assert!(
        first.health.servers[0].is_meta_leader,
        "a lone JetStream server is its own authority"
    );

    let second = cluster.up().await;
    assert!(
        second.started.is_empty(),
        "up on a healthy cluster starts nothing"
    );
    assert_eq!(second.already_running, ["nats-1"]);

    let pid = cluster.deployment().pid("nats-1").expect("running");
    let report = cluster
        .deployment()
        .down(None, true, Duration::from_secs(10))
        .unwrap();
    assert_eq!(report.stopped, ["nats-1"]);
    assert_process_gone(pid);
    assert!(
        !cluster.deployment().state.dir.exists(),
        "purge removes the state directory"
    );
}

#[tokio::test]
async fn ha_survives_server_loss_and_restarts_only_what_is_missing() {
    let cluster = TestCluster::start(Profile::Ha).await;
    let d = cluster.deployment();
    let monitor = Monitor::default();

    // The gate passed: meta leader, cluster size 3, full route mesh.
    let report = health::check(&monitor, &d.topology, None).await;
    assert!(report.is_healthy(), "{:?}", report.failures());
    assert_eq!(
        report.servers.iter().filter(|n| n.is_meta_leader).count(),
        1
    );
    message_crosses(&cluster.client_url("nats-1"), &cluster.client_url("nats-3")).await;

    // Idempotent.
    assert!(cluster.up().await.started.is_empty());

    // SIGKILL nats-2: the gate fails and names it.
    assert!(d.kill_server("nats-2").unwrap());
    let report = health::check(&monitor, &d.topology, None).await;
    assert!(!report.is_healthy());
    let (server, check) = report.first_failure().unwrap();
    assert_eq!(
        (server.name.as_str(), check.name),
        ("nats-2", CheckName::Healthz)
    );
    // The peers notice the broken route a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let failures = health::check(&monitor, &d.topology, None).await.failures();
        if failures
            .iter()
            .any(|f| f.starts_with("nats-1: routes: no route to nats-2"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nats-1 never missed its route: {failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // `up` restarts only nats-2, and the gate passes again.
    let pids_before = (d.pid("nats-1"), d.pid("nats-3"));
    let again = cluster.up().await;
    assert_eq!(again.started, ["nats-2"]);
    assert_eq!((d.pid("nats-1"), d.pid("nats-3")), pids_before);
    assert!(again.health.is_healthy());

    // With nats-1 dead, nats-2 and nats-3 restart and still form a cluster through their
    // explicit routes to each other.
    assert!(d.kill_server("nats-1").unwrap());
    for name in ["nats-2", "nats-3"] {
        assert!(d
            .stop_server(
                name,
                nix::sys::signal::Signal::SIGTERM,
                Duration::from_secs(10)
            )
            .unwrap());
    }
    let partial = up(d, &only(&["nats-2", "nats-3"]))
        .await
        .expect("two of three form a quorum");
    assert_eq!(partial.started, ["nats-2", "nats-3"]);
    let report = health::check(&monitor, &d.topology, Some(&set(&["nats-2", "nats-3"]))).await;
    assert!(report.is_healthy(), "{:?}", report.failures());
    let leader = report.servers[0].meta_leader.clone().unwrap();
    assert!(
        leader == "nats-2" || leader == "nats-3",
        "meta leader {leader}"
    );
    assert_eq!(report.servers[0].routes, ["nats-3"]);
    message_crosses(&cluster.client_url("nats-2"), &cluster.client_url("nats-3")).await;

    // down stops every process it started.
    let pids: Vec<i32> = ["nats-2", "nats-3"]
        .iter()
        .filter_map(|n| d.pid(n))
        .collect();
    assert_eq!(pids.len(), 2);
    let report = d.down(None, false, Duration::from_secs(10)).unwrap();
    assert_eq!(report.stopped, ["nats-2", "nats-3"]);
    assert!(d.running_servers().is_empty());
    for pid in pids {
        assert_process_gone(pid);
    }
}

#[tokio::test]
async fn busy_port_is_named_and_nothing_starts() {
    let cluster = TestCluster::new(Profile::Ha);
    let d = cluster.deployment();
    let (_, nats_2) = d.topology.server("nats-2").unwrap();
    let _squatter = TcpListener::bind(("127.0.0.1", nats_2.monitor_port)).unwrap();

    let err = up(d, &UpOptions::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, UpError::PortBusy { .. }), "{text}");
    assert!(
        text.starts_with(&format!(
            "port {} (monitor port of nats-2) is already in use by ",
            nats_2.monitor_port
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("(pid {})", std::process::id())),
        "names the holder: {text}"
    );
    // The holder is not one of this project's servers: `down` would not free the port.
    assert!(
        text.contains("it is not a server this project started") && !text.contains("stop it with"),
        "{text}"
    );
    assert!(d.running_servers().is_empty(), "nothing was started");
}

#[tokio::test]
async fn unwritable_state_dir_is_reported_with_the_fix() {
    let parent = scratch_dir("unwritable");
    let file = parent.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let topology =
        Topology::for_profile(Profile::Single).remap_ports(sea_infra::deployment::ports::free_port);
    let d = Deployment::processes(topology, file.join("state"));
    let text = up(&d, &UpOptions::default()).await.unwrap_err().to_string();
    assert!(
        text.contains("is not writable") && text.contains("set SEA_STATE_DIR"),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_that_exits_is_reported_with_its_log() {
    let cluster = TestCluster::new(Profile::Single);
    // A "server" that prints something and exits at once.
    let fake = cluster.dir().join("fake-nats-server");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'fatal: pretend config error'\nexit 1\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let err = up_with(cluster.deployment(), &fake, &UpOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, UpError::Exited(_)), "{text}");
    assert!(
        text.contains("nats-1 exited during start-up")
            && text.contains("fatal: pretend config error"),
        "{text}"
    );
}

#[tokio::test]
async fn gate_timeout_names_server_and_check_and_stops_what_it_started() {
    let cluster = TestCluster::new(Profile::Ha);
    let d = cluster.deployment();
    // One server of three never gets a meta leader: no quorum.
    let opts = UpOptions {
        timeout: Duration::from_secs(3),
        ..only(&["nats-1"])
    };
    let err = up(d, &opts).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, UpError::Unhealthy { .. }), "{text}");
    assert!(text.starts_with("health gate failed after"), "{text}");
    assert!(text.contains(": nats-1: "), "names the server: {text}");
    assert!(text.contains("last lines of"), "shows the log: {text}");
    assert!(
        d.running_servers().is_empty(),
        "the server this run started was stopped again"
    );
}

#[tokio::test]
async fn unknown_server_is_refused_before_anything_starts() {
    let cluster = TestCluster::new(Profile::Ha);
    let text = up(cluster.deployment(), &only(&["nats-9"]))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "no server named `nats-9` in this topology; `cargo xtask status` lists the servers"
    );
    assert!(cluster.deployment().running_servers().is_empty());
}

/// `down` finds the servers by the config they run, whatever happened to their pid files or
/// the state directory, and says so when one cannot be stopped.
#[tokio::test]
async fn down_stops_servers_whose_pid_files_or_state_directory_are_gone() {
    let cluster = TestCluster::start(Profile::Ha).await;
    let d = cluster.deployment();
    let pids: Vec<i32> = d.server_names().iter().filter_map(|n| d.pid(n)).collect();
    assert_eq!(pids.len(), 3);
    // A corrupted pid file, a deleted one, and a stale one naming a process that is not a server.
    std::fs::write(d.state.dir.join("pids/nats-1.pid"), "garbage\n").unwrap();
    std::fs::remove_file(d.state.dir.join("pids/nats-2.pid")).unwrap();
    std::fs::write(
        d.state.dir.join("pids/nats-3.pid"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    assert_eq!(d.running_servers().len(), 3, "found by their configs");
    let report = d.down(None, false, Duration::from_secs(10)).unwrap();
    assert_eq!(report.stopped, ["nats-1", "nats-2", "nats-3"]);
    assert!(
        report.still_running.is_empty(),
        "{:?}",
        report.still_running
    );
    for pid in pids {
        assert_process_gone(pid);
    }

    // The whole state directory deleted under running servers.
    cluster.up().await;
    let pids: Vec<i32> = d.server_names().iter().filter_map(|n| d.pid(n)).collect();
    std::fs::remove_dir_all(&d.state.dir).unwrap();
    assert_eq!(d.running_servers().len(), 3, "found by their config paths");
    let report = d.down(None, true, Duration::from_secs(10)).unwrap();
    assert_eq!(report.stopped.len(), 3, "{report:?}");
    for pid in pids {
        assert_process_gone(pid);
    }
}

/// The peers each server has a route to, from its own `/routez`.
async fn route_peers(monitor: &Monitor, d: &Deployment, name: &str) -> BTreeSet<String> {
    let server = d.server(name).unwrap();
    match monitor.routez(&d.topology.monitor_url(server)).await {
        Ok(r) => r.peer_names().into_iter().collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Polls until every server has exactly the route peers `want` gives it.
async fn wait_routes(monitor: &Monitor, d: &Deployment, want: &[(&str, &[&str])]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut seen = Vec::new();
        for (name, peers) in want {
            let got = route_peers(monitor, d, name).await;
            seen.push((name.to_string(), got.clone(), set(peers)));
        }
        if seen.iter().all(|(_, got, want)| got == want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "routes never became what was asked: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A partition on processes is a real cut of the routes (configs rendered again and reloaded),
/// not a frozen process: the cut-off server keeps running and answering its clients, it has no
/// route and nobody has one to it; a server started while cut off stays cut off; healing brings
/// every route back.
#[tokio::test]
async fn a_partition_cuts_the_routes_and_healing_restores_them() {
    let cluster = TestCluster::start(Profile::Ha).await;
    let d = cluster.deployment();
    let monitor = Monitor::default();
    let all: &[(&str, &[&str])] = &[
        ("nats-1", &["nats-2", "nats-3"]),
        ("nats-2", &["nats-1", "nats-3"]),
        ("nats-3", &["nats-1", "nats-2"]),
    ];
    let cut: &[(&str, &[&str])] = &[
        ("nats-1", &["nats-3"]),
        ("nats-2", &[]),
        ("nats-3", &["nats-1"]),
    ];
    let pid = d.pid("nats-2");
    assert!(
        d.partition_server("nats-2").unwrap(),
        "every server reloaded"
    );
    wait_routes(&monitor, d, cut).await;
    assert_eq!(d.pid("nats-2"), pid, "the cut-off server keeps running");
    let healthz = monitor
        .healthz(&d.topology.monitor_url(d.server("nats-2").unwrap()))
        .await;
    assert!(healthz.is_ok(), "it still answers: {healthz:?}");

    // Restarted while cut off, it comes back cut off.
    assert!(d.kill_server("nats-2").unwrap());
    d.start_server(&nats_server().path, "nats-2").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_routes(&monitor, d, cut).await;

    assert!(d.heal_server("nats-2").unwrap());
    wait_routes(&monitor, d, all).await;
    message_crosses(&cluster.client_url("nats-2"), &cluster.client_url("nats-3")).await;
}
