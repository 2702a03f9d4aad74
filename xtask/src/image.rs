//! `cargo xtask image`: build the local nats-server image (FROM scratch, nothing pulled) and,
//! where the default image cannot be pulled, give it the default's name so the compose files
//! run unchanged; with `--worker`, also the worker image the compose files' `worker` profile
//! runs (a release build of sea-mq-worker with exactly its shared libraries, FROM scratch); with
//! `--exporter` and `--prometheus`, the images of the compose files' `observe` profile (the
//! exporter's release build, the `prometheus` on PATH, each with its shared libraries).

use anyhow::Context;
use sea_infra::deployment::cache_dir;
use sea_infra::deployment::image::worker::{
    self, DEFAULT_EXPORTER_IMAGE, EXPORTER, PROMETHEUS, WORKER,
};
use sea_infra::render::compose_observe::DEFAULT_PROMETHEUS_IMAGE;
use sea_infra::render::compose_worker::DEFAULT_WORKER_IMAGE;
use xshell::Shell;

use crate::flags::Image;
use crate::project;

impl Image {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        sea_infra::deployment::docker::engine()
            .context("cargo xtask image needs a Docker engine")?;
        let bin = project::nats_server()?;
        let progress = |line: &str| eprintln!("  {line}");
        let tags =
            sea_infra::deployment::image::build_and_alias(&bin.path, &cache_dir(), &progress)?;
        for tag in tags {
            println!("{tag}");
        }
        // Each binary and the image packing it, built and tagged in this order.
        let mut packs = Vec::new();
        if self.worker {
            progress("building sea-mq-worker --release (minutes the first time)");
            let bin = project::build_worker(sh, true)?;
            packs.push((WORKER, bin, DEFAULT_WORKER_IMAGE));
        }
        if self.exporter {
            progress("building sea-nats-exporter --release (minutes the first time)");
            let bin = project::build_binary(sh, "sea-nats-exporter", true)?;
            packs.push((EXPORTER, bin, DEFAULT_EXPORTER_IMAGE));
        }
        if self.prometheus {
            let bin = which::which("prometheus").map_err(|_| {
                anyhow::anyhow!(
                    "--prometheus packs the host's prometheus binary: none on PATH (Debian: apt-get install prometheus)"
                )
            })?;
            packs.push((PROMETHEUS, bin, DEFAULT_PROMETHEUS_IMAGE));
        }
        for (packed, bin, tag) in packs {
            worker::build(&packed, &bin, &cache_dir(), tag, &progress)?;
            println!("{tag}");
        }
        Ok(())
    }
}
