//! `cargo xtask chaos`: a seeded, time-bounded random schedule of faults under continuous load,
//! built on the drills' machinery: the drill stream, a publisher (unique `Nats-Msg-Id`,
//! retried, failing over after repeated failures), three workers draining into an inbox, a
//! service inserting outbox rows that a relay publishes (and consumes back as a second group),
//! faults undone on drop. After each fault: the recovery measured and the stream audited so far;
//! at the end: the full audit and a timeline (Markdown and JSON) with one row per fault.
//!
//! Ctrl-C or SIGTERM stops injecting, heals everything, and still audits (a second one stops
//! at once, the drops undoing what is left); the command then exits 130 or 143.

pub mod faults;
pub mod schedule;
pub mod timeline;
pub mod tracker;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use sea_infra::deployment::{BackendKind, Deployment};
use sea_infra::model::topology::Profile;
use serde::Serialize;
use serde_json::Value;

use crate::drill::session::{Ctx, Evidence, Options, Session, STREAM};
use crate::drill::{verdict, Criterion, Outcome};
use crate::flags::Chaos;
use schedule::{FaultKind, Schedule};
use timeline::FaultRow;

/// Testing only: `delete-acked-event` deletes one acknowledged event from the stream before
/// the final audit, which must then report it lost (and the run fail).
pub const ENV_SEA_CHAOS_FAILPOINT: &str = "SEA_CHAOS_FAILPOINT";

/// The whole report: what ran, every fault, the audit.
#[derive(Debug, Serialize)]
pub struct Report {
    pub passed: bool,
    pub profile: String,
    pub backend: String,
    pub sync_interval: String,
    pub seed: u64,
    pub duration_s: u64,
    pub max_at_once: usize,
    pub faults: Vec<String>,
    /// Faults run, by kind.
    pub faults_by_kind: BTreeMap<String, usize>,
    pub interrupted: Option<String>,
    pub figures: BTreeMap<String, Value>,
    pub criteria: Vec<Criterion>,
    pub timeline: Vec<FaultRow>,
    /// Where the Markdown and JSON reports were written.
    pub report_md: String,
    pub report_json: String,
}

impl Chaos {
    pub fn run(self, sh: &xshell::Shell) -> anyhow::Result<()> {
        let profile = self.deployment.profile()?.unwrap_or(Profile::Ha);
        anyhow::ensure!(
            profile == Profile::Ha,
            "chaos runs on profile ha (three servers of one cluster), not {profile}"
        );
        let backend = match self.deployment.backend {
            Some(b) => b,
            None if self.private => BackendKind::Process,
            None => Deployment::recorded(Profile::Ha, None)
                .ok()
                .filter(|d| !d.running_servers().is_empty())
                .map_or(BackendKind::Process, |d| d.kind()),
        };
        let seed = self.seed.unwrap_or_else(schedule::fresh_seed);
        let max_at_once = usize::from(self.max_at_once);
        let plan = schedule::plan(seed, self.duration, &self.faults, max_at_once);
        let worker = crate::target::worker_bin(sh)?;
        let bin = crate::project::nats_server()?;
        let sync = self.durability.sync_interval.as_deref();
        let mut target = crate::target::Target::new(
            profile,
            self.private,
            bin.path,
            backend,
            sync,
            self.deployment.secure,
        )?;
        target
            .dep()
            .supports(sea_infra::deployment::Operation::Partition)?;
        let sync_interval = target.dep().topology.settings.sync_interval.clone();
        let progress = |line: &str| eprintln!("  {line}");
        let rt = crate::project::runtime()?;
        let undone = "workers stopped, servers this run started stopped";
        rt.block_on(crate::interrupt::until_interrupted(undone, async {
            target.up(&progress).await?;
            target
                .provision()
                .await
                .context("provision the spec before the chaos run")
        }))?;
        eprintln!(
            "chaos on profile {profile} ({backend}, sync_interval {sync_interval}): seed {seed}, {:?}, at most {max_at_once} fault(s) at once; repeat with --seed {seed}",
            self.duration
        );
        let ctx = Ctx {
            dep: target.dep(),
            nats_server: &target.bin,
            worker_bin: &worker,
            progress: &progress,
        };
        let run = rt.block_on(run(ctx, &plan));
        let (outcome, rows, interrupted) = run?;
        let kinds: Vec<String> = if self.faults.is_empty() {
            FaultKind::ALL
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect()
        } else {
            self.faults.iter().map(|k| k.as_str().to_owned()).collect()
        };
        let dir = crate::project::project_root().join("target/sea-chaos");
        let stem = format!(
            "chaos-{backend}{}-{seed}",
            if self.private { "-private" } else { "" }
        );
        let mut report = Report {
            passed: outcome.passed && interrupted.is_none(),
            profile: profile.to_string(),
            backend: backend.to_string(),
            sync_interval,
            seed,
            duration_s: self.duration.as_secs(),
            max_at_once,
            faults: kinds,
            faults_by_kind: timeline::kinds(&rows),
            interrupted: interrupted.map(str::to_owned),
            figures: outcome.figures,
            criteria: outcome.criteria,
            timeline: rows,
            report_md: dir.join(format!("{stem}.md")).display().to_string(),
            report_json: dir.join(format!("{stem}.json")).display().to_string(),
        };
        write_reports(&mut report, &dir)?;
        if !report.passed {
            save_logs(target.dep(), &dir.join(format!("{stem}-logs")));
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_summary(&report);
        }
        if let Some(signal) = interrupted {
            return Err(crate::interrupt::Interrupted {
                signal,
                undone:
                    "faults healed and audited; workers stopped, servers this run started stopped",
            }
            .into());
        }
        anyhow::ensure!(
            report.passed,
            "chaos run failed (report: {})",
            report.report_md
        );
        Ok(())
    }
}

