//! Prometheus metrics, in the text exposition format. A handful of atomics: no registry needed.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Everything the worker counts.
#[derive(Default)]
pub struct Metrics {
    /// Events written to the inbox for the first time.
    pub events_inserted: AtomicU64,
    /// Events already in the inbox (redelivered or published twice): acked, no second row.
    pub events_duplicate: AtomicU64,
    /// Events moved to the DLQ (poison, or still failing on the last delivery).
    pub events_dlq: AtomicU64,
    /// Events nak'ed for a later retry (transient failure such as a database outage).
    pub events_retried: AtomicU64,
    /// Deliveries that were not the first for their message.
    pub redeliveries: AtomicU64,
    pub outbox_published: AtomicU64,
    pub outbox_failed: AtomicU64,
    /// Rows republished later than the retry horizon (JetStream may not de-duplicate them).
    pub outbox_late_republish: AtomicU64,
    pub outbox_pending: AtomicU64,
    pub nats_connected: AtomicU64,
    pub nats_reconnects: AtomicU64,
    pub nats_disconnects: AtomicU64,
    pub consumer_rebuilds: AtomicU64,
    /// From a message's arrival at the worker to its ack.
    pub processing: Histogram,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Relaxed);
        let _ = writeln!(out, "# HELP sea_worker_events_total Events handled, by outcome.\n# TYPE sea_worker_events_total counter");
        for (outcome, c) in [
            ("inserted", &self.events_inserted),
            ("duplicate", &self.events_duplicate),
            ("dlq", &self.events_dlq),
            ("retried", &self.events_retried),
        ] {
            let _ = writeln!(
                out,
                "sea_worker_events_total{{outcome=\"{outcome}\"}} {}",
                get(c)
            );
        }
        let simple: [(&str, &str, &str, &AtomicU64); 9] = [
            (
                "sea_worker_duplicates_skipped_total",
                "counter",
                "Events already in the inbox, acked without a second row.",
                &self.events_duplicate,
            ),
            (
                "sea_worker_redeliveries_total",
                "counter",
                "Deliveries that were not a message's first.",
                &self.redeliveries,
            ),
            (
                "sea_worker_dlq_total",
                "counter",
                "Events moved to the dead-letter queue.",
                &self.events_dlq,
            ),
            (
                "sea_worker_outbox_published_total",
                "counter",
                "Outbox rows published and marked.",
                &self.outbox_published,
            ),
            (
                "sea_worker_outbox_failed_total",
                "counter",
                "Outbox rows that can never be published.",
                &self.outbox_failed,
            ),
            (
                "sea_worker_outbox_pending",
                "gauge",
                "Outbox rows waiting to be relayed.",
                &self.outbox_pending,
            ),
            (
                "sea_worker_nats_connected",
                "gauge",
                "1 while connected to a NATS server.",
                &self.nats_connected,
            ),
            (
                "sea_worker_nats_reconnects_total",
                "counter",
                "Reconnections to NATS after a disconnect.",
                &self.nats_reconnects,
            ),
            (
                "sea_worker_consumer_rebuilds_total",
                "counter",
                "Times the pull consumer was bound again after errors.",
                &self.consumer_rebuilds,
            ),
        ];
        for (name, kind, help, c) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                get(c)
            );
        }
        self.processing.render(
            &mut out,
            "sea_worker_processing_seconds",
            "Time from a message's arrival to its ack.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        Metrics::add(&m.events_inserted, 3);
        m.processing.observe(Duration::from_micros(700));
        m.processing.observe(Duration::from_millis(30));
        let text = m.render();
        assert!(
            text.contains("sea_worker_events_total{outcome=\"inserted\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("sea_worker_processing_seconds_bucket{le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sea_worker_processing_seconds_bucket{le=\"0.05\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("sea_worker_processing_seconds_count 2\n"),
            "{text}"
        );
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample: {line}");
        }
    }
}
