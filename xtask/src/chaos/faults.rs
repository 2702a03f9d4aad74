//! One step of a chaos run on the session: inject the fault (and its companion, when the
//! schedule combines two), hold it while measuring the election, undo it, wait for the health
//! gate and for every replica to be current, then audit what the stream holds so far. Each
//! fault goes through the session, so whatever a failure or Ctrl-C leaves is undone.

use std::time::{Duration, Instant};

use anyhow::Context;
use sea_infra::client::observe;

use super::schedule::{Fault, FaultKind, Step};
use super::timeline::FaultRow;
use super::tracker::Tracker;
use crate::drill::session::{Session, STREAM};

/// A new stream or meta leader must be elected within this (the drills measured 5-6 s).
pub const ELECTION_BOUND: Duration = Duration::from_secs(30);
/// Every replica current again, and the health gate, within this of the heal.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(90);
/// A lame-duck server must be gone within this (the grace period is 10 s).
const LAME_DUCK_BOUND: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Runs `step`, filling `row` as it goes (so an interrupted step keeps what it measured).
pub async fn run_step(s: &mut Session<'_>, step: &Step, row: &mut FaultRow, tracker: &mut Tracker) {
    row.index = step.index;
    row.fault = step.label();
    row.at_ms = s.now_ms();
    let result = if step.fault.kind.hits_servers() {
        server_step(s, step, row).await
    } else {
        client_step(s, step.fault, row).await
    };
    if let Err(e) = result {
        row.problems.push(format!("{e:#}"));
    }
    // Whatever a failed step left behind is undone before the next one.
    let left = s.heal_all().await;
    row.problems.extend(left);
    row.recovered &= row.problems.is_empty();
    match audit_now(s, tracker).await {
        Ok(check) => row.check = Some(check),
        Err(e) => {
            row.recovered = false;
            row.problems.push(format!("check after the fault: {e:#}"));
        }
    }
    row.done_ms = s.now_ms();
}

