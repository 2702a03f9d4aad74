//! What every drill shares: a steady publisher and a worker group scoped to the drill's own
//! subject, the faults it injected (undone on drop, so Ctrl-C or a failure never leaves a
//! server frozen or stopped), and the audit that turns records into PASS/FAIL criteria.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use nix::sys::signal::Signal;
use sea_infra::client::connect::NatsConfig;
use sea_infra::client::observe;
use sea_infra::deployment::Deployment;
use sea_infra::model::spec::{ENV_CONSUMER_ACK_WAIT_MS, ENV_CONSUMER_FILTER_SUBJECT};
use sea_infra::probes::monitor::Monitor;
use sea_mq_worker::child::{self, Launch, WorkerProcess};
use sea_mq_worker::config::{
    Database, ENV_LOG_LEVEL, ENV_NATS_RECONNECT_MAX, ENV_OUTBOX_ENABLED, ENV_STREAM_NAME,
};
use sea_mq_worker::db::Store;
use serde_json::{json, Value};

use super::audit::Audit;
use super::load::{Load, LoadConfig, LoadRecords};
use super::{Criterion, Outcome};

pub use super::stream::STREAM;
/// Redelivery after a killed worker must not take the spec's 30 s in a drill.
pub const DRILL_ACK_WAIT_MS: &str = "3000";

pub struct Session<'a> {
    pub dep: &'a Deployment,
    /// The nats-server binary stopped servers are started with again.
    bin: &'a Path,
    pub js: jetstream::Context,
    /// Events go to `<subject>.<n>`; the group's consumer sees only those.
    pub subject: String,
    pub group: String,
    /// The workers' inbox, as the audit reads it.
    store: Store,
    pub workers: Vec<WorkerProcess>,
    load: Option<Load>,
    partitioned: Vec<String>,
    stopped: Vec<String>,
    leaf_links_cut: bool,
    pub figures: BTreeMap<String, Value>,
    pub criteria: Vec<Criterion>,
    /// The servers the drill's clients use (its consumer and events are removed through them).
    servers: Vec<String>,
    /// Whether the drill's consumer and events were removed (a drop does it otherwise).
    cleaned: bool,
    progress: &'a dyn Fn(&str),
    // Last: removed once the workers are gone.
    scratch: tempfile::TempDir,
}

/// What every drill runs with: the deployment, the binaries, where progress goes.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub dep: &'a Deployment,
    /// The nats-server binary, for servers the drill starts again.
    pub nats_server: &'a Path,
    pub worker_bin: &'a Path,
    pub progress: &'a dyn Fn(&str),
}

