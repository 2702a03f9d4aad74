//! The alert rules and dashboards against real faults: a `leaf` deployment (two cells of three
//! nats-server processes joined by leafnodes, provisioned, with a mirror in the second cell) on
//! free ports, the `sea-nats-exporter` binary and a real Prometheus started beside it the way
//! `cargo xtask up --observe` starts them (`Deployment::observe`), and a worker (the
//! `sea-mq-worker` library's `run`, in this process on a runtime of its own, serving its real
//! `/metrics`) scraped as job `sea-mq-worker`.
//!
//! Prometheus scrapes and evaluates every second and loads `infra/prometheus/alerts.yml` with
//! every rule's expression unchanged; only the `for:` durations are rewritten to
//! [`FOR`] (minutes would not fit a test). Under load the healthy deployment raises no alert,
//! pending or firing; then each fault is injected for real, the alerts it should raise are
//! awaited in `ALERTS` (`/api/v1/alerts`, state firing), the fault is undone, and every alert
//! must be gone again (pending ones included). Fired and resolved: NatsExporterDown,
//! NatsServerUnreachable, SeaWorkerNatsDisconnected, SeaWorkerNotReady, NatsRoutePeerLost,
//! NatsJetStreamNoMetaLeader, NatsJetStreamUnhealthy, NatsLeafnodeLinkDown, NatsStreamNoLeader,
//! NatsJetStreamStorageHigh, NatsJetStreamStorageCritical, SeaWorkerDown (12). A rule over the
//! last 10 minutes (`increase(..[10m])`) cannot resolve within a test: SeaWorkerDeadLettering
//! is checked firing, last. Not exercised here: rules comparing with `offset 10m`/`offset 15m`
//! (SeaEventsReachingDlq, NatsConsumerBacklogGrowing, NatsConsumerStalled: a Prometheus younger
//! than that has no value to compare with) or extrapolating 6 hours (the PredictedFull pair,
//! see [`KEEP_FOR`]), rules needing gateways (the `mesh` profile), and rules needing a
//! misbehaving server or client (NatsMonitoringEndpointFailing, slow consumers, a split meta
//! view, replica and mirror lag, redelivery storms, restarts). Their expressions are checked by
//! `promtool test rules` (`infra/prometheus/tests/`).
//!
//! Finally every query of every dashboard (`infra/grafana/*.json`) runs against this
//! Prometheus and must return data at some point of the test (the failing endpoints' panel
//! while the home cell is down, the sources' panels once a sourcing stream exists), but for the
//! one listed in [`EMPTY_HERE`] with the reason.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::dashboards::dashboards;
use common::deploy::{client_urls, provisioned};
use sea_infra::client::connect::NatsConfig;
use sea_infra::client::crosscheck;
use sea_infra::deployment::observe::{ObserveOptions, Observed};
use sea_infra::deployment::ports;
use sea_infra::env::EnvReader;
use sea_infra::model::{Profile, Spec, Topology};
use sea_infra::testing::{require, scratch_dir, Prerequisite, TestCluster};
use serde_json::Value;

/// What every `for:` of the rules becomes here.
const FOR: &str = "3s";
/// Bound on an alert firing after its fault, and on every alert resolving after the repair
/// (a restarted server catches up, the worker reconnects).
const FIRE_WITHIN: Duration = Duration::from_secs(60);
const RESOLVE_WITHIN: Duration = Duration::from_secs(90);

/// Every server's JetStream file store, small so that filling one is quick; the streams are
/// provisioned with [`STREAM_MAX_BYTES`] (each reserves that much on each replica's server), so
/// a full server stores over 90 % of its limit.
const SERVER_STORE: &str = "128MB";
const STREAM_MAX_BYTES: &str = "2MiB";
/// What the limit is raised to, to end the fault.
const RAISED_STORE: &str = "1GB";

/// Dashboard queries that have no data on this deployment, and why.
const EMPTY_HERE: [(&str, &str); 1] = [(
    "count by (server_id) (gnatsd_gatewayz_outbound_gateway_configured)",
    "gateways: only the mesh profile has them",
)];

