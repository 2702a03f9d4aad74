//! From one scrape's answers to metric families: one module per endpoint, named and shaped as
//! prometheus-nats-exporter's collectors, plus the exporter's own series (`exporter.rs`).
//!
//! Identity: `server_id` carries the server's `server_name` (the Go exporter's
//! `-use_internal_server_name`): stable across restarts, unlike the server's random id.

mod connz;
mod exporter;
pub mod flatten;
mod gatewayz;
mod healthz;
mod jsz;
mod leafz;

use serde_json::Value;

use crate::family::{labels, Labels, Snapshot};
use crate::fetch::{Answers, Endpoint};

pub use exporter::ADDITIONS;

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Export consumers without a durable name too.
    pub ephemeral_consumers: bool,
}

/// One server's families. `known_name` is the `server_name` this URL answered with before, so a
/// server that stops answering keeps its `server_id` on `nats_exporter_up`; returns the name the
/// server answered with now, if it did.
pub fn server(
    answers: &Answers,
    known_name: Option<&str>,
    opts: Options,
) -> (Snapshot, Option<String>) {
    let mut out = Snapshot::default();
    let varz = answers.get(Endpoint::Varz);
    let name = varz
        .and_then(|v| v.get("server_name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let server_id = name
        .as_deref()
        .or(known_name)
        .unwrap_or(answers.url.as_str())
        .to_owned();
    exporter::collect(&mut out, &server_id, answers);
    // Without /varz there is no identity to hang anything on: only `up` (0) is exported, never
    // values of an earlier scrape.
    let Some(varz) = varz else {
        return (out, None);
    };
    flatten::collect(&mut out, "varz", &server_id, varz);
    exporter::configured_links(&mut out, &server_id, varz);
    if let Some(connz) = answers.get(Endpoint::Connz) {
        connz::collect(&mut out, &server_id, connz);
    }
    if let Some(routez) = answers.get(Endpoint::Routez) {
        flatten::collect(&mut out, "routez", &server_id, routez);
    }
    if let Some(gatewayz) = answers.get(Endpoint::Gatewayz) {
        gatewayz::collect(&mut out, &server_id, gatewayz);
    }
    if let Some(leafz) = answers.get(Endpoint::Leafz) {
        leafz::collect(&mut out, &server_id, leafz);
        exporter::connected_leaf_remotes(&mut out, &server_id, leafz);
    }
    healthz::collect(&mut out, &server_id, answers.get(Endpoint::Healthz));
    if let Some(jsz) = answers.get(Endpoint::Jsz) {
        let server_name = name.as_deref().unwrap_or_default();
        jsz::collect(&mut out, &server_id, server_name, jsz, opts);
    }
    (out, name)
}

fn server_labels(server_id: &str) -> Labels {
    labels([("server_id", server_id)])
}

/// A JSON number as f64 (absent or not a number: 0, as Go's zero values).
fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An RFC 3339 time as milliseconds since the epoch (Go's `parseDateString`).
fn epoch_ms(s: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as f64)
}

/// An RFC 3339 time as fractional seconds since the epoch.
fn epoch_secs(s: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

/// A Go `time.Duration` string (`1.5ms`, `250µs`, `1h2m3s`, `0s`) in seconds.
fn go_duration_secs(s: &str) -> Option<f64> {
    if s == "0" || s == "0s" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let k = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * k;
        rest = &rest[unit_end..];
    }
    Some(total)
}

/// nats-server's own uptime format (`1y2d3h4m5s`, years of 365 days) in seconds; -1 when it
/// does not parse, as the Go exporter's `parseDuration`.
fn nats_uptime_secs(s: &str) -> f64 {
    let mut total = 0.0;
    let mut n = String::new();
    for c in s.chars() {
        let k = match c {
            'y' => 365.0 * 86_400.0,
            'd' => 86_400.0,
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => {
                n.push(c);
                continue;
            }
        };
        let Ok(v) = n.parse::<f64>() else { return -1.0 };
        total += v * k;
        n.clear();
    }
    if !n.is_empty() || s.is_empty() {
        return -1.0;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_secs("0s"), Some(0.0));
        assert_eq!(go_duration_secs("1.5ms"), Some(0.0015));
        assert!((go_duration_secs("250µs").unwrap() - 0.00025).abs() < 1e-12);
        assert_eq!(go_duration_secs("1h2m3s"), Some(3723.0));
        assert_eq!(go_duration_secs("soon"), None);
        assert_eq!(go_duration_secs(""), None);
    }

    #[test]
    fn nats_uptimes() {
        assert_eq!(nats_uptime_secs("1d2h3m4s"), 93_784.0);
        assert_eq!(nats_uptime_secs("1y0d0h0m0s"), 31_536_000.0);
        assert_eq!(nats_uptime_secs("0s"), 0.0);
        assert_eq!(nats_uptime_secs("3m"), 180.0);
        assert_eq!(nats_uptime_secs("later"), -1.0);
    }

    #[test]
    fn times() {
        assert_eq!(epoch_ms("1970-01-01T00:00:01.5Z"), Some(1500.0));
        assert_eq!(epoch_ms("1970-01-01T01:00:01+01:00"), Some(1000.0));
        assert_eq!(epoch_ms("yesterday"), None);
        assert_eq!(epoch_secs("1970-01-01T00:00:02.25Z"), Some(2.25));
    }
}