/// Runs the schedule until its duration is up (or a signal), heals, audits.
async fn run(
    ctx: Ctx<'_>,
    plan: &Schedule,
) -> anyhow::Result<(Outcome, Vec<FaultRow>, Option<&'static str>)> {
    let opts = Options {
        workers: 3,
        outbox: true,
        failover_after: Some(5),
        stream_max_bytes: None,
    };
    let servers = ctx.servers_except(&[]);
    let mut s = crate::interrupt::until_interrupted(
        "workers stopped",
        Session::start_with(ctx, "chaos", servers, opts),
    )
    .await?;
    let mut rows: Vec<FaultRow> = Vec::new();
    let mut tracker = tracker::Tracker::default();
    let began = Instant::now();
    let steps = run_steps(&mut s, plan, began, &mut rows, &mut tracker);
    let interrupted = tokio::select! {
        () = steps => None,
        signal = crate::interrupt::signalled() => Some(signal),
    };
    if let Some(signal) = interrupted {
        eprintln!(
            "{signal}: no more faults; healing everything, then the audit (again to stop at once)"
        );
        if let Some(last) = rows.last_mut() {
            if last.done_ms == 0 {
                last.interrupted = true;
            }
        }
        let problems = s.heal_all().await;
        for p in problems {
            eprintln!("  warning: {p}");
        }
        if let Err(e) = s.wait_gate(faults::RECOVERY_BOUND).await {
            eprintln!("  warning: {e:#}");
        }
    }
    let end_ms = s.now_ms();
    if std::env::var(ENV_SEA_CHAOS_FAILPOINT).as_deref() == Ok("delete-acked-event") {
        delete_one_acked(&s).await?;
    }
    eprintln!(
        "faults done after {:.0?}; the final audit ...",
        began.elapsed()
    );
    let audit = s.finish_with_evidence("chaos");
    let (mut outcome, evidence) = tokio::select! {
        done = audit => done,
        signal = crate::interrupt::signalled() => {
            return Err(crate::interrupt::Interrupted {
                signal,
                undone: "the audit was cut short; faults healed, workers stopped",
            }
            .into())
        }
    };
    timeline::attribute(&mut rows, &evidence, end_ms);
    judge(&mut outcome, &rows, &evidence);
    Ok((outcome, rows, interrupted))
}