/// Rules that extrapolate hours of history (`predict_linear(..[6h], ..)`): over a test's
/// minutes they extrapolate noise (or, with the small store here, rightly predict it full
/// within a day), so they keep their committed `for:` (1h) and may be pending, never firing.
const KEEP_FOR: [&str; 2] = [
    "NatsJetStreamStoragePredictedFull",
    "NatsJetStreamMemoryPredictedFull",
];

/// `alerts.yml` with every `for:` set to [`FOR`] but those of [`KEEP_FOR`], everything else as
/// committed.
fn test_rules(dir: &Path) -> PathBuf {
    let path = sea_infra::project_root().join("infra/prometheus/alerts.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut rewritten = 0;
    let mut alert = "";
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert: ") {
            alert = name;
        }
        if trimmed.starts_with("for: ") && !KEEP_FOR.contains(&alert) {
            rewritten += 1;
            let indent = line.len() - trimmed.len();
            lines.push(format!("{}for: {FOR}", " ".repeat(indent)));
        } else {
            lines.push(line.to_owned());
        }
    }
    assert!(rewritten >= 20, "only {rewritten} `for:` lines found");
    let path = dir.join("alerts-fast.yml");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Prometheus's HTTP API.
struct Prom {
    http: reqwest::Client,
    url: String,
}

