//! `/healthz`, as prometheus-nats-exporter's `healthz.go`: `gnatsd_healthz_status` 0 when ok,
//! 1 otherwise (absent when the request failed) and `gnatsd_healthz_status_value{value}` 1 when
//! ok, else 0 with the status, or `unreachable` when the request failed.

use serde_json::Value;

use super::{server_labels, text};
use crate::family::{labels, Snapshot};

pub fn collect(out: &mut Snapshot, server_id: &str, healthz: Option<&Value>) {
    let status = healthz.map(|h| text(h, "status"));
    if let Some(status) = status {
        let bad = if status == "ok" { 0.0 } else { 1.0 };
        out.gauge(
            "gnatsd_healthz_status",
            "status",
            server_labels(server_id),
            bad,
        );
    }
    let ok = if status == Some("ok") { 1.0 } else { 0.0 };
    out.gauge(
        "gnatsd_healthz_status_value",
        "status",
        labels([
            ("server_id", server_id),
            ("value", status.unwrap_or("unreachable")),
        ]),
        ok,
    );
}
