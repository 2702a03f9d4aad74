//! `/leafz`, as prometheus-nats-exporter's `leafz.go`: the number of leafnode connections and
//! per connection its counters. `account_id` repeats `account`, as in Go. Without `?subs=1`
//! (which the Go exporter does not send) `gnatsd_leafz_conn_subscriptions` never appears.

use serde_json::Value;

use super::{go_duration_secs, num, server_labels, text};
use crate::family::{labels, Snapshot};

pub fn collect(out: &mut Snapshot, server_id: &str, leafz: &Value) {
    for leaf in leafz
        .get("leafs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let account = text(leaf, "account");
        let port = num(leaf, "port").to_string();
        let l = labels([
            ("server_id", server_id),
            ("account", account),
            ("account_id", account),
            ("ip", text(leaf, "ip")),
            ("port", port.as_str()),
            ("name", text(leaf, "name")),
        ]);
        let rtt = go_duration_secs(text(leaf, "rtt")).unwrap_or(0.0);
        let series = [
            ("info", "info", 1.0),
            ("conn_rtt", "rtt", rtt),
            ("conn_in_msgs", "in_msgs", num(leaf, "in_msgs")),
            ("conn_out_msgs", "out_msgs", num(leaf, "out_msgs")),
            ("conn_in_bytes", "in_bytes", num(leaf, "in_bytes")),
            ("conn_out_bytes", "out_bytes", num(leaf, "out_bytes")),
            (
                "conn_subscriptions_total",
                "subscriptions_total",
                num(leaf, "subscriptions"),
            ),
        ];
        for (suffix, help, value) in series {
            out.gauge(&format!("gnatsd_leafz_{suffix}"), help, l.clone(), value);
        }
    }
    out.gauge(
        "gnatsd_leafz_conn_nodes_total",
        "nodes_total",
        server_labels(server_id),
        num(leafz, "leafnodes"),
    );
}
