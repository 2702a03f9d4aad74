//! The worker image for machines without a registry: `FROM scratch`, holding a `sea-mq-worker`
//! built on the host, exactly the shared libraries `ldd` says it loads (at their paths, the
//! dynamic loader included), Debian's busybox-static (whose `wget` the compose health check
//! runs) and a `/data` its non-root user owns. Nothing is pulled. The exporter's image
//! (`sea-nats-exporter`, the Kubernetes sidecar) is built the same way ([`build_exporter`]).

use std::path::Path;

use super::context::BuildContext;
use super::{ldd, ImageError};

const DOCKERFILE: &str = include_str!("../../../docker/worker-scratch.Dockerfile");
const EXPORTER_DOCKERFILE: &str = include_str!("../../../docker/exporter-scratch.Dockerfile");

pub use crate::model::monitoring::DEFAULT_EXPORTER_IMAGE;

/// Builds the image of the worker binary `bin` as `tag`.
pub fn build(
    bin: &Path,
    cache: &Path,
    tag: &str,
    progress: &dyn Fn(&str),
) -> Result<(), ImageError> {
    build_scratch(bin, "sea-mq-worker", DOCKERFILE, cache, tag, progress)
}

/// Builds the image of the exporter binary `bin` as `tag`.
pub fn build_exporter(
    bin: &Path,
    cache: &Path,
    tag: &str,
    progress: &dyn Fn(&str),
) -> Result<(), ImageError> {
    build_scratch(
        bin,
        "sea-nats-exporter",
        EXPORTER_DOCKERFILE,
        cache,
        tag,
        progress,
    )
}

/// `bin` copied into the context as `name`, with its shared libraries and busybox, built with
/// `dockerfile`.
fn build_scratch(
    bin: &Path,
    name: &str,
    dockerfile: &str,
    cache: &Path,
    tag: &str,
    progress: &dyn Fn(&str),
) -> Result<(), ImageError> {
    let libraries = ldd::libraries(bin)?;
    let ctx = BuildContext::with_busybox(cache)?;
    ctx.copy(bin, name)?;
    // `COPY rootfs/ /` needs the directory, even empty (a static binary).
    ctx.mkdir("rootfs")?;
    for lib in &libraries {
        ctx.copy(lib, &format!("rootfs{}", lib.display()))?;
    }
    let names: Vec<String> = libraries
        .iter()
        .filter_map(|l| l.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    progress(&format!(
        "building {tag} FROM scratch ({} + {}; busybox-static)",
        bin.display(),
        if names.is_empty() {
            "no shared libraries".to_owned()
        } else {
            names.join(", ")
        }
    ));
    ctx.build(dockerfile, tag)
}