impl Prom {
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let v: Value = r.json().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(v["status"], "success", "{path} {query:?}: {v}");
        v["data"].clone()
    }

    /// (alertname, state) of every active alert, pending or firing, but the pending ones of
    /// [`KEEP_FOR`].
    async fn alerts(&self) -> BTreeSet<(String, String)> {
        let data = self.get("/api/v1/alerts", &[]).await;
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap().to_owned(),
                    a["state"].as_str().unwrap().to_owned(),
                )
            })
            .filter(|(n, state)| !(state == "pending" && KEEP_FOR.contains(&n.as_str())))
            .collect()
    }

    async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.get("/api/v1/query", &[("query", expr)]).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until every one of `names` fires; panics with what is active otherwise.
    async fn until_firing(&self, fault: &str, names: &[&str]) {
        let began = Instant::now();
        loop {
            let active = self.alerts().await;
            let missing: Vec<&&str> = names
                .iter()
                .filter(|n| !active.contains(&(n.to_string(), "firing".to_owned())))
                .collect();
            if missing.is_empty() {
                eprintln!("{fault}: firing {names:?} after {:.1?}", began.elapsed());
                return;
            }
            assert!(
                began.elapsed() < FIRE_WITHIN,
                "{fault}: {missing:?} not firing within {FIRE_WITHIN:?}; active: {active:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until no alert is pending or firing but those in `except`; panics otherwise.
    async fn until_quiet(&self, after: &str, except: &[&str]) {
        let began = Instant::now();
        loop {
            let active: Vec<_> = self
                .alerts()
                .await
                .into_iter()
                .filter(|(n, _)| !except.contains(&n.as_str()))
                .collect();
            if active.is_empty() {
                eprintln!(
                    "{after}: every alert resolved after {:.1?}",
                    began.elapsed()
                );
                return;
            }
            assert!(
                began.elapsed() < RESOLVE_WITHIN,
                "{after}: still active after {RESOLVE_WITHIN:?}: {active:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Asserts that nothing is pending or firing, again and again for `window`.
    async fn stays_quiet(&self, window: Duration) {
        let began = Instant::now();
        while began.elapsed() < window {
            let active = self.alerts().await;
            assert!(
                active.is_empty(),
                "healthy deployment under load: {active:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The worker, run in this process on a runtime of its own: stopping it drops the runtime, as
/// a crash would (its sockets close, nothing is drained).
struct Worker {
    runtime: Option<tokio::runtime::Runtime>,
    addr: String,
    env: Vec<(String, String)>,
}

impl Worker {
    fn start(addr: String, env: Vec<(String, String)>) -> Worker {
        let mut w = Worker {
            runtime: None,
            addr,
            env,
        };
        w.restart();
        w
    }

    fn restart(&mut self) {
        let cfg =
            sea_mq_worker::config::WorkerConfig::from_env(EnvReader::from_pairs(self.env.clone()))
                .expect("worker configuration");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.spawn(async move {
            if let Err(e) = sea_mq_worker::run::run(cfg).await {
                eprintln!("worker stopped: {e:#}");
            }
        });
        self.runtime = Some(runtime);
    }

    fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Polls its `/readyz` until it answers 200.
    async fn ready(&self) {
        let http = reqwest::Client::new();
        let began = Instant::now();
        loop {
            let ok = http
                .get(format!("http://{}/readyz", self.addr))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "worker at {} not ready within 60 s",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Publishes valid events to the home cell until dropped, ignoring refusals during faults.
struct Load {
    running: Arc<AtomicBool>,
}

impl Load {
    fn start(js: jetstream::Context) -> Load {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        tokio::spawn(async move {
            let mut round = 0u64;
            while flag.load(Ordering::Relaxed) {
                let prefix = format!("load-{round}");
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    crosscheck::publish_acked(&js, "sea.event.load", &prefix, 5),
                )
                .await;
                round += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Load { running }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

/// Runs blocking deployment work (signals, config reloads) off the async threads.
async fn on(
    cluster: &TestCluster,
    what: &'static str,
    work: impl FnOnce(&sea_infra::deployment::Deployment) -> bool + Send + 'static,
) {
    let done = cluster.deployment().blocking(work).await;
    assert!(done, "{what} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_on_real_faults_and_resolve() {
    if !require(
        "alerts_fire_on_real_faults_and_resolve",
        Prerequisite::Prometheus,
    ) {
        return;
    }
    let prometheus = which::which("prometheus")
        .expect("Debian's prometheus package ships promtool and prometheus");
    let scratch = scratch_dir("alerts");

    let mut topology = Topology::for_profile(Profile::Leaf).remap_ports(ports::free_port);
    topology.settings.max_file_store = SERVER_STORE.to_owned();
    let cluster = TestCluster::with_topology(topology);
    cluster.up().await;
    let mut env = EnvReader::from_pairs([("STREAM_MAX_BYTES", STREAM_MAX_BYTES)]);
    let spec = Spec::from_env(&mut env);
    env.finish().expect("the spec's variables");
    let d = provisioned(cluster, &spec).await;
    let cluster = &d.cluster;
    let t = cluster.topology().clone();
    let name = |cell: usize, i: usize| t.clusters[cell].servers[i].name.clone();
    let home = t.clusters[0].name.clone();

    let worker_server = name(0, 2);
    let worker_addr = format!("127.0.0.1:{}", ports::free_port());
    let db = scratch.path().join("worker.db");
    let env: Vec<(String, String)> = [
        ("NATS_SERVERS", cluster.client_url(&worker_server)),
        ("DATABASE_URL", format!("sqlite://{}", db.display())),
        ("HTTP_ADDR", worker_addr.clone()),
        ("NATS_RECONNECT_DELAY_MS", "100".to_owned()),
        ("NATS_RECONNECT_DELAY_MAX_MS", "500".to_owned()),
        ("NATS_RECONNECT_MAX", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut worker = Worker::start(worker_addr.clone(), env);
    worker.ready().await;

    let opts = ObserveOptions {
        rules: test_rules(scratch.path()),
        interval: Duration::from_secs(1),
        workers: vec![worker_addr.clone()],
        default_ports: false,
        timeout: Duration::from_secs(60),
        die_with_parent: true,
        ..ObserveOptions::new(
            PathBuf::from(env!("CARGO_BIN_EXE_sea-nats-exporter")),
            prometheus,
        )
    };
    let observed: Observed = cluster
        .deployment()
        .observe(&opts)
        .await
        .unwrap_or_else(|e| panic!("observe: {e}"));
    let prom = Prom {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        url: observed.prometheus.url.clone(),
    };
    let rules = prom.get("/api/v1/rules", &[]).await;
    let loaded: usize = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert!(loaded >= 30, "Prometheus loaded {loaded} rules");

    let home_js = jetstream::new(
        crosscheck::connect(&NatsConfig::default(), &client_urls(cluster, &home))
            .await
            .unwrap(),
    );
    let _load = Load::start(home_js.clone());
    // Both targets scraped, then a healthy deployment under load raises nothing.
    let began = Instant::now();
    while prom.query("up == 1").await.len() < 2 {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "targets not up: {:?}",
            prom.query("up").await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    prom.until_quiet("start-up", &[]).await;
    prom.stays_quiet(Duration::from_secs(10)).await;

    // 1. The exporter hangs (SIGSTOP): its scrapes time out.
    let exporter = nix::unistd::Pid::from_raw(observed.exporter.pid);
    nix::sys::signal::kill(exporter, nix::sys::signal::Signal::SIGSTOP).unwrap();
    prom.until_firing("exporter hung", &["NatsExporterDown"])
        .await;
    nix::sys::signal::kill(exporter, nix::sys::signal::Signal::SIGCONT).unwrap();
    prom.until_quiet("exporter resumed", &[]).await;

    // 2. The home cell goes down (every server killed; a client reconnects to any server the
    //    cluster advertised, so only losing them all disconnects the worker): the servers are
    //    unreachable, the worker disconnected and without its consumer.
    let home_servers: Vec<String> = (0..3).map(|i| name(0, i)).collect();
    for s in &home_servers {
        cluster.kill(s);
    }
    prom.until_firing(
        "home cell down",
        &[
            "NatsServerUnreachable",
            "SeaWorkerNatsDisconnected",
            "SeaWorkerNotReady",
        ],
    )
    .await;
    // The failing monitoring endpoints' panel has data now.
    let mut seen = BTreeSet::new();
    dashboard_data(&prom, &mut seen).await;
    for s in &home_servers {
        cluster.start_server(s);
    }
    prom.until_quiet("home cell restarted", &[]).await;

    // 3. A route cut: one server of the home cell partitioned from its peers (it keeps running
    //    and answering the exporter), so it has no routes and no meta leader.
    let cut = name(0, 0);
    let c = cut.clone();
    on(cluster, "partition", move |dep| {
        dep.partition_server(&c).unwrap()
    })
    .await;
    prom.until_firing(
        "route cut",
        &[
            "NatsRoutePeerLost",
            "NatsJetStreamNoMetaLeader",
            "NatsJetStreamUnhealthy",
        ],
    )
    .await;
    let c = cut.clone();
    on(cluster, "heal", move |dep| dep.heal_server(&c).unwrap()).await;
    prom.until_quiet("route healed", &[]).await;

    // 4. The leafnode links between the cells are cut.
    on(cluster, "cut leaf links", |dep| {
        !dep.set_leaf_links(false).unwrap().is_empty()
    })
    .await;
    prom.until_firing("leafnode links cut", &["NatsLeafnodeLinkDown"])
        .await;
    on(cluster, "restore leaf links", |dep| {
        !dep.set_leaf_links(true).unwrap().is_empty()
    })
    .await;
    prom.until_quiet("leafnode links restored", &[]).await;

    // 5. Two of the other cell's three servers killed: its streams lose their leaders (quorum).
    let (b1, b2) = (name(1, 0), name(1, 1));
    cluster.kill(&b1);
    cluster.kill(&b2);
    prom.until_firing("quorum lost", &["NatsStreamNoLeader"])
        .await;
    cluster.start_server(&b1);
    cluster.start_server(&b2);
    prom.until_quiet("quorum back", &[]).await;

    // 6. A server reaches its max_file_store: a one-replica stream fills it until JetStream
    //    refuses; raising the limit (config reload) resolves it.
    let fill = fill_a_server(&home_js).await;
    prom.until_firing(
        "storage limit reached",
        &["NatsJetStreamStorageHigh", "NatsJetStreamStorageCritical"],
    )
    .await;
    on(cluster, "raise max_file_store", |dep| {
        dep.set_max_file_store(RAISED_STORE).unwrap()
    })
    .await;
    prom.until_quiet("store limit raised", &[]).await;
    home_js
        .delete_stream(&fill)
        .await
        .expect("delete the fill stream");

    // 7. The worker crashes, and comes back.
    worker.stop();
    prom.until_firing("worker down", &["SeaWorkerDown"]).await;
    wait_port_free(&worker_addr).await;
    worker.restart();
    worker.ready().await;
    prom.until_quiet("worker restarted", &[]).await;

    // 8. A poison event: the worker dead-letters it into SEA_DLQ. The rule looks at the last 10
    //    minutes, so it stays firing for the rest of the test. (SeaEventsReachingDlq compares
    //    SEA_DLQ's last sequence with its value `offset 10m`, which a Prometheus younger than 10
    //    minutes does not have: it cannot fire here.)
    let dlq_rules = ["SeaWorkerDeadLettering"];
    home_js
        .publish("sea.event.poison", "not json".into())
        .await
        .unwrap()
        .await
        .expect("poison event stored");
    prom.until_firing("poison event", &dlq_rules).await;

    // A stream sourcing SEA_EVENTS (the spec only mirrors), so the sources' panels have a series.
    home_js
        .create_stream(jetstream::stream::Config {
            name: "SEA_ALERTS_SOURCED".to_owned(),
            sources: Some(vec![jetstream::stream::Source {
                name: "SEA_EVENTS".to_owned(),
                ..Default::default()
            }]),
            max_messages: 1000,
            ..Default::default()
        })
        .await
        .expect("create the sourcing stream");
    let began = Instant::now();
    while prom.query("jetstream_stream_source_lag").await.is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the sourcing stream's series never appeared"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every dashboard query has data (the DLQ's panels included, while it holds an event).
    dashboard_data(&prom, &mut seen).await;
    let mut empty = Vec::new();
    let (mut total, mut expected_empty) = (0, 0);
    for (file, exprs) in dashboards() {
        for (title, expr) in exprs {
            total += 1;
            if seen.contains(&expr) {
                continue;
            }
            match EMPTY_HERE.iter().find(|(e, _)| expr.contains(e)) {
                Some((_, why)) => {
                    expected_empty += 1;
                    eprintln!("no data, as expected ({why}): {file} / {title}");
                }
                None => empty.push(format!("{file} / {title}: {expr}")),
            }
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
    eprintln!(
        "{total} dashboard queries run: {} with data, {expected_empty} empty as documented",
        total - expected_empty
    );
    prom.until_quiet("the end", &dlq_rules).await;
}

/// Adds to `seen` every dashboard query that returns data now (some only have data during a
/// fault, such as the failing monitoring endpoints).
async fn dashboard_data(prom: &Prom, seen: &mut BTreeSet<String>) {
    for (_, exprs) in dashboards() {
        for (_, expr) in exprs {
            if !seen.contains(&expr) && !prom.query(&expr).await.is_empty() {
                seen.insert(expr);
            }
        }
    }
}

/// A stream of one replica on some server of the home cell, filled with 256 KiB events until
/// JetStream refuses one (the server's store is full). Returns its name.
async fn fill_a_server(js: &jetstream::Context) -> String {
    let name = "SEA_ALERTS_FILL".to_owned();
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec!["sea.alerts-fill.>".to_owned()],
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .expect("create the fill stream");
    let payload = bytes::Bytes::from(vec![b'x'; 256 << 10]);
    for i in 0..1000 {
        let refused = match js
            .publish(format!("sea.alerts-fill.{i}"), payload.clone())
            .await
        {
            Ok(ack) => ack.await.is_err(),
            Err(_) => true,
        };
        if refused {
            eprintln!("the fill stream was refused after {} MiB", i / 4);
            return name;
        }
    }
    panic!("the fill stream was never refused: max_file_store not in force?");
}

/// Polls until nothing listens on `addr` any more (the stopped worker's listener is closed).
async fn wait_port_free(addr: &str) {
    let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let began = Instant::now();
    while !ports::is_free("127.0.0.1", port) {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{addr} still held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
