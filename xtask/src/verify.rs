//! `cargo xtask verify`: the seeds' verification sequence in order, each step PASS/FAIL with
//! its figures: prerequisites, bring-up, health gate, provisioning and its idempotence, a round
//! trip through the worker, the node-kill, rolling-restart and partition drills, teardown.
//! A summary table at the end, `--json` for machines, a Markdown report under `target/`.

use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;
use sea_infra::client::{crosscheck, observe};
use sea_infra::deployment::BackendKind;
use sea_infra::model::spec::ENV_CONSUMER_FILTER_SUBJECT;
use sea_infra::model::topology::Profile;
use sea_infra::model::Role;
use sea_infra::probes::health;
use sea_mq_worker::child::Launch;
use sea_mq_worker::config::{Database, ENV_OUTBOX_POLL_INTERVAL_MS, ENV_STREAM_NAME};
use sea_mq_worker::db::{NewOutboxRow, Store};
use serde::Serialize;
use xshell::Shell;

use crate::drill::{self, session::STREAM, verdict, DrillName};
use crate::flags::Verify;
use crate::target::{self, Target};
use crate::{project, Exit};

#[derive(Clone, Debug, Serialize)]
struct Step {
    step: String,
    /// "PASS", "FAIL", "SKIP", or "INTERRUPTED" for the step a signal cut short.
    status: &'static str,
    seconds: f64,
    figures: String,
}

struct Steps {
    list: Vec<Step>,
    /// A failed step that later steps depend on.
    blocked: bool,
    /// The step running now, and since when: what an interruption cut short.
    current: Option<(String, Instant)>,
}

impl Steps {
    /// Runs one step (skipped once an earlier essential step failed) and prints its line.
    async fn run<F>(&mut self, name: &str, essential: bool, f: F)
    where
        F: std::future::Future<Output = anyhow::Result<(bool, String)>>,
    {
        if self.blocked {
            self.push(name, "SKIP", 0.0, "an earlier step failed".into());
            return;
        }
        eprintln!("==> {name}");
        let began = Instant::now();
        self.current = Some((name.to_owned(), began));
        let (pass, figures) = f.await.unwrap_or_else(|e| (false, format!("{e:#}")));
        self.current = None;
        let status = verdict(pass);
        self.push(name, status, began.elapsed().as_secs_f64(), figures);
        self.blocked |= essential && !pass;
    }

    /// Records the step a signal cut short (if one was running).
    fn interrupted(&mut self, signal: &str) {
        if let Some((name, began)) = self.current.take() {
            let why = format!("interrupted by {signal}; the steps after it did not run");
            self.push(&name, "INTERRUPTED", began.elapsed().as_secs_f64(), why);
        }
    }

    fn push(&mut self, name: &str, status: &'static str, seconds: f64, figures: String) {
        eprintln!("    {status} {name} ({seconds:.1}s): {figures}");
        self.list.push(Step {
            step: name.to_owned(),
            status,
            seconds,
            figures,
        });
    }
}

