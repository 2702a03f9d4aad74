//! `cargo xtask up`: start a profile's servers and return when the health gate passes.

use std::time::Duration;

use anyhow::Context;
use sea_infra::process::UpOptions;
use xshell::Shell;

use crate::flags::{MeshUp, Provision, Up};
use crate::project;

impl Up {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let bin = project::nats_server()?;
        eprintln!(
            "using nats-server {} ({}, from {})",
            bin.version,
            bin.path.display(),
            bin.source
        );
        let deployment = project::fresh_deployment(self.profile, bin.path, self.backend)?;
        let opts = UpOptions {
            nodes: (!self.nodes.is_empty()).then_some(self.nodes),
            timeout: Duration::from_secs(self.timeout),
        };
        let progress = |line: &str| eprintln!("  {line}");
        let cancel = async {
            // If the handler cannot be installed, never cancel rather than cancel at once.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let report = project::runtime()?
            .block_on(deployment.up(&opts, &progress, cancel))
            .with_context(|| format!("bring up profile {}", self.profile))?;

        let healthy = report.health.nodes.len();
        if report.started.is_empty() {
            eprintln!(
                "profile {} is already up: {healthy} server(s) healthy, nothing started",
                self.profile
            );
        } else {
            eprintln!(
                "profile {} is up: {healthy} server(s) healthy in {:.1}s (started {})",
                self.profile,
                report.elapsed.as_secs_f64(),
                report.started.join(", ")
            );
        }
        match &deployment.compose {
            Some(c) => eprintln!(
                "containers of compose project {} ({})",
                c.project,
                c.file_path().display()
            ),
            None => eprintln!("state in {}", deployment.dir.display()),
        }
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
                profile: Some(self.profile),
                backend: Some(self.backend),
                dry_run: false,
                check: false,
                json: false,
                recreate: Vec::new(),
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
            profile: sea_infra::topology::Profile::Mesh,
            backend: crate::flags::Backend::Process,
            nodes: Vec::new(),
            timeout: self.timeout,
            provision: self.provision,
        };
        up.run(sh)
    }
}
