//! `cargo xtask down`: stop exactly the servers this project started, optionally purge data.

use std::time::Duration;

use sea_infra::deployment::{state_root, BackendKind, Deployment, RecordError};
use sea_infra::model::topology::Profile;
use xshell::Shell;

use crate::flags::Down;

impl Down {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let backend = self.deployment.backend;
        let profiles = match (self.deployment.profile()?, backend) {
            (Some(p), _) => vec![p],
            // Compose projects may have been started by hand (no state here): try every file.
            (None, Some(BackendKind::Compose)) => vec![Profile::Ha, Profile::Mesh, Profile::Leaf],
            (None, _) => Deployment::recorded_profiles(),
        };
        if profiles.is_empty() {
            eprintln!(
                "nothing to stop: no profile has state in {} and no server runs from it",
                state_root().display()
            );
        }
        let servers = (!self.servers.is_empty()).then_some(self.servers.as_slice());
        let mut left = Vec::new();
        for profile in profiles {
            let deployment = match Deployment::recorded(profile, backend) {
                Ok(d) => d,
                // The servers are found by their config paths: stop them with the model's names.
                Err(RecordError::Corrupt(e)) => {
                    eprintln!(
                        "warning: {e}; stopping the servers of profile {profile} it would name"
                    );
                    Deployment::for_profile(profile, backend.unwrap_or(BackendKind::Process))?
                }
                Err(e) => return Err(e.into()),
            };
            let report = deployment.down(servers, self.purge, Duration::from_secs(self.grace))?;
            let stopped = if report.stopped.is_empty() {
                "none".to_owned()
            } else {
                report.stopped.join(", ")
            };
            eprintln!("profile {profile}: stopped {stopped}");
            if !report.observers.is_empty() {
                eprintln!("  stopped {} (--observe)", report.observers.join(", "));
            }
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
            for held in &report.ports_held {
                eprintln!("  note: {held}");
            }
            left.extend(report.still_running);
        }
        anyhow::ensure!(
            left.is_empty(),
            "could not stop every server: {}",
            left.join("; ")
        );
        Ok(())
    }
}