impl Verify {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let profile = self.deployment.profile()?;
        let began = Instant::now();
        let mut steps = Steps {
            list: Vec::new(),
            blocked: false,
            current: None,
        };
        let rt = project::runtime()?;
        let mut target: Option<Target> = None;
        let mut worker = None;
        let undone = "injected faults undone, workers stopped, servers this run started stopped";
        let result = rt.block_on(crate::interrupt::until_interrupted(undone, async {
            steps
                .run("prerequisites", true, async {
                    let bin = project::nats_server()?;
                    worker = Some(target::worker_bin(sh)?);
                    let backend = self.deployment.backend;
                    let version = bin.version;
                    let source = bin.source;
                    let sync = self.durability.sync_interval.as_deref();
                    target = Some(Target::new(
                        profile,
                        self.private,
                        bin.path,
                        backend,
                        sync,
                        self.deployment.secure,
                    )?);
                    Ok((
                        true,
                        format!("nats-server {version} ({source}), sea-mq-worker built"),
                    ))
                })
                .await;
            let progress = |line: &str| eprintln!("    {line}");
            steps
                .run("bring-up", true, async {
                    let t = target.as_mut().context("no target")?;
                    t.keep = self.keep;
                    let took = t.up(&progress).await?;
                    let started = if t.started.is_empty() {
                        "already running".to_owned()
                    } else {
                        format!("started {}", t.started.join(", "))
                    };
                    Ok((true, format!("{started} in {} ms", took.as_millis())))
                })
                .await;
            steps
                .run("health gate", true, async {
                    let t = target.as_ref().context("no target")?;
                    let report = health::check(&t.dep().monitor(), &t.dep().topology, None).await;
                    let figures = if report.is_healthy() {
                        let mut leaders: Vec<String> =
                            report.servers.iter().filter_map(|n| n.meta_leader.clone()).collect();
                        leaders.sort();
                        leaders.dedup();
                        format!(
                            "{} server(s) healthy, meta leader(s) {}",
                            report.servers.len(),
                            leaders.join(", ")
                        )
                    } else {
                        report.failures().join("; ")
                    };
                    Ok((report.is_healthy(), figures))
                })
                .await;
            steps
                .run("provisioning", true, async {
                    let t = target.as_ref().context("no target")?;
                    let began = Instant::now();
                    let first = t.provision().await?;
                    let first_ms = began.elapsed().as_millis();
                    let again = t.provision().await?;
                    let summary = |plans: &[sea_infra::client::provision::Plan]| {
                        plans
                            .iter()
                            .map(|p| p.summary())
                            .collect::<Vec<_>>()
                            .join(" + ")
                    };
                    Ok((
                        again.iter().all(|p| p.is_unchanged()),
                        format!(
                            "{} in {first_ms} ms; again: {}",
                            summary(&first),
                            summary(&again)
                        ),
                    ))
                })
                .await;
            steps
                .run("worker round trip", false, async {
                    let t = target.as_ref().context("no target")?;
                    let bin = worker.as_ref().context("no worker")?;
                    round_trip(t, bin).await
                })
                .await;
            if matches!(profile, Profile::Mesh | Profile::Leaf) {
                steps
                    .run("federation", false, async {
                        let t = target.as_ref().context("no target")?;
                        let topology = &t.dep().topology;
                        let servers = |i: usize| topology.client_urls(&topology.clusters[i]);
                        if profile == Profile::Leaf {
                            let a = &topology.clusters[0].name;
                            let r = crosscheck::leaf_checks(&t.dep().nats(Role::Ops), &servers(0), &servers(1), a).await?;
                            return Ok((
                                true,
                                format!(
                                    "crossed: {}; stayed local: {}; mirror caught up in {} ms",
                                    r.crossed.iter().map(|(s, ms)| format!("{s} ({ms} ms)")).collect::<Vec<_>>().join(", "),
                                    r.stayed_local.join(", "),
                                    r.mirror_caught_up_ms
                                ),
                            ));
                        }
                        let r = crosscheck::mesh_checks(&t.dep().nats(Role::Ops), &servers(0), &servers(1)).await?;
                        Ok((
                            true,
                            format!(
                                "pub/sub sea-a -> sea-b in {} ms; {} events mirrored to sea-b in {} ms",
                                r.pubsub_ms, r.events, r.mirror_caught_up_ms
                            ),
                        ))
                    })
                    .await;
            }
            for name in drills_for(profile) {
                let t = target.as_ref().context("no target")?;
                if let Some(why) = name.operations().iter().find_map(|op| t.dep().supports(*op).err()) {
                    steps.push(&format!("drill {}", name.as_str()), "SKIP", 0.0, why.to_string());
                    continue;
                }
                steps
                    .run(&format!("drill {}", name.as_str()), false, async {
                        let t = target.as_ref().context("no target")?;
                        let bin = worker.as_ref().context("no worker")?;
                        let outcome = drill::run(name, t.dep(), &t.bin, bin, &progress).await?;
                        let failed: Vec<&str> = outcome
                            .criteria
                            .iter()
                            .filter(|c| !c.pass)
                            .map(|c| c.name.as_str())
                            .collect();
                        let mut line = outcome.figures_line(&[
                            "acked",
                            "acked_lost",
                            "inbox_missing",
                            "inbox_doubled",
                            "longest_ack_gap_ms",
                            "stream_leader_elected_ms",
                            "restarted_current_ms",
                            "given_up",
                        ]);
                        if !failed.is_empty() {
                            line = format!("failed: {}; {line}", failed.join(", "));
                        }
                        Ok((outcome.passed, line))
                    })
                    .await;
            }
            anyhow::Ok(())
        }));
        // Teardown runs even after a failure or an interruption.
        let interrupted = result
            .as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<crate::interrupt::Interrupted>())
            .map(|i| i.signal);
        if let Some(signal) = interrupted {
            steps.interrupted(signal);
        }
        steps.blocked = false;
        teardown(&mut steps, target.take());
        report(&self, profile, &steps.list, began.elapsed())?;
        result?;
        let failed = steps.list.iter().filter(|s| s.status == "FAIL").count();
        if failed > 0 {
            return Err(Exit {
                code: 1,
                message: format!("verify: {failed} step(s) failed"),
            }
            .into());
        }
        Ok(())
    }
}

