//! Failure drills: inject one fault under steady load, let the cluster recover, and judge the
//! outcome from records (publish acks, the stream's contents, the inbox) against criteria.
//!
//! One module per drill; `session` holds the load, the workers and the audit they share.

mod cluster_loss;
mod leaf_partition;
mod node_kill;
mod partition;
mod quorum_loss;
mod rolling_restart;
pub mod session;
mod worker_crash;

use std::collections::BTreeMap;

use anyhow::Context;
use std::path::Path;

use sea_infra::process::Deployment;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DrillName {
    /// SIGKILL the server leading SEA_EVENTS, then restart it.
    NodeKill,
    /// Restart every server in turn through lame-duck mode.
    RollingRestart,
    /// Freeze the stream leader (SIGSTOP) while the others keep quorum, then resume it.
    Partition,
    /// Stop two of three servers, then start them again.
    QuorumLoss,
    /// SIGKILL one of three workers mid-stream.
    WorkerCrash,
    /// Mesh: stop a whole cluster and report what survives.
    ClusterLoss,
    /// Leaf: cut the leafnode link between the cells, then heal it.
    LeafPartition,
}

impl DrillName {
    pub fn as_str(self) -> &'static str {
        match self {
            DrillName::NodeKill => "node-kill",
            DrillName::RollingRestart => "rolling-restart",
            DrillName::Partition => "partition",
            DrillName::QuorumLoss => "quorum-loss",
            DrillName::WorkerCrash => "worker-crash",
            DrillName::ClusterLoss => "cluster-loss",
            DrillName::LeafPartition => "leaf-partition",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Criterion {
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub drill: String,
    pub passed: bool,
    pub figures: BTreeMap<String, Value>,
    pub criteria: Vec<Criterion>,
}

impl Outcome {
    /// Figures, then one PASS/FAIL line per criterion, then the verdict.
    pub fn print(&self) {
        println!("drill {}", self.drill);
        for (name, value) in &self.figures {
            println!("  {name:<24} {value}");
        }
        for c in &self.criteria {
            println!("  {} {} ({})", verdict(c.pass), c.name, c.detail);
        }
        println!("drill {}: {}", self.drill, verdict(self.passed));
    }

    /// A criterion judged after the audit, from its figures.
    pub fn check(&mut self, name: &str, pass: bool, detail: String) {
        self.criteria.push(Criterion {
            name: name.to_owned(),
            pass,
            detail,
        });
        self.passed &= pass;
    }

    pub fn figure_u64(&self, name: &str) -> u64 {
        self.figures.get(name).and_then(Value::as_u64).unwrap_or(0)
    }

    /// The figures in one line, for summary tables.
    pub fn figures_line(&self, keys: &[&str]) -> String {
        keys.iter()
            .filter_map(|k| self.figures.get(*k).map(|v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Runs one drill against a running, provisioned deployment.
pub async fn run(
    name: DrillName,
    dep: &Deployment,
    worker_bin: &Path,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Outcome> {
    let ctx = session::Ctx {
        dep,
        worker_bin,
        progress,
    };
    match name {
        DrillName::NodeKill => node_kill::run(ctx).await,
        DrillName::RollingRestart => rolling_restart::run(ctx).await,
        DrillName::Partition => partition::run(ctx).await,
        DrillName::QuorumLoss => quorum_loss::run(ctx).await,
        DrillName::WorkerCrash => worker_crash::run(ctx).await,
        DrillName::ClusterLoss => cluster_loss::run(ctx).await,
        DrillName::LeafPartition => leaf_partition::run(ctx).await,
    }
}

impl crate::flags::Drill {
    pub fn run(self, sh: &xshell::Shell) -> anyhow::Result<()> {
        let worker = crate::target::worker_bin(sh)?;
        let bin = crate::project::nats_server()?;
        let mut target =
            crate::target::Target::new(self.profile, self.private, &bin, self.backend)?;
        anyhow::ensure!(
            target.dep().topology.nodes().count() >= 3,
            "drill {} needs a replicated profile (3 servers or more), not {}",
            self.name.as_str(),
            self.profile
        );
        let progress = |line: &str| eprintln!("  {line}");
        let rt = crate::project::runtime()?;
        let outcome = rt.block_on(crate::target::until_ctrl_c(async {
            target.up(&progress).await?;
            if !target.started.is_empty() {
                eprintln!(
                    "started {} for the drill; it stops again afterwards",
                    target.started.join(", ")
                );
            }
            target
                .provision()
                .await
                .context("provision the spec before the drill")?;
            eprintln!(
                "drill {} on profile {} ...",
                self.name.as_str(),
                self.profile
            );
            run(self.name, target.dep(), &worker, &progress).await
        }))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&outcome)?);
        } else {
            outcome.print();
        }
        anyhow::ensure!(outcome.passed, "drill {} failed", self.name.as_str());
        Ok(())
    }
}
