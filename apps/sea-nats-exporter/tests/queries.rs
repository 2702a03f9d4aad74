//! Static checks of every PromQL expression in the Grafana dashboards (`infra/grafana/*.json`)
//! and the alert rules (`infra/prometheus/alerts.yml`) against the names the exporter and the
//! worker export, without a Prometheus:
//! - every metric named exists (names table, the exporter's additions, the worker's, `up`);
//! - `rate()`, `irate()` and `increase()` only apply to counters, or to gauges the names table
//!   marks cumulative (counters in nats-server that the Go exporter types as gauges);
//! - dashboards: every stream or consumer series is selected on its leader label, so an R3 asset
//!   counts once (or, on purpose, followers are named too); alerts: the same, but for the rules
//!   that compare replicas with each other;
//! - with `promtool` on PATH, every dashboard expression parses (as a recording rule).

mod common;

use std::collections::BTreeMap;

use common::dashboards::dashboards;
use common::names;
use sea_infra::testing::{require, Prerequisite};
use sea_nats_exporter::collect::ADDITIONS;

/// Metric name -> (type, cumulative).
fn known_metrics() -> BTreeMap<String, (String, bool)> {
    let mut out = BTreeMap::new();
    for e in names::table().metric {
        out.insert(e.name.clone(), (e.exported_type().to_owned(), e.cumulative));
    }
    for (name, kind, _) in ADDITIONS {
        out.insert(name.to_owned(), (kind.to_owned(), false));
    }
    let (_, text) = sea_mq_worker::metrics::Metrics::default().render(None);
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{name}{suffix}"), ("counter".to_owned(), true));
            }
        } else {
            out.insert(name.to_owned(), (kind.to_owned(), kind == "counter"));
        }
    }
    out.insert("up".to_owned(), ("gauge".to_owned(), false));
    out
}

/// (alert name, expr) of `alerts.yml`; block scalars (`expr: |`) joined.
fn alert_exprs() -> Vec<(String, String)> {
    let path = sea_infra::project_root().join("infra/prometheus/alerts.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut alert = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert: ") {
            alert = name.to_owned();
        } else if let Some(expr) = t.strip_prefix("expr: ") {
            if expr == "|" {
                let indent = line.len() - t.len();
                let mut body = Vec::new();
                while let Some(next) = lines.peek() {
                    let nt = next.trim();
                    if !nt.is_empty() && next.len() - nt.len() <= indent {
                        break;
                    }
                    body.push(nt.to_owned());
                    lines.next();
                }
                out.push((alert.clone(), body.join(" ")));
            } else {
                out.push((alert.clone(), expr.to_owned()));
            }
        }
    }
    assert!(out.len() >= 20, "only {} alert expressions read", out.len());
    out
}

/// A selector in an expression: the metric name and its `{...}` matchers (empty if none).
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: String,
    /// The function it is the direct argument of (`rate(x[5m])`), if any.
    function: Option<String>,
}

const KEYWORDS: [&str; 14] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "le",
    "e9",
    "inf",
];

/// The metric selectors of an expression. PromQL is small enough for a scan: label lists after
/// `by`/`on`/... and matcher bodies are skipped, identifiers followed by `(` are functions.
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut last_function: Option<String> = None;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let next = chars.get(j).copied();
            if KEYWORDS.contains(&word.as_str()) {
                // `by (...)`, `on (...)`, `group_left (...)`: a label list, not selectors.
                skip_list = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                continue;
            }
            let preceded_by_digit = start > 0 && chars[start - 1].is_ascii_digit();
            let next_word: String = chars[j..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .collect();
            // `f(`, or an aggregation written `max by (...) (`.
            if next == Some('(') || next_word == "by" || next_word == "without" {
                last_function = Some(word);
                continue;
            }
            if preceded_by_digit {
                continue;
            }
            let mut matchers = String::new();
            if next == Some('{') {
                let mut k = j + 1;
                while k < chars.len() && chars[k] != '}' {
                    if chars[k] == '"' {
                        matchers.push(chars[k]);
                        k += 1;
                        while k < chars.len() && chars[k] != '"' {
                            matchers.push(chars[k]);
                            k += 1;
                        }
                    }
                    matchers.push(chars[k]);
                    k += 1;
                }
                i = k + 1;
            }
            // Directly inside `f(` only if the previous non-space char is that `(`.
            let mut b = start;
            while b > 0 && chars[b - 1] == ' ' {
                b -= 1;
            }
            let function = (b > 0 && chars[b - 1] == '(')
                .then(|| last_function.clone())
                .flatten();
            out.push(Selector {
                name: word,
                matchers,
                function,
            });
            continue;
        }
        if c == '(' && skip_list {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_list = false;
        }
        i += 1;
    }
    out
}

