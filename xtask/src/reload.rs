//! `cargo xtask reload`: rewrite a secured profile's secrets directory from the secrets file
//! and the certificates (after `certs --rotate`, a changed password) and reload every running
//! server (SIGHUP; `docker kill -s HUP` for containers). New handshakes use the new files, open
//! connections stay. A certificate that fails its check is refused before anything is written
//! or signalled, so the servers keep serving what they have.

use anyhow::{bail, Context};
use sea_infra::deployment::Deployment;
use sea_infra::env::EnvReader;
use sea_infra::model::spec::Spec;
use xshell::Shell;

use crate::flags::Reload;
use crate::project;

impl Reload {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let mut env = EnvReader::from_process();
        let spec = Spec::from_env(&mut env);
        env.finish()?;
        let profile = project::pick_profile(self.deployment.profile()?)?;
        let recorded = Deployment::recorded(profile, self.deployment.backend)?;
        if !recorded.topology.settings.security.is_secure() {
            bail!(
                "profile {profile} runs without TLS and authentication: nothing to reload (start it with `cargo xtask up --secure`)"
            );
        }
        let deployment = project::secured(recorded, false)?;
        let reloaded = deployment
            .reload(&spec)
            .with_context(|| format!("reload profile {profile}"))?;
        if reloaded.is_empty() {
            eprintln!("profile {profile}: secrets rewritten; no server runs, nothing signalled");
        } else {
            eprintln!(
                "profile {profile}: secrets rewritten and checked; reloaded {}",
                reloaded.join(", ")
            );
        }
        Ok(())
    }
}
