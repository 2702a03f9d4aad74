//! `cargo xtask up`: start a profile's servers and return when the health gate passes.

use std::time::Duration;

use anyhow::Context;
use sea_infra::deployment::{BackendKind, UpOptions};
use sea_infra::model::topology::{Profile, DEFAULT_SYNC_INTERVAL};
use xshell::Shell;

use crate::flags::{Existing, Fresh, MeshUp, Provision, Up};
use crate::project;

impl Up {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        // Configuration first: a bad profile is reported before anything is installed.
        let (profile, backend) = (self.deployment.profile()?, self.deployment.backend);
        let bin = project::nats_server()?;
        eprintln!(
            "using nats-server {} ({}, from {})",
            bin.version,
            bin.path.display(),
            bin.source
        );
        let sync = self.durability.sync_interval.as_deref();
        let deployment = crate::target::fixed_deployment(profile, backend, sync)?;
        if deployment.topology.settings.sync_interval != DEFAULT_SYNC_INTERVAL {
            eprintln!(
                "servers fsync with sync_interval {}",
                deployment.topology.settings.sync_interval
            );
        }
        let opts = UpOptions {
            servers: (!self.servers.is_empty()).then_some(self.servers),
            timeout: Duration::from_secs(self.timeout),
            ..UpOptions::default()
        };
        let progress = |line: &str| eprintln!("  {line}");
        let cancel = async {
            crate::interrupt::signalled().await;
        };
        let report = project::runtime()?
            .block_on(deployment.up(&bin.path, &opts, &progress, cancel))
            .with_context(|| format!("bring up profile {profile}"))?;

        let healthy = report.health.servers.len();
        if report.started.is_empty() {
            eprintln!(
                "profile {profile} is already up: {healthy} server(s) healthy, nothing started"
            );
        } else {
            eprintln!(
                "profile {profile} is up: {healthy} server(s) healthy in {:.1}s (started {})",
                report.elapsed.as_secs_f64(),
                report.started.join(", ")
            );
        }
        eprintln!("{}", deployment.location());
        let topology = &deployment.topology;
        if let [only] = topology.clusters.as_slice() {
            println!("NATS_SERVERS={}", topology.cluster_servers(only));
        } else {
            // One line per cluster or cell, ready for `export`: NATS_SERVERS_SEA_A=...
            for c in &topology.clusters {
                let var = c.name.to_uppercase().replace('-', "_");
                println!("NATS_SERVERS_{var}={}", topology.cluster_servers(c));
            }
        }
        if self.provision {
            let provision = Provision {
                deployment: Existing {
                    profile_flag: Some(profile),
                    backend: Some(backend),
                },
                dry_run: false,
                check: false,
                json: false,
                recreate: Vec::new(),
                allow_loss: Vec::new(),
                replica_wait: self.timeout,
            };
            provision.run(sh).context("provision after bring-up")?;
        }
        Ok(())
    }
}

impl MeshUp {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let up = Up {
            deployment: Fresh {
                profile_flag: Some(Profile::Mesh),
                backend: BackendKind::Process,
            },
            servers: Vec::new(),
            timeout: self.timeout,
            provision: self.provision,
            durability: crate::flags::Durability {
                sync_interval: None,
            },
        };
        up.run(sh)
    }
}
