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
            "NATS_AUTH_TOKEN=\"<redacted>\": NATS_AUTH_TOKEN and NATS_USER are set together: set only one of",
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

/// Credentials in a server URL never reach the output, even in a connection error.
#[test]
fn credentials_in_server_urls_are_not_printed() {
    let port = sea_infra::deployment::ports::free_port();
    for url in [
        format!("nats://svc:pw-s3cret@127.0.0.1:{port}"),
        format!("nats://tok-s3cret@127.0.0.1:{port}"),
    ] {
        let out = provision(
            &[],
            &[("NATS_SERVERS", &url), ("NATS_CONNECT_TIMEOUT_MS", "300")],
        );
        assert_eq!(out.code, Some(1), "{}", out.all);
        assert!(out.all.contains("cannot connect to NATS"), "{}", out.all);
        assert!(
            !out.all.contains("s3cret"),
            "a secret was printed:\n{}",
            out.all
        );
    }
}

/// Credentials in the server URLs of a reachable cluster appear neither in the plan nor in
/// `--json`.
#[tokio::test]
async fn credentials_in_server_urls_stay_out_of_plans_and_json() {
    let cluster = TestCluster::start(Profile::Single).await;
    // No authentication on the server: credentials in the URL are ignored but must not show.
    let url = cluster
        .nats_servers()
        .replace("nats://", "nats://svc:pw-s3cret@");
    for args in [&["--dry-run"][..], &["--dry-run", "--json"]] {
        let out = provision(args, &[("NATS_SERVERS", url.as_str())]);
        assert_eq!(out.code, Some(0), "{}", out.all);
        assert!(out.all.contains("svc:<redacted>@"), "{}", out.all);
        assert!(
            !out.all.contains("s3cret"),
            "a secret was printed:\n{}",
            out.all
        );
    }
}

/// A server URL that can never work is a configuration error (64), found before connecting.
#[test]
fn a_malformed_server_url_exits_64() {
    let out = provision(&[], &[("NATS_SERVERS", "nats://127.0.0.1:notaport")]);
    assert_eq!(out.code, Some(64), "{}", out.all);
    assert_mentions(&out.all, &["NATS_SERVERS=", "has port `notaport`"]);
}

/// `--recreate` and `--allow-loss` must name a stream or consumer of the spec.
#[test]
fn an_unknown_recreate_or_allow_loss_name_exits_64_with_the_valid_ones() {
    let out = provision(
        &["--recreate", "SEA_EVENT", "--allow-loss", "nope"],
        &[("NATS_SERVERS", "nats://127.0.0.1:1")],
    );
    assert_eq!(out.code, Some(64), "{}", out.all);
    assert_mentions(
        &out.all,
        &[
            "--recreate SEA_EVENT, --allow-loss nope: not a stream or consumer of the spec",
            "use one of SEA_DLQ",
            "SEA_EVENTS/sea-mq-worker",
        ],
    );
}

/// A lossy change is refused by the command as a whole (exit 1), naming the flag that allows it.
#[tokio::test]
async fn a_lossy_change_is_refused_until_allow_loss() {
    let cluster = TestCluster::start(Profile::Single).await;
    let servers = cluster.nats_servers();
    let out = provision(&[], &[("NATS_SERVERS", servers.as_str())]);
    assert_eq!(out.code, Some(0), "{}", out.all);
    let client = async_nats::connect(servers.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for i in 0..50 {
        js.publish(format!("sea.event.x.{i}"), "{}".repeat(20).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let env = [
        ("NATS_SERVERS", servers.as_str()),
        ("STREAM_MAX_BYTES", "500"),
    ];
    let out = provision(&[], &env);
    assert_eq!(out.code, Some(1), "{}", out.all);
    assert_mentions(
        &out.all,
        &["of 50 stored messages", "--allow-loss SEA_EVENTS"],
    );
    let out = provision(&["--allow-loss", "SEA_EVENTS"], &env);
    assert_eq!(out.code, Some(0), "{}", out.all);
}

/// A state file that cannot be read back is reported, never taken for "nothing started".
#[test]
fn a_corrupt_state_file_is_named() {
    let state = sea_infra::testing::scratch_dir("corrupt-state");
    let dir = state.path().join("ha");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("topology.json"), "{ not json").unwrap();
    let out = common::xtask_in(state, &["status"], &[]);
    assert_eq!(out.code, Some(1), "{}", out.all);
    assert_mentions(
        &out.all,
        &["state file", "ha/topology.json", "cannot be read back"],
    );
}

/// A state directory that cannot be written: the error says which variable fixes it, not pip.
#[test]
fn an_unwritable_state_dir_blames_the_state_dir_not_pip() {
    let out = common::xtask(
        &["doctor", "--install"],
        &[
            ("SEA_STATE_DIR", "/proc/version/sea"),
            ("NATS_SERVER_BIN", ""),
            ("PATH", "/usr/bin:/bin"),
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.all);
    assert_mentions(
        &out.all,
        &[
            "/proc/version/sea",
            "set SEA_STATE_DIR to a writable directory",
        ],
    );
    assert!(!out.all.contains("pip failed"), "{}", out.all);
}
