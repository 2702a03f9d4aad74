//! What the project's long-running services (`sea-mq-worker`, `sea-nats-exporter`) share:
//! their logs ([`logs`]: level and format from the environment, every line redacted) and the
//! pieces of their HTTP endpoints ([`http`]).

pub mod http;
pub mod logs;
