//! Failure drills: inject one fault under steady load, let the cluster recover, and judge the
//! outcome from records (publish acks, the stream's contents, the inbox) against criteria.
//!
//! One module per drill; `session` holds the load, the workers and the audit they share.

pub mod audit;
mod cluster_loss;
mod leaf_partition;
pub mod load;
mod node_kill;
mod partition;
mod quorum_loss;
mod rolling_restart;
pub mod service;
pub mod session;
mod storage_full;
pub mod stream;
pub mod upgrade;
mod worker_crash;

use std::collections::BTreeMap;
use std::path::Path;
#[cfg(test)]
use std::time::Duration;

use anyhow::Context;
use sea_infra::deployment::{BackendKind, Deployment, Operation};
use sea_infra::model::topology::Profile;
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
    /// Rolling upgrade --from VERSION --to VERSION, one server at a time in lame-duck mode.
    Upgrade,
    /// A stream at its byte limit (discard new), then a server at max_file_store.
    StorageFull,
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
            DrillName::Upgrade => "upgrade",
            DrillName::StorageFull => "storage-full",
        }
    }

    /// The profiles the drill can run on; the first is the one it starts when nothing runs.
    pub fn profiles(self) -> &'static [Profile] {
        match self {
            DrillName::NodeKill => &[Profile::Ha, Profile::Mesh],
            DrillName::WorkerCrash => &[Profile::Ha, Profile::Mesh, Profile::Leaf],
            // Judged against one cluster of three: every server restarted in turn with the
            // stream's replicas current after each, the leader cut off from the two others, two
            // of three stopped.
            DrillName::RollingRestart
            | DrillName::Partition
            | DrillName::QuorumLoss
            | DrillName::Upgrade
            | DrillName::StorageFull => &[Profile::Ha],
            DrillName::ClusterLoss => &[Profile::Mesh],
            DrillName::LeafPartition => &[Profile::Leaf],
        }
    }

    /// What the drill asks of the backend beyond stopping and starting servers.
    pub fn operations(self) -> &'static [Operation] {
        match self {
            DrillName::Partition => &[Operation::Partition],
            DrillName::LeafPartition => &[Operation::CutLeafLinks],
            DrillName::StorageFull => &[Operation::ReloadConfig],
            _ => &[],
        }
    }

    /// The profile and backend to drill: the explicit ones, else the running profile the
    /// drill can use (with the backend that runs it), else the drill's own profile on
    /// processes. Refused before anything starts when the drill cannot run there.
    pub fn choose(
        self,
        profile: Option<Profile>,
        backend: Option<BackendKind>,
        running: &[(Profile, BackendKind)],
    ) -> anyhow::Result<(Profile, BackendKind)> {
        let usable: Vec<&(Profile, BackendKind)> = running
            .iter()
            .filter(|(p, _)| self.profiles().contains(p) && profile.is_none_or(|want| want == *p))
            .collect();
        let (p, recorded) = match (profile, usable.as_slice()) {
            (Some(p), [(_, b), ..]) => (p, Some(*b)),
            (Some(p), []) => (p, None),
            (None, [(p, b)]) => (*p, Some(*b)),
            (None, []) => (self.profiles()[0], None),
            (None, many) => {
                let names: Vec<&str> = many.iter().map(|(p, _)| p.as_str()).collect();
                anyhow::bail!(
                    "drill {} could run on any of the running profiles {}; pass --profile",
                    self.as_str(),
                    names.join(", ")
                )
            }
        };
        if !self.profiles().contains(&p) {
            let names: Vec<&str> = self.profiles().iter().map(|p| p.as_str()).collect();
            anyhow::bail!(
                "drill {} needs profile {}, not {p}; pass --profile {}",
                self.as_str(),
                names.join(" or "),
                names[0]
            );
        }
        Ok((p, backend.or(recorded).unwrap_or(BackendKind::Process)))
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
    nats_server: &Path,
    worker_bin: &Path,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Outcome> {
    for op in name.operations() {
        dep.supports(*op)?;
    }
    let ctx = session::Ctx {
        dep,
        nats_server,
        worker_bin,
        progress,
    };
    match name {
        DrillName::Upgrade => anyhow::bail!("drill upgrade needs --from VERSION and --to VERSION"),
        DrillName::StorageFull => storage_full::run(ctx).await,
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
        let upgrade = self.name == DrillName::Upgrade;
        let versions = match (upgrade, self.from, self.to) {
            (true, Some(from), Some(to)) => Some((from, to)),
            (true, _, _) => return Err(usage("drill upgrade needs --from VERSION and --to VERSION, e.g. --from 2.14.6 --to 2.15.1")),
            (false, None, None) => None,
            (false, _, _) => return Err(usage("--from and --to are for drill upgrade only")),
        };
        // A private drill, or one that needs servers of its own, brings up its own deployment
        // whatever runs here.
        let own = self.private || self.name == DrillName::StorageFull;
        let running: Vec<(Profile, BackendKind)> = Deployment::recorded_profiles()
            .into_iter()
            .filter(|_| !own)
            .filter_map(|p| {
                let dep = Deployment::recorded(p, self.deployment.backend).ok()?;
                (!dep.running_servers().is_empty()).then(|| (p, dep.kind()))
            })
            .collect();
        let (profile, backend) = self.name.choose(
            self.deployment.profile()?,
            self.deployment.backend,
            &running,
        )?;
        let worker = crate::target::worker_bin(sh)?;
        let releases = match versions {
            Some((from, to)) => {
                let resolver = crate::project::resolver(true);
                let get = |v| {
                    eprintln!("nats-server {v}: the pinned build (installed into the cache when missing) ...");
                    resolver.release(v)
                };
                Some((get(from)?, get(to)?))
            }
            None => None,
        };
        let bin = match &releases {
            Some((from, _)) => from.clone(),
            None => crate::project::nats_server()?,
        };
        let sync = self.durability.sync_interval.as_deref();
        let mut target = if self.name == DrillName::StorageFull {
            eprintln!(
                "drill storage-full runs on a throw-away ha cluster of its own (max_file_store {} per server), on free ports",
                storage_full::SERVER_STORE
            );
            let mut topology = storage_full::topology();
            if let Some(v) = sync {
                topology.settings.sync_interval = v.to_owned();
            }
            crate::target::Target::own(topology, bin.path, backend)?
        } else {
            crate::target::Target::new(
                profile,
                self.private,
                bin.path,
                backend,
                sync,
                self.deployment.secure,
            )?
        };
        for op in self.name.operations() {
            target.dep().supports(*op)?;
        }
        let progress = |line: &str| eprintln!("  {line}");
        let rt = crate::project::runtime()?;
        let undone = "injected faults undone, workers stopped, servers this run started stopped";
        let outcome = rt.block_on(crate::interrupt::until_interrupted(undone, async {
            if let Some((from, _)) = &releases {
                let running = target.dep().running_servers();
                if !running.is_empty() {
                    let found = upgrade::versions(target.dep()).await;
                    let other: Vec<String> = found
                        .iter()
                        .filter(|(n, v)| running.contains(*n) && **v != from.version.to_string())
                        .map(|(n, v)| format!("{n} runs {v}"))
                        .collect();
                    anyhow::ensure!(
                        other.is_empty(),
                        "drill upgrade --from {}: {}; stop the profile first (`cargo xtask down --profile {profile}`) or use --private",
                        from.version,
                        other.join(", ")
                    );
                }
            }
            target.up(&progress).await?;
            if !target.started.is_empty() {
                eprintln!(
                    "started {} for the drill; it stops again afterwards",
                    target.started.join(", ")
                );
            }
            // The production streams reserve 1 GiB each: the storage-full cluster has no room
            // for them, and the drill needs only its own streams.
            if self.name != DrillName::StorageFull {
                target
                    .provision()
                    .await
                    .context("provision the spec before the drill")?;
            }
            eprintln!(
                "drill {} on profile {profile} ({backend}) ...",
                self.name.as_str()
            );
            match &releases {
                Some((from, to)) => {
                    let ctx = session::Ctx {
                        dep: target.dep(),
                        nats_server: &target.bin,
                        worker_bin: &worker,
                        progress: &progress,
                    };
                    upgrade::run(ctx, upgrade::Releases { from, to }).await
                }
                None => run(self.name, target.dep(), &target.bin, &worker, &progress).await,
            }
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

/// A flag combination that makes no sense: exit 64, like a bad variable.
fn usage(message: &str) -> anyhow::Error {
    crate::Exit {
        code: sea_infra::env::EXIT_CONFIG,
        message: message.to_owned(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_infra::client::federation;
    use sea_infra::model::spec::Spec;
    use sea_infra::testing::{nats_server, TestCluster};

    /// Streams and their consumers, as the cluster reports them.
    async fn streams(js: &async_nats::jetstream::Context) -> BTreeMap<String, (u64, Vec<String>)> {
        use futures::TryStreamExt;
        let mut out = BTreeMap::new();
        let names: Vec<String> = js.stream_names().try_collect().await.unwrap();
        for name in names {
            let st = js.get_stream(&name).await.unwrap();
            let consumers: Vec<String> = st.consumer_names().try_collect().await.unwrap();
            let messages = st.cached_info().state.messages;
            out.insert(name, (messages, consumers));
        }
        out
    }

    /// Drill traffic goes to the drills' own stream only, finished or interrupted: the
    /// production streams keep nothing of it, and the drill leaves no stream or consumer behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drill_traffic_never_reaches_production_streams_and_nothing_is_left() {
        let cluster = TestCluster::start(Profile::Ha).await;
        federation::provision_topology(
            cluster.topology(),
            &cluster.nats(sea_infra::model::Role::Admin),
            &Spec::builtin(),
        )
        .await
        .unwrap();
        let client = cluster.connect_as(sea_infra::model::Role::Ops).await;
        let js = async_nats::jetstream::new(client);
        let before = streams(&js).await;
        let sh = xshell::Shell::new().unwrap();
        let worker = crate::target::worker_bin(&sh).unwrap();
        let bin = &nats_server().path;
        let quiet = |_: &str| {};

        let outcome = run(
            DrillName::WorkerCrash,
            cluster.deployment(),
            bin,
            &worker,
            &quiet,
        )
        .await
        .unwrap();
        assert!(outcome.passed, "{:?}", outcome.criteria);
        assert_eq!(
            streams(&js).await,
            before,
            "a finished drill leaves nothing"
        );

        // Interrupted once events flow: the dropped drill removes what it made all the same.
        let drill = run(
            DrillName::WorkerCrash,
            cluster.deployment(),
            bin,
            &worker,
            &quiet,
        );
        let interrupted = tokio::time::timeout(Duration::from_secs(4), drill).await;
        assert!(
            interrupted.is_err(),
            "the drill was still running when interrupted"
        );
        assert_eq!(
            streams(&js).await,
            before,
            "an interrupted drill leaves nothing"
        );
    }

    #[test]
    fn a_drill_uses_the_running_profile_it_can_run_on() {
        let leaf = [(Profile::Leaf, BackendKind::Process)];
        assert_eq!(
            DrillName::LeafPartition.choose(None, None, &leaf).unwrap(),
            (Profile::Leaf, BackendKind::Process)
        );
        let mesh = [(Profile::Mesh, BackendKind::Compose)];
        assert_eq!(
            DrillName::ClusterLoss.choose(None, None, &mesh).unwrap(),
            (Profile::Mesh, BackendKind::Compose)
        );
        assert_eq!(
            DrillName::Partition.choose(None, None, &mesh).unwrap(),
            (Profile::Ha, BackendKind::Process)
        );
        assert_eq!(
            DrillName::NodeKill.choose(None, None, &mesh).unwrap(),
            (Profile::Mesh, BackendKind::Compose)
        );
    }

    #[test]
    fn with_nothing_running_a_drill_starts_its_own_profile() {
        for (drill, profile) in [
            (DrillName::LeafPartition, Profile::Leaf),
            (DrillName::ClusterLoss, Profile::Mesh),
            (DrillName::NodeKill, Profile::Ha),
        ] {
            assert_eq!(
                drill.choose(None, None, &[]).unwrap(),
                (profile, BackendKind::Process)
            );
        }
        // A running profile the drill cannot use is left alone.
        let ha = [(Profile::Ha, BackendKind::Process)];
        assert_eq!(
            DrillName::LeafPartition.choose(None, None, &ha).unwrap().0,
            Profile::Leaf
        );
    }

    #[test]
    fn a_profile_the_drill_cannot_use_is_refused_naming_the_right_one() {
        let err = DrillName::LeafPartition
            .choose(Some(Profile::Ha), None, &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "drill leaf-partition needs profile leaf, not ha; pass --profile leaf"
        );
        let two = [
            (Profile::Ha, BackendKind::Process),
            (Profile::Mesh, BackendKind::Process),
        ];
        assert!(DrillName::NodeKill
            .choose(None, None, &two)
            .unwrap_err()
            .to_string()
            .contains("pass --profile"));
        assert_eq!(
            DrillName::NodeKill
                .choose(Some(Profile::Mesh), Some(BackendKind::Compose), &two)
                .unwrap(),
            (Profile::Mesh, BackendKind::Compose)
        );
    }
}
