//! `cargo xtask provision`: make the live streams and consumers match the spec.
//!
//! Configuration is env-only (see docs/configuration.md); every invalid variable is reported in
//! one run with exit code 64, before anything is sent.

use std::time::Duration;

use anyhow::Context;
use sea_infra::client::connect::{Auth, NatsConfig, Tls};
use sea_infra::client::federation;
use sea_infra::client::provision::{self, Allowed, ConnectedCluster, Plan};
use sea_infra::env::EnvReader;
use sea_infra::model::spec::{Spec, ENV_STREAM_REPLICAS};
use sea_infra::model::Role;
use serde_json::json;
use xshell::Shell;

use crate::flags::Provision;
use crate::{project, Exit};

impl Provision {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let mut env = EnvReader::from_process();
        let mut nats = NatsConfig::from_env(&mut env);
        let spec = Spec::from_env(&mut env);
        let explicit_replicas = env.string(ENV_STREAM_REPLICAS).is_some();
        env.finish()?;

        // One group per JetStream domain: the servers from the environment as one, or each
        // domain of the local profile with what federation adds (placement, mirrors).
        let groups: Vec<(String, Vec<String>, Spec)> = match &nats.servers {
            Some(servers) => vec![(String::new(), servers.clone(), spec)],
            None => {
                let (profile, dep) = project::existing(&self.deployment)
                    .context("NATS_SERVERS is unset and no local profile was found")?;
                if dep.access().is_some() && nats.auth == Auth::None && nats.tls == Tls::default() {
                    // A secured local profile: provision as its admin user.
                    let admin = dep.nats(Role::Admin);
                    nats.auth = admin.auth;
                    nats.tls = admin.tls;
                    nats.inbox_prefix = nats.inbox_prefix.or(admin.inbox_prefix);
                }
                let topology = dep.topology;
                eprintln!(
                    "NATS_SERVERS is unset: using profile {profile} ({})",
                    topology.nats_servers()
                );
                federation::domain_specs(&topology, &spec)
                    .into_iter()
                    .map(|d| {
                        let label = if topology.clusters.len() > 1 {
                            d.label
                        } else {
                            String::new()
                        };
                        (label, d.servers, d.spec)
                    })
                    .collect()
            }
        };
        self.check_names(&groups)?;
        let rt = project::runtime()?;
        let mut outputs = Vec::new();
        let mut drifted = Vec::new();
        for (label, servers, mut spec) in groups {
            if !label.is_empty() && !self.json {
                eprintln!("== domain {label}");
            }
            let (output, plan) =
                rt.block_on(self.provision_group(&nats, &servers, &mut spec, explicit_replicas))?;
            if !plan.is_unchanged() {
                drifted.push(format!(
                    "{}{}",
                    if label.is_empty() { "" } else { "domain " },
                    plan.summary()
                ));
            }
            outputs.push(if label.is_empty() {
                output
            } else {
                json!({ "domain": label, "result": output })
            });
        }
        if self.json {
            let out = match outputs.as_slice() {
                [one] if one.get("domain").is_none() => one.clone(),
                _ => json!(outputs),
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        if self.check && !drifted.is_empty() {
            return Err(Exit {
                code: 2,
                message: format!(
                    "live configuration drifted from the spec: {}",
                    drifted.join("; ")
                ),
            }
            .into());
        }
        Ok(())
    }

    /// `--recreate` and `--allow-loss` must name something of the spec: a misspelt name would
    /// otherwise be ignored and the refusal it was meant to lift would look like a bug.
    fn check_names(&self, groups: &[(String, Vec<String>, Spec)]) -> anyhow::Result<()> {
        let mut streams = std::collections::BTreeSet::new();
        let mut consumers = std::collections::BTreeSet::new();
        for (_, _, spec) in groups {
            streams.extend(spec.streams.iter().map(|s| s.name.clone()));
            let durable = spec.consumer.durable_name();
            consumers.extend(
                spec.event_streams()
                    .map(|s| format!("{}/{durable}", s.name)),
            );
        }
        let mut wrong = Vec::new();
        for name in self
            .recreate
            .iter()
            .filter(|n| !streams.contains(*n) && !consumers.contains(*n))
        {
            wrong.push(format!("--recreate {name}"));
        }
        for name in self.allow_loss.iter().filter(|n| !streams.contains(*n)) {
            wrong.push(format!("--allow-loss {name}"));
        }
        if wrong.is_empty() {
            return Ok(());
        }
        let known: Vec<String> = streams.into_iter().chain(consumers).collect();
        Err(Exit {
            code: sea_infra::env::EXIT_CONFIG,
            message: format!(
                "{}: not a stream or consumer of the spec; use one of {}",
                wrong.join(", "),
                known.join(", ")
            ),
        }
        .into())
    }

    /// Plans (and unless `--dry-run`/`--check`, applies) the spec on one domain's servers;
    /// returns the JSON of what happened and the plan.
    async fn provision_group(
        &self,
        nats: &NatsConfig,
        servers: &[String],
        spec: &mut Spec,
        explicit_replicas: bool,
    ) -> anyhow::Result<(serde_json::Value, Plan)> {
        let allowed = Allowed {
            recreate: self.recreate.iter().cloned().collect(),
            loss: self.allow_loss.iter().cloned().collect(),
        };
        let progress = |line: &str| eprintln!("  {line}");
        let client = nats.connect(servers).await?;
        let target = ConnectedCluster::from_client(&client, servers);
        let notes = provision::fit_replicas(spec, &target, explicit_replicas)?;
        let js = nats.jetstream(client);
        let plan = provision::plan(&js, spec, target, notes, &allowed).await?;

        if !self.json {
            let cluster = plan.target.cluster.as_deref().unwrap_or("unclustered");
            eprintln!(
                "JetStream at {} ({cluster}, {} server(s))",
                plan.target.servers.join(","),
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
            return Ok((serde_json::to_value(&plan)?, plan));
        }
        let wait = Duration::from_secs(self.replica_wait);
        let report = provision::apply(&js, spec, &plan, wait, &progress).await?;
        provision::wait_reachable(nats, servers, spec, wait).await?;
        if !self.json {
            if plan.is_unchanged() {
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
        }
        Ok((json!({ "plan": plan, "applied": report }), plan))
    }
}
