//! The local nats-server image for machines that cannot pull: `FROM scratch`, holding the
//! resolved static `nats-server` and Debian's `busybox-static` (whose `wget` the compose health
//! check runs). Built without pulling anything, one tag per release (`sea-nats:<version>`), so
//! an upgrade drill runs two releases side by side.

use std::path::{Path, PathBuf};
use std::time::Duration;

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
    #[error("{ENV_NATS_IMAGE}={image} is not present and cannot be pulled ({reason}); load it with `docker load`, or unset {ENV_NATS_IMAGE} to use the local image `cargo xtask image` builds")]
    Missing { image: String, reason: String },
    #[error("{path}: {reason}")]
    Binary { path: String, reason: String },
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

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ImageError + '_ {
    move |e| ImageError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Debian's static busybox, downloaded once into `cache` (no root needed).
fn busybox(cache: &Path) -> Result<PathBuf, ImageError> {
    let bin = cache.join("busybox-static/busybox");
    if bin.is_file() {
        return Ok(bin);
    }
    let work = cache.join("busybox-static/download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let apt = ["apt-get".to_owned()];
    docker::run(
        &apt,
        &["download", "busybox-static"],
        Some(&work),
        &[],
        docker::COMMAND_TIMEOUT,
    )
    .map_err(|e| ImageError::Busybox(e.to_string()))?;
    let deb = std::fs::read_dir(&work)
        .map_err(io_err(&work))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| ImageError::Busybox("apt-get download left no .deb".into()))?;
    let root = work.join("root");
    let dpkg = ["dpkg-deb".to_owned()];
    let (deb_s, root_s) = (deb.display().to_string(), root.display().to_string());
    docker::run(
        &dpkg,
        &["-x", &deb_s, &root_s],
        None,
        &[],
        docker::COMMAND_TIMEOUT,
    )
    .map_err(|e| ImageError::Busybox(e.to_string()))?;
    // bookworm ships /bin/busybox; releases with the merged /usr ship /usr/bin/busybox.
    let extracted = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
        .ok_or_else(|| ImageError::Busybox("no busybox binary in the package".into()))?;
    std::fs::rename(&extracted, &bin).map_err(io_err(&bin))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(bin)
}

/// Builds [`local_tag`] of `nats_server`'s release from it; the tag.
pub(crate) fn build(
    nats_server: &Path,
    cache: &Path,
    progress: &dyn Fn(&str),
) -> Result<String, ImageError> {
    let busybox = busybox(cache)?;
    let ctx = cache.join("image-context");
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx).map_err(io_err(&ctx))?;
    for (from, to) in [(nats_server, "nats-server"), (busybox.as_path(), "busybox")] {
        let dest = ctx.join(to);
        std::fs::copy(from, &dest).map_err(io_err(&dest))?;
    }
    let dockerfile = ctx.join("Dockerfile");
    std::fs::write(&dockerfile, DOCKERFILE).map_err(io_err(&dockerfile))?;
    let version = version_of(nats_server)?;
    let tag = local_tag(version);
    progress(&format!(
        "building {tag} FROM scratch (nats-server {version} + busybox-static)"
    ));
    let ctx_s = ctx.display().to_string();
    docker::docker_within(
        &["build", "--quiet", "--tag", &tag, &ctx_s],
        Duration::from_secs(300),
    )?;
    let _ = std::fs::remove_dir_all(&ctx);
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
