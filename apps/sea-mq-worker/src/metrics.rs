//! Prometheus metrics through `prometheus-client`: OpenMetrics when the scraper asks for it
//! (`Accept: application/openmetrics-text`), the classic text format otherwise. Names and
//! labels are a contract (`cargo xtask bench`, the drills, the tests and the alert rules read
//! them): `sea_worker_events_total{outcome="inserted"}` and the rest, as documented in
//! `docs/worker.md`.
//!
//! The hot path only touches atomics: every counter is created up front (the `outcome` children
//! too) and the latency histogram is a fixed array of atomic buckets, encoded at scrape time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The `Content-Type` of an OpenMetrics answer.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A lock-free histogram: one atomic per bucket (not cumulative), sum in microseconds. Clones
/// share the atomics (the registry holds one, the worker another).
#[derive(Clone, Debug, Default)]
pub struct Histogram(Arc<Buckets>);

#[derive(Debug, Default)]
struct Buckets {
    counts: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.0.counts[i].fetch_add(1, Relaxed);
        }
        self.0.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
        self.0.count.fetch_add(1, Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let count = self.0.count.load(Relaxed);
        let mut buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.0.counts)
            .map(|(bound, c)| (*bound, c.load(Relaxed)))
            .collect();
        // Observations above the last bound are only in the total: the `+Inf` bucket.
        let finite: u64 = buckets.iter().map(|(_, n)| n).sum();
        buckets.push((f64::INFINITY, count.saturating_sub(finite)));
        let sum = self.0.sum_micros.load(Relaxed) as f64 / 1e6;
        encoder
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Everything the worker counts.
pub struct Metrics {
    registry: Registry,
    /// Events written to the inbox for the first time.
    pub events_inserted: Counter,
    /// Events already in the inbox (redelivered or published twice): acked, no second row.
    pub events_duplicate: Counter,
    /// Events moved to the DLQ (poison, or still failing on the last delivery).
    pub events_dlq: Counter,
    /// Events whose DLQ publish still failed on their last delivery: left only in their stream.
    pub dlq_failed: Counter,
    /// Events nak'ed for a later retry (transient failure such as a database outage).
    pub events_retried: Counter,
    /// Deliveries that were not the first for their message.
    pub redeliveries: Counter,
    pub outbox_published: Counter,
    pub outbox_failed: Counter,
    /// Rows republished later than the retry horizon (JetStream may not de-duplicate them).
    pub outbox_late_republish: Counter,
    pub outbox_pending: Gauge,
    pub nats_connected: Gauge,
    pub nats_reconnects: Counter,
    pub nats_disconnects: Counter,
    pub consumer_rebuilds: Counter,
    /// 1 while the group's durable consumer is bound (one of the `/readyz` conditions).
    pub consumer_bound: Gauge,
    /// From a message's arrival at the worker to its ack.
    pub processing: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let events = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "sea_worker_events",
            "Events handled, by outcome",
            events.clone(),
        );
        let outcome = |o: &'static str| events.get_or_create(&[("outcome", o)]).clone();
        let m = Metrics {
            events_inserted: outcome("inserted"),
            events_duplicate: outcome("duplicate"),
            events_dlq: outcome("dlq"),
            events_retried: outcome("retried"),
            dlq_failed: Counter::default(),
            redeliveries: Counter::default(),
            outbox_published: Counter::default(),
            outbox_failed: Counter::default(),
            outbox_late_republish: Counter::default(),
            outbox_pending: Gauge::default(),
            nats_connected: Gauge::default(),
            nats_reconnects: Counter::default(),
            nats_disconnects: Counter::default(),
            consumer_rebuilds: Counter::default(),
            consumer_bound: Gauge::default(),
            processing: Default::default(),
            registry: Registry::default(),
        };
        // Counters are shared handles: the same atomic under two names where both exist.
        let counters = [
            (
                "sea_worker_duplicates_skipped",
                "Events already in the inbox, acked without a second row",
                &m.events_duplicate,
            ),
            (
                "sea_worker_redeliveries",
                "Deliveries that were not a message's first",
                &m.redeliveries,
            ),
            (
                "sea_worker_dlq",
                "Events moved to the dead-letter queue",
                &m.events_dlq,
            ),
            (
                "sea_worker_dlq_failed",
                "Events not dead-lettered on their last delivery (left in their stream)",
                &m.dlq_failed,
            ),
            (
                "sea_worker_outbox_published",
                "Outbox rows published and marked",
                &m.outbox_published,
            ),
            (
                "sea_worker_outbox_failed",
                "Outbox rows that can never be published",
                &m.outbox_failed,
            ),
            (
                "sea_worker_outbox_late_republish",
                "Outbox rows republished after the retry horizon (JetStream may not de-duplicate them)",
                &m.outbox_late_republish,
            ),
            (
                "sea_worker_nats_reconnects",
                "Reconnections to NATS after a disconnect",
                &m.nats_reconnects,
            ),
            (
                "sea_worker_nats_disconnects",
                "Disconnections from NATS",
                &m.nats_disconnects,
            ),
            (
                "sea_worker_consumer_rebuilds",
                "Times the pull consumer was bound again after errors",
                &m.consumer_rebuilds,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        let gauges = [
            (
                "sea_worker_outbox_pending",
                "Outbox rows waiting to be relayed",
                &m.outbox_pending,
            ),
            (
                "sea_worker_nats_connected",
                "1 while connected to a NATS server",
                &m.nats_connected,
            ),
            (
                "sea_worker_consumer_bound",
                "1 while the group's durable consumer is bound",
                &m.consumer_bound,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "sea_worker_processing_seconds",
            "Time from a message's arrival to its ack",
            m.processing.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn add(counter: &Counter, n: u64) {
        counter.inc_by(n);
    }

    pub fn set(gauge: &Gauge, v: u64) {
        gauge.set(i64::try_from(v).unwrap_or(i64::MAX));
    }

    /// The exposition for an `Accept` header: (content type, body).
    pub fn render(&self, accept: Option<&str>) -> (&'static str, String) {
        let mut out = String::new();
        let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        encoded.expect("writing to a String cannot fail");
        if openmetrics {
            (OPENMETRICS, out)
        } else {
            (
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                out,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sample line is `name{labels} value` or `name value`.
    fn assert_samples_parse(text: &str) {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample: {line}");
        }
    }

    #[test]
    fn renders_counters_and_a_cumulative_histogram_under_the_documented_names() {
        let m = Metrics::default();
        Metrics::add(&m.events_inserted, 3);
        Metrics::add(&m.events_duplicate, 2);
        Metrics::set(&m.nats_connected, 1);
        m.processing.observe(Duration::from_micros(700));
        m.processing.observe(Duration::from_millis(30));
        for accept in [None, Some("application/openmetrics-text; version=1.0.0")] {
            let (content_type, text) = m.render(accept);
            for line in [
                "sea_worker_events_total{outcome=\"inserted\"} 3\n",
                "sea_worker_events_total{outcome=\"duplicate\"} 2\n",
                "sea_worker_events_total{outcome=\"dlq\"} 0\n",
                "sea_worker_events_total{outcome=\"retried\"} 0\n",
                "sea_worker_duplicates_skipped_total 2\n",
                "sea_worker_redeliveries_total 0\n",
                "sea_worker_dlq_total 0\n",
                "sea_worker_dlq_failed_total 0\n",
                "sea_worker_outbox_published_total 0\n",
                "sea_worker_outbox_failed_total 0\n",
                "sea_worker_outbox_pending 0\n",
                "sea_worker_nats_connected 1\n",
                "sea_worker_nats_reconnects_total 0\n",
                "sea_worker_consumer_rebuilds_total 0\n",
                "sea_worker_processing_seconds_bucket{le=\"0.001\"} 1\n",
                "sea_worker_processing_seconds_bucket{le=\"0.05\"} 2\n",
                "sea_worker_processing_seconds_bucket{le=\"+Inf\"} 2\n",
                "sea_worker_processing_seconds_count 2\n",
            ] {
                assert!(
                    text.contains(line),
                    "{content_type}: {line:?} missing:\n{text}"
                );
            }
            assert!(text.contains("# TYPE sea_worker_processing_seconds histogram\n"));
            assert_samples_parse(&text);
            if accept.is_some() {
                assert_eq!(content_type, OPENMETRICS);
                assert!(text.ends_with("# EOF\n"), "{text}");
            } else {
                assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
                assert!(text.contains("# TYPE sea_worker_events_total counter\n"));
            }
        }
    }
}
