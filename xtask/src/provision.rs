//! `cargo xtask provision`: make the live streams and consumers match the spec.
//!
//! Configuration is env-only (see docs/configuration.md); every invalid variable is reported in
//! one run with exit code 64, before anything is sent.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use sea_infra::env::EnvReader;
use sea_infra::nats_config::NatsConfig;
use sea_infra::provision::{self, Target};
use sea_infra::spec::{Spec, ENV_STREAM_REPLICAS};
use serde_json::json;
use xshell::Shell;

use crate::flags::Provision;
use crate::{project, Exit};

impl Provision {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let mut env = EnvReader::from_process();
        let nats = NatsConfig::from_env(&mut env);
        let mut spec = Spec::from_env(&mut env);
        let explicit_replicas = env.string(ENV_STREAM_REPLICAS).is_some();
        env.finish()?;

        let servers = match &nats.servers {
            Some(servers) => servers.clone(),
            None => {
                let profile = project::pick_profile(self.profile)
                    .context("NATS_SERVERS is unset and no local profile was found")?;
                let servers = project::recorded_deployment(profile)
                    .topology
                    .nats_servers();
                eprintln!("NATS_SERVERS is unset: using profile {profile} ({servers})");
                servers.split(',').map(str::to_owned).collect()
            }
        };
        let recreate: BTreeSet<String> = self.recreate.iter().cloned().collect();
        let progress = |line: &str| eprintln!("  {line}");

        project::runtime()?.block_on(async {
            let client = nats.connect(&servers).await?;
            let target = Target::from_client(&client, &servers);
            let notes = provision::fit_replicas(&mut spec, &target, explicit_replicas)?;
            let js = nats.jetstream(client);
            let plan = provision::plan(&js, &spec, target, notes, &recreate).await?;

            if !self.json {
                let cluster = plan.target.cluster.as_deref().unwrap_or("unclustered");
                eprintln!(
                    "JetStream at {} ({cluster}, {} server(s))",
                    servers.join(","),
                    plan.target.cluster_size
                );
                for note in &plan.notes {
                    eprintln!("note: {note}");
                }
                for line in plan.lines() {
                    println!("{line}");
                }
                eprintln!("plan: {}", plan.summary());
            }
            if self.dry_run || self.check {
                if self.json {
                    println!("{}", serde_json::to_string_pretty(&plan)?);
                }
                if self.check && !plan.is_unchanged() {
                    return Err(Exit {
                        code: 2,
                        message: format!(
                            "live configuration drifted from the spec: {}",
                            plan.summary()
                        ),
                    }
                    .into());
                }
                return Ok(());
            }
            let report = provision::apply(
                &js,
                &spec,
                &plan,
                Duration::from_secs(self.replica_wait),
                &progress,
            )
            .await?;
            if self.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "plan": plan, "applied": report }))?
                );
            } else if plan.is_unchanged() {
                eprintln!("nothing to do: the live configuration matches the spec");
            } else {
                eprintln!(
                    "applied in {} ms: {} created, {} updated, {} recreated",
                    report.elapsed_ms,
                    report.created.len(),
                    report.updated.len(),
                    report.recreated.len()
                );
                if report.messages_lost > 0 {
                    eprintln!(
                        "warning: {} message(s) were deleted with recreated streams",
                        report.messages_lost
                    );
                }
            }
            anyhow::Ok(())
        })
    }
}
