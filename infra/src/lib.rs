//! `sea-infra`: everything SEA messaging knows about NATS servers, in layers.
//!
//! Each layer may use the ones listed before it, never one after it:
//!
//! 1. [`env`]: reading configuration from environment variables (parsers, collected errors).
//! 2. [`model`]: what a deployment is (profiles, clusters, servers, ports) and what it holds
//!    (streams and consumers). Pure data.
//! 3. [`render`]: text from the model: nats-server configs, compose files, Kubernetes manifests.
//! 4. [`probes`]: the servers' HTTP monitoring endpoints and the health gate judged from them.
//! 5. [`client`]: the NATS client side: connection settings, provisioning, federation, and what
//!    the cluster reports through the JetStream API.
//! 6. [`deployment`]: running the model: the nats-server binary, the process and compose
//!    backends, bring-up behind the health gate, teardown; certificates and secrets.
//!
//! [`service`] (what the long-running binaries share: logs, HTTP endpoint pieces) uses only
//! [`env`]. [`testing`] (feature `testing`, for test code only) sits on top of all of them.
//! `docs/architecture.md` maps the modules and states these rules.

pub mod client;
pub mod deployment;
pub mod env;
pub mod model;
pub mod probes;
pub mod render;
pub mod service;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::{Path, PathBuf};

/// The root of this repository (this crate lives in `<root>/infra`): where committed files are
/// and, unless `SEA_STATE_DIR` says otherwise, where state lives.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("infra has a parent directory")
        .to_path_buf()
}