/// The steps, one after the other, until the duration is up.
async fn run_steps(
    s: &mut Session<'_>,
    plan: &Schedule,
    began: Instant,
    rows: &mut Vec<FaultRow>,
    tracker: &mut tracker::Tracker,
) {
    for step in &plan.steps {
        let left = plan.duration.saturating_sub(began.elapsed());
        if left <= step.gap {
            break;
        }
        tokio::time::sleep(step.gap).await;
        // The schedule never puts more faults in place at once than it was allowed to.
        debug_assert!(step.at_once() <= plan.max_at_once.max(1));
        rows.push(FaultRow::default());
        let row = rows.last_mut().expect("just pushed");
        faults::run_step(s, step, row, tracker).await;
        eprintln!("{}", progress_line(row));
        if began.elapsed() >= plan.duration {
            break;
        }
    }
}

/// One line per fault: what, where, the recovery and the check.
fn progress_line(r: &FaultRow) -> String {
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{:.1}s", v as f64 / 1000.0));
    let check = r.check.as_ref().map_or("no check".to_owned(), |c| {
        format!(
            "{} acked, {} lost, {} dup{}",
            c.acked,
            c.new_lost,
            c.new_duplicates,
            if c.rescanned { ", stream re-read" } else { "" }
        )
    });
    let mut line = format!(
        "#{:<3} {} {} {}: leader {} meta {} current {} gate {} | {} | {}",
        r.index,
        timeline::clock(r.at_ms),
        r.fault,
        r.targets.join(","),
        ms(r.new_leader_ms),
        ms(r.meta_leader_ms),
        ms(r.replicas_current_ms),
        ms(r.gate_ms),
        check,
        if r.recovered { "ok" } else { "NOT RECOVERED" },
    );
    if !r.problems.is_empty() {
        line.push_str(&format!(" ({})", r.problems.join("; ")));
    }
    line
}

/// The run's criteria beyond the session's audit: every fault recovered, nothing found lost or
/// doubled after any fault.
fn judge(outcome: &mut Outcome, rows: &[FaultRow], evidence: &Evidence) {
    let finished: Vec<&FaultRow> = rows.iter().filter(|r| !r.interrupted).collect();
    let unrecovered: Vec<String> = finished
        .iter()
        .filter(|r| !r.recovered)
        .map(|r| format!("#{} {}", r.index, r.fault))
        .collect();
    outcome.check(
        "every fault recovered within its bounds",
        unrecovered.is_empty(),
        if unrecovered.is_empty() {
            format!(
                "{} faults: new leaders within {:?}, replicas current and the gate within {:?}",
                finished.len(),
                faults::ELECTION_BOUND,
                faults::RECOVERY_BOUND
            )
        } else {
            format!("not recovered: {}", unrecovered.join(", "))
        },
    );
    let found: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let c = r.check.as_ref()?;
            let bad = c.new_lost + c.new_duplicates as usize + c.new_inbox_doubled;
            (bad + c.new_outbox_doubled > 0).then(|| {
                format!(
                    "#{} {}: {} lost, {} duplicates, {} inbox rows doubled, {} outbox rows twice",
                    r.index,
                    r.fault,
                    c.new_lost,
                    c.new_duplicates,
                    c.new_inbox_doubled,
                    c.new_outbox_doubled
                )
            })
        })
        .collect();
    outcome.check(
        "nothing lost or doubled at any fault's check",
        found.is_empty(),
        if found.is_empty() {
            format!(
                "{} checks clean",
                rows.iter().filter(|r| r.check.is_some()).count()
            )
        } else {
            found.join("; ")
        },
    );
    let kills = rows
        .iter()
        .filter(|r| r.fault.starts_with(FaultKind::KillStreamLeader.as_str()))
        .count();
    let worst_gap = rows.iter().map(|r| r.ack_gap_ms).max().unwrap_or(0);
    let leader_times: Vec<u64> = rows
        .iter()
        .filter(|r| r.fault.starts_with(FaultKind::KillStreamLeader.as_str()))
        .filter_map(|r| r.new_leader_ms)
        .collect();
    let figure = |o: &mut Outcome, k: &str, v: Value| {
        o.figures.insert(k.to_owned(), v);
    };
    figure(outcome, "faults", rows.len().into());
    figure(outcome, "stream_leader_kills", kills.into());
    figure(
        outcome,
        "longest_ack_gap_after_a_fault_ms",
        worst_gap.into(),
    );
    figure(
        outcome,
        "stream_leader_elected_ms_max",
        leader_times.iter().max().copied().into(),
    );
    figure(
        outcome,
        "replicas_current_ms_max",
        rows.iter()
            .filter_map(|r| r.replicas_current_ms)
            .max()
            .into(),
    );
    figure(
        outcome,
        "outbox_rows_inserted",
        evidence.outbox.len().into(),
    );
}

