//! The worker image for machines without a registry: `FROM scratch`, holding a `sea-mq-worker`
//! built on the host, exactly the shared libraries `ldd` says it loads (at their paths, the
//! dynamic loader included), Debian's busybox-static (whose `wget` the compose health check
//! runs) and a `/data` its non-root user owns. Nothing is pulled.

use std::path::Path;

use super::context::BuildContext;
use super::{ldd, ImageError};

const DOCKERFILE: &str = include_str!("../../../docker/worker-scratch.Dockerfile");

/// Builds the image of the worker binary `bin` as `tag`.
pub fn build(
    bin: &Path,
    cache: &Path,
    tag: &str,
    progress: &dyn Fn(&str),
) -> Result<(), ImageError> {
    let libraries = ldd::libraries(bin)?;
    let ctx = BuildContext::with_busybox(cache)?;
    ctx.copy(bin, "sea-mq-worker")?;
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
    ctx.build(DOCKERFILE, tag)
}
