//! `cargo xtask image`: build the local nats-server image (FROM scratch, nothing pulled) and,
//! where the default image cannot be pulled, give it the default's name so the compose files
//! run unchanged.

use anyhow::Context;
use sea_infra::process::state_root;
use xshell::Shell;

use crate::flags::Image;
use crate::project;

impl Image {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        sea_infra::docker::engine().context("cargo xtask image needs a Docker engine")?;
        let bin = project::nats_server()?;
        let progress = |line: &str| eprintln!("  {line}");
        let tags =
            sea_infra::image::build_and_alias(&bin.path, &state_root().join("cache"), &progress)?;
        for tag in tags {
            println!("{tag}");
        }
        Ok(())
    }
}
