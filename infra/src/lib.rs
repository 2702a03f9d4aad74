//! Shared code of SEA messaging: the topology model and everything derived from it.
//!
//! `xtask` and the worker stay thin over this crate. See `docs/architecture.md` for the map.

pub mod compose;
pub mod compose_file;
pub mod crosscheck;
pub mod docker;
pub mod env;
pub mod federation;
pub mod harness;
pub mod health;
pub mod image;
pub mod k8s;
pub mod load;
pub mod monitor;
pub mod nats_config;
pub mod nats_server;
pub mod observe;
pub mod ports;
pub mod process;
pub mod provision;
pub mod render;
pub mod spec;
pub mod topology;

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `<root>/infra`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("infra has a parent directory")
        .to_path_buf()
}
