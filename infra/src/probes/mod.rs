//! What the servers say about themselves over HTTP: the monitoring endpoints ([`monitor`]) and
//! the health gate judged from them ([`health`]). Every backend shares these, since processes
//! and containers expose the same endpoints.

pub mod health;
pub mod monitor;

pub use health::{CheckName, HealthReport, ServerHealth};
pub use monitor::{Monitor, MonitorError};
