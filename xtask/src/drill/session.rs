//! What every drill shares: a steady publisher and a worker group scoped to the drill's own
//! subject, the faults it injected (undone on drop, so Ctrl-C or a failure never leaves a
//! server frozen or stopped), and the audit that turns records into PASS/FAIL criteria.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use nix::sys::signal::Signal;
use sea_infra::harness::{scratch_dir, ScratchDir};
use sea_infra::load::{Load, LoadConfig, LoadRecords};
use sea_infra::monitor::Monitor;
use sea_infra::nats_config::NatsConfig;
use sea_infra::observe;
use sea_infra::process::Deployment;
use serde_json::{json, Value};

use super::{Criterion, Outcome};
use crate::workers::{self, Worker};

/// The stream every drill loads.
pub const STREAM: &str = "SEA_EVENTS";
/// Redelivery after a killed worker must not take the spec's 30 s in a drill.
pub const DRILL_ACK_WAIT_MS: &str = "3000";

pub struct Session<'a> {
    pub dep: &'a Deployment,
    pub js: jetstream::Context,
    /// Events go to `<subject>.<n>`; the group's consumer sees only those.
    pub subject: String,
    pub group: String,
    db: PathBuf,
    pub workers: Vec<Worker>,
    load: Option<Load>,
    frozen: Vec<String>,
    stopped: Vec<String>,
    leaf_links_cut: bool,
    pub figures: BTreeMap<String, Value>,
    pub criteria: Vec<Criterion>,
    progress: &'a dyn Fn(&str),
    scratch: ScratchDir,
}

/// What every drill runs with: the deployment, the worker binary, where progress goes.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub dep: &'a Deployment,
    pub worker_bin: &'a Path,
    pub progress: &'a dyn Fn(&str),
}

impl Ctx<'_> {
    /// Names of every server, in topology order.
    pub fn server_names(&self) -> Vec<String> {
        self.dep
            .topology
            .nodes()
            .map(|(_, n)| n.name.clone())
            .collect()
    }

    /// Client URLs of the servers of the first JetStream domain (every server but in `leaf`,
    /// where it is the first cell) except those named in `except`.
    pub fn servers_except(&self, except: &[&str]) -> Vec<String> {
        let topology = &self.dep.topology;
        let domains = sea_infra::federation::domains(topology);
        let Some(first) = domains.first() else {
            return Vec::new();
        };
        first
            .clusters
            .iter()
            .flat_map(|c| &c.nodes)
            .filter(|n| !except.contains(&n.name.as_str()))
            .map(|n| topology.client_url(n))
            .collect()
    }
}