/// The drills of each profile's verification.
fn drills_for(profile: Profile) -> Vec<DrillName> {
    match profile {
        Profile::Single => Vec::new(),
        Profile::Ha => vec![
            DrillName::NodeKill,
            DrillName::RollingRestart,
            DrillName::Partition,
        ],
        Profile::Mesh => vec![DrillName::NodeKill, DrillName::ClusterLoss],
        Profile::Leaf => vec![DrillName::LeafPartition],
    }
}

/// Stops what verify started (unless `--keep`) and checks no server process is left.
fn teardown(steps: &mut Steps, target: Option<Target>) {
    let Some(mut t) = target else {
        steps.push("teardown", "SKIP", 0.0, "nothing was started".into());
        return;
    };
    if t.keep {
        let servers = t.dep().topology.nats_servers();
        steps.push(
            "teardown",
            "SKIP",
            0.0,
            format!("--keep: left running at {servers}"),
        );
        return;
    }
    if t.started.is_empty() {
        steps.push(
            "teardown",
            "PASS",
            0.0,
            "left running: it was up before verify".into(),
        );
        return;
    }
    let began = Instant::now();
    let started = t.started.join(", ");
    let left = t.stop();
    let figures = if left.is_empty() {
        format!("stopped {started}; no server process left")
    } else {
        format!("still running: {}", left.join(", "))
    };
    steps.push(
        "teardown",
        verdict(left.is_empty()),
        began.elapsed().as_secs_f64(),
        figures,
    );
}

