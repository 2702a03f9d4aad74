//! sea-nats-exporter: Prometheus metrics for nats-server, whose monitoring endpoints speak only
//! JSON, under prometheus-nats-exporter's names, types and labels (see `names.md`).
//!
//! - `config`: env-only configuration, every invalid variable reported at once.
//! - `fetch`: every endpoint of every server, concurrently, each request bounded.
//! - `collect`: answers to metric families, one module per endpoint, plus the exporter's own.
//! - `family`: one scrape's families, encoded with `prometheus-client`.
//! - `scrape`: fetch + collect, remembering each URL's server name.
//! - `serve`: `/metrics` and `/healthz`.
//! - `run`: start-up and graceful shutdown.

pub mod collect;
pub mod config;
pub mod family;
pub mod fetch;
pub mod run;
pub mod scrape;
pub mod serve;
