//! The names table (`names.toml`) and the check of an exported snapshot against it.

use std::collections::{BTreeMap, BTreeSet};

use sea_nats_exporter::collect::ADDITIONS;
use sea_nats_exporter::family::Snapshot;
use sea_nats_exporter::fetch::{Answers, Endpoint};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Table {
    pub metric: Vec<Entry>,
    pub source: Source,
}

#[derive(Debug, Deserialize)]
pub struct Source {
    pub version: String,
    pub commit: String,
    pub files: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Entry {
    pub endpoint: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub sea_type: Option<String>,
    pub labels: Vec<String>,
    pub requires: String,
    #[serde(default)]
    pub cumulative: bool,
}

impl Entry {
    /// The type sea-nats-exporter exports.
    pub fn exported_type(&self) -> &str {
        self.sea_type.as_deref().unwrap_or(&self.kind)
    }
}

pub fn table() -> Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/names.toml");
    toml::from_str(&std::fs::read_to_string(path).unwrap()).expect("names.toml parses")
}

/// Whether a JSON pointer exists in `v`; a `*` segment matches any element or key.
pub fn exists(v: &Value, pointer: &str) -> bool {
    let Some(rest) = pointer.strip_prefix('/') else {
        return pointer.is_empty();
    };
    let (head, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let head = head.replace("~1", "/").replace("~0", "~");
    match (head.as_str(), v) {
        ("*", Value::Array(items)) => items.iter().any(|i| exists(i, tail)),
        ("*", Value::Object(map)) => map.values().any(|i| exists(i, tail)),
        (key, Value::Object(map)) => map.get(key).is_some_and(|i| exists(i, tail)),
        (idx, Value::Array(items)) => idx
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get(i))
            .is_some_and(|i| exists(i, tail)),
        _ => false,
    }
}

/// Everything wrong with `snapshot` (collected from `servers`) against the table: names, types
/// or label sets not in it, and series the answers can produce but that are missing.
pub fn problems(table: &Table, snapshot: &Snapshot, servers: &[(String, Answers)]) -> Vec<String> {
    let by_name: BTreeMap<&str, &Entry> =
        table.metric.iter().map(|e| (e.name.as_str(), e)).collect();
    let additions: BTreeMap<&str, (&str, &[&str])> =
        ADDITIONS.iter().map(|(n, t, l)| (*n, (*t, *l))).collect();
    let mut out = Vec::new();
    for (name, family) in &snapshot.families {
        let (kind, labels): (&str, BTreeSet<&str>) = if let Some(e) = by_name.get(name.as_str()) {
            (
                e.exported_type(),
                e.labels.iter().map(String::as_str).collect(),
            )
        } else if let Some((kind, labels)) = additions.get(name.as_str()) {
            (kind, labels.iter().copied().collect())
        } else {
            out.push(format!("{name}: exported but not in names.toml"));
            continue;
        };
        if family.kind.as_str() != kind {
            out.push(format!(
                "{name}: exported as {}, table says {kind}",
                family.kind.as_str()
            ));
        }
        for (sample, _) in &family.samples {
            let got: BTreeSet<&str> = sample.iter().map(|(k, _)| k.as_str()).collect();
            if got != labels {
                out.push(format!("{name}: labels {got:?}, table says {labels:?}"));
                break;
            }
        }
    }
    for (server, answers) in servers {
        for entry in &table.metric {
            let endpoint = Endpoint::from_name(&entry.endpoint).expect("known endpoint");
            let Some(answer) = answers.get(endpoint) else {
                continue;
            };
            if !exists(answer, &entry.requires) {
                continue;
            }
            let present = snapshot.families.get(&entry.name).is_some_and(|f| {
                f.samples
                    .iter()
                    .any(|(l, _)| l.iter().any(|(k, v)| k == "server_id" && v == server))
            });
            if !present {
                out.push(format!(
                    "{}: {server}'s /{} has {:?} but the series is missing",
                    entry.name, entry.endpoint, entry.requires
                ));
            }
        }
    }
    out
}
