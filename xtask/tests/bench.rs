//! `cargo xtask bench --json --secure` end to end on a short run: it builds the release binaries, starts
//! its own cluster, measures every rate, and prints the ratios and goals scripts read. The
//! figures themselves are judged by the command, not here (a timed assertion would only measure
//! the machine).

mod common;

use serde_json::Value;

#[test]
fn bench_json_reports_every_rate_ratio_and_goal() {
    let run = common::xtask(&["bench", "--events", "3000", "--json", "--secure"], &[]);
    let all = &run.all;
    assert_eq!(run.code, Some(0), "bench failed:\n{all}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}:\n{all}"));

    assert_eq!(report["events"], 3000);
    for rate in [
        "raw_publish",
        "raw_consume",
        "raw_consume_4_clients",
        "outbox",
    ] {
        let r = report["rates"][rate].as_f64().unwrap_or(0.0);
        assert!(r > 0.0, "rate {rate} missing or zero:\n{all}");
    }
    let workers: Vec<u64> = report["rates"]["inbox"]
        .as_array()
        .expect("inbox rates")
        .iter()
        .map(|r| {
            assert!(r["rate"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
            r["workers"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(workers, [1, 2, 4]);
    for ratio in [
        "inbox_1_worker_vs_raw_consume",
        "outbox_vs_raw_publish",
        "inbox_4_workers_vs_1_worker",
        "raw_consume_4_clients_vs_1_client",
    ] {
        assert!(
            report["ratios"][ratio].as_f64().is_some(),
            "{ratio}:\n{all}"
        );
    }
    assert_eq!(report["goals"].as_array().map(Vec::len), Some(3));
    // The durability setting's cost, measured on a second cluster in the same run.
    for rate in ["raw_publish", "raw_consume", "outbox"] {
        let always = &report["sync_interval_always"];
        assert!(
            always["rates"][rate].as_f64().unwrap_or(0.0) > 0.0,
            "sync_interval always: {rate}:\n{all}"
        );
        assert!(always["vs_default"][rate].as_f64().is_some(), "{all}");
    }
    // The TLS cost (`--secure`), measured on a secured cluster in the same run.
    for rate in ["raw_publish", "raw_consume"] {
        let secure = &report["secure"];
        assert!(
            secure["rates"][rate].as_f64().unwrap_or(0.0) > 0.0,
            "secure: {rate}:\n{all}"
        );
        assert!(secure["vs_plain"][rate].as_f64().is_some(), "{all}");
    }
}
