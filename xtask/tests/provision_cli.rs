//! `cargo xtask provision` as an operator runs it: exit codes, output, secrets.

mod common;

use common::Run;
use sea_infra::model::topology::Profile;
use sea_infra::testing::{assert_mentions, TestCluster};

/// Runs `xtask provision ARGS` with only the given variables set.
fn provision(args: &[&str], vars: &[(&str, &str)]) -> Run {
    let args: Vec<&str> = ["provision"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    common::xtask(&args, vars)
}

#[test]
fn every_bad_variable_is_reported_with_exit_64_and_no_secret() {
    let out = provision(
        &[],
        &[
            ("STREAM_REPLICAS", "banana"),
            ("CONSUMER_MAX_DELIVER", "-7"),
            ("NATS_SERVERS", "localhost:4222"),
            ("NATS_AUTH_TOKEN", "hunter2-secret"),
            ("NATS_USER", "svc"),
            ("NATS_PASSWORD", "pw"),
        ],
    );
    let all = out.all.clone();
    assert_eq!(out.code, Some(64), "{all}");
    assert_mentions(
        &all,
        &[
            "STREAM_REPLICAS=\"banana\": not a whole number",
            "CONSUMER_MAX_DELIVER=\"-7\"",
            "NATS_SERVERS=\"localhost:4222\": `localhost:4222` is not a NATS URL",
            "NATS_AUTH_TOKEN=\"<redacted>\": set only one of",
        ],
    );
    assert!(
        !all.contains("hunter2-secret"),
        "a secret was printed:\n{all}"
    );
}

#[tokio::test]
async fn check_exits_2_on_drift_and_0_once_provisioned() {
    let cluster = TestCluster::start(Profile::Single).await;
    let servers = cluster.nats_servers();
    let env = [("NATS_SERVERS", servers.as_str())];

    let out = provision(&["--check"], &env);
    assert_eq!(out.code, Some(2), "{}", out.all);
    assert!(
        out.all
            .contains("live configuration drifted from the spec: 6 create"),
        "{}",
        out.all
    );

    let out = provision(&["--dry-run", "--json"], &env);
    assert_eq!(out.code, Some(0), "{}", out.all);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("--json prints JSON");
    assert_eq!(plan["items"][0]["name"], "SEA_EVENTS");
    assert_eq!(plan["items"][0]["action"], "create");

    let out = provision(&[], &env);
    assert_eq!(out.code, Some(0), "{}", out.all);
    assert!(
        out.all.contains("using 1 replica instead of 3"),
        "says so: {}",
        out.all
    );

    let out = provision(&["--check"], &env);
    assert_eq!(out.code, Some(0), "{}", out.all);
    let out = provision(&[], &env);
    assert!(out.all.contains("nothing to do"), "{}", out.all);
}

#[test]
fn unreachable_servers_fail_fast_with_the_fix() {
    let port = sea_infra::deployment::ports::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let out = provision(
        &[],
        &[("NATS_SERVERS", &url), ("NATS_CONNECT_TIMEOUT_MS", "500")],
    );
    assert_eq!(out.code, Some(1));
    let all = out.all.clone();
    assert!(
        all.contains(&format!("cannot connect to NATS at {url}"))
            && all.contains("cargo xtask status"),
        "{all}"
    );
}
