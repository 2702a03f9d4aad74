//! `cargo xtask image`: build the local nats-server image (FROM scratch, nothing pulled) and,
//! where the default image cannot be pulled, give it the default's name so the compose files
//! run unchanged; with `--worker`, also the worker image the compose files' `worker` profile
//! runs (a release build of sea-mq-worker with exactly its shared libraries, FROM scratch).

use anyhow::Context;
use sea_infra::deployment::cache_dir;
use sea_infra::deployment::image::worker::DEFAULT_EXPORTER_IMAGE;
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
        if self.worker {
            progress("building sea-mq-worker --release (minutes the first time)");
            let worker = project::build_worker(sh, true)?;
            sea_infra::deployment::image::worker::build(
                &worker,
                &cache_dir(),
                DEFAULT_WORKER_IMAGE,
                &progress,
            )?;
            println!("{DEFAULT_WORKER_IMAGE}");
        }
        if self.exporter {
            progress("building sea-nats-exporter --release (minutes the first time)");
            let exporter = project::build_binary(sh, "sea-nats-exporter", true)?;
            sea_infra::deployment::image::worker::build_exporter(
                &exporter,
                &cache_dir(),
                DEFAULT_EXPORTER_IMAGE,
                &progress,
            )?;
            println!("{DEFAULT_EXPORTER_IMAGE}");
        }
        Ok(())
    }
}
