//! The local images for machines that cannot pull, built without pulling anything. Here the
//! nats-server one: `FROM scratch`, holding the resolved static `nats-server` and Debian's
//! `busybox-static` (whose `wget` the compose health check runs), one tag per release
//! (`sea-nats:<version>`) so an upgrade drill runs two releases side by side; the worker's is
//! in [`worker`], what both are built from in `context.rs`.

mod context;
mod ldd;
pub mod worker;

use std::path::Path;
use std::time::Duration;

use context::BuildContext;

use crate::deployment::docker::{self, DockerError};
use crate::deployment::nats_server::{self, Version, PINNED_VERSION};
use crate::render::compose_file::{default_nats_image, ENV_NATS_IMAGE};

const DOCKERFILE: &str = include_str!("../../docker/nats-scratch.Dockerfile");

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("cannot get Debian's busybox-static ({0}); run `apt-get update` and try again")]
    Busybox(String),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("cannot list the shared libraries of {bin} with ldd: {reason}")]
    Ldd { bin: String, reason: String },
    #[error("{path}: {reason}")]
    Binary { path: String, reason: String },
    #[error("{ENV_NATS_IMAGE}={image} is not present and cannot be pulled ({reason}); load it with `docker load`, or unset {ENV_NATS_IMAGE} to use the local image `cargo xtask image` builds")]
    Missing { image: String, reason: String },
}

/// The tag of the image built here for `version`.
pub fn local_tag(version: Version) -> String {
    format!("sea-nats:{version}")
}

/// The release of a nats-server binary (what its image is tagged with).
fn version_of(nats_server: &Path) -> Result<Version, ImageError> {
    nats_server::probe(nats_server).map_err(|reason| ImageError::Binary {
        path: nats_server.display().to_string(),
        reason,
    })
}

/// Builds [`local_tag`] of `nats_server`'s release from it; the tag.
pub(crate) fn build(
    nats_server: &Path,
    cache: &Path,
    progress: &dyn Fn(&str),
) -> Result<String, ImageError> {
    let ctx = BuildContext::with_busybox(cache)?;
    ctx.copy(nats_server, "nats-server")?;
    let version = version_of(nats_server)?;
    let tag = local_tag(version);
    progress(&format!(
        "building {tag} FROM scratch (nats-server {version} + busybox-static)"
    ));
    ctx.build(DOCKERFILE, &tag)?;
    Ok(tag)
}

/// The server image compose should run: `NATS_IMAGE` when set (present or pullable), else the
/// default when present or pullable, else the local image, built when missing. Says which.
/// For a `nats_server` of another release than the pinned one (an upgrade drill), the local
/// image of that release, built from it when missing.
pub fn resolve(
    nats_server: &Path,
    cache: &Path,
    progress: &dyn Fn(&str),
) -> Result<String, ImageError> {
    if let Some(image) = std::env::var(ENV_NATS_IMAGE).ok().filter(|v| !v.is_empty()) {
        return match present_or_pull(&image) {
            Ok(()) => Ok(image),
            Err(reason) => Err(ImageError::Missing { image, reason }),
        };
    }
    let version = version_of(nats_server)?;
    if version != PINNED_VERSION {
        let local = local_tag(version);
        if !docker::image_exists(&local) {
            build(nats_server, cache, progress)?;
        }
        return Ok(local);
    }
    let default = default_nats_image();
    match present_or_pull(&default) {
        Ok(()) => Ok(default),
        Err(reason) => {
            let local = local_tag(version);
            progress(&format!(
                "{default} cannot be pulled ({reason}); using the local image {local}"
            ));
            if !docker::image_exists(&local) {
                build(nats_server, cache, progress)?;
            }
            Ok(local)
        }
    }
}

fn present_or_pull(image: &str) -> Result<(), String> {
    if docker::image_exists(image) {
        return Ok(());
    }
    pull(image)
}

/// `docker pull`, bounded; why it failed (no registry fails at once: measured 73 ms).
fn pull(image: &str) -> Result<(), String> {
    docker::docker_within(&["pull", "--quiet", image], Duration::from_secs(180))
        .map(drop)
        .map_err(|e| e.reason)
}

/// `cargo xtask image`: builds the local image and, when the default image cannot be pulled,
/// tags the local one with the default's name so the compose files run unchanged. Returns the
/// tags it set.
pub fn build_and_alias(
    nats_server: &Path,
    cache: &Path,
    progress: &dyn Fn(&str),
) -> Result<Vec<String>, ImageError> {
    let local = build(nats_server, cache, progress)?;
    let default = default_nats_image();
    // An earlier alias of ours is replaced; a real (pulled) image is left alone.
    if docker::image_exists(&default) && !is_local(&default) {
        progress(&format!("{default} is present; left as it is"));
        return Ok(vec![local]);
    }
    match pull(&default) {
        Ok(()) => {
            progress(&format!("{default} pulled; the compose files use it"));
            Ok(vec![local])
        }
        Err(reason) => {
            docker::docker(&["tag", &local, &default])?;
            progress(&format!(
                "{default} cannot be pulled ({reason}): tagged {local} as {default}, so the compose files run unchanged"
            ));
            Ok(vec![local, default])
        }
    }
}

/// Whether `image` is one this module built (the Dockerfile labels it `sea.local`).
pub(crate) fn is_local(image: &str) -> bool {
    docker::docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"sea.local\"}}",
        image,
    ])
    .is_ok_and(|l| l.trim() == "true")
}