/// Publishes events for a fresh group and waits for them in its inbox, then inserts outbox rows
/// and waits for them in the stream, each exactly once.
async fn round_trip(t: &Target, bin: &std::path::Path) -> anyhow::Result<(bool, String)> {
    const N: usize = 100;
    let run = format!("verify{}", std::process::id());
    // On the drills' stream: nothing of verify's reaches a production consumer.
    let base = drill::stream::subject(&run);
    let (inbound, outbound) = (format!("{base}.in"), format!("{base}.out"));
    drill::stream::ensure(t.dep()).await?;
    let group = format!("verify-{run}");
    let dir = tempfile::Builder::new()
        .prefix("sea-verify-")
        .tempdir()
        .context("create a scratch directory")?;
    let db = dir.path().join("worker.db");
    let servers = t.servers();
    let mut worker = Launch::sqlite(bin, &servers, &db, &group)
        .credentials(drill::session::ops_env(t.dep()))
        .set(ENV_STREAM_NAME, STREAM)
        .set(ENV_CONSUMER_FILTER_SUBJECT, format!("{inbound}.>"))
        .set(ENV_OUTBOX_POLL_INTERVAL_MS, 50)
        .log_to(dir.path().join("worker.log"))
        .spawn()?;
    worker.wait_ready(Duration::from_secs(30)).await?;
    let store = Store::open(&Database::Sqlite(db), Duration::from_secs(5))
        .await
        .context("open the worker's database")?;
    let client = t.dep().nats(Role::Ops).connect(&servers).await?;
    let js = jetstream::new(client);

    let began = Instant::now();
    crosscheck::publish_acked(&js, &format!("{inbound}.verify"), &format!("{run}-in"), N).await?;
    let inbox = observe::time_until(Duration::from_secs(30), || async {
        store.inbox_ids(&group).await.map_or(0, |ids| ids.len()) >= N
    })
    .await;
    let inbox_ms = began.elapsed().as_millis();

    let began = Instant::now();
    let rows = (0..N)
        .map(|i| {
            let id = format!("{run}-out-{i}");
            NewOutboxRow {
                payload: serde_json::json!({ "id": id, "type": "sea.verify" }).to_string(),
                subject: format!("{outbound}.{}", i % 4),
                headers: None,
                id,
            }
        })
        .collect();
    store
        .insert_outbox(rows)
        .await
        .context("insert outbox rows")?;
    let prefix = format!("{run}-out-");
    let relayed = observe::time_until(Duration::from_secs(30), || async {
        store
            .outbox_progress(&prefix)
            .await
            .is_ok_and(|p| p.published >= N as u64)
    })
    .await;
    let outbox_ms = began.elapsed().as_millis();
    let msgs = observe::read_stream(
        &js,
        STREAM,
        &format!("{outbound}.>"),
        Duration::from_secs(30),
    )
    .await?;
    let ids = observe::msg_id_counts(&msgs);
    let once = msgs.len() == N && ids.len() == N;
    let inbox_rows = store.inbox_ids(&group).await.map_or(0, |ids| ids.len());
    drop(worker);
    drill::stream::clean_up(t.dep(), &servers, std::slice::from_ref(&group), &base).await;
    let pass = inbox.is_some() && inbox_rows == N && relayed.is_some() && once;
    Ok((
        pass,
        format!(
            "inbox {inbox_rows}/{N} rows in {inbox_ms} ms; outbox {}/{N} in the stream ({} distinct ids) in {outbox_ms} ms",
            msgs.len(),
            ids.len()
        ),
    ))
}

/// The summary table (stdout, or JSON) and the Markdown report under `target/sea-verify/`.
fn report(v: &Verify, profile: Profile, steps: &[Step], took: Duration) -> anyhow::Result<()> {
    let interrupted = steps.iter().find(|s| s.status == "INTERRUPTED");
    let passed = interrupted.is_none() && steps.iter().all(|s| s.status != "FAIL");
    let verdict = match (interrupted, passed) {
        (Some(_), _) => "INTERRUPTED",
        (None, true) => "PASS",
        (None, false) => "FAIL",
    };
    let dir = project::project_root().join("target/sea-verify");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let private = if v.private { "-private" } else { "" };
    let backend = match v.deployment.backend {
        BackendKind::Process => "",
        BackendKind::Compose => "-compose",
    };
    let path = dir.join(format!("report-{}{backend}{private}.md", profile));
    let mut md = format!(
        "# cargo xtask verify --profile {} --backend {}: {verdict}\n\n{:.0} s in all.\n\n| step | result | seconds | figures |\n| --- | --- | --- | --- |\n",
        profile,
        v.deployment.backend.as_str(),
        took.as_secs_f64()
    );
    for s in steps {
        md.push_str(&format!(
            "| {} | {} | {:.1} | {} |\n",
            s.step,
            s.status,
            s.seconds,
            s.figures.replace('|', "\\|")
        ));
    }
    std::fs::write(&path, &md).with_context(|| format!("write {}", path.display()))?;
    if v.json {
        let out = serde_json::json!({
            "profile": profile.as_str(),
            "passed": passed,
            "interrupted": interrupted.map(|s| s.step.as_str()),
            "seconds": took.as_secs_f64(),
            "steps": steps,
            "report": path,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("\n{:<24} {:<6} {:>8}  figures", "step", "result", "seconds");
        for s in steps {
            println!(
                "{:<24} {:<6} {:>8.1}  {}",
                s.step, s.status, s.seconds, s.figures
            );
        }
        println!(
            "verify {verdict} in {:.0}s; report: {}",
            took.as_secs_f64(),
            path.display()
        );
    }
    Ok(())
}
