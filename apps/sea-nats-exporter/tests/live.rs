//! The exporter against real nats-server 2.15.1 deployments (ha, mesh, leaf) on free ports:
//! every family the answers can produce is exported with the names table's type and labels, and
//! nothing else; the binary serves it and stops on SIGTERM; a server that stops answering loses
//! its series. `SEA_RECORD_FIXTURES=1` also rewrites `tests/fixtures/` from these answers.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::deploy::{deploy, Deployed};
use common::{fixtures, names};
use sea_infra::model::Profile;
use sea_nats_exporter::collect::{self, Options};
use sea_nats_exporter::config::ExporterConfig;
use sea_nats_exporter::family::Snapshot;
use sea_nats_exporter::fetch::Fetcher;
use sea_nats_exporter::scrape::Scraper;

fn config(d: &Deployed) -> ExporterConfig {
    ExporterConfig {
        ephemeral_consumers: true,
        ..ExporterConfig::for_topology(d.cluster.topology())
    }
}

/// Fetches every server once, checks the collection against the table, records if asked.
async fn record_and_check(profile: Profile, d: &Deployed) {
    let answers = Fetcher::new(&config(d)).unwrap().scrape().await;
    let named: Vec<_> = d
        .monitors
        .iter()
        .map(|(n, _)| n.clone())
        .zip(answers)
        .collect();
    for (name, a) in &named {
        let failed: Vec<_> = a.answers.iter().filter(|(_, r)| r.is_err()).collect();
        assert!(failed.is_empty(), "{name}: {failed:?}");
    }
    let mut snapshot = Snapshot::default();
    for (_, a) in &named {
        snapshot.merge(
            collect::server(
                a,
                None,
                Options {
                    ephemeral_consumers: true,
                },
            )
            .0,
        );
    }
    let problems = names::problems(&names::table(), &snapshot, &named);
    assert!(
        problems.is_empty(),
        "{}:\n{}",
        profile.as_str(),
        problems.join("\n")
    );
    if fixtures::recording() {
        fixtures::record(profile.as_str(), &named);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_answers_match_the_table_and_a_lost_server_loses_its_series() {
    let d = deploy(Profile::Ha).await;
    record_and_check(Profile::Ha, &d).await;

    let scraper = Scraper::new(&config(&d)).unwrap();
    let before = scraper.scrape().await;
    let n2 = [("server_id", "nats-2")];
    assert_eq!(before.value("nats_exporter_up", &n2), Some(1.0));
    assert!(before.value("gnatsd_varz_connections", &n2).is_some());

    d.cluster.kill("nats-2");
    let after = scraper.scrape().await;
    assert_eq!(after.value("nats_exporter_up", &n2), Some(0.0));
    let frozen: Vec<&String> = after
        .families
        .iter()
        .filter(|(name, f)| {
            !name.starts_with("nats_exporter_")
                && f.samples
                    .iter()
                    .any(|(l, _)| l.iter().any(|(k, v)| k == "server_id" && v == "nats-2"))
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        frozen.is_empty(),
        "series of the dead server still exported: {frozen:?}"
    );
    assert_eq!(
        after.value("nats_exporter_up", &[("server_id", "nats-1")]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_answers_match_the_table() {
    let d = deploy(Profile::Mesh).await;
    record_and_check(Profile::Mesh, &d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_answers_match_the_table() {
    let d = deploy(Profile::Leaf).await;
    record_and_check(Profile::Leaf, &d).await;
}

/// The binary: exit 64 naming every bad variable without the password; then serving a live
/// server's metrics and `/healthz`, and exiting 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_stops_on_sigterm() {
    let bin = env!("CARGO_BIN_EXE_sea-nats-exporter");
    let bad = Command::new(bin)
        .env_clear()
        .env("NATS_MONITOR_URLS", "ftp://mon:hunter2@a:8222")
        .env("EXPORTER_TIMEOUT_MS", "5")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("NATS_MONITOR_URLS=") && stderr.contains("EXPORTER_TIMEOUT_MS="),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let server = sea_infra::testing::TestCluster::start(Profile::Single).await;
    let t = server.topology();
    let (_, first) = t.servers().next().unwrap();
    let port = sea_infra::deployment::ports::free_port();
    let mut child = Command::new(bin)
        .env_clear()
        .env("NATS_MONITOR_URLS", t.monitor_url(first))
        .env("EXPORTER_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let began = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "exporter never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("nats_exporter_up{server_id=\"nats-1\""),
        "{text}"
    );
    assert!(
        text.contains("# TYPE gnatsd_varz_connections gauge"),
        "{text}"
    );
    assert!(text.contains("jetstream_server_total_streams{"), "{text}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let began = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if began.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("no exit within 10s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}

/// Two URLs reaching one server (a misconfiguration) must not make Prometheus reject the scrape
/// for duplicate series: the server is exported once, plus an `up` per URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_listed_twice_is_exported_once() {
    let server = sea_infra::testing::TestCluster::start(Profile::Single).await;
    let t = server.topology();
    let (_, first) = t.servers().next().unwrap();
    let url = t.monitor_url(first);
    let twice = url.replace("127.0.0.1", "localhost");
    let cfg = ExporterConfig::for_servers([url, twice]).unwrap();
    let s = Scraper::new(&cfg).unwrap().scrape().await;
    let up = &s.families["nats_exporter_up"].samples;
    assert_eq!(up.len(), 2, "{up:?}");
    for (name, family) in &s.families {
        let mut seen = std::collections::HashSet::new();
        for (labels, _) in &family.samples {
            assert!(seen.insert(labels), "{name}: duplicate series {labels:?}");
        }
    }
    assert_eq!(s.families["gnatsd_varz_connections"].samples.len(), 1);
}
