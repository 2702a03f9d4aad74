//! The exporter's own series, which prometheus-nats-exporter lacks: whether each server and
//! each of its endpoints answered this scrape, how long the server took, and how many gateway
//! and leafnode links the server is configured to have (from its `/varz`, which the Go
//! exporter's generic flattening drops because they are arrays), so alerts can compare the
//! links that exist with the links that should.

use serde_json::Value;

use super::server_labels;
use crate::family::{labels, Snapshot};
use crate::fetch::{Answers, Endpoint};

/// Every family this module adds, with its type and labels (the names test reads this list).
pub const ADDITIONS: [(&str, &str, &[&str]); 6] = [
    ("nats_exporter_up", "gauge", &["server_id", "url"]),
    (
        "nats_exporter_endpoint_up",
        "gauge",
        &["server_id", "endpoint"],
    ),
    (
        "nats_exporter_scrape_duration_seconds",
        "gauge",
        &["server_id"],
    ),
    (
        "nats_exporter_gateway_remotes_configured",
        "gauge",
        &["server_id"],
    ),
    (
        "nats_exporter_leafnode_remotes_configured",
        "gauge",
        &["server_id"],
    ),
    (
        "nats_exporter_leafnode_remotes_connected",
        "gauge",
        &["server_id"],
    ),
];

pub fn collect(out: &mut Snapshot, server_id: &str, answers: &Answers) {
    let up = answers.get(Endpoint::Varz).is_some();
    out.gauge(
        "nats_exporter_up",
        "1 when the server's /varz answered this scrape (then its other series are exported), else 0 and nothing else of it",
        labels([("server_id", server_id), ("url", answers.url.as_str())]),
        f64::from(u8::from(up)),
    );
    for (endpoint, answer) in &answers.answers {
        out.gauge(
            "nats_exporter_endpoint_up",
            "1 when the endpoint answered this scrape with JSON",
            labels([("server_id", server_id), ("endpoint", endpoint.name())]),
            f64::from(u8::from(answer.is_ok())),
        );
    }
    out.gauge(
        "nats_exporter_scrape_duration_seconds",
        "Time to fetch every endpoint of the server (concurrently)",
        server_labels(server_id),
        answers.took.as_secs_f64(),
    );
}

/// Leafnode connections this server dialled (`is_spoke` in `/leafz`), to compare with the
/// remotes it is configured to dial: accepted connections do not count.
pub fn connected_leaf_remotes(out: &mut Snapshot, server_id: &str, leafz: &Value) {
    let spokes = leafz
        .get("leafs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| l.get("is_spoke").and_then(Value::as_bool) == Some(true))
        .count();
    out.gauge(
        "nats_exporter_leafnode_remotes_connected",
        "Leafnode connections this server dialled and holds now",
        server_labels(server_id),
        spokes as f64,
    );
}

/// Configured links from `/varz`: remote gateways other than the server's own cluster, and
/// leafnode remotes this server dials.
pub fn configured_links(out: &mut Snapshot, server_id: &str, varz: &Value) {
    let gateway = varz.get("gateway").unwrap_or(&Value::Null);
    let own = gateway.get("name").and_then(Value::as_str).unwrap_or("");
    let gateways = gateway
        .get("gateways")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|g| g.get("name").and_then(Value::as_str) != Some(own))
        .count();
    out.gauge(
        "nats_exporter_gateway_remotes_configured",
        "Remote gateways (clusters) this server is configured to connect to",
        server_labels(server_id),
        gateways as f64,
    );
    let leaf_remotes = varz
        .get("leaf")
        .and_then(|l| l.get("remotes"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    out.gauge(
        "nats_exporter_leafnode_remotes_configured",
        "Leafnode remotes this server dials (each should hold one leafnode connection)",
        server_labels(server_id),
        leaf_remotes as f64,
    );
}
