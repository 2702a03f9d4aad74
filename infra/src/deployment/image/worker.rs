//! The worker image for machines without a registry: `FROM scratch`, holding a `sea-mq-worker`
//! built on the host, exactly the shared libraries `ldd` says it loads (at their paths, the
//! dynamic loader included), Debian's busybox-static (whose `wget` the compose health check
//! runs) and a `/data` its non-root user owns. Nothing is pulled. The exporter's image
//! (`sea-nats-exporter`, the Kubernetes sidecar and the compose `observe` profile) is built the
//! same way ([`EXPORTER`]), and so is Prometheus's from the host's (Debian's) binary
//! ([`PROMETHEUS`]).

use std::path::Path;

use super::context::BuildContext;
use super::{ldd, ImageError};

const DOCKERFILE: &str = include_str!("../../../docker/worker-scratch.Dockerfile");
const EXPORTER_DOCKERFILE: &str = include_str!("../../../docker/exporter-scratch.Dockerfile");
const PROMETHEUS_DOCKERFILE: &str = include_str!("../../../docker/prometheus-scratch.Dockerfile");

/// The exporter image's default name (what the Kubernetes sidecar and the compose files run).
pub use crate::render::compose_observe::DEFAULT_EXPORTER_IMAGE;

/// A binary packed FROM scratch: its name in the image and the Dockerfile that packs it.
#[derive(Clone, Copy, Debug)]
pub struct Packed {
    name: &'static str,
    dockerfile: &'static str,
}

/// `sea-mq-worker` (`cargo xtask image --worker`, the compose `worker` profile).
pub const WORKER: Packed = Packed {
    name: "sea-mq-worker",
    dockerfile: DOCKERFILE,
};

/// `sea-nats-exporter` (`--exporter`: the Kubernetes sidecar, the compose `observe` profile).
pub const EXPORTER: Packed = Packed {
    name: "sea-nats-exporter",
    dockerfile: EXPORTER_DOCKERFILE,
};

/// The host's `prometheus` (`--prometheus`: the compose `observe` profile).
pub const PROMETHEUS: Packed = Packed {
    name: "prometheus",
    dockerfile: PROMETHEUS_DOCKERFILE,
};

/// Builds the image of `packed` from the binary `bin` as `tag`.
pub fn build(
    packed: &Packed,
    bin: &Path,
    cache: &Path,
    tag: &str,
    progress: &dyn Fn(&str),
) -> Result<(), ImageError> {
    build_scratch(bin, packed.name, packed.dockerfile, cache, tag, progress)
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
