//! Interrupted commands clean up and never report success: SIGTERM (what `timeout`, CI
//! cancellation and supervisors send) to a drill, Ctrl-C (SIGINT) to `verify`, against the real
//! binary.

mod common;

use std::time::Duration;

use nix::sys::signal::Signal;

/// SIGTERM in the middle of a drill: exit 143, and nothing the drill started is left: no
/// server, no worker, no scratch directory.
#[test]
fn sigterm_during_a_drill_cleans_up_and_exits_143() {
    let tmp = sea_infra::testing::scratch_dir("sigterm-drill");
    let tmpdir = tmp.path().display().to_string();
    let mut run = common::spawn(
        &["drill", "node-kill", "--private"],
        &[("TMPDIR", tmpdir.as_str())],
    );
    run.wait_for("SIGKILL", Duration::from_secs(180));
    let (code, _) = run.signal_and_wait(Signal::SIGTERM, Duration::from_secs(60));
    let said = run.seen.join("\n");
    assert_eq!(code, Some(143), "{said}");
    assert!(said.contains("interrupted by SIGTERM"), "{said}");
    let left = common::processes_mentioning(tmp.path());
    assert!(left.is_empty(), "left running: {left:#?}\n{said}");
    let files: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(files.is_empty(), "left behind: {files:?}");
}

/// Ctrl-C during `verify`: exit 130, the report says INTERRUPTED and names the step, never PASS.
#[test]
fn ctrl_c_during_verify_reports_interrupted_and_the_step() {
    let mut run = common::spawn(
        &["verify", "--profile", "single", "--private", "--json"],
        &[],
    );
    run.wait_for("==> worker round trip", Duration::from_secs(180));
    let (code, stdout) = run.signal_and_wait(Signal::SIGINT, Duration::from_secs(60));
    let said = run.seen.join("\n");
    assert_eq!(code, Some(130), "{said}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{said}"));
    assert_eq!(report["passed"], false);
    assert_eq!(report["interrupted"], "worker round trip");
    let md = std::fs::read_to_string(report["report"].as_str().unwrap()).unwrap();
    assert!(
        md.starts_with("# cargo xtask verify --profile single --backend process: INTERRUPTED"),
        "{md}"
    );
    assert!(md.contains("| worker round trip | INTERRUPTED |"), "{md}");
    assert!(!said.contains("verify PASS"), "{said}");
}
