//! `cargo xtask provision` as an operator runs it: exit codes, output, secrets.

use std::process::{Command, Output};

use sea_infra::harness::{scratch_dir, TestCluster};
use sea_infra::topology::Profile;

/// Runs `xtask provision ARGS` with only the given variables set (plus PATH and the binary).
fn provision(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("provision").args(args).env_clear();
    for keep in ["PATH", "HOME", "NATS_SERVER_BIN"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    // No recorded local profile can leak in.
    let state = scratch_dir("cli-state");
    cmd.env("SEA_STATE_DIR", state.path());
    cmd.envs(vars.iter().copied());
    cmd.output().expect("run xtask")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
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
    let all = text(&out);
    assert_eq!(out.status.code(), Some(64), "{all}");
    for needle in [
        "STREAM_REPLICAS=\"banana\": not a whole number",
        "CONSUMER_MAX_DELIVER=\"-7\"",
        "NATS_SERVERS=\"localhost:4222\": `localhost:4222` is not a NATS URL",
        "NATS_AUTH_TOKEN=\"<redacted>\": set only one of",
    ] {
        assert!(all.contains(needle), "missing `{needle}` in:\n{all}");
    }
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
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("live configuration drifted from the spec: 6 create"),
        "{}",
        text(&out)
    );

    let out = provision(&["--dry-run", "--json"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(plan["items"][0]["name"], "SEA_EVENTS");
    assert_eq!(plan["items"][0]["action"], "create");

    let out = provision(&[], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("using 1 replica instead of 3"),
        "says so: {}",
        text(&out)
    );

    let out = provision(&["--check"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = provision(&[], &env);
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));
}

#[test]
fn unreachable_servers_fail_fast_with_the_fix() {
    let port = sea_infra::ports::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let out = provision(
        &[],
        &[("NATS_SERVERS", &url), ("NATS_CONNECT_TIMEOUT_MS", "500")],
    );
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out);
    assert!(
        all.contains(&format!("cannot connect to NATS at {url}"))
            && all.contains("cargo xtask status"),
        "{all}"
    );
}
