//! What every drill shares: a steady publisher and a worker group scoped to the drill's own
//! subject (with, for chaos, an outbox relay of its own group fed by a service), the faults it
//! injected (undone on drop, so Ctrl-C or a failure never leaves a server frozen, cut off or
//! stopped), and the audit that turns records into PASS/FAIL criteria.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use nix::sys::signal::Signal;
use sea_infra::client::observe;
use sea_infra::client::provision::wait_replicas_current;
use sea_infra::deployment::Deployment;
use sea_infra::env::Secret;
use sea_infra::model::spec::{ENV_CONSUMER_ACK_WAIT_MS, ENV_CONSUMER_FILTER_SUBJECT};
use sea_infra::model::Role;
use sea_mq_worker::child::{self, Launch, WorkerProcess};
use sea_mq_worker::config::{
    Database, ENV_LOG_LEVEL, ENV_NATS_RECONNECT_MAX, ENV_OUTBOX_ENABLED, ENV_OUTBOX_LEASE_MS,
    ENV_OUTBOX_POLL_INTERVAL_MS, ENV_STREAM_NAME,
};
use sea_mq_worker::db::Store;
use serde_json::{json, Value};

use super::audit::{Audit, GroupAudit, OutboxAudit};
use super::load::{Load, LoadConfig, LoadRecords};
use super::service::{Inserted, OutboxService};
use super::{Criterion, Outcome};

pub use super::stream::STREAM;

/// How a drill's worker connects to a secured deployment: as the operator's own user (a
/// drill's groups are not the worker user's); nothing on a plaintext one.
pub fn ops_env(dep: &Deployment) -> Vec<(String, Secret)> {
    dep.access()
        .map(|a| a.client_env(Role::Ops))
        .unwrap_or_default()
}
/// The rendered `lame_duck_duration` is 30 s; a server still up well after that is stuck.
pub const LAME_DUCK_BOUND: Duration = Duration::from_secs(60);
/// Redelivery after a killed worker must not take the spec's 30 s in a drill.
pub const DRILL_ACK_WAIT_MS: &str = "3000";
/// A killed relay's rows are taken over this soon (the worker's default is 10 s).
const RELAY_LEASE_MS: &str = "2000";

/// What a session runs besides the publisher.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Workers of the drill's group.
    pub workers: usize,
    /// A service inserting outbox rows and a relay worker publishing them (its own group
    /// consumes what it published).
    pub outbox: bool,
    /// The publisher reconnects elsewhere after this many failed attempts in a row, and its
    /// client pings every 2 s (so a frozen server is noticed within seconds).
    pub failover_after: Option<u32>,
    /// The drill stream's `max_bytes`, when not the spec's (servers with little storage).
    pub stream_max_bytes: Option<i64>,
}

impl Options {
    pub fn workers(workers: usize) -> Options {
        Options {
            workers,
            outbox: false,
            failover_after: None,
            stream_max_bytes: None,
        }
    }
}

/// The outbox side: a service writing rows into the relay's database and the relay worker.
struct Relay {
    launch: Launch,
    process: Option<WorkerProcess>,
    group: String,
    store: Store,
    service: Option<OutboxService>,
    /// Rows' ids start with this.
    id_prefix: String,
    spawned: usize,
}