impl Ctx<'_> {
    /// Names of every server, in topology order.
    pub fn server_names(&self) -> Vec<String> {
        self.dep.server_names()
    }

    /// Client URLs of the servers of the first JetStream domain (every server but in `leaf`,
    /// where it is the first cell) except those named in `except`.
    pub fn servers_except(&self, except: &[&str]) -> Vec<String> {
        let topology = &self.dep.topology;
        let domains = sea_infra::client::federation::domains(topology);
        let Some(first) = domains.first() else {
            return Vec::new();
        };
        first
            .clusters
            .iter()
            .flat_map(|c| &c.servers)
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
        super::stream::ensure(&ctx.dep.topology).await?;
        let client = NatsConfig::default()
            .connect(&servers)
            .await
            .context("connect the drill's publisher")?;
        let js = jetstream::new(client);
        let scratch = tempfile::Builder::new()
            .prefix("sea-drill-")
            .tempdir()
            .context("create the drill's scratch directory")?;
        let db = scratch.path().join("inbox.db");
        let store = Store::open(&Database::Sqlite(db.clone()), Duration::from_secs(5))
            .await
            .context("open the drill's inbox")?;
        let mut session = Session {
            dep: ctx.dep,
            bin: ctx.nats_server,
            js,
            subject: super::stream::subject(&run),
            group: format!("drill-{run}"),
            store,
            workers: Vec::new(),
            load: None,
            partitioned: Vec::new(),
            stopped: Vec::new(),
            leaf_links_cut: false,
            figures: BTreeMap::new(),
            criteria: Vec::new(),
            servers: servers.clone(),
            cleaned: false,
            progress: ctx.progress,
            scratch,
        };
        session.say(&format!(
            "starting {} worker(s) of group {} and a publisher on {}.>",
            workers, session.group, session.subject
        ));
        let launch = Launch::sqlite(ctx.worker_bin, &servers, &db, &session.group)
            .set(ENV_STREAM_NAME, STREAM)
            .set(
                ENV_CONSUMER_FILTER_SUBJECT,
                format!("{}.>", session.subject),
            )
            .set(ENV_CONSUMER_ACK_WAIT_MS, DRILL_ACK_WAIT_MS)
            .set(ENV_NATS_RECONNECT_MAX, 0)
            .set(ENV_OUTBOX_ENABLED, false)
            .set(ENV_LOG_LEVEL, "warn");
        for i in 0..workers {
            let log = session.scratch.path().join(format!("worker-{i}.log"));
            session.workers.push(launch.clone().log_to(log).spawn()?);
        }
        child::wait_all_ready(&mut session.workers, Duration::from_secs(30)).await?;
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
    pub async fn inbox_ids(&self) -> Vec<String> {
        self.store.inbox_ids(&self.group).await.unwrap_or_default()
    }

    // ---- faults (each undone on drop if the drill does not undo it) ----

    /// Runs a fault on the deployment off the async threads.
    async fn fault<T: Send + 'static>(
        &self,
        what: &str,
        op: impl FnOnce(&Deployment) -> Result<T, sea_infra::deployment::ServerError> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.dep.blocking(op).await.with_context(|| what.to_owned())
    }

    pub async fn kill_server(&mut self, name: &str) -> anyhow::Result<()> {
        self.stopped.push(name.to_owned());
        let n = name.to_owned();
        self.fault(&format!("kill {name}"), move |d| d.kill_server(&n))
            .await
            .map(drop)
    }

    /// SIGTERM and wait for it to exit (bounded), as an orderly stop would.
    pub async fn stop_server(&mut self, name: &str) -> anyhow::Result<()> {
        self.stopped.push(name.to_owned());
        let n = name.to_owned();
        self.fault(&format!("stop {name}"), move |d| {
            d.stop_server(&n, Signal::SIGTERM, Duration::from_secs(10))
        })
        .await
        .map(drop)
    }

    pub async fn restart_server(&mut self, name: &str) -> anyhow::Result<()> {
        let (n, bin) = (name.to_owned(), self.bin.to_path_buf());
        self.fault(&format!("restart {name}"), move |d| {
            d.start_server(&bin, &n)
        })
        .await?;
        self.stopped.retain(|n| n != name);
        Ok(())
    }

    /// Lame-duck mode (SIGUSR2) and the time until the process is gone; `None` when it
    /// outlived `bound` and was killed.
    pub async fn lame_duck_stop(
        &mut self,
        name: &str,
        bound: Duration,
    ) -> anyhow::Result<Option<Duration>> {
        self.stopped.push(name.to_owned());
        let n = name.to_owned();
        self.fault(&format!("lame-duck {name}"), move |d| {
            d.signal_server(&n, Signal::SIGUSR2)
        })
        .await?;
        let dep = self.dep;
        let exited = observe::time_until(bound, || {
            let n = name.to_owned();
            async move { !dep.blocking(move |d| d.is_running(&n)).await }
        })
        .await;
        if exited.is_none() {
            let n = name.to_owned();
            self.fault(&format!("kill {name}"), move |d| d.kill_server(&n))
                .await?;
        }
        Ok(exited)
    }

    pub async fn cut_leaf_links(&mut self) -> anyhow::Result<()> {
        self.leaf_links_cut = true;
        self.fault("cut the leafnode links", |d| d.set_leaf_links(false))
            .await
            .map(drop)
    }

    pub async fn heal_leaf_links(&mut self) -> anyhow::Result<()> {
        self.fault("restore the leafnode links", |d| d.set_leaf_links(true))
            .await?;
        self.leaf_links_cut = false;
        Ok(())
    }

    /// Cuts the server off its peers and clients (SIGSTOP for a process, network disconnect
    /// for a container).
    pub async fn partition_server(&mut self, name: &str) -> anyhow::Result<()> {
        self.partitioned.push(name.to_owned());
        let n = name.to_owned();
        self.fault(&format!("partition {name}"), move |d| {
            d.partition_server(&n)
        })
        .await
        .map(drop)
    }

    pub async fn heal_server(&mut self, name: &str) -> anyhow::Result<()> {
        let n = name.to_owned();
        self.fault(&format!("heal {name}"), move |d| d.heal_server(&n))
            .await?;
        self.partitioned.retain(|n| n != name);
        Ok(())
    }

    /// Waits for the health gate over every server; the time it took.
    pub async fn wait_gate(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let all = self.dep.server_names().into_iter().collect();
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
        for (_, server) in self.dep.topology.servers() {
            if except.contains(&server.name) {
                continue;
            }
            let url = self.dep.topology.monitor_url(server);
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
        let caught_up = sea_infra::client::crosscheck::mirror_caught_up(
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
        self.say("reading the stream back ...");
        let filter = format!("{}.>", self.subject);
        let msgs = observe::read_stream(&self.js, STREAM, &filter, Duration::from_secs(60)).await?;
        let in_stream = observe::msg_id_counts(&msgs);

        self.say("waiting for the workers to drain ...");
        let want = in_stream.len();
        let drained = observe::time_until(Duration::from_secs(60), || async {
            self.inbox_ids().await.len() >= want
        })
        .await;
        let mut redelivered = 0.0;
        for w in &self.workers {
            redelivered += w
                .metric("sea_worker_redeliveries_total")
                .await
                .unwrap_or(0.0);
        }
        let audit = Audit::of(records, &in_stream, &self.inbox_ids().await);
        for (name, value) in audit.figures() {
            self.figure(name, value);
        }
        self.figure("redelivered", redelivered as u64);
        self.figure(
            "drain_ms",
            drained.map_or(Value::Null, |d| json!(d.as_millis() as u64)),
        );
        self.criteria.extend(audit.criteria(STREAM));
        Ok(())
    }

    /// Kills the workers and removes the drill's consumer, events and (when unused) stream.
    async fn cleanup(&mut self) {
        self.workers.clear();
        let topology = &self.dep.topology;
        super::stream::clean_up(topology, &self.servers, &self.group, &self.subject).await;
        self.cleaned = true;
    }
}

impl Drop for Session<'_> {
    /// Undoes what the drill left (it failed, or was interrupted): blocking, since a drop
    /// cannot wait for async work.
    fn drop(&mut self) {
        self.workers.clear();
        for name in &self.partitioned {
            if let Err(e) = self.dep.heal_server(name) {
                eprintln!("warning: could not heal {name} after the drill: {e}");
            }
        }
        if self.leaf_links_cut {
            if let Err(e) = self.dep.set_leaf_links(true) {
                eprintln!("warning: could not restore the leafnode links after the drill: {e}");
            }
        }
        for name in &self.stopped {
            if let Err(e) = self.dep.start_server(self.bin, name) {
                eprintln!("warning: could not restart {name} after the drill: {e}");
            }
        }
        if !self.cleaned {
            let topology = &self.dep.topology;
            super::stream::clean_up_blocking(topology, &self.servers, &self.group, &self.subject);
        }
    }
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
