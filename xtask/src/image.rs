//! `cargo xtask image`: build the local nats-server image (FROM scratch, nothing pulled) and,
//! where the default image cannot be pulled, give it the default's name so the compose files
//! run unchanged.

use anyhow::Context;
use sea_infra::deployment::cache_dir;
use xshell::Shell;

use crate::flags::Image;
use crate::project;

impl Image {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        sea_infra::deployment::docker::engine()
            .context("cargo xtask image needs a Docker engine")?;
        let bin = project::nats_server()?;
        let progress = |line: &str| eprintln!("  {line}");
        let tags =
            sea_infra::deployment::image::build_and_alias(&bin.path, &cache_dir(), &progress)?;
        for tag in tags {
            println!("{tag}");
        }
        Ok(())
    }
}
