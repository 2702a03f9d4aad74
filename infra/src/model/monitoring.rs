//! The names monitoring is wired by, shared by every place that renders it (the process
//! backend's Prometheus, the Kubernetes sidecar and PodMonitors): the scrape jobs the alert
//! rules name and the exporter's image.

/// The scrape jobs the alert rules name (`up{job=...}`).
pub const EXPORTER_JOB: &str = "sea-nats-exporter";
pub const WORKER_JOB: &str = "sea-mq-worker";

/// The exporter image's default name (`cargo xtask image --exporter`; what the Kubernetes
/// sidecar runs).
pub const DEFAULT_EXPORTER_IMAGE: &str = "sea-nats-exporter:dev";