/// The check after a fault: the records so far against what the stream holds. Right after a
/// heal the JetStream API can refuse for a moment (`no responders` while a stale leader steps
/// down), so a failed read is tried again for up to [`CHECK_BOUND`].
async fn audit_now(
    s: &Session<'_>,
    tracker: &mut Tracker,
) -> anyhow::Result<super::tracker::Check> {
    let began = Instant::now();
    loop {
        let acked = s.load().snapshot().acked;
        let outbox = s.outbox_snapshot();
        let now = s.load().now();
        let attempt = async {
            let js = s.observer_except(&[]).await?;
            let inbox = s.inbox_ids().await;
            let relay = s.relay_inbox_ids().await;
            let filter = format!("{}.>", s.subject);
            tracker
                .check(&js, &filter, &acked, &outbox, now, &[&inbox, &relay])
                .await
        };
        match attempt.await {
            Ok(check) => return Ok(check),
            Err(e) if began.elapsed() >= CHECK_BOUND => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// How long the check after a fault keeps trying to read the stream.
const CHECK_BOUND: Duration = Duration::from_secs(30);

/// Whether every server answers and names the same meta leader: the cluster has settled (a
/// server healed from a partition can still believe it leads until it hears a higher term).
async fn meta_agreed(s: &Session<'_>) -> bool {
    let monitor = s.dep.monitor().with_timeout(Duration::from_millis(500));
    let topology = &s.dep.topology;
    let mut leaders = Vec::new();
    for (_, server) in topology.servers() {
        let Ok(jsz) = monitor.jsz(&topology.monitor_url(server)).await else {
            return false;
        };
        leaders.push(jsz.meta_cluster.and_then(|m| m.leader).unwrap_or_default());
    }
    leaders.first().is_some_and(|l| !l.is_empty()) && leaders.windows(2).all(|w| w[0] == w[1])
}

/// Which servers a server fault hits.
async fn victims(s: &Session<'_>, fault: Fault, row: &mut FaultRow) -> anyhow::Result<Vec<String>> {
    let names = s.dep.server_names();
    let n = names.len();
    let pick = fault.pick as usize;
    Ok(match fault.kind {
        FaultKind::KillStreamLeader => {
            vec![row
                .stream_leader_before
                .clone()
                .with_context(|| format!("{STREAM} has no leader to kill"))?]
        }
        FaultKind::KillMetaLeader => {
            vec![s.meta_leader(&[]).await.context("no meta leader to kill")?]
        }
        FaultKind::QuorumLoss => {
            anyhow::ensure!(n >= 3, "a quorum loss needs three servers or more");
            let first = pick % n;
            let second = (first + 1 + (pick / n) % (n - 1)) % n;
            vec![names[first].clone(), names[second].clone()]
        }
        _ => vec![names[pick % n].clone()],
    })
}

async fn server_step(s: &mut Session<'_>, step: &Step, row: &mut FaultRow) -> anyhow::Result<()> {
    let fault = step.fault;
    let everyone = s.observer_except(&[]).await?;
    row.stream_leader_before = wait_leader(&everyone, &[], Duration::from_secs(10)).await;
    let victims = victims(s, fault, row).await?;
    row.targets = victims.clone();
    let observer = s.observer_except(&victims).await?;
    let began = Instant::now();
    row.at_ms = s.now_ms();
    match fault.kind {
        FaultKind::PauseServer => s.pause_server(&victims[0]).await?,
        FaultKind::Partition => s.partition_server(&victims[0]).await?,
        FaultKind::LameDuck => s.lame_duck(&victims[0]).await?,
        _ => {
            for v in &victims {
                s.kill_server(v).await?;
            }
        }
    }
    if let Some(with) = step.with {
        inject_client(s, with, row).await;
    }

    // Hold the fault, watching for a leader outside the victims (and, for lame duck, the exit).
    let must_elect = matches!(
        fault.kind,
        FaultKind::KillStreamLeader | FaultKind::KillMetaLeader | FaultKind::KillServer
    );
    let mut exited = fault.kind != FaultKind::LameDuck;
    let mut exited_at = None;
    loop {
        let waited = began.elapsed();
        if fault.kind != FaultKind::QuorumLoss {
            // Both polled at once, so one's timeout does not delay the other's measurement.
            let want_leader = row.new_leader_ms.is_none();
            let want_meta = row.meta_leader_ms.is_none();
            let ms = || began.elapsed().as_millis() as u64;
            let (leader, meta) = tokio::join!(
                async {
                    match want_leader {
                        true => observe::stream_leader(&observer, STREAM)
                            .await
                            .filter(|l| !victims.contains(l))
                            .map(|l| (l, ms())),
                        false => None,
                    }
                },
                async {
                    match want_meta {
                        true => s.meta_leader(&victims).await.map(|_| ms()),
                        false => None,
                    }
                }
            );
            if let Some((l, at)) = leader {
                row.new_leader_ms = Some(at);
                row.stream_leader_after = Some(l);
            }
            if let Some(at) = meta {
                row.meta_leader_ms = Some(at);
            }
        }
        if !exited {
            let v = victims[0].clone();
            exited = !s.dep.blocking(move |d| d.is_running(&v)).await;
            if exited {
                exited_at = Some(Instant::now());
            } else if waited >= LAME_DUCK_BOUND {
                row.problems.push(format!(
                    "{} still running {LAME_DUCK_BOUND:?} after SIGUSR2; killed",
                    victims[0]
                ));
                s.kill_server(&victims[0]).await?;
                exited = true;
                exited_at = Some(Instant::now());
            }
        }
        let held = match exited_at {
            Some(t) => t.elapsed() >= fault.hold,
            None => exited && waited >= fault.hold,
        };
        let elected = row.new_leader_ms.is_some() && row.meta_leader_ms.is_some();
        let waiting_for_election = must_elect && !elected && waited < ELECTION_BOUND;
        if held && !waiting_for_election {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    if must_elect && row.new_leader_ms.is_none() {
        row.problems.push(format!(
            "no stream leader outside {} within {ELECTION_BOUND:?}",
            victims.join(", ")
        ));
    }

    // Undo it: the servers first (a replacement worker may need them to bind its consumer).
    match fault.kind {
        FaultKind::PauseServer => s.resume_server(&victims[0]).await?,
        FaultKind::Partition => s.heal_server(&victims[0]).await?,
        _ => {
            for v in &victims {
                s.restart_server(v).await?;
            }
        }
    }
    let healed = Instant::now();
    row.healed_ms = Some(s.now_ms());
    if let Some(with) = step.with {
        heal_client(s, with, row).await?;
    }

    // Recovery: a leader (if none was elected during the fault), the gate, every replica current.
    let everyone = s.observer_except(&[]).await?;
    if row.new_leader_ms.is_none() {
        let leader = wait_leader(&everyone, &[], ELECTION_BOUND).await;
        if leader.is_some() {
            row.new_leader_ms = Some(began.elapsed().as_millis() as u64);
        }
        row.stream_leader_after = leader;
    }
    if row.meta_leader_ms.is_none() {
        let meta = observe::time_until(ELECTION_BOUND, || async {
            s.meta_leader(&[]).await.is_some()
        })
        .await;
        row.meta_leader_ms = meta.map(|_| began.elapsed().as_millis() as u64);
    }
    match s.wait_gate(RECOVERY_BOUND).await {
        Ok(_) => row.gate_ms = Some(healed.elapsed().as_millis() as u64),
        Err(e) => row.problems.push(format!("{e:#}")),
    }
    if observe::time_until(RECOVERY_BOUND, || meta_agreed(s))
        .await
        .is_none()
    {
        row.problems.push(format!(
            "the servers do not name one meta leader within {RECOVERY_BOUND:?}"
        ));
    }
    let current = observe::time_until(RECOVERY_BOUND, || {
        observe::all_replicas_current(&everyone, STREAM)
    })
    .await;
    match current {
        Some(_) => row.replicas_current_ms = Some(healed.elapsed().as_millis() as u64),
        None => row.problems.push(format!(
            "replicas of {STREAM} not all current within {RECOVERY_BOUND:?}"
        )),
    }
    row.recovered = row.problems.is_empty();
    Ok(())
}

async fn client_step(s: &mut Session<'_>, fault: Fault, row: &mut FaultRow) -> anyhow::Result<()> {
    row.at_ms = s.now_ms();
    inject_client(s, fault, row).await;
    tokio::time::sleep(fault.hold).await;
    heal_client(s, fault, row).await?;
    row.healed_ms = Some(s.now_ms());
    row.recovered = row.problems.is_empty();
    Ok(())
}

fn worker_index(s: &Session<'_>, fault: Fault) -> usize {
    fault.pick as usize % s.workers.len().max(1)
}

async fn inject_client(s: &mut Session<'_>, fault: Fault, row: &mut FaultRow) {
    let i = worker_index(s, fault);
    match fault.kind {
        FaultKind::KillWorker => {
            row.targets.push(format!("worker-{i}"));
            s.kill_worker(i);
        }
        FaultKind::PauseWorker => {
            row.targets.push(format!("worker-{i}"));
            s.pause_worker(i);
        }
        FaultKind::KillRelay => {
            row.targets.push("relay".to_owned());
            s.kill_relay();
        }
        other => row
            .problems
            .push(format!("{} is not a worker fault", other.as_str())),
    }
}

async fn heal_client(s: &mut Session<'_>, fault: Fault, row: &mut FaultRow) -> anyhow::Result<()> {
    let i = worker_index(s, fault);
    match fault.kind {
        FaultKind::KillWorker => s.respawn_worker(i).await?,
        FaultKind::PauseWorker => s.resume_worker(i),
        FaultKind::KillRelay => s.respawn_relay().await?,
        other => row
            .problems
            .push(format!("{} is not a worker fault", other.as_str())),
    }
    Ok(())
}

/// The stream's leader once it has one outside `except`, polled until `timeout`.
async fn wait_leader(
    js: &async_nats::jetstream::Context,
    except: &[String],
    timeout: Duration,
) -> Option<String> {
    let began = Instant::now();
    loop {
        if let Some(l) = observe::stream_leader(js, STREAM).await {
            if !except.contains(&l) {
                return Some(l);
            }
        }
        if began.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}
