//! The Prometheus configuration SEA renders: the scrape jobs the alert rules name
//! (`sea-nats-exporter`, `sea-mq-worker`) over the targets it is given, and the rule file. One
//! renderer for both places a Prometheus runs: `up --observe` (`deployment::observe`, loopback
//! targets) and the compose files' `observe` profile (`compose_observe`, service names).

use std::path::Path;
use std::time::Duration;

/// The exporter's and Prometheus's own ports (for `up --observe`: when free, else free ones are
/// taken).
pub const DEFAULT_EXPORTER_PORT: u16 = 7777;
pub const DEFAULT_PROMETHEUS_PORT: u16 = 9090;

/// The scrape jobs the alert rules name (`up{job=...}`).
pub const EXPORTER_JOB: &str = "sea-nats-exporter";
pub const WORKER_JOB: &str = "sea-mq-worker";

/// Prometheus's scrape and evaluation interval, for `up --observe` and the compose files.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The Prometheus configuration: the exporter and the workers (`host:port` targets as
/// Prometheus reaches them: loopback addresses for `up --observe`, service names in the compose
/// files), the rules at `rules` (a path as Prometheus sees it), the interval.
pub fn prometheus_config(
    exporter: &str,
    workers: &[String],
    rules: &Path,
    interval: Duration,
) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let list = |items: &[String]| {
        items
            .iter()
            .map(|t| quote(t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ms = interval.as_millis().max(1);
    // The exporter answers within its own timeout (3 s by default); the scrape may take as long
    // as the interval allows.
    let timeout = ms.min(10_000);
    let mut out = format!(
        "# Rendered by sea-infra (render::prometheus::prometheus_config); do not edit.\n\
         global:\n  scrape_interval: {ms}ms\n  evaluation_interval: {ms}ms\n  scrape_timeout: {timeout}ms\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: {EXPORTER_JOB}\n    static_configs:\n      - targets: [{}]\n",
        quote(&rules.display().to_string()),
        list(&[exporter.to_owned()]),
    );
    if !workers.is_empty() {
        out.push_str(&format!(
            "  - job_name: {WORKER_JOB}\n    static_configs:\n      - targets: [{}]\n",
            list(workers)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_jobs_the_rules_use() {
        let text = prometheus_config(
            "127.0.0.1:7777",
            &["127.0.0.1:8080".to_owned()],
            Path::new("/s/observe/alerts.yml"),
            Duration::from_secs(1),
        );
        assert!(text.contains("job_name: sea-nats-exporter"), "{text}");
        assert!(text.contains("targets: [\"127.0.0.1:7777\"]"), "{text}");
        assert!(text.contains("job_name: sea-mq-worker"), "{text}");
        assert!(text.contains("- \"/s/observe/alerts.yml\""), "{text}");
        assert!(text.contains("scrape_interval: 1000ms"), "{text}");
        let without = prometheus_config("a:1", &[], Path::new("r"), Duration::from_secs(5));
        assert!(!without.contains(WORKER_JOB), "{without}");
    }
}
