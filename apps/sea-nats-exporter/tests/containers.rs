//! The compose files' `observe` profile, for real: a private `ha` rendering on free host ports
//! brought up with `--profile nats-ha --profile worker --profile observe` as an operator runs it
//! (the servers, the one-shot `sea-provision`, the worker, `sea-nats-exporter` and Prometheus),
//! each image built FROM scratch as `cargo xtask image --worker --exporter --prometheus` builds
//! them: this build's exporter, the worker binary next to it in the target directory (built
//! by `cargo test` of the workspace or with `-p sea-mq-worker`), Debian's `prometheus`.
//! Prometheus must report every target of its rendered configuration `up`, one
//! `nats_exporter_up` series per server, and the alert rules loaded. Everything is removed on
//! drop. Skipped without a Docker engine (or without Debian's prometheus) unless
//! SEA_REQUIRE_DOCKER=1 (or SEA_REQUIRE_PROMETHEUS=1).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sea_infra::client::observe::time_until;
use sea_infra::model::Profile;
use sea_infra::render::prometheus::{EXPORTER_JOB, WORKER_JOB};
use sea_infra::testing::{require, Prerequisite, TestCluster, TestImage};
use serde_json::Value;

/// The worker binary cargo built beside this test (`target/<profile>/sea-mq-worker`).
fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = dir.join("sea-mq-worker");
    assert!(
        bin.is_file(),
        "{} is missing: run this test with `-p sea-mq-worker` too (or the workspace suite), which builds it",
        bin.display()
    );
    bin
}

/// `GET base + path` as JSON, `None` while it does not answer 200 with JSON.
async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    let answer = client.get(url).send().await.ok()?;
    if !answer.status().is_success() {
        return None;
    }
    answer.json().await.ok()
}

/// `(job, scrapeUrl, health, lastError)` of every active target.
fn targets(answer: &Value) -> Vec<(String, String, String, String)> {
    let text = |t: &Value, k: &str| t[k].as_str().unwrap_or_default().to_owned();
    answer["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["labels"]["job"].as_str().unwrap_or_default().to_owned(),
                text(t, "scrapeUrl"),
                text(t, "health"),
                text(t, "lastError"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_observe_profile_scrapes_every_server_and_the_worker_with_the_rules_loaded() {
    let name = "compose_observe_profile_scrapes_every_server_and_the_worker_with_the_rules_loaded";
    if !require(name, Prerequisite::Docker) || !require(name, Prerequisite::Prometheus) {
        return;
    }
    let prometheus_bin = which::which("prometheus")
        .expect("Debian's prometheus package ships promtool and prometheus");
    let worker = TestImage::worker(&worker_binary());
    let exporter = TestImage::exporter(Path::new(env!("CARGO_BIN_EXE_sea-nats-exporter")));
    let prometheus = TestImage::prometheus(&prometheus_bin);
    let cluster = TestCluster::compose(Profile::Ha);
    let servers = cluster.topology().servers().count();

    let began = Instant::now();
    cluster.up_observed(&worker, &exporter, &prometheus);
    eprintln!(
        "up -d with nats-ha, worker and observe returned after {:?}",
        began.elapsed()
    );
    let (_, prometheus_url) = cluster.observe_urls();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("a plain HTTP client builds");

    // Every target of the rendered configuration up: the exporter and the worker, by service
    // name inside the compose network.
    let targets_url = format!("{prometheus_url}/api/v1/targets?state=active");
    let timeout = Duration::from_secs(120);
    let all_up = time_until(timeout, || async {
        get_json(&client, &targets_url).await.is_some_and(|a| {
            let t = targets(&a);
            let jobs = |job: &str| t.iter().filter(|x| x.0 == job).count();
            jobs(EXPORTER_JOB) == 1 && jobs(WORKER_JOB) == 1 && t.iter().all(|x| x.2 == "up")
        })
    })
    .await;
    let seen = get_json(&client, &targets_url).await.map(|a| targets(&a));
    let Some(took) = all_up else {
        panic!(
            "not every target up within {timeout:?}: {seen:#?}\n{}\nworker:\n{}",
            cluster.observe_logs(),
            cluster.container_log("sea-mq-worker")
        );
    };
    eprintln!("every target up {took:?} after up -d returned: {seen:?}");
    let seen = seen.unwrap_or_default();
    assert!(
        seen.iter()
            .any(|t| t.1 == "http://sea-nats-exporter:7777/metrics"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|t| t.1 == "http://sea-mq-worker:8080/metrics"),
        "{seen:?}"
    );

    // One series per server: the exporter reaches each by service name.
    let query = format!("{prometheus_url}/api/v1/query?query=nats_exporter_up");
    let last = std::sync::Mutex::new(Vec::new());
    let per_server = time_until(Duration::from_secs(60), || {
        let (client, query, last) = (&client, &query, &last);
        async move {
            let answer = get_json(client, query).await;
            let series: Vec<(String, String)> = answer
                .as_ref()
                .and_then(|a| a["data"]["result"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    (
                        s["metric"]["server_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        s["value"][1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let done = series.len() == servers && series.iter().all(|s| s.1 == "1");
            *last.lock().expect("not poisoned") = series;
            done
        }
    })
    .await;
    let last = last.into_inner().expect("not poisoned");
    assert!(
        per_server.is_some(),
        "not {servers} nats_exporter_up series equal to 1: {last:?}\n{}",
        cluster.observe_logs()
    );
    eprintln!("nats_exporter_up (server_id, value): {last:?}");

    // The alert rules are loaded.
    let rules = get_json(&client, &format!("{prometheus_url}/api/v1/rules"))
        .await
        .expect("/api/v1/rules answers");
    let groups = rules["data"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let alerts: usize = groups
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(alerts > 0, "no rules loaded: {rules}");
    let committed = std::fs::read_to_string(
        sea_infra::project_root().join(sea_infra::render::compose_observe::RULES),
    )
    .expect("read the committed rules");
    assert_eq!(
        alerts,
        committed.matches("- alert: ").count(),
        "every committed rule loaded"
    );
    eprintln!("{} rule groups, {alerts} rules loaded", groups.len());
}