/// The failpoint: one acknowledged event deleted from the stream, as a loss would look.
async fn delete_one_acked(s: &Session<'_>) -> anyhow::Result<()> {
    let records = s.load().snapshot();
    let victim = records
        .acked
        .get(records.acked.len() / 2)
        .context("nothing acknowledged to delete")?;
    let js = s.observer_except(&[]).await?;
    js.get_stream(STREAM)
        .await?
        .delete_message(victim.seq)
        .await
        .context("delete an acknowledged event (failpoint)")?;
    eprintln!(
        "{ENV_SEA_CHAOS_FAILPOINT}: deleted acknowledged event {} (sequence {})",
        victim.id, victim.seq
    );
    Ok(())
}

/// The servers' logs next to the report of a failed run (the evidence a finding needs).
fn save_logs(dep: &Deployment, dir: &std::path::Path) {
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    for name in dep.server_names() {
        let _ = std::fs::write(dir.join(format!("{name}.log")), dep.log_tail(&name, 20_000));
    }
    eprintln!("server logs saved in {}", dir.display());
}

fn write_reports(report: &mut Report, dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let md = markdown(report);
    std::fs::write(&report.report_md, md).with_context(|| format!("write {}", report.report_md))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(&report.report_json, json)
        .with_context(|| format!("write {}", report.report_json))?;
    Ok(())
}

fn markdown(r: &Report) -> String {
    let mut out = format!(
        "# Chaos run: {}\n\nProfile `{}` on the {} backend, `sync_interval` {}, seed {}, {} s of faults \
         (at most {} at once) drawn from: {}.{}\n\n",
        verdict(r.passed),
        r.profile,
        r.backend,
        r.sync_interval,
        r.seed,
        r.duration_s,
        r.max_at_once,
        r.faults.join(", "),
        r.interrupted
            .as_ref()
            .map_or(String::new(), |s| format!(" Interrupted by {s}: healed, then audited."))
    );
    out.push_str("## Audit\n\n| criterion | result | detail |\n| --- | --- | --- |\n");
    for c in &r.criteria {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            c.name,
            verdict(c.pass),
            c.detail
        ));
    }
    out.push_str("\n## Figures\n\n| figure | value |\n| --- | --- |\n");
    for (k, v) in &r.figures {
        out.push_str(&format!("| {k} | {v} |\n"));
    }
    out.push_str("\n| fault | runs |\n| --- | --- |\n");
    for (k, n) in &r.faults_by_kind {
        out.push_str(&format!("| {k} | {n} |\n"));
    }
    out.push_str(
        "\n## Timeline\n\nTimes on the load's clock. *new leader*, *meta leader*: from the fault to a leader \
         outside the faulted servers (quorum loss: to any leader, after the restart); *replicas current*, \
         *gate*: from the heal; *ack gap*: the longest time without an acknowledged publish from the fault \
         to the next; *lost*, *dup*: acknowledged events of the window missing at the end (or at the check \
         after the fault), extra copies and doubled inbox rows found by that check.\n\n",
    );
    out.push_str(&timeline::markdown_table(&r.timeline));
    out
}

fn print_summary(r: &Report) {
    println!(
        "chaos seed {} on {} ({}): {} faults",
        r.seed,
        r.profile,
        r.backend,
        r.timeline.len()
    );
    for (k, n) in &r.faults_by_kind {
        println!("  {k:<24} {n}");
    }
    for (k, v) in &r.figures {
        println!("  {k:<34} {v}");
    }
    for c in &r.criteria {
        println!("  {} {} ({})", verdict(c.pass), c.name, c.detail);
    }
    println!("report: {} and {}", r.report_md, r.report_json);
    println!("chaos: {}", verdict(r.passed));
}
