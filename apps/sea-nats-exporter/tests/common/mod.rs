//! What the exporter's test binaries share: real deployments, recorded answers, the names table
//! and its check.

#![allow(dead_code)] // each test binary uses a part

pub mod dashboards;
pub mod deploy;
pub mod fixtures;
pub mod names;
