//! sea-mq-worker: a cluster-aware JetStream worker.
//!
//! - `config`: env-only configuration, every invalid variable reported at once.
//! - `connection`: multi-server connect, bounded reconnects, lifecycle events.
//! - `consumer` + `inbox`: the shared durable pull consumer feeding the transactional inbox.
//! - `outbox`: the relay from the `outbox` table to JetStream.
//! - `dlq`: dead-lettering with provenance headers.
//! - `db`: the inbox and outbox tables (SQLite or PostgreSQL).
//! - `http` + `metrics`: `/healthz`, `/readyz`, `/metrics`; `health`: faults they report.
//! - `provision`: the compose files' one-shot provisioner (`sea-mq-worker provision`).
//! - `run`: start-up and graceful shutdown; `logs`: log output, credentials redacted.
//! - `bench`: the probes `cargo xtask bench` runs through the `sea-mq-bench` binary.
//! - `child`: the worker as a child process (for xtask's drills, bench and verify, and tests).
//! - `pg_server`: a private PostgreSQL server (for the tests and `cargo xtask bench`).

pub mod bench;
pub mod child;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod db;
pub mod dlq;
pub mod health;
pub mod http;
pub mod inbox;
pub mod metrics;
pub mod outbox;
pub mod pg_server;
pub mod provision;
pub mod run;
