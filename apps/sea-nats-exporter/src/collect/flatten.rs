//! The generic collector of prometheus-nats-exporter (`collector.go`, `objectToMetrics`), used
//! for `/varz` and `/routez`: every JSON number becomes a gauge named after its path, a few
//! string keys become `{value="..."}` gauges of 1, time strings become epoch milliseconds.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{epoch_ms, server_labels};
use crate::family::{labels, Snapshot};

/// Flattened paths the Go exporter leaves out on purpose.
const SKIP: [&str; 9] = [
    "leaf",
    "trusted_operators_claim",
    "cluster_tls_timeout",
    "cluster_cluster_port",
    "cluster_auth_timeout",
    "gateway_port",
    "gateway_auth_timeout",
    "gateway_tls_timeout",
    "gateway_connect_retries",
];

/// String keys exported (as a label, or as a time when they parse as one).
const LABEL_KEYS: [&str; 8] = [
    "server_id",
    "server_name",
    "version",
    "domain",
    "leader",
    "name",
    "start",
    "config_load_time",
];

/// `gnatsd_<endpoint>_<flattened path>` for every exported leaf of `answer`.
pub fn collect(out: &mut Snapshot, endpoint: &str, server_id: &str, answer: &Value) {
    if let Value::Object(map) = answer {
        walk(out, &mut HashSet::new(), endpoint, server_id, map, &[]);
    }
}

fn walk(
    out: &mut Snapshot,
    seen: &mut HashSet<String>,
    endpoint: &str,
    server_id: &str,
    map: &Map<String, Value>,
    path: &[&str],
) {
    for (key, value) in map {
        let mut here = path.to_vec();
        here.push(key);
        let fqn = fq_name(&here);
        if SKIP.contains(&fqn.as_str()) || fqn.is_empty() {
            continue;
        }
        // Two JSON paths can flatten to one name: the first wins, as in Go.
        if seen.contains(&fqn) {
            continue;
        }
        let name = format!("gnatsd_{endpoint}_{fqn}");
        match value {
            Value::Number(n) => {
                let v = n.as_f64().unwrap_or(f64::NAN);
                out.gauge(&name, &fqn, server_labels(server_id), v);
            }
            Value::String(s) if LABEL_KEYS.contains(&key.as_str()) => match epoch_ms(s) {
                Some(ms) => out.gauge(&name, &fqn, server_labels(server_id), ms),
                None => out.gauge(
                    &name,
                    &fqn,
                    labels([("server_id", server_id), ("value", s.as_str())]),
                    1.0,
                ),
            },
            Value::Object(inner) => {
                walk(out, seen, endpoint, server_id, inner, &here);
                continue;
            }
            // Booleans, arrays, null and other strings: not exported (as in Go).
            _ => continue,
        }
        seen.insert(fqn);
    }
}

/// The Go `fqName`: path joined by `_`, `/` turned into `_`, runs of `_` collapsed, trimmed;
/// anything else a metric name cannot hold becomes `_` too.
pub fn fq_name(path: &[&str]) -> String {
    let joined: String = path
        .join("_")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut out = String::with_capacity(joined.len());
    for c in joined.chars() {
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_the_go_flattening() {
        assert_eq!(fq_name(&["http_req_stats", "/varz"]), "http_req_stats_varz");
        assert_eq!(fq_name(&["http_req_stats", "/"]), "http_req_stats");
        assert_eq!(
            fq_name(&["jetstream", "config", "max_memory"]),
            "jetstream_config_max_memory"
        );
    }

    #[test]
    fn numbers_labels_and_times_are_exported_the_rest_dropped() {
        let varz = json!({
            "server_name": "nats-1",
            "connections": 2,
            "start": "2026-12-01T05:00:00.5Z",
            "now": "2026-12-01T05:00:01Z",
            "tls_required": true,
            "connect_urls": ["a"],
            "host": "127.0.0.1",
            "leaf": {"port": 7422},
            "cluster": {"name": "sea-nats", "cluster_port": 6222, "pool_size": 3},
            "jetstream": {"meta": {"leader": "nats-2", "cluster_size": 3}}
        });
        let mut s = Snapshot::default();
        collect(&mut s, "varz", "nats-1", &varz);
        let names: Vec<&str> = s.families.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "gnatsd_varz_cluster_name",
                "gnatsd_varz_cluster_pool_size",
                "gnatsd_varz_connections",
                "gnatsd_varz_jetstream_meta_cluster_size",
                "gnatsd_varz_jetstream_meta_leader",
                "gnatsd_varz_server_name",
                "gnatsd_varz_start",
            ]
        );
        assert_eq!(s.value("gnatsd_varz_start", &[]), Some(1_796_101_200_500.0));
        assert_eq!(
            s.value("gnatsd_varz_jetstream_meta_leader", &[("value", "nats-2")]),
            Some(1.0)
        );
    }
}
