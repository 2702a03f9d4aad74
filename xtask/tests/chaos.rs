//! `cargo xtask chaos` as an operator runs it (`--private --json`), each run on its own cluster on
//! free ports: the suite's fixed-seed run of about two minutes passes its audit, and a run whose
//! stream loses an acknowledged event (a failpoint deletes one) fails, naming it.

mod common;

use serde_json::Value;

/// Names and details of the criteria that did not pass.
fn failed(report: &Value) -> Vec<String> {
    report["criteria"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["pass"] != Value::Bool(true))
        .map(|c| format!("{}: {}", c["name"], c["detail"]))
        .collect()
}

/// The suite's chaos run: seed 2026, about two minutes of faults of every kind (up to two at
/// once) under load on a private `ha` cluster. Nothing acknowledged lost, nothing doubled, each
/// inbox exactly once, every outbox row published exactly once, every fault recovered.
#[test]
fn chaos_two_minute_fixed_seed_run_loses_nothing() {
    let run = common::xtask(
        &[
            "chaos",
            "--private",
            "--json",
            "--seed",
            "2026",
            "--duration",
            "110s",
        ],
        &[],
    );
    let all = &run.all;
    let report = run.json();
    assert_eq!(run.code, Some(0), "{:?}\n{all}", failed(&report));
    assert_eq!(report["passed"], Value::Bool(true), "{all}");
    assert!(failed(&report).is_empty(), "{all}");
    let figures = &report["figures"];
    for zero in [
        "acked_lost",
        "stream_duplicates",
        "inbox_missing",
        "inbox_doubled",
        "outbox_unpublished",
        "outbox_doubled",
    ] {
        assert_eq!(figures[zero], 0, "{zero}:\n{all}");
    }
    assert!(figures["outbox_rows"].as_u64().unwrap_or(0) > 0, "{all}");
    let timeline = report["timeline"].as_array().expect("a timeline");
    assert!(
        timeline.len() >= 5,
        "only {} faults:\n{all}",
        timeline.len()
    );
    for row in timeline {
        assert_eq!(row["recovered"], Value::Bool(true), "{row}");
        assert!(row["check"].is_object(), "every fault is audited: {row}");
    }
    let kinds = report["faults_by_kind"].as_object().unwrap();
    assert!(kinds.contains_key("kill-stream-leader"), "{kinds:?}");
    // Every fault of a server has its recovery times in the report.
    for row in timeline.iter().filter(|r| {
        let f = r["fault"].as_str().unwrap_or("");
        !f.starts_with("kill-worker")
            && !f.starts_with("pause-worker")
            && !f.starts_with("kill-relay")
    }) {
        for time in ["new_leader_ms", "replicas_current_ms", "gate_ms"] {
            assert!(row[time].is_u64(), "{time} missing: {row}");
        }
    }
    let md = std::fs::read_to_string(report["report_md"].as_str().unwrap()).unwrap();
    assert!(md.contains("| # | at | fault |"), "{md}");
    assert_eq!(md.matches("| ok |").count(), timeline.len(), "{md}");
}

/// The audit is not blind: one acknowledged event deleted from the stream after the faults
/// (`SEA_CHAOS_FAILPOINT=delete-acked-event`) makes the run fail with exactly that loss, in the
/// row of the fault it was acknowledged after.
#[test]
fn chaos_audit_catches_a_deliberately_lost_event() {
    let run = common::xtask(
        &[
            "chaos",
            "--private",
            "--json",
            "--seed",
            "7",
            "--duration",
            "15s",
            "--faults",
            "kill-worker",
        ],
        &[("SEA_CHAOS_FAILPOINT", "delete-acked-event")],
    );
    let all = &run.all;
    let report = run.json();
    assert_eq!(run.code, Some(1), "{all}");
    assert_eq!(report["passed"], Value::Bool(false), "{all}");
    assert_eq!(report["figures"]["acked_lost"], 1, "{all}");
    let failed = failed(&report);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("no acknowledged event lost"),
        "{failed:?}"
    );
    let lost_rows: Vec<&Value> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["lost"] != 0)
        .collect();
    // Deleted from the middle of the run: after the first fault, or before it (no row then).
    assert!(lost_rows.len() <= 1, "{lost_rows:?}");
    assert!(all.contains("deleted acknowledged event"), "{all}");
}
