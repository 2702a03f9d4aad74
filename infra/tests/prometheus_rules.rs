//! The alert rules (`infra/prometheus/alerts.yml`): `promtool check rules` and the unit tests
//! under `infra/prometheus/tests/` pass; every alert has a severity, a summary, a description and
//! a runbook anchor that exists, and a firing and a quiet case in the unit tests.
//!
//! Needs `promtool` (Debian's `prometheus` package) for the first test: without it that test
//! prints SKIPPED, unless `SEA_REQUIRE_PROMETHEUS=1`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use sea_infra::testing::{require, Prerequisite};

fn prometheus_dir() -> PathBuf {
    sea_infra::project_root().join("infra/prometheus")
}

fn test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(prometheus_dir().join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no promtool unit tests");
    files
}

fn promtool(args: &[&std::ffi::OsStr]) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {:?} failed:\n{}{}",
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    if !require(
        "alert_rules_pass_promtool_check_and_their_unit_tests",
        Prerequisite::Prometheus,
    ) {
        return;
    }
    let rules = prometheus_dir().join("alerts.yml");
    promtool(&["check".as_ref(), "rules".as_ref(), rules.as_os_str()]);
    let mut args: Vec<&std::ffi::OsStr> = vec!["test".as_ref(), "rules".as_ref()];
    let files = test_files();
    args.extend(files.iter().map(|f| f.as_os_str()));
    promtool(&args);
}

/// One alert of `alerts.yml`, read line by line (the file keeps one key per line).
#[derive(Debug, Default)]
struct Alert {
    severity: Option<String>,
    annotations: BTreeMap<String, String>,
}

fn alerts() -> BTreeMap<String, Alert> {
    let text = std::fs::read_to_string(prometheus_dir().join("alerts.yml")).unwrap();
    let mut out: BTreeMap<String, Alert> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            assert!(
                out.insert(name.to_owned(), Alert::default()).is_none(),
                "{name} twice"
            );
            current = Some(name.to_owned());
            continue;
        }
        let (Some(name), Some((key, value))) = (&current, line.split_once(": ")) else {
            continue;
        };
        let alert = out.get_mut(name).unwrap();
        let value = value.trim_matches('"').to_owned();
        match key {
            "severity" => alert.severity = Some(value),
            "summary" | "description" | "runbook_url" => {
                alert.annotations.insert(key.to_owned(), value);
            }
            _ => {}
        }
    }
    assert!(out.len() >= 20, "only {} alerts read", out.len());
    out
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_has_a_severity_annotations_and_a_runbook_section() {
    let runbook_path = sea_infra::project_root().join("docs/runbooks/alerts.md");
    let runbook = std::fs::read_to_string(&runbook_path).unwrap();
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(anchor)
        .collect();
    for (name, alert) in alerts() {
        assert!(
            matches!(alert.severity.as_deref(), Some("critical" | "warning")),
            "{name}: severity {:?}",
            alert.severity
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(alert.annotations.contains_key(key), "{name}: no {key}");
        }
        let url = &alert.annotations["runbook_url"];
        let want = format!("docs/runbooks/alerts.md#{}", name.to_lowercase());
        assert_eq!(url, &want, "{name}: runbook_url");
        assert!(
            anchors.contains(&name.to_lowercase()),
            "{name}: no `### {name}` section in docs/runbooks/alerts.md"
        );
    }
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    // (alert, firing case seen, quiet case seen)
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for file in test_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = line.strip_prefix("alertname: ") else {
                continue;
            };
            let next = lines.get(i + 1).copied().unwrap_or("");
            let entry = cases.entry(name.to_owned()).or_default();
            if next == "exp_alerts: []" {
                entry.1 = true;
            } else if next == "exp_alerts:" {
                entry.0 = true;
            }
        }
    }
    for name in alerts().keys() {
        let (firing, quiet) = cases.get(name).copied().unwrap_or_default();
        assert!(firing, "{name}: no unit test where it fires");
        assert!(quiet, "{name}: no unit test where it stays quiet");
    }
}
