//! `cargo xtask bench --json --secure --against HEAD` end to end on a short run: it builds the
//! release binaries (and the worker at HEAD), starts its own clusters, measures every rate, and
//! prints the ratios and goals scripts read. The figures themselves are judged by the command,
//! not here (a timed assertion would only measure the machine).

mod common;

use serde_json::Value;

#[test]
fn bench_json_reports_every_rate_ratio_and_goal() {
    // With PostgreSQL installed, its measurements too (required where SEA_REQUIRE_POSTGRES=1).
    let pg = sea_infra::testing::require(
        "bench_json_reports_every_rate_ratio_and_goal (postgres part)",
        sea_infra::testing::Prerequisite::Postgres,
    );
    let database = if pg { "both" } else { "sqlite" };
    let run = common::xtask(
        &[
            "bench",
            // Enough that every client's CPU time spans several of /proc's 10 ms ticks (at 3,000
            // the raw consumer once read 0 ticks, and its CPU ratio divided by zero).
            "--events",
            "10000",
            "--json",
            "--database",
            database,
            "--secure",
            "--against",
            "HEAD",
        ],
        &[],
    );
    let all = &run.all;
    assert_eq!(run.code, Some(0), "bench failed:\n{all}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}:\n{all}"));

    assert_eq!(report["events"], 10000);
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
    assert_eq!(report["goals"].as_array().map(Vec::len), Some(5));
    // CPU per event next to every rate (figures judged by the command, not here).
    for m in ["raw_publish", "raw_consume", "raw_consume_4_clients"] {
        for cpu in ["client_cpu_us_per_event", "server_cpu_us_per_event"] {
            let v = report["measurements"][m][cpu].as_f64();
            assert!(v.is_some_and(|v| v >= 0.0), "{m} {cpu}:\n{all}");
        }
    }
    for ratio in [
        "worker_cpu_per_event_vs_raw_consumer",
        "relay_cpu_per_row_vs_raw_publisher",
        "inbox_4_workers_vs_4_raw_clients",
    ] {
        assert!(report["ratios"][ratio].is_number(), "{ratio}:\n{all}");
    }
    let dbs: &[(&str, &[u64])] = if pg {
        &[("sqlite", &[1, 2, 4]), ("postgres", &[1, 4])]
    } else {
        &[("sqlite", &[1, 2, 4])]
    };
    for (db, counts) in dbs {
        let d = &report["databases"][db];
        let workers: Vec<u64> = d["inbox"]
            .as_array()
            .unwrap_or_else(|| panic!("{db}:\n{all}"))
            .iter()
            .map(|m| {
                assert!(m["rate"].as_f64().unwrap_or(0.0) > 0.0, "{db} {m}");
                assert!(m["client_cpu_us_per_event"].is_number(), "{db} {m}");
                m["workers"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(workers, *counts, "{db}");
        assert!(
            d["outbox"]["rate"].as_f64().unwrap_or(0.0) > 0.0,
            "{db}:\n{all}"
        );
    }
    // The PostgreSQL URL's password is never printed.
    assert!(!all.contains(sea_mq_worker::pg_server::PASSWORD), "{all}");
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
    // The A/B (`--against HEAD`): both builds measured on both paths, in the same run.
    let ab = &report["against"];
    assert_eq!(ab["revision"], "HEAD", "{all}");
    assert_eq!(ab["commit"].as_str().map(str::len), Some(40), "{all}");
    for path in ["inbox_1_worker", "outbox_relay"] {
        for build in ["baseline", "this_build"] {
            let r = ab["paths"][path][build]["rate"].as_f64().unwrap_or(0.0);
            assert!(r > 0.0, "against: {path} {build}:\n{all}");
        }
        for ratio in ["rate_vs_baseline", "client_cpu_vs_baseline"] {
            assert!(
                ab["paths"][path][ratio].is_number(),
                "against: {path} {ratio}:\n{all}"
            );
        }
    }
}

#[test]
fn bench_against_an_unknown_revision_names_it_and_fails() {
    let run = common::xtask(
        &["bench", "--against", "no-such-rev", "--events", "10"],
        &[],
    );
    assert_ne!(run.code, Some(0), "{}", run.all);
    assert!(
        run.all.contains("--against no-such-rev: no such commit"),
        "{}",
        run.all
    );
}