/// Problems of one expression; without `leader_required`, stream series may omit the leader
/// matcher (rules comparing replicas); consumer series never may.
fn check(
    expr: &str,
    known: &BTreeMap<String, (String, bool)>,
    leader_required: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let sels = selectors(expr);
    if sels.is_empty() {
        problems.push("no metric in it".to_owned());
    }
    for s in sels {
        let Some((kind, cumulative)) = known.get(&s.name) else {
            problems.push(format!("`{}` is not a metric anyone exports", s.name));
            continue;
        };
        if let Some(f) = s.function.as_deref() {
            if matches!(f, "rate" | "irate" | "increase") && kind != "counter" && !cumulative {
                problems.push(format!("{f}() over `{}`, a {kind}", s.name));
            }
        }
        let leader = if s.name.starts_with("jetstream_stream_") {
            Some("is_stream_leader")
        } else if s.name.starts_with("jetstream_consumer_") {
            Some("is_consumer_leader")
        } else {
            None
        };
        if let Some(label) = leader {
            let consumer = label == "is_consumer_leader";
            if (leader_required || consumer) && !s.matchers.contains(label) {
                problems.push(format!(
                    "`{}` without a `{label}` matcher counts every replica",
                    s.name
                ));
            }
        }
    }
    problems
}

#[test]
fn the_selector_scan_finds_metrics_functions_and_matchers() {
    let s = selectors(
        r#"max by (cluster, stream_name) (jetstream_stream_last_seq{is_stream_leader="true", x="a}b"}) - on (cluster) group_right () rate(gnatsd_varz_in_msgs[5m]) > 1e9 and up{job="x"} offset 10m"#,
    );
    let names: Vec<(&str, Option<&str>)> = s
        .iter()
        .map(|s| (s.name.as_str(), s.function.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("jetstream_stream_last_seq", Some("max")),
            ("gnatsd_varz_in_msgs", Some("rate")),
            ("up", None)
        ]
    );
    assert!(s[0].matchers.contains("is_stream_leader"));
}

#[test]
fn every_dashboard_query_names_real_series_and_counts_assets_once() {
    let known = known_metrics();
    let mut problems = Vec::new();
    let mut n = 0;
    for (file, exprs) in dashboards() {
        for (panel, expr) in exprs {
            n += 1;
            for p in check(&expr, &known, true) {
                problems.push(format!("{file} / {panel}: {p}\n    {expr}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(n >= 40, "only {n} queries");
}

#[test]
fn every_alert_expression_names_real_series_and_counts_assets_once() {
    // These compare a stream's replicas with each other, by asset: all replicas are wanted.
    const REPLICA_RULES: [&str; 2] = ["NatsStreamNoLeader", "NatsStreamReplicaLag"];
    let known = known_metrics();
    let mut problems = Vec::new();
    for (alert, expr) in alert_exprs() {
        for p in check(&expr, &known, !REPLICA_RULES.contains(&alert.as_str())) {
            problems.push(format!("{alert}: {p}\n    {expr}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_dashboard_query_parses() {
    if !require("every_dashboard_query_parses", Prerequisite::Prometheus) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, (_, expr)) in dashboards().into_iter().flat_map(|(_, e)| e).enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let path = dir.path().join("dashboards.yml");
    std::fs::write(&path, rules).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_checks_catch_what_they_are_for() {
    let known = known_metrics();
    let bad = [
        r#"rate(jetstream_consumer_num_pending{is_consumer_leader="true"}[5m])"#,
        r#"sum by (stream_name) (jetstream_consumer_num_pending)"#,
        r#"sum(jetstream_stream_total_messages)"#,
        r#"gnatsd_varz_no_such_thing"#,
        r#"increase(gnatsd_varz_mem[5m])"#,
    ];
    for expr in bad {
        assert!(!check(expr, &known, true).is_empty(), "not caught: {expr}");
    }
    let good = [
        r#"rate(gnatsd_varz_in_msgs[5m])"#,
        r#"rate(gnatsd_connz_in_msgs[5m])"#,
        r#"histogram_quantile(0.99, sum by (le) (rate(sea_worker_processing_seconds_bucket[5m])))"#,
        r#"increase(sea_worker_dlq_total[10m])"#,
    ];
    for expr in good {
        assert_eq!(check(expr, &known, true), Vec::<String>::new(), "{expr}");
    }
}
