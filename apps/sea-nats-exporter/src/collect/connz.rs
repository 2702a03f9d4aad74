//! `/connz`, as prometheus-nats-exporter's `connz.go` without `-connz_detailed`: totals only,
//! no per-connection labels. The sums cover the page the server returns (1024 connections by
//! default), exactly as in Go; `gnatsd_connz_total` says how many there are in all.

use serde_json::Value;

use super::{num, server_labels};
use crate::family::{Kind, Snapshot};

pub fn collect(out: &mut Snapshot, server_id: &str, connz: &Value) {
    let conns = connz.get("connections").and_then(Value::as_array);
    let sum = |key: &str| {
        conns
            .into_iter()
            .flatten()
            .fold(0.0, |acc, c| acc + num(c, key))
    };
    let l = || server_labels(server_id);
    for key in ["num_connections", "total", "offset", "limit"] {
        out.gauge(&format!("gnatsd_connz_{key}"), key, l(), num(connz, key));
    }
    out.gauge(
        "gnatsd_connz_pending_bytes",
        "pending_bytes",
        l(),
        sum("pending_bytes"),
    );
    out.gauge(
        "gnatsd_connz_subscriptions",
        "subscriptions",
        l(),
        sum("subscriptions"),
    );
    // Counters in Go, named without `_total`: untyped keeps the name (see names.md).
    for key in ["in_bytes", "out_bytes", "in_msgs", "out_msgs"] {
        out.push(
            &format!("gnatsd_connz_{key}"),
            key,
            Kind::Untyped,
            l(),
            sum(key),
        );
    }
}
