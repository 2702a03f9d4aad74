//! Text rendered from the model: nats-server configs ([`nats_conf`]), compose files and the
//! configs they mount ([`compose_file`]) with their worker services ([`compose_worker`]) and
//! observing services ([`compose_observe`]), the Prometheus configuration ([`prometheus`]),
//! Kubernetes manifests ([`k8s`]).
//!
//! Output is deterministic (same model, byte-identical text): the files committed to the
//! repository are checked against it by a test, and `cargo xtask render` rewrites them.

pub mod auth;
pub mod compose_file;
pub mod compose_observe;
pub mod compose_worker;
pub mod k8s;
pub mod nats_conf;
pub mod prometheus;

use std::path::Path;

use crate::model::{Profile, Topology};

/// A rendered file, named relative to the directory it belongs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: String,
    pub contents: String,
}

/// The rendered files committed to the repository, with paths relative to the workspace root:
/// the configs `cargo xtask up` runs on the fixed ports (kept for review and diffing), the
/// compose files with the configs they mount, and the Kubernetes manifests.
pub fn committed_files() -> Vec<RenderedFile> {
    let nats = Profile::ALL.into_iter().flat_map(|profile| {
        nats_conf::server_configs(&Topology::for_profile(profile))
            .into_iter()
            .map(move |f| RenderedFile {
                path: format!("infra/nats/{profile}/{}", f.path),
                contents: f.contents,
            })
    });
    nats.chain(compose_file::committed_files())
        .chain(k8s::committed_files())
        .collect()
}

/// Committed files under `root` that are missing or differ from what the model renders.
pub fn stale_committed_files(root: &Path) -> Vec<String> {
    committed_files()
        .into_iter()
        .filter(|f| {
            std::fs::read_to_string(root.join(&f.path)).ok().as_deref() != Some(f.contents.as_str())
        })
        .map(|f| f.path)
        .collect()
}
