//! `/gatewayz`, as prometheus-nats-exporter's `gatewayz.go`: per gateway connection, outbound
//! (one per remote cluster, only while connected) and inbound (one per connection).

use serde_json::Value;

use super::{epoch_secs, go_duration_secs, nats_uptime_secs, num, text};
use crate::family::{labels, Snapshot};

pub fn collect(out: &mut Snapshot, server_id: &str, gatewayz: &Value) {
    let local = text(gatewayz, "name");
    if let Some(outbound) = gatewayz.get("outbound_gateways").and_then(Value::as_object) {
        for (remote, gw) in outbound {
            connection(out, "outbound_gateway", server_id, local, remote, gw);
        }
    }
    if let Some(inbound) = gatewayz.get("inbound_gateways").and_then(Value::as_object) {
        for (remote, gws) in inbound {
            for gw in gws.as_array().into_iter().flatten() {
                connection(out, "inbound_gateway", server_id, local, remote, gw);
            }
        }
    }
}

fn connection(
    out: &mut Snapshot,
    kind: &str,
    server_id: &str,
    local: &str,
    remote: &str,
    gw: &Value,
) {
    let conn = gw.get("connection").unwrap_or(&Value::Null);
    let cid = num(conn, "cid").to_string();
    let l = labels([
        ("gateway_name", local),
        ("cid", cid.as_str()),
        ("remote_gateway_name", remote),
        ("server_id", server_id),
    ]);
    let configured = gw
        .get("configured")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Go truncates the times to whole seconds (`time.Unix()`).
    let secs = |key: &str| epoch_secs(text(conn, key)).map_or(0.0, f64::floor);
    let series = [
        ("configured", "configured", f64::from(u8::from(configured))),
        (
            "conn_start_time_seconds",
            "conn_start_time_seconds",
            secs("start"),
        ),
        (
            "conn_last_activity_seconds",
            "conn_last_activity_seconds",
            secs("last_activity"),
        ),
        (
            "conn_uptime_seconds",
            "conn_uptime_seconds",
            nats_uptime_secs(text(conn, "uptime")),
        ),
        (
            "conn_idle_seconds",
            "conn_idle_seconds",
            nats_uptime_secs(text(conn, "idle")),
        ),
        (
            "conn_rtt",
            "rtt",
            go_duration_secs(text(conn, "rtt")).unwrap_or(0.0),
        ),
        (
            "conn_pending_bytes",
            "pending_bytes",
            num(conn, "pending_bytes"),
        ),
        ("conn_in_msgs", "in_msgs", num(conn, "in_msgs")),
        ("conn_out_msgs", "out_msgs", num(conn, "out_msgs")),
        ("conn_in_bytes", "in_bytes", num(conn, "in_bytes")),
        ("conn_out_bytes", "out_bytes", num(conn, "out_bytes")),
        (
            "conn_subscriptions",
            "subscriptions",
            num(conn, "subscriptions"),
        ),
    ];
    for (suffix, help, value) in series {
        out.gauge(
            &format!("gnatsd_gatewayz_{kind}_{suffix}"),
            help,
            l.clone(),
            value,
        );
    }
}