/// What the audit read, for audits of their own (chaos attributes it to faults).
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    pub records: LoadRecords,
    /// How often each `Nats-Msg-Id` of the drill's subject is in the stream.
    pub in_stream: BTreeMap<String, u64>,
    /// The worker group's inbox.
    pub inbox: Vec<String>,
    /// The relay group's inbox (the outbox events it consumed back), when there is a relay.
    pub relay_inbox: Vec<String>,
    /// Every outbox row the service committed.
    pub outbox: Vec<Inserted>,
}

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
    /// How a worker of the group is started (again).
    launch: Launch,
    /// Workers frozen with SIGSTOP, by index.
    paused_workers: Vec<usize>,
    /// Workers started so far (each logs to a file of its own).
    spawned: usize,
    relay: Option<Relay>,
    load: Option<Load>,
    partitioned: Vec<String>,
    paused: Vec<String>,
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
        Session::start_with(ctx, name, servers, Options::workers(workers)).await
    }

    /// [`Self::start`] with the outbox side and the publisher's failover as `opts` say.
    pub async fn start_with(
        ctx: Ctx<'a>,
        name: &str,
        servers: Vec<String>,
        opts: Options,
    ) -> anyhow::Result<Session<'a>> {
        let run = format!("{name}-{}", unix_ms());
        super::stream::ensure_with(ctx.dep, opts.stream_max_bytes).await?;
        let nats = ctx.dep.nats(Role::Ops);
        let client = match opts.failover_after {
            None => nats.connect(&servers).await,
            Some(_) => {
                nats.connect_tuned(&servers, |o| o.ping_interval(Duration::from_secs(2)))
                    .await
            }
        }
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
        let subject = super::stream::subject(&run);
        let group = format!("drill-{run}");
        let launch = Launch::sqlite(ctx.worker_bin, &servers, &db, &group)
            .credentials(ops_env(ctx.dep))
            .set(ENV_STREAM_NAME, STREAM)
            .set(ENV_CONSUMER_FILTER_SUBJECT, format!("{subject}.>"))
            .set(ENV_CONSUMER_ACK_WAIT_MS, DRILL_ACK_WAIT_MS)
            .set(ENV_NATS_RECONNECT_MAX, 0)
            .set(ENV_OUTBOX_ENABLED, false)
            .set(ENV_LOG_LEVEL, "warn");
        let relay = if opts.outbox {
            let db = scratch.path().join("outbox.db");
            let store = Store::open(&Database::Sqlite(db.clone()), Duration::from_secs(5))
                .await
                .context("open the relay's database")?;
            let relay_group = format!("{group}-relay");
            let launch = Launch::sqlite(ctx.worker_bin, &servers, &db, &relay_group)
                .credentials(ops_env(ctx.dep))
                .set(ENV_STREAM_NAME, STREAM)
                .set(ENV_CONSUMER_FILTER_SUBJECT, format!("{subject}.outbox.>"))
                .set(ENV_CONSUMER_ACK_WAIT_MS, DRILL_ACK_WAIT_MS)
                .set(ENV_NATS_RECONNECT_MAX, 0)
                .set(ENV_OUTBOX_LEASE_MS, RELAY_LEASE_MS)
                .set(ENV_OUTBOX_POLL_INTERVAL_MS, 50)
                .set(ENV_LOG_LEVEL, "warn");
            Some(Relay {
                launch,
                process: None,
                group: relay_group,
                store,
                service: None,
                id_prefix: format!("{run}-out-"),
                spawned: 0,
            })
        } else {
            None
        };
        let mut session = Session {
            dep: ctx.dep,
            bin: ctx.nats_server,
            js,
            subject,
            group,
            store,
            workers: Vec::new(),
            launch,
            paused_workers: Vec::new(),
            spawned: 0,
            relay,
            load: None,
            partitioned: Vec::new(),
            paused: Vec::new(),
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
            "starting {} worker(s) of group {}{} and a publisher on {}.>",
            opts.workers,
            session.group,
            if opts.outbox {
                ", an outbox service and its relay"
            } else {
                ""
            },
            session.subject
        ));
        for _ in 0..opts.workers {
            let w = session.spawn_worker()?;
            session.workers.push(w);
        }
        child::wait_all_ready(&mut session.workers, Duration::from_secs(30)).await?;
        if session.relay.is_some() {
            session.respawn_relay().await?;
        }
        let mut cfg = LoadConfig::new(&session.subject, &run);
        cfg.failover_after = opts.failover_after;
        let load = Load::start(session.js.clone(), cfg);
        let flowing = load.wait_more_acked(100, Duration::from_secs(30)).await;
        let clock = load.started();
        session.load = Some(load);
        anyhow::ensure!(
            flowing,
            "the publisher got no acks within 30s: is {STREAM} provisioned?"
        );
        if let Some(relay) = &mut session.relay {
            relay.service = Some(OutboxService::start(
                relay.store.clone(),
                format!("{}.outbox", session.subject),
                relay.id_prefix.clone(),
                clock,
            ));
        }
        Ok(session)
    }

    fn spawn_worker(&mut self) -> anyhow::Result<WorkerProcess> {
        let log = self
            .scratch
            .path()
            .join(format!("worker-{}.log", self.spawned));
        self.spawned += 1;
        Ok(self.launch.clone().log_to(log).spawn()?)
    }

    /// A JetStream context on a connection of its own to the servers outside `except` (with a
    /// short request timeout): what a measurement needs while `except` are down or cut off.
    pub async fn observer_except(&self, except: &[String]) -> anyhow::Result<jetstream::Context> {
        let topology = &self.dep.topology;
        let servers: Vec<String> = self
            .dep
            .server_names()
            .iter()
            .filter(|n| !except.contains(n))
            .filter_map(|n| topology.server(n))
            .map(|(_, s)| topology.client_url(s))
            .filter(|url| self.servers.contains(url))
            .collect();
        let client = self
            .dep
            .nats(Role::Ops)
            .connect(&servers)
            .await
            .context("connect an observer")?;
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_millis(500));
        Ok(js)
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

    /// Starts a stopped server on the release of `bin` (an upgrade): a process with that binary,
    /// a container re-created from that release's image.
    pub async fn replace_server(&mut self, name: &str, bin: &Path) -> anyhow::Result<()> {
        let (n, bin) = (name.to_owned(), bin.to_path_buf());
        self.fault(&format!("start {name} on {}", bin.display()), move |d| {
            d.replace_server(&bin, &n)
        })
        .await?;
        self.stopped.retain(|n| n != name);
        Ok(())
    }

    /// Stops `name` through lame-duck mode and judges that it left that way (within
    /// [`LAME_DUCK_BOUND`], else it is killed).
    pub async fn lame_duck_leave(&mut self, name: &str) -> anyhow::Result<()> {
        let exited = self.lame_duck_stop(name, LAME_DUCK_BOUND).await?;
        self.figure(
            &format!("{name}_lame_duck_exit_ms"),
            exited.map(|d| d.as_millis() as u64),
        );
        self.check(
            &format!("{name} leaves through lame-duck mode"),
            exited.is_some(),
            match exited {
                Some(d) => format!("exited after {} ms", d.as_millis()),
                None => format!("still running after {LAME_DUCK_BOUND:?}; killed"),
            },
        );
        Ok(())
    }

    /// After `name` came back: waits up to `gate_timeout` for the health gate, then for every
    /// one of `replicas` replicas of the drill stream to be current, and judges it as
    /// `criterion`; whether it passed.
    pub async fn check_back(
        &mut self,
        name: &str,
        criterion: &str,
        gate_timeout: Duration,
        replicas: usize,
    ) -> bool {
        let back = async {
            let gate = self.wait_gate(gate_timeout).await?;
            wait_replicas_current(&self.js, STREAM, replicas, Duration::from_secs(60), &|l| {
                self.say(l)
            })
            .await?;
            anyhow::Ok(gate)
        }
        .await;
        self.figure(
            &format!("{name}_gate_ms"),
            back.as_ref().ok().map(|d| d.as_millis() as u64),
        );
        let passed = back.is_ok();
        self.check(
            criterion,
            passed,
            match back {
                Ok(d) => format!("gate in {} ms", d.as_millis()),
                Err(e) => format!("{e:#}"),
            },
        );
        passed
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

    /// Lame-duck mode (SIGUSR2) without waiting: the server hands off and exits by itself
    /// ([`Self::restart_server`] starts it again).
    pub async fn lame_duck(&mut self, name: &str) -> anyhow::Result<()> {
        self.stopped.push(name.to_owned());
        let n = name.to_owned();
        self.fault(&format!("lame-duck {name}"), move |d| {
            d.signal_server(&n, Signal::SIGUSR2)
        })
        .await
        .map(drop)
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

    /// Freezes the server (SIGSTOP, `docker pause`) until [`Self::resume_server`].
    pub async fn pause_server(&mut self, name: &str) -> anyhow::Result<()> {
        self.paused.push(name.to_owned());
        let n = name.to_owned();
        self.fault(&format!("pause {name}"), move |d| d.pause_server(&n))
            .await
            .map(drop)
    }

    pub async fn resume_server(&mut self, name: &str) -> anyhow::Result<()> {
        let n = name.to_owned();
        self.fault(&format!("resume {name}"), move |d| d.resume_server(&n))
            .await?;
        self.paused.retain(|n| n != name);
        Ok(())
    }

    /// The pid of worker `i` while it runs.
    fn worker_pid(&self, i: usize) -> Option<nix::unistd::Pid> {
        let pid = self.workers.get(i)?.pid()?;
        Some(nix::unistd::Pid::from_raw(pid as i32))
    }

    /// SIGKILL worker `i`, as a crash would; [`Self::respawn_worker`] starts its replacement.
    pub fn kill_worker(&mut self, i: usize) {
        self.paused_workers.retain(|w| *w != i);
        if let Some(w) = self.workers.get_mut(i) {
            w.kill();
        }
    }

    /// Starts a new worker in place of worker `i` (killed or exited) and waits until it is ready.
    pub async fn respawn_worker(&mut self, i: usize) -> anyhow::Result<()> {
        let mut w = self.spawn_worker()?;
        w.wait_ready(Duration::from_secs(30)).await?;
        if let Some(slot) = self.workers.get_mut(i) {
            *slot = w;
        }
        Ok(())
    }

    /// Freezes worker `i` (SIGSTOP): it holds its deliveries without acking them.
    pub fn pause_worker(&mut self, i: usize) {
        if let Some(pid) = self.worker_pid(i) {
            if nix::sys::signal::kill(pid, Signal::SIGSTOP).is_ok() {
                self.paused_workers.push(i);
            }
        }
    }

    pub fn resume_worker(&mut self, i: usize) {
        if let Some(pid) = self.worker_pid(i) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGCONT);
        }
        self.paused_workers.retain(|w| *w != i);
    }

    /// SIGKILL the outbox relay; [`Self::respawn_relay`] starts its replacement.
    pub fn kill_relay(&mut self) {
        if let Some(relay) = &mut self.relay {
            if let Some(mut p) = relay.process.take() {
                p.kill();
            }
        }
    }

    /// Starts the relay (again) and waits until it is ready.
    pub async fn respawn_relay(&mut self) -> anyhow::Result<()> {
        let dir = self.scratch.path().to_path_buf();
        let Some(relay) = &mut self.relay else {
            return Ok(());
        };
        let log = dir.join(format!("relay-{}.log", relay.spawned));
        relay.spawned += 1;
        let mut p = relay.launch.clone().log_to(log).spawn()?;
        p.wait_ready(Duration::from_secs(30)).await?;
        relay.process = Some(p);
        Ok(())
    }

    /// The outbox rows committed so far.
    pub fn outbox_snapshot(&self) -> Vec<Inserted> {
        self.relay
            .as_ref()
            .and_then(|r| r.service.as_ref())
            .map(OutboxService::snapshot)
            .unwrap_or_default()
    }

    /// Rows of the relay's group in its inbox (empty without a relay).
    pub async fn relay_inbox_ids(&self) -> Vec<String> {
        match &self.relay {
            Some(r) => r.store.inbox_ids(&r.group).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The relay's group, when there is a relay.
    pub fn relay_group(&self) -> Option<&str> {
        self.relay.as_ref().map(|r| r.group.as_str())
    }

    /// Undoes every fault still in place: paused servers resumed, partitions healed, stopped
    /// servers started, paused workers resumed, dead workers and relay replaced. What an
    /// interrupted chaos run does before its audit.
    pub async fn heal_all(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for name in self.paused.clone() {
            if let Err(e) = self.resume_server(&name).await {
                problems.push(format!("{e:#}"));
            }
        }
        for name in self.partitioned.clone() {
            if let Err(e) = self.heal_server(&name).await {
                problems.push(format!("{e:#}"));
            }
        }
        for name in self.stopped.clone() {
            if let Err(e) = self.restart_server(&name).await {
                problems.push(format!("{e:#}"));
            }
        }
        for i in self.paused_workers.clone() {
            self.resume_worker(i);
        }
        for i in 0..self.workers.len() {
            if !self.workers[i].is_running() {
                if let Err(e) = self.respawn_worker(i).await {
                    problems.push(format!("{e:#}"));
                }
            }
        }
        if let Some(relay) = &mut self.relay {
            let dead = !relay.process.as_mut().is_some_and(|p| p.is_running());
            if dead {
                if let Err(e) = self.respawn_relay().await {
                    problems.push(format!("{e:#}"));
                }
            }
        }
        problems
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
        let monitor = self.dep.monitor().with_timeout(Duration::from_millis(500));
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
    pub async fn finish(self, name: &str) -> Outcome {
        self.finish_with_evidence(name).await.0
    }

    /// [`Self::finish`], also returning what the audit read.
    pub async fn finish_with_evidence(mut self, name: &str) -> (Outcome, Evidence) {
        let records = match self.load.take() {
            Some(load) => load.stop().await,
            None => LoadRecords::default(),
        };
        let outbox = match self.relay.as_mut().and_then(|r| r.service.take()) {
            Some(service) => service.stop().await,
            None => Vec::new(),
        };
        let mut evidence = Evidence {
            records,
            outbox,
            ..Evidence::default()
        };
        if let Err(e) = self.audit(&mut evidence).await {
            self.check("audit completed", false, format!("{e:#}"));
        }
        self.cleanup().await;
        let passed = self.criteria.iter().all(|c| c.pass);
        let outcome = Outcome {
            drill: name.to_owned(),
            passed,
            figures: std::mem::take(&mut self.figures),
            criteria: std::mem::take(&mut self.criteria),
        };
        (outcome, evidence)
    }

    async fn audit(&mut self, evidence: &mut Evidence) -> anyhow::Result<()> {
        if let Some(relay) = &self.relay {
            self.say("waiting for the relay to publish every outbox row ...");
            let rows = evidence.outbox.len() as u64;
            let relayed = observe::time_until(Duration::from_secs(120), || async {
                relay
                    .store
                    .outbox_progress(&relay.id_prefix)
                    .await
                    .is_ok_and(|p| p.published >= rows)
            })
            .await;
            self.figure(
                "outbox_relayed_ms",
                relayed.map_or(Value::Null, |d| json!(d.as_millis() as u64)),
            );
        }
        self.say("reading the stream back ...");
        let filter = format!("{}.>", self.subject);
        // Right after a fault the JetStream API can refuse for a moment (a stale leader stepping
        // down): a failed read is tried again for up to 30 s.
        let began = std::time::Instant::now();
        let msgs = loop {
            match observe::read_stream(&self.js, STREAM, &filter, Duration::from_secs(180)).await {
                Ok(msgs) => break msgs,
                Err(e) if began.elapsed() >= Duration::from_secs(30) => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        evidence.in_stream = observe::msg_id_counts(&msgs);
        drop(msgs);

        self.say("waiting for the workers to drain ...");
        let want = evidence.in_stream.len();
        let outbox_ids: Vec<String> = evidence.outbox.iter().map(|r| r.id.clone()).collect();
        let relay_want = outbox_ids
            .iter()
            .filter(|id| evidence.in_stream.contains_key(*id))
            .count();
        // Every event of the stream in the inbox, not only as many rows: an inbox can hold an
        // event the stream lost, and a count would then call it drained one event early.
        let drained = observe::time_until(Duration::from_secs(120), || async {
            covers(self.inbox_ids().await, want, evidence.in_stream.keys())
                && covers(
                    self.relay_inbox_ids().await,
                    relay_want,
                    outbox_ids
                        .iter()
                        .filter(|id| evidence.in_stream.contains_key(*id)),
                )
        })
        .await;
        let mut redelivered = 0.0;
        for w in &self.workers {
            redelivered += w
                .metric("sea_worker_redeliveries_total")
                .await
                .unwrap_or(0.0);
        }
        evidence.inbox = self.inbox_ids().await;
        let audit = Audit::of(&evidence.records, &evidence.in_stream, &evidence.inbox);
        for (name, value) in audit.figures() {
            self.figure(name, value);
        }
        self.figure("redelivered", redelivered as u64);
        self.figure(
            "drain_ms",
            drained.map_or(Value::Null, |d| json!(d.as_millis() as u64)),
        );
        self.criteria.extend(audit.criteria(STREAM));
        if let Some(group) = self.relay_group().map(str::to_owned) {
            evidence.relay_inbox = self.relay_inbox_ids().await;
            let outbox = OutboxAudit::of(&outbox_ids, &evidence.in_stream);
            for (name, value) in outbox.figures() {
                self.figure(name, value);
            }
            self.criteria.push(outbox.criterion());
            let published = outbox_ids
                .iter()
                .filter(|id| evidence.in_stream.contains_key(*id));
            let g = GroupAudit::of(&group, published, &evidence.relay_inbox);
            self.figure("relay_inbox_rows", g.rows);
            self.criteria.push(g.criterion());
        }
        Ok(())
    }

    /// Kills the workers and removes the drill's consumers, events and (when unused) stream.
    async fn cleanup(&mut self) {
        self.workers.clear();
        self.kill_relay();
        let groups = self.groups();
        super::stream::clean_up(self.dep, &self.servers, &groups, &self.subject).await;
        self.cleaned = true;
    }

    fn groups(&self) -> Vec<String> {
        let mut groups = vec![self.group.clone()];
        groups.extend(self.relay_group().map(str::to_owned));
        groups
    }
}

impl Drop for Session<'_> {
    /// Undoes what the drill left (it failed, or was interrupted): blocking, since a drop
    /// cannot wait for async work.
    fn drop(&mut self) {
        self.workers.clear();
        self.kill_relay();
        for name in &self.paused {
            if let Err(e) = self.dep.resume_server(name) {
                eprintln!("warning: could not resume {name} after the drill: {e}");
            }
        }
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
            let groups = self.groups();
            super::stream::clean_up_blocking(self.dep, &self.servers, &groups, &self.subject);
        }
    }
}

/// Whether `rows` hold every one of `ids` (`want` of them: the count is checked first, cheaply).
fn covers<'a>(rows: Vec<String>, want: usize, ids: impl IntoIterator<Item = &'a String>) -> bool {
    if rows.len() < want {
        return false;
    }
    let rows: std::collections::HashSet<String> = rows.into_iter().collect();
    ids.into_iter().all(|id| rows.contains(id))
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
