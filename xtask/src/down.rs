//! `cargo xtask down`: stop exactly the servers this project started, optionally purge data.

use std::time::Duration;

use sea_infra::deployment::{state_root, BackendKind, Deployment};
use sea_infra::model::topology::Profile;
use xshell::Shell;

use crate::flags::Down;

impl Down {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let backend = self.deployment.backend;
        let profiles = match (self.deployment.profile, backend) {
            (Some(p), _) => vec![p],
            // Compose projects may have been started by hand (no state here): try every file.
            (None, Some(BackendKind::Compose)) => vec![Profile::Ha, Profile::Mesh, Profile::Leaf],
            (None, _) => Deployment::recorded_profiles(),
        };
        if profiles.is_empty() {
            eprintln!(
                "nothing to stop: no profile has state in {}",
                state_root().display()
            );
        }
        let servers = (!self.servers.is_empty()).then_some(self.servers.as_slice());
        for profile in profiles {
            let deployment = Deployment::recorded(profile, backend)?;
            let report = deployment.down(servers, self.purge, Duration::from_secs(self.grace))?;
            let stopped = if report.stopped.is_empty() {
                "none".to_owned()
            } else {
                report.stopped.join(", ")
            };
            eprintln!("profile {profile}: stopped {stopped}");
            for name in &report.stale {
                eprintln!("  {name}: its pid file pointed at a process that is not this server; removed the file, signalled nothing");
            }
            match (deployment.compose(), report.purged) {
                (Some(c), true) => {
                    eprintln!("  removed the volumes of compose project {}", c.project)
                }
                (None, true) => eprintln!("  purged data under {}", deployment.state.dir.display()),
                _ => {}
            }
        }
        Ok(())
    }
}