impl<'a> Session<'a> {
    /// Connects to `servers`, starts `workers` workers and the publisher, and returns once
    /// events flow.
    pub async fn start(
        ctx: Ctx<'a>,
        name: &str,
        servers: Vec<String>,
        workers: usize,
    ) -> anyhow::Result<Session<'a>> {
        let run = format!("{name}-{}", unix_ms());
        let client = NatsConfig::default()
            .connect(&servers)
            .await
            .context("connect the drill's publisher")?;
        let js = jetstream::new(client);
        let scratch = scratch_dir("drill");
        let mut session = Session {
            dep: ctx.dep,
            js,
            subject: format!("sea.event.drill.{run}"),
            group: format!("drill-{run}"),
            db: scratch.path().join("inbox.db"),
            workers: Vec::new(),
            load: None,
            frozen: Vec::new(),
            stopped: Vec::new(),
            leaf_links_cut: false,
            figures: BTreeMap::new(),
            criteria: Vec::new(),
            progress: ctx.progress,
            scratch,
        };
        session.say(&format!(
            "starting {} worker(s) of group {} and a publisher on {}.>",
            workers, session.group, session.subject
        ));
        let filter = format!("{}.>", session.subject);
        let servers = servers.join(",");
        let env = [
            ("CONSUMER_FILTER_SUBJECT", filter.as_str()),
            ("CONSUMER_ACK_WAIT_MS", DRILL_ACK_WAIT_MS),
            ("NATS_RECONNECT_MAX", "0"),
            ("NATS_RECONNECT_DELAY_MS", "100"),
            ("NATS_RECONNECT_DELAY_MAX_MS", "500"),
            ("OUTBOX_ENABLED", "false"),
        ];
        let spec = workers::GroupSpec {
            bin: ctx.worker_bin,
            servers: &servers,
            db: &session.db,
            group: &session.group,
            env: &env,
            log_dir: Some(session.scratch.path()),
        };
        session.workers = workers::spawn(&spec, workers)?;
        workers::wait_ready(&mut session.workers, Duration::from_secs(30)).await?;
        let load = Load::start(session.js.clone(), LoadConfig::new(&session.subject, &run));
        let flowing = load.wait_more_acked(100, Duration::from_secs(30)).await;
        session.load = Some(load);
        anyhow::ensure!(
            flowing,
            "the publisher got no acks within 30s: is {STREAM} provisioned?"
        );
        Ok(session)
    }

    /// A JetStream context for polling cluster state: its short request timeout keeps a
    /// measurement from being rounded up to the default 5 s while a leader is missing.
    pub fn observer(&self) -> jetstream::Context {
        let mut js = self.js.clone();
        js.set_timeout(Duration::from_millis(250));
        js
    }

    pub fn say(&self, line: &str) {
        (self.progress)(line);
    }

    pub fn load(&self) -> &Load {
        self.load.as_ref().expect("the load runs until the audit")
    }

    /// Time on the load's clock, in ms (figures use it so they line up with the records).
    pub fn now_ms(&self) -> u64 {
        self.load().now().as_millis() as u64
    }

    pub fn figure(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.insert(name.to_owned(), value.into());
    }

    pub fn check(&mut self, name: &str, pass: bool, detail: impl Into<String>) {
        self.criteria.push(Criterion {
            name: name.to_owned(),
            pass,
            detail: detail.into(),
        });
    }

    /// Rows of the group in the inbox.
    pub fn inbox_ids(&self) -> Vec<String> {
        read_inbox(&self.db, &self.group).unwrap_or_default()
    }

    // ---- faults (each undone on drop if the drill does not undo it) ----

    pub fn kill_server(&mut self, name: &str) {
        self.dep.kill_node(name);
        self.stopped.push(name.to_owned());
    }

    /// SIGTERM and wait for it to exit (bounded), as an orderly stop would.
    pub fn stop_server(&mut self, name: &str) {
        self.dep
            .stop_node(name, Signal::SIGTERM, Duration::from_secs(10));
        self.stopped.push(name.to_owned());
    }

    pub async fn restart_server(&mut self, name: &str) -> anyhow::Result<()> {
        self.dep
            .start_node(name)
            .with_context(|| format!("restart {name}"))?;
        self.stopped.retain(|n| n != name);
        Ok(())
    }

    /// Lame-duck mode (SIGUSR2) and the time until the process is gone; `None` when it
    /// outlived `bound` and was killed.
    pub async fn lame_duck_stop(&mut self, name: &str, bound: Duration) -> Option<Duration> {
        self.stopped.push(name.to_owned());
        self.dep.signal_node(name, Signal::SIGUSR2);
        let dep = self.dep;
        let exited = observe::time_until(bound, || async { dep.running_pid(name).is_none() }).await;
        if exited.is_none() {
            dep.kill_node(name);
        }
        exited
    }

    pub fn cut_leaf_links(&mut self) -> anyhow::Result<()> {
        self.leaf_links_cut = true;
        self.dep
            .set_leaf_links(false)
            .context("cut the leafnode links")?;
        Ok(())
    }

    pub fn heal_leaf_links(&mut self) -> anyhow::Result<()> {
        self.dep
            .set_leaf_links(true)
            .context("restore the leafnode links")?;
        self.leaf_links_cut = false;
        Ok(())
    }

    /// Cuts the server off (SIGSTOP for a process, network disconnect for a container).
    pub fn freeze_server(&mut self, name: &str) {
        self.dep.isolate_node(name);
        self.frozen.push(name.to_owned());
    }

    pub fn thaw_server(&mut self, name: &str) {
        self.dep.rejoin_node(name);
        self.frozen.retain(|n| n != name);
    }

    /// Waits for the health gate over every server; the time it took.
    pub async fn wait_gate(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let all = self
            .dep
            .topology
            .nodes()
            .map(|(_, n)| n.name.clone())
            .collect();
        let began = std::time::Instant::now();
        self.dep
            .wait_healthy(&all, &[], timeout, self.progress)
            .await
            .context("health gate after the fault")?;
        Ok(began.elapsed())
    }

    /// Waits for the health gate and judges it as criterion `name`.
    pub async fn check_gate(&mut self, name: &str, timeout: Duration) {
        let gate = self.wait_gate(timeout).await;
        self.check(
            name,
            gate.is_ok(),
            match &gate {
                Ok(d) => format!("in {} ms", d.as_millis()),
                Err(e) => format!("{e:#}"),
            },
        );
    }

    /// The meta leader as any server outside `except` reports it.
    pub async fn meta_leader(&self, except: &[String]) -> Option<String> {
        let monitor = Monitor::new(Duration::from_millis(500));
        for (_, node) in self.dep.topology.nodes() {
            if except.contains(&node.name) {
                continue;
            }
            let url = self.dep.topology.monitor_url(node);
            if let Ok(jsz) = monitor.jsz(&url).await {
                let leader = jsz.meta_cluster.and_then(|m| m.leader);
                if let Some(l) = leader.filter(|l| !l.is_empty() && !except.contains(l)) {
                    return Some(l);
                }
            }
        }
        None
    }

    /// Records how long until `mirror` (read through `mirror_js`) holds every sequence of this
    /// drill's stream, judged as criterion `name`.
    pub async fn check_mirror(&mut self, name: &str, mirror_js: &jetstream::Context, mirror: &str) {
        let caught_up = sea_infra::crosscheck::mirror_caught_up(
            &self.js,
            STREAM,
            mirror_js,
            mirror,
            Duration::from_secs(60),
        )
        .await;
        self.figure(
            "mirror_caught_up_ms",
            caught_up.as_ref().ok().map(|d| d.as_millis() as u64),
        );
        self.check(
            name,
            caught_up.is_ok(),
            match &caught_up {
                Ok(d) => format!(
                    "{mirror} at {STREAM}'s last sequence after {} ms",
                    d.as_millis()
                ),
                Err(e) => e.to_string(),
            },
        );
    }

    /// Records how long until `server` is a current replica of the stream again.
    pub async fn measure_catch_up(&mut self, server: &str, timeout: Duration) {
        let js = self.observer();
        let caught_up =
            observe::time_until(timeout, || observe::replica_current(&js, STREAM, server)).await;
        self.figure(
            "restarted_current_ms",
            caught_up.map_or(Value::Null, |d| json!(d.as_millis() as u64)),
        );
        self.check(
            "restarted server catches up",
            caught_up.is_some(),
            match caught_up {
                Some(d) => format!("{server} current after {} ms", d.as_millis()),
                None => format!("{server} not current within {timeout:?}"),
            },
        );
    }

    // ---- the audit ----

    /// Stops the publisher, waits for the workers to drain, checks the records against the
    /// stream and the inbox, and cleans up.
    pub async fn finish(mut self, name: &str) -> Outcome {
        let records = match self.load.take() {
            Some(load) => load.stop().await,
            None => LoadRecords::default(),
        };
        if let Err(e) = self.audit(&records).await {
            self.check("audit completed", false, format!("{e:#}"));
        }
        self.cleanup().await;
        let passed = self.criteria.iter().all(|c| c.pass);
        Outcome {
            drill: name.to_owned(),
            passed,
            figures: std::mem::take(&mut self.figures),
            criteria: std::mem::take(&mut self.criteria),
        }
    }

    async fn audit(&mut self, records: &LoadRecords) -> anyhow::Result<()> {
        let attempts_failed = records.failed_attempts.len();
        self.figure("acked", records.acked.len());
        self.figure("failed_attempts", attempts_failed);
        self.figure("given_up", records.given_up.len());
        self.figure(
            "longest_ack_gap_ms",
            records.longest_ack_gap().as_millis() as u64,
        );
        self.figure(
            "max_failed_attempt_ms",
            records.slowest_failure().as_millis() as u64,
        );
        if let Some(first) = records.failed_attempts.first() {
            self.figure("first_error", first.error.clone());
        }
        self.say("reading the stream back ...");
        let filter = format!("{}.>", self.subject);
        let msgs = observe::read_stream(&self.js, STREAM, &filter, Duration::from_secs(60)).await?;
        let in_stream = observe::msg_id_counts(&msgs);
        let lost: Vec<&str> = records
            .acked
            .iter()
            .filter(|a| !in_stream.contains_key(&a.id))
            .map(|a| a.id.as_str())
            .collect();
        let duplicates: u64 = in_stream.values().map(|n| n - 1).sum();
        self.figure("stream_messages", msgs.len());
        self.figure("acked_lost", lost.len());
        self.figure("stream_duplicates", duplicates);
        self.check(
            "no acknowledged event lost",
            lost.is_empty(),
            match lost.first() {
                None => format!("all {} acked events in {STREAM}", records.acked.len()),
                Some(id) => format!("{} acked events missing, e.g. {id}", lost.len()),
            },
        );
        self.check(
            "no duplicate in the stream",
            duplicates == 0,
            format!("{duplicates} extra copies"),
        );

        self.say("waiting for the workers to drain ...");
        let expected: BTreeSet<String> = in_stream.keys().cloned().collect();
        let (db, group) = (self.db.clone(), self.group.clone());
        let want = expected.len();
        let drained = observe::time_until(Duration::from_secs(60), || {
            let ids = read_inbox(&db, &group).unwrap_or_default();
            async move { ids.len() >= want }
        })
        .await;
        let mut redelivered = 0.0;
        for w in &self.workers {
            redelivered += w
                .metric("sea_worker_redeliveries_total")
                .await
                .unwrap_or(0.0);
        }
        self.figure("redelivered", redelivered as u64);
        let rows = self.inbox_ids();
        let distinct: BTreeSet<&String> = rows.iter().collect();
        let missing = expected.iter().filter(|id| !distinct.contains(id)).count();
        let doubled = rows.len() - distinct.len();
        self.figure("inbox_rows", rows.len());
        self.figure("inbox_missing", missing);
        self.figure("inbox_doubled", doubled);
        self.figure(
            "drain_ms",
            drained.map_or(Value::Null, |d| json!(d.as_millis() as u64)),
        );
        self.check(
            "inbox exactly once",
            missing == 0 && doubled == 0,
            format!(
                "{} rows for {} events: {missing} missing, {doubled} doubled",
                rows.len(),
                expected.len()
            ),
        );
        Ok(())
    }

    /// Kills the workers and removes the drill's consumer and events.
    async fn cleanup(&mut self) {
        self.workers.clear();
        if let Ok(st) = self.js.get_stream(STREAM).await {
            let _ = st.delete_consumer(&self.group).await;
            let _ = st.purge().filter(format!("{}.>", self.subject)).await;
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.workers.clear();
        for name in &self.frozen {
            self.dep.rejoin_node(name);
        }
        if self.leaf_links_cut {
            if let Err(e) = self.dep.set_leaf_links(true) {
                eprintln!("warning: could not restore the leafnode links after the drill: {e}");
            }
        }
        for name in &self.stopped {
            if let Err(e) = self.dep.start_node(name) {
                eprintln!("warning: could not restart {name} after the drill: {e}");
            }
        }
    }
}

fn read_inbox(db: &Path, group: &str) -> rusqlite::Result<Vec<String>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT message_id FROM inbox WHERE consumer_group = ?1")?;
    let ids = stmt.query_map([group], |r| r.get::<_, String>(0))?;
    ids.collect()
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
