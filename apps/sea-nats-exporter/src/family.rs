//! One scrape's result: metric families built from the servers' answers, encoded through
//! `prometheus-client`. A fresh `Snapshot` per scrape means nothing can outlive the answer it
//! came from (prometheus-nats-exporter keeps gauge children forever: frozen values).

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The type a family is exported with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// prometheus-client appends `_total` to every counter; families whose Go name has no
    /// `_total` are exported untyped to keep the name (see `names.md`).
    Untyped,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
        }
    }
}

pub type Labels = Vec<(String, String)>;

#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<(Labels, f64)>,
}

/// Metric families by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub families: BTreeMap<String, Family>,
}

/// Labels from `(name, value)` pairs.
pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

impl Snapshot {
    pub fn gauge(&mut self, name: &str, help: &str, labels: Labels, value: f64) {
        self.push(name, help, Kind::Gauge, labels, value);
    }

    pub fn push(&mut self, name: &str, help: &str, kind: Kind, labels: Labels, value: f64) {
        let family = self
            .families
            .entry(name.to_owned())
            .or_insert_with(|| Family {
                help: help.to_owned(),
                kind,
                samples: Vec::new(),
            });
        family.samples.push((labels, value));
    }

    /// Adds another server's families (label sets never collide: each carries its server_id).
    pub fn merge(&mut self, other: Snapshot) {
        for (name, family) in other.families {
            for (labels, value) in family.samples {
                self.push(&name, &family.help, family.kind, labels, value);
            }
        }
    }

    /// The first sample of `name` whose labels include every pair of `want` (tests, rules).
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        self.families.get(name)?.samples.iter().find_map(|(l, v)| {
            want.iter()
                .all(|(k, w)| l.iter().any(|(lk, lv)| lk == k && lv == w))
                .then_some(*v)
        })
    }

    /// The Prometheus text format (0.0.4), as prometheus-nats-exporter serves it.
    pub fn encode_text(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, family) in &self.families {
            let kind = match family.kind {
                Kind::Gauge => MetricType::Gauge,
                Kind::Untyped => MetricType::Unknown,
            };
            let mut metric = encoder.encode_descriptor(name, &family.help, None, kind)?;
            for (labels, value) in &family.samples {
                let sample = metric.encode_family(labels)?;
                // Whole numbers print as integers (`8`, not `8.0`), as the Go exporter's do.
                if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
                    ConstGauge::new(*value as i64).encode(sample)?;
                } else {
                    ConstGauge::new(*value).encode(sample)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_gauges_and_untyped_families_with_their_names_unchanged() {
        let mut s = Snapshot::default();
        s.gauge(
            "gnatsd_varz_connections",
            "connections",
            labels([("server_id", "nats-1")]),
            3.0,
        );
        s.push(
            "gnatsd_connz_in_msgs",
            "in_msgs",
            Kind::Untyped,
            labels([("server_id", "nats-1")]),
            12.0,
        );
        s.gauge(
            "gnatsd_varz_server_name",
            "server_name",
            labels([("server_id", "a\"b"), ("value", "x")]),
            1.0,
        );
        let text = s.encode_text();
        assert!(
            text.contains("# TYPE gnatsd_connz_in_msgs untyped\n"),
            "{text}"
        );
        assert!(
            text.contains("gnatsd_connz_in_msgs{server_id=\"nats-1\"} 12"),
            "{text}"
        );
        assert!(
            text.contains("gnatsd_varz_connections{server_id=\"nats-1\"} 3"),
            "{text}"
        );
        assert!(text.contains("server_id=\"a\\\"b\""), "{text}");
    }
}
