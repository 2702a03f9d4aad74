//! The drills and `verify` as operators run them (`--json`), each on its own cluster on free
//! ports: their PASS criteria hold, and a deliberately broken setup makes a drill FAIL.

mod common;

use serde_json::Value;

/// Runs `xtask ARGS --private --json`: (exit code, parsed stdout, all output).
fn xtask(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, Value, String) {
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--private", "--json"])
        .collect();
    let run = common::xtask(&args, vars);
    (run.code, run.json(), run.all)
}

/// Names of the criteria that did not pass.
fn failed(outcome: &Value) -> Vec<String> {
    outcome["criteria"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["pass"] != Value::Bool(true))
        .map(|c| format!("{}: {}", c["name"], c["detail"]))
        .collect()
}

fn assert_drill_passes(name: &str, must_include: &[&str]) -> Value {
    assert_drill_passes_on(&["drill", name], must_include)
}

fn assert_drill_passes_on(args: &[&str], must_include: &[&str]) -> Value {
    let (code, outcome, all) = xtask(args, &[]);
    assert_eq!(code, Some(0), "{args:?} failed:\n{all}");
    assert_eq!(outcome["passed"], Value::Bool(true), "{all}");
    assert!(failed(&outcome).is_empty(), "{all}");
    let names: Vec<&str> = outcome["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for want in must_include {
        assert!(
            names.contains(want),
            "criterion `{want}` not judged: {names:?}"
        );
    }
    assert_eq!(outcome["figures"]["acked_lost"], 0);
    assert_eq!(outcome["figures"]["inbox_missing"], 0);
    assert_eq!(outcome["figures"]["inbox_doubled"], 0);
    outcome
}

#[test]
fn quorum_loss_fails_fast_and_recovers_by_itself() {
    let outcome = assert_drill_passes(
        "quorum-loss",
        &["failed publishes fail fast", "publishing resumes by itself"],
    );
    assert!(outcome["figures"]["failed_attempts"].as_u64().unwrap() >= 20);
}

/// A stream at its byte limit, then a server at `max_file_store`: fast clear refusals, no retry
/// storm, the drill stream and the workers going on, publishing resuming once the limit is
/// raised or space freed, nothing acknowledged lost.
#[test]
fn storage_full_refuses_fast_and_resumes() {
    let outcome = assert_drill_passes(
        "storage-full",
        &[
            "stream limit: publishes are refused fast with a clear error",
            "stream limit: no retry storm, every refusal fast",
            "stream limit: publishing resumes once the limit is raised",
            "server store: publishes are refused fast with a clear error",
            "server store: the drill stream keeps accepting writes",
            "server store: publishing resumes once the limit is raised",
            "server store: publishing resumes once space is freed",
            "server store: nothing acknowledged lost",
        ],
    );
    assert!(
        outcome["figures"]["stream_limit_error_ms"]
            .as_u64()
            .unwrap()
            <= 1000
    );
    assert!(
        outcome["figures"]["server_store_error_ms"]
            .as_u64()
            .unwrap()
            <= 1000
    );
}

/// A rolling upgrade 2.14.6 -> 2.15.1 under load on processes: every server reports the new
/// release afterwards, nothing lost. Both releases are installed into the state directory's
/// cache, which this test shares with the suite's (a symlink), so they are downloaded once.
#[test]
fn upgrade_moves_every_server_to_the_new_release_under_load() {
    let state = sea_infra::testing::scratch_dir("xtask-state");
    let cache = sea_infra::deployment::cache_dir();
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(&cache, state.path().join("cache")).unwrap();
    let run = common::xtask_in(
        state,
        &[
            "drill",
            "upgrade",
            "--from",
            "2.14.6",
            "--to",
            "2.15.1",
            "--private",
            "--json",
        ],
        &[],
    );
    let all = &run.all;
    let outcome = run.json();
    assert_eq!(run.code, Some(0), "{all}");
    assert!(failed(&outcome).is_empty(), "{all}");
    let after = outcome["figures"]["versions_after"].as_object().unwrap();
    assert_eq!(after.len(), 3);
    assert!(after.values().all(|v| v == "2.15.1"), "{after:?}");
    assert_eq!(outcome["figures"]["acked_lost"], 0);
}

#[test]
fn worker_crash_keeps_the_inbox_exactly_once() {
    assert_drill_passes(
        "worker-crash",
        &[
            "inbox exactly once",
            "the others took over the killed worker's deliveries",
        ],
    );
}

/// With one replica there is nobody to take over: the same drill must say FAIL.
#[test]
fn node_kill_fails_when_the_stream_has_one_replica() {
    let (code, outcome, all) = xtask(
        &["drill", "node-kill"],
        &[
            ("STREAM_REPLICAS", "1"),
            ("STREAM_ALLOW_FEWER_REPLICAS", "true"),
        ],
    );
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(outcome["passed"], Value::Bool(false), "{all}");
    let failed = failed(&outcome);
    assert!(
        failed
            .iter()
            .any(|f| f.contains("a new stream leader is elected")),
        "{failed:?}\n{all}"
    );
}

/// `verify` runs the whole sequence (node-kill, rolling-restart and partition included) and
/// every step passes.
#[test]
fn verify_passes_every_step() {
    assert_verify_passes(&["verify"]);
}

/// The same sequence on containers: `node-kill` is `docker kill`, `partition` a network
/// disconnect, `rolling-restart` lame duck then `docker start`.
#[test]
fn verify_on_compose_passes_every_step() {
    if sea_infra::testing::require(
        "verify_on_compose_passes_every_step",
        sea_infra::testing::Prerequisite::Docker,
    ) {
        assert_verify_passes(&["verify", "--backend", "compose"]);
    }
}

fn assert_verify_passes(args: &[&str]) {
    let (code, report, all) = xtask(args, &[]);
    assert_eq!(code, Some(0), "{all}");
    let steps: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    let names: Vec<&str> = steps.iter().map(|s| s.0).collect();
    assert_eq!(
        names,
        [
            "prerequisites",
            "bring-up",
            "health gate",
            "provisioning",
            "worker round trip",
            "drill node-kill",
            "drill rolling-restart",
            "drill partition",
            "teardown"
        ]
    );
    assert!(steps.iter().all(|s| s.1 == "PASS"), "{all}");
    let path = report["report"].as_str().unwrap();
    assert!(std::fs::read_to_string(path)
        .unwrap()
        .contains("| drill partition | PASS |"));
}

#[test]
fn leaf_partition_keeps_cells_working_and_the_mirror_resyncs() {
    let outcome = assert_drill_passes_on(
        &["drill", "leaf-partition", "--profile", "leaf"],
        &[
            "the link is cut",
            "cell-b keeps publishing and consuming",
            "the mirror has every sequence again",
        ],
    );
    assert!(outcome["figures"]["mirror_caught_up_ms"].is_u64());
}

#[test]
fn cluster_loss_reports_what_survives_and_recovers() {
    let outcome = assert_drill_passes_on(
        &["drill", "cluster-loss", "--profile", "mesh"],
        &[
            "core messaging in the surviving cluster",
            "the mirror in the restored cluster catches up",
        ],
    );
    assert!(outcome["figures"]["stream_accepts_writes_during_loss"].is_boolean());
}
