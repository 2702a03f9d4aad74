//! `cargo xtask bench`: raw JetStream rates and the worker's, measured side by side in one run
//! on one private cluster (free ports), with the ratios the project's goals are stated in.
//!
//! The raw client runs from the release-built `sea-mq-bench` probe and the worker from its
//! release build, so both sides are compiled alike; both connect to the same kind of server
//! (see `placement`), so a ratio compares like with like.
//!
//! Each measurement also reads the CPU time its clients (the probe process, or the worker
//! processes) and the cluster's servers used, so CPU per event stands next to every rate
//! (`measure`). The worker measurements run on SQLite, on a private PostgreSQL, or both
//! (`--database`), and `--knobs` measures the worker's settings against its defaults.
//!
//! Then the durability setting's cost: a second private cluster whose servers fsync before every
//! acknowledgement (`sync_interval: always`), measured the same way for the paths a disk write
//! is on (raw publish, raw consume with its acks, the outbox relay), next to the default's.
//!
//! With `--secure`, the same raw paths on a secured cluster (see `tls`); with `--against REV`,
//! the worker built at REV next to this build (see `against`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sea_infra::client::provision;
use sea_infra::deployment::{ports, procfs, BackendKind, Deployment, Throwaway, UpOptions};
use sea_infra::env::Secret;
use sea_infra::model::spec::Spec;
use sea_infra::model::topology::Topology;
use sea_infra::model::Role;
use sea_mq_worker::child::{Launch, WorkerProcess};
use sea_mq_worker::config::{
    ENV_LOG_LEVEL, ENV_OUTBOX_ENABLED, ENV_OUTBOX_POLL_INTERVAL_MS, ENV_STREAM_NAME,
    ENV_WORKER_BATCH_SIZE, ENV_WORKER_SQLITE_SYNCHRONOUS,
};
use sea_mq_worker::pg_server::{PgOptions, PgServer};
use serde::Serialize;
use serde_json::json;
use xshell::{cmd, Shell};

use crate::flags::Bench;

mod against;
mod exporter;
mod placement;
mod tls;
use placement::Placement;

const PAYLOAD_BYTES: usize = 128;
const PUBLISH_WINDOW: usize = 256;
const PULL_BATCH: usize = 128;
/// The workers' counters the benchmark waits on.
const INSERTED: &str = "sea_worker_events_total{outcome=\"inserted\"}";
const PUBLISHED: &str = "sea_worker_outbox_published_total";

#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize)]
struct Span {
    events: u64,
    seconds: f64,
    /// The probe process's own CPU time over its whole run (it reads its `/proc/self/stat` as it
    /// ends); 0 for the probes that only read a database.
    #[serde(default)]
    cpu_seconds: f64,
}

impl Span {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// One measurement: its span, and the CPU seconds its clients (the probe process, or the worker
/// processes) and the cluster's servers (every nats-server process, summed) used for it.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    span: Span,
    client_cpu: f64,
    server_cpu: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.span.rate()
    }

    fn per_event_us(&self, cpu: f64) -> f64 {
        if self.span.events > 0 {
            cpu * 1e6 / self.span.events as f64
        } else {
            0.0
        }
    }

    /// The clients' CPU per event, in microseconds.
    fn client_us(&self) -> f64 {
        self.per_event_us(self.client_cpu)
    }

    /// The servers' CPU per event, in microseconds.
    fn server_us(&self) -> f64 {
        self.per_event_us(self.server_cpu)
    }

    /// Several measurements of one thing as one: events, seconds and CPU summed.
    fn sum(all: &[Measured]) -> Measured {
        all.iter().fold(Measured::default(), |a, m| Measured {
            span: Span {
                events: a.span.events + m.span.events,
                seconds: a.span.seconds + m.span.seconds,
                cpu_seconds: a.span.cpu_seconds + m.span.cpu_seconds,
            },
            client_cpu: a.client_cpu + m.client_cpu,
            server_cpu: a.server_cpu + m.server_cpu,
        })
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "rate": self.rate(),
            "events": self.span.events,
            "client_cpu_us_per_event": self.client_us(),
            "server_cpu_us_per_event": self.server_us(),
        })
    }
}

/// CPU seconds the deployment's servers have used so far, summed over their processes.
fn servers_cpu(d: &Deployment) -> f64 {
    d.server_names()
        .iter()
        .filter_map(|name| d.pid(name))
        .filter_map(procfs::cpu_seconds)
        .sum()
}

/// CPU seconds the worker processes have used so far, summed (read before they are stopped).
fn workers_cpu(workers: &[WorkerProcess]) -> f64 {
    workers
        .iter()
        .filter_map(WorkerProcess::pid)
        .filter_map(|pid| procfs::cpu_seconds(pid as i32))
        .sum()
}

/// Runs one measurement on `d`: `work` returns the span and its clients' CPU seconds; the
/// servers' CPU is read before and after it.
fn measure(
    d: &Deployment,
    work: impl FnOnce() -> anyhow::Result<(Span, f64)>,
) -> anyhow::Result<Measured> {
    let before = servers_cpu(d);
    let (span, client_cpu) = work()?;
    Ok(Measured {
        span,
        client_cpu,
        server_cpu: servers_cpu(d) - before,
    })
}

/// Which databases `cargo xtask bench --database` measures the worker on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchDatabase {
    Sqlite,
    Postgres,
    Both,
}

/// Where a measurement's worker rows go.
enum Db {
    /// A fresh file per measurement, in this directory.
    Sqlite(PathBuf),
    /// One private server for the run; measurements are told apart by consumer group (inbox)
    /// and by id prefix (outbox).
    Postgres(PgServer),
}

impl Db {
    fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// What the probes take for measurement `label`: a SQLite file's path or the URL.
    fn probe_arg(&self, label: &str) -> String {
        match self {
            Db::Sqlite(dir) => dir.join(format!("{label}.db")).display().to_string(),
            Db::Postgres(pg) => pg.url(),
        }
    }

    /// The workers' `DATABASE_URL` for measurement `label` (holds a password: never printed).
    fn url(&self, label: &str) -> String {
        match self {
            Db::Sqlite(_) => format!("sqlite://{}", self.probe_arg(label)),
            Db::Postgres(pg) => pg.url(),
        }
    }

    /// How many workers the inbox is measured with.
    fn worker_counts(&self) -> &'static [usize] {
        match self {
            Db::Sqlite(_) => &[1, 2, 4],
            Db::Postgres(_) => &[1, 4],
        }
    }
}

/// A worker setting `--knobs` measures against the default, on SQLite, in the same run.
struct Knob {
    /// What is measured with it: an inbox with this many workers, or (0) the outbox relay.
    workers: usize,
    /// The variable set, if the knob is one.
    env: Option<(&'static str, &'static str)>,
    /// The consumer's `max_ack_pending`, if that is the knob.
    max_ack_pending: Option<i64>,
}

impl Knob {
    fn label(&self) -> String {
        let what = match self.workers {
            0 => "outbox relay".to_owned(),
            w => format!("inbox, {w} worker(s)"),
        };
        match (self.env, self.max_ack_pending) {
            (Some((k, v)), _) => format!("{what}, {k}={v}"),
            (None, Some(n)) => format!("{what}, max_ack_pending={n}"),
            (None, None) => what,
        }
    }
}

/// The knobs `--knobs` measures (the defaults: `WORKER_BATCH_SIZE=128`, `FULL`, the spec's
/// `max_ack_pending`).
const KNOBS: [Knob; 5] = [
    Knob {
        workers: 1,
        env: Some((ENV_WORKER_BATCH_SIZE, "32")),
        max_ack_pending: None,
    },
    Knob {
        workers: 1,
        env: Some((ENV_WORKER_BATCH_SIZE, "512")),
        max_ack_pending: None,
    },
    Knob {
        workers: 1,
        env: Some((ENV_WORKER_SQLITE_SYNCHRONOUS, "NORMAL")),
        max_ack_pending: None,
    },
    Knob {
        workers: 4,
        env: None,
        max_ack_pending: Some(4096),
    },
    Knob {
        workers: 0,
        env: Some((ENV_WORKER_SQLITE_SYNCHRONOUS, "NORMAL")),
        max_ack_pending: None,
    },
];

/// The worker's measurements on one database.
struct DbResults {
    name: &'static str,
    inbox: Vec<(usize, Measured)>,
    outbox: Measured,
}

#[derive(Clone)]
struct Bins {
    worker: PathBuf,
    probe: PathBuf,
    /// Where the workers' logs go, for errors.
    logs: PathBuf,
    /// The probe's connection variables (TLS and credentials on a secured cluster).
    env: Vec<(String, Secret)>,
}

impl Bins {
    fn probe(&self, args: &[&str]) -> anyhow::Result<Span> {
        let out = Command::new(&self.probe)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v.expose())))
            .stderr(Stdio::inherit())
            .output()
            .context("run sea-mq-bench")?;
        if !out.status.success() {
            // An argument may be a DATABASE_URL: its password is not shown.
            let args = sea_infra::env::redact_credentials(&args.join(" "));
            bail!("sea-mq-bench {args} failed");
        }
        serde_json::from_slice(&out.stdout).context("read sea-mq-bench output")
    }

    /// `n` workers of `group` on `server`, logging warnings only (logs cost CPU too).
    fn workers(
        &self,
        n: usize,
        server: &str,
        database: String,
        group: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Vec<WorkerProcess>> {
        let launch = Launch::new(&self.worker, &[server.to_owned()], database, group)
            .set(ENV_LOG_LEVEL, "warn");
        let launch = settings.iter().fold(launch, |l, (k, v)| l.set(k, v));
        (0..n)
            .map(|i| {
                let log = self.logs.join(format!("{group}-{i}.log"));
                Ok(launch.clone().log_to(log).spawn()?)
            })
            .collect()
    }
}

/// Waits until the workers' counter `metric`, summed, reaches `events`. It reads their
/// `/metrics`, not the database: a query over the table every few hundred milliseconds took
/// CPU from the worker being measured.
async fn wait_for(workers: &mut [WorkerProcess], metric: &str, events: u64) -> anyhow::Result<()> {
    let began = Instant::now();
    loop {
        let mut done = 0.0;
        for w in workers.iter_mut() {
            match w.metric(metric).await {
                Some(v) => done += v,
                None if !w.is_running() => {
                    bail!("a worker exited during the benchmark: {}", w.log_tail(20))
                }
                None => {}
            }
        }
        if done as u64 >= events {
            return Ok(());
        }
        if began.elapsed() > Duration::from_secs(600) {
            bail!("{metric}: only {done} of {events} after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Bench {
    pub fn run(mut self, sh: &Shell) -> anyhow::Result<()> {
        if self.exporter.enabled {
            self.exporter.json = self.json;
            return self.exporter.run(sh);
        }
        let profile = self
            .profile_flag
            .map_or_else(crate::flags::env_profile_or_ha, Ok)?;
        // `--against`: the revision resolved before anything is built.
        let revision = self
            .against
            .as_deref()
            .map(|rev| Ok::<_, anyhow::Error>((rev, against::resolve(sh, rev)?)))
            .transpose()?;
        eprintln!("building sea-mq-worker and sea-mq-bench (release) ...");
        crate::project::cargo(cmd!(
            sh,
            "cargo build --quiet --release -p sea-mq-worker --bins"
        ))
        .run()
        .context("build the release binaries")?;
        let baseline = revision
            .map(|(rev, commit)| against::build(sh, rev, commit))
            .transpose()?;
        let release = crate::project::project_root().join("target/release");
        let dir = tempfile::Builder::new()
            .prefix("sea-bench-")
            .tempdir()
            .context("create a scratch directory")?;
        let bins = Bins {
            worker: release.join("sea-mq-worker"),
            probe: release.join("sea-mq-bench"),
            logs: dir.path().to_owned(),
            env: Vec::new(),
        };
        let n = self.events;
        let count = n.to_string();

        eprintln!("starting a private {} cluster on free ports ...", profile);
        let rt = crate::project::runtime()?;
        let bin = crate::project::nats_server()?;
        let cluster = Throwaway::new(profile, BackendKind::Process)?;
        let place = start(&rt, &bin.path, &cluster)?;

        let step = |label: &str| eprintln!("  measuring {label} ...");
        let d = &cluster.deployment;
        step("raw publish");
        let publish = bins.raw_publish(&rt, &place, d, &count)?;
        let raw_consume = |durable: &str, clients: usize| {
            bins.raw_consume(&rt, &place, d, durable, &count, clients)
        };
        step("raw pull consume + ack");
        let consume = raw_consume("bench-raw", 1)?;
        // What the machine allows four consumers of one durable, without any database: the
        // ceiling the 4-worker inbox is judged against.
        step("raw pull consume + ack, 4 clients");
        let consume_4 = raw_consume("bench-raw-4", 4)?;

        let mut dbs = Vec::new();
        if self.database != BenchDatabase::Postgres {
            dbs.push(Db::Sqlite(dir.path().to_owned()));
        }
        if self.database != BenchDatabase::Sqlite {
            eprintln!("starting a private PostgreSQL server (fsync on) ...");
            let pg = rt
                .block_on(PgServer::start(PgOptions {
                    tls: false,
                    fsync: true,
                }))
                .context("start the benchmark's PostgreSQL")?;
            dbs.push(Db::Postgres(pg));
        }
        let mut results = Vec::new();
        for db in &dbs {
            let mut inbox = Vec::new();
            for &workers in db.worker_counts() {
                step(&format!("inbox with {workers} worker(s), {}", db.name()));
                let group = format!("bench-{}-{workers}", db.name());
                inbox.push((
                    workers,
                    bins.inbox(&rt, &place, d, db, &group, workers, n, None)?,
                ));
            }
            step(&format!("outbox relay, 1 worker, {}", db.name()));
            let outbox = bins.outbox(&rt, &place, d, db, "outbox", n, None)?;
            results.push(DbResults {
                name: db.name(),
                inbox,
                outbox,
            });
        }
        let mut knobs = Vec::new();
        if self.knobs {
            let sqlite = Db::Sqlite(dir.path().to_owned());
            for (i, knob) in KNOBS.iter().enumerate() {
                step(&knob.label());
                let m = match knob.workers {
                    0 => bins.outbox(
                        &rt,
                        &place,
                        d,
                        &sqlite,
                        &format!("outbox-knob-{i}"),
                        n,
                        Some(knob),
                    )?,
                    w => {
                        let group = format!("bench-knob-{i}");
                        bins.inbox(&rt, &place, d, &sqlite, &group, w, n, Some(knob))?
                    }
                };
                knobs.push((knob, m));
            }
        }
        let against = match &baseline {
            Some(base) => Some(bins.against(&rt, &place, d, &dbs[0], base, n)?),
            None => None,
        };
        drop(dbs);
        drop(place);
        drop(cluster);

        // The durable variant: the same paths on servers that fsync every write.
        eprintln!("starting a second private {profile} cluster with sync_interval: always ...");
        let mut topology = Topology::for_profile(profile).remap_ports(ports::free_port);
        topology.settings.sync_interval = "always".to_owned();
        let cluster = Throwaway::with_topology(topology, BackendKind::Process)?;
        let place = start(&rt, &bin.path, &cluster)?;
        let d = &cluster.deployment;
        step("raw publish, sync_interval always");
        let publish_always = bins.raw_publish(&rt, &place, d, &count)?;
        step("raw pull consume + ack, sync_interval always");
        let consume_always = bins.raw_consume(&rt, &place, d, "bench-raw-always", &count, 1)?;
        step("outbox relay, 1 worker, sync_interval always");
        let sqlite = Db::Sqlite(dir.path().to_owned());
        let outbox_always = bins.outbox(&rt, &place, d, &sqlite, "outbox-always", n, None)?;
        drop(place);
        drop(cluster);

        let tls = if self.secure {
            eprintln!("starting a secured private {profile} cluster (TLS, accounts) ...");
            Some(tls::run(&rt, &bin.path, &bins, profile, n)?)
        } else {
            None
        };

        report(
            &self,
            profile,
            publish,
            [consume, consume_4],
            &results,
            &knobs,
            Extra {
                always: [publish_always, consume_always, outbox_always],
                tls,
                against,
            },
        )
    }
}

/// Starts `cluster`, provisions the built-in streams as the admin user and connects the
/// placement client: what every cluster the benchmark measures needs first.
fn start<'a>(
    rt: &tokio::runtime::Runtime,
    nats_server: &Path,
    cluster: &'a Throwaway,
) -> anyhow::Result<Placement<'a>> {
    let progress = |line: &str| eprintln!("  {line}");
    let dep = &cluster.deployment;
    rt.block_on(dep.up(
        nats_server,
        &UpOptions::default(),
        &progress,
        std::future::pending(),
    ))
    .context("start the benchmark's cluster")?;
    let topology = &dep.topology;
    let list: Vec<String> = topology
        .servers()
        .map(|(_, s)| topology.client_url(s))
        .collect();
    let admin = dep.nats(Role::Admin);
    rt.block_on(provision::provision_servers(
        &admin,
        &list,
        &mut Spec::builtin(),
    ))?;
    rt.block_on(Placement::connect(topology, &admin))
}

impl Bins {
    /// The raw publish: the probe publishing `count` events to a server that does not lead the
    /// stream.
    fn raw_publish(
        &self,
        rt: &tokio::runtime::Runtime,
        place: &Placement<'_>,
        d: &Deployment,
        count: &str,
    ) -> anyhow::Result<Measured> {
        let server = rt.block_on(place.publisher())?;
        measure(d, || {
            let span = self.probe(&[
                "publish",
                &server,
                "raw",
                count,
                &PAYLOAD_BYTES.to_string(),
                &PUBLISH_WINDOW.to_string(),
            ])?;
            Ok((span, span.cpu_seconds))
        })
    }

    /// The raw consume: `clients` probe connections sharing the new durable `durable`, pulling
    /// and acking `count` events from a server that leads neither stream nor consumer; the
    /// durable is deleted afterwards.
    fn raw_consume(
        &self,
        rt: &tokio::runtime::Runtime,
        place: &Placement<'_>,
        d: &Deployment,
        durable: &str,
        count: &str,
        clients: usize,
    ) -> anyhow::Result<Measured> {
        let server = rt.block_on(place.durable(durable))?;
        let m = measure(d, || {
            let span = self.probe(&[
                "consume",
                &server,
                placement::STREAM,
                durable,
                count,
                &PULL_BATCH.to_string(),
                &clients.to_string(),
            ])?;
            Ok((span, span.cpu_seconds))
        })?;
        rt.block_on(place.remove(durable))?;
        Ok(m)
    }

    /// The inbox of `group`: `workers` release workers draining `n` events into `db`, with the
    /// knob `knob` set when given.
    #[allow(clippy::too_many_arguments)]
    fn inbox(
        &self,
        rt: &tokio::runtime::Runtime,
        place: &Placement<'_>,
        d: &Deployment,
        db: &Db,
        group: &str,
        workers: usize,
        n: u64,
        knob: Option<&Knob>,
    ) -> anyhow::Result<Measured> {
        let max_ack_pending = knob.and_then(|k| k.max_ack_pending);
        let server = rt.block_on(place.durable_with(group, max_ack_pending))?;
        let batch = PULL_BATCH.to_string();
        let mut settings = vec![
            (ENV_OUTBOX_ENABLED, "false"),
            (ENV_WORKER_BATCH_SIZE, batch.as_str()),
        ];
        settings.extend(knob.and_then(|k| k.env));
        let m = measure(d, || {
            let mut running = self.workers(workers, &server, db.url(group), group, &settings)?;
            rt.block_on(wait_for(&mut running, INSERTED, n))?;
            let cpu = workers_cpu(&running);
            drop(running);
            Ok((
                self.probe(&["inbox-span", &db.probe_arg(group), group])?,
                cpu,
            ))
        })?;
        rt.block_on(place.remove(group))?;
        Ok(m)
    }

    /// The outbox relay's rate: one release worker relaying `n` rows pre-inserted into `db`.
    #[allow(clippy::too_many_arguments)]
    fn outbox(
        &self,
        rt: &tokio::runtime::Runtime,
        place: &Placement<'_>,
        d: &Deployment,
        db: &Db,
        label: &str,
        n: u64,
        knob: Option<&Knob>,
    ) -> anyhow::Result<Measured> {
        let db_arg = db.probe_arg(label);
        let mut settings = vec![
            (ENV_STREAM_NAME, "VIBESPRO_EVENTS"),
            (ENV_OUTBOX_POLL_INTERVAL_MS, "10"),
        ];
        settings.extend(knob.and_then(|k| k.env));
        // Ids unique to the measurement: ids an earlier one published would be dropped by the
        // servers as duplicates, not stored, and measure a cheaper path.
        self.probe(&[
            "fill-outbox",
            &db_arg,
            label,
            &n.to_string(),
            &PAYLOAD_BYTES.to_string(),
        ])?;
        let server = rt.block_on(place.publisher())?;
        measure(d, || {
            // The relay's worker consumes an empty stream, so its inbox side stays idle.
            let mut relay = self.workers(1, &server, db.url(label), "bench-outbox", &settings)?;
            rt.block_on(wait_for(&mut relay, PUBLISHED, n))?;
            let cpu = workers_cpu(&relay);
            drop(relay);
            Ok((self.probe(&["outbox-span", &db_arg, label])?, cpu))
        })
    }

    /// `--against`: the 1-worker inbox and the relay on `db` (the first of `--database`) with
    /// the baseline's worker and this build's, each twice in the order A B B A, summed per
    /// build.
    fn against(
        &self,
        rt: &tokio::runtime::Runtime,
        place: &Placement<'_>,
        d: &Deployment,
        db: &Db,
        base: &against::Baseline,
        n: u64,
    ) -> anyhow::Result<AbResult> {
        let builds = [
            Bins {
                worker: base.worker.clone(),
                ..self.clone()
            },
            self.clone(),
        ];
        let mut paths = Vec::new();
        // (label, JSON key, whether it is the inbox; else the relay)
        for (path, key, inbox) in [
            ("inbox, 1 worker", "inbox_1_worker", true),
            ("outbox relay", "outbox_relay", false),
        ] {
            let mut runs: [Vec<Measured>; 2] = Default::default();
            for (round, b) in [0, 1, 1, 0].into_iter().enumerate() {
                let who = if b == 0 {
                    base.rev.as_str()
                } else {
                    "this build"
                };
                eprintln!("  measuring {path}, {who} (A/B round {}) ...", round + 1);
                let label = format!("ab-{key}-{b}-{round}");
                let m = if inbox {
                    builds[b].inbox(rt, place, d, db, &label, 1, n, None)?
                } else {
                    builds[b].outbox(rt, place, d, db, &label, n, None)?
                };
                runs[b].push(m);
            }
            let [base_runs, this_runs] = &runs;
            paths.push((
                (path, key),
                Measured::sum(base_runs),
                Measured::sum(this_runs),
            ));
        }
        Ok(AbResult {
            database: db.name(),
            rev: base.rev.clone(),
            commit: base.commit.clone(),
            paths,
        })
    }
}

/// What `--against` measured: per path (its label and JSON key), the baseline's and this
/// build's sums.
struct AbResult {
    database: &'static str,
    rev: String,
    commit: String,
    paths: Vec<((&'static str, &'static str), Measured, Measured)>,
}

impl AbResult {
    fn json(&self) -> serde_json::Value {
        let paths: serde_json::Map<String, serde_json::Value> = self
            .paths
            .iter()
            .map(|((_, key), base, this)| {
                let v = json!({
                    "baseline": base.json(),
                    "this_build": this.json(),
                    "rate_vs_baseline": this.rate() / base.rate(),
                    "client_cpu_vs_baseline": this.client_us() / base.client_us(),
                });
                (key.to_string(), v)
            })
            .collect();
        json!({
            "revision": self.rev,
            "commit": self.commit,
            "database": self.database,
            "order": "A B B A",
            "paths": paths,
        })
    }
}

/// The measurements after the main ones: the durable variant, TLS, the A/B.
struct Extra {
    always: [Measured; 3],
    tls: Option<tls::TlsCost>,
    against: Option<AbResult>,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cores} cores, {mem_gib:.0} GiB, {cpu}")
}

/// The efficiency goals: the worker's CPU per event and rates against a bare client's.
const GOALS: [(&str, &str, f64, bool); 5] = [
    // (ratio key, goal, bound, whether the ratio must be at most the bound)
    (
        "worker_cpu_per_event_vs_raw_consumer",
        "worker CPU/event <= 1.5 x raw consumer's",
        1.5,
        true,
    ),
    (
        "relay_cpu_per_row_vs_raw_publisher",
        "relay CPU/row <= 1.5 x raw publisher's CPU/message",
        1.5,
        true,
    ),
    (
        "inbox_1_worker_vs_raw_consume",
        "inbox, 1 worker >= 0.97 x raw consume",
        0.97,
        false,
    ),
    (
        "outbox_vs_raw_publish",
        "outbox relay >= 0.95 x raw publish",
        0.95,
        false,
    ),
    (
        "inbox_4_workers_vs_4_raw_clients",
        "inbox, 4 workers >= 0.90 x 4 raw clients",
        0.90,
        false,
    ),
];

/// The ratios of one database's worker measurements to the raw clients'.
fn db_ratios(
    r: &DbResults,
    publish: &Measured,
    consume: &Measured,
    consume_4: &Measured,
) -> serde_json::Value {
    let one = r.inbox[0].1;
    let four = r
        .inbox
        .iter()
        .find(|(w, _)| *w == 4)
        .map_or_else(Measured::default, |(_, m)| *m);
    json!({
        "inbox_1_worker_vs_raw_consume": one.rate() / consume.rate(),
        "outbox_vs_raw_publish": r.outbox.rate() / publish.rate(),
        "inbox_4_workers_vs_1_worker": four.rate() / one.rate(),
        "inbox_4_workers_vs_4_raw_clients": four.rate() / consume_4.rate(),
        "worker_cpu_per_event_vs_raw_consumer": one.client_us() / consume.client_us(),
        "workers_4_cpu_per_event_vs_4_raw_clients": four.client_us() / consume_4.client_us(),
        "relay_cpu_per_row_vs_raw_publisher": r.outbox.client_us() / publish.client_us(),
        "servers_cpu_per_event_inbox_1_worker_vs_raw_consume": one.server_us() / consume.server_us(),
        "servers_cpu_per_event_outbox_vs_raw_publish": r.outbox.server_us() / publish.server_us(),
    })
}

fn report(
    b: &Bench,
    profile: sea_infra::model::topology::Profile,
    publish: Measured,
    [consume, consume_4]: [Measured; 2],
    results: &[DbResults],
    knobs: &[(&Knob, Measured)],
    Extra {
        always,
        tls,
        against,
    }: Extra,
) -> anyhow::Result<()> {
    let [publish_always, consume_always, outbox_always] = always;
    let main = &results[0];
    let per_db: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|r| {
            let v = json!({
                "inbox": r.inbox.iter().map(|(w, m)| {
                    let mut v = m.json();
                    v["workers"] = json!(w);
                    v
                }).collect::<Vec<_>>(),
                "outbox": r.outbox.json(),
                "ratios": db_ratios(r, &publish, &consume, &consume_4),
            });
            (r.name.to_owned(), v)
        })
        .collect();
    let mut ratios = db_ratios(main, &publish, &consume, &consume_4);
    ratios["raw_consume_4_clients_vs_1_client"] = json!(consume_4.rate() / consume.rate());
    // The goals are judged on the first database measured (SQLite unless only PostgreSQL was).
    let goals: Vec<(String, bool)> = GOALS
        .iter()
        .map(|(key, goal, bound, at_most)| {
            let r = ratios[*key].as_f64().unwrap_or(f64::NAN);
            let met = if *at_most { r <= *bound } else { r >= *bound };
            (format!("{goal} ({})", main.name), met)
        })
        .collect();
    // The durable variant's relay ran on SQLite: compared with SQLite's.
    let outbox_sqlite = results
        .iter()
        .find(|r| r.name == "sqlite")
        .map_or(f64::NAN, |r| r.outbox.rate());
    let always_ratios = json!({
        "raw_publish": publish_always.rate() / publish.rate(),
        "raw_consume": consume_always.rate() / consume.rate(),
        "outbox": outbox_always.rate() / outbox_sqlite,
    });
    // Each knob against the same measurement with the defaults, on SQLite, in this run.
    let sqlite = results.iter().find(|r| r.name == "sqlite");
    let knob_rows: Vec<(String, Measured, Measured)> = knobs
        .iter()
        .filter_map(|(k, m)| {
            let base = match k.workers {
                0 => sqlite?.outbox,
                w => sqlite?.inbox.iter().find(|(n, _)| *n == w)?.1,
            };
            Some((k.label(), *m, base))
        })
        .collect();
    let knobs_json: Vec<serde_json::Value> = knob_rows
        .iter()
        .map(|(label, m, base)| {
            let mut v = m.json();
            v["knob"] = json!(label);
            v["rate_vs_default"] = json!(m.rate() / base.rate());
            v["client_cpu_vs_default"] = json!(m.client_us() / base.client_us());
            v
        })
        .collect();
    let secure = tls.as_ref().map(|t| {
        json!({
            "rates": { "raw_publish": t.publish.rate(), "raw_consume": t.consume.rate() },
            "measurements": { "raw_publish": t.publish.json(), "raw_consume": t.consume.json() },
            "vs_plain": {
                "raw_publish": t.publish.rate() / publish.rate(),
                "raw_consume": t.consume.rate() / consume.rate(),
            },
        })
    });
    if b.json {
        let out = json!({
            "profile": profile.as_str(),
            "events": b.events,
            "payload_bytes": PAYLOAD_BYTES,
            "machine": machine(),
            "cpu": "client = the probe process's or the worker processes' utime+stime over their whole run; server = every nats-server process's, summed, over the measurement; per event, in microseconds",
            "database": main.name,
            "rates": {
                "raw_publish": publish.rate(),
                "raw_consume": consume.rate(),
                "raw_consume_4_clients": consume_4.rate(),
                "inbox": main.inbox.iter().map(|(w, m)| json!({"workers": w, "rate": m.rate()})).collect::<Vec<_>>(),
                "outbox": main.outbox.rate(),
            },
            "measurements": {
                "raw_publish": publish.json(),
                "raw_consume": consume.json(),
                "raw_consume_4_clients": consume_4.json(),
            },
            "databases": per_db,
            "ratios": ratios,
            "knobs": knobs_json,
            "sync_interval_always": {
                "rates": {
                    "raw_publish": publish_always.rate(),
                    "raw_consume": consume_always.rate(),
                    "outbox": outbox_always.rate(),
                },
                "measurements": {
                    "raw_publish": publish_always.json(),
                    "raw_consume": consume_always.json(),
                    "outbox": outbox_always.json(),
                },
                "vs_default": always_ratios,
            },
            "secure": secure,
            "against": against.as_ref().map(AbResult::json),
            "goals": goals.iter().map(|(g, ok)| json!({"goal": g, "met": ok})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "profile {}, {} events of {PAYLOAD_BYTES} bytes, on {}",
        profile,
        b.events,
        machine()
    );
    println!(
        "{:<44} {:>19} {:>13} {:>13}",
        "", "rate", "client CPU", "servers CPU"
    );
    let line = |label: &str, m: &Measured, note: String| {
        let text = format!(
            "{label:<44} {:>10.0} events/s {:>7.1} us/ev {:>7.1} us/ev  {note}",
            m.rate(),
            m.client_us(),
            m.server_us()
        );
        println!("{}", text.trim_end());
    };
    line(
        &format!("raw publish (R3, window {PUBLISH_WINDOW})"),
        &publish,
        String::new(),
    );
    line(
        &format!("raw pull consume + ack (batch {PULL_BATCH})"),
        &consume,
        String::new(),
    );
    line(
        "raw pull consume + ack, 4 clients",
        &consume_4,
        format!("{:.2} x 1 client", consume_4.rate() / consume.rate()),
    );
    for r in results {
        let one = r.inbox[0].1;
        for (w, m) in &r.inbox {
            let vs = match w {
                1 => format!(
                    "{:.2} x raw consume, CPU/event {:.2} x raw's",
                    m.rate() / consume.rate(),
                    m.client_us() / consume.client_us()
                ),
                4 => format!(
                    "{:.2} x 4 raw clients ({:.2} x 1 worker), CPU/event {:.2} x theirs",
                    m.rate() / consume_4.rate(),
                    m.rate() / one.rate(),
                    m.client_us() / consume_4.client_us()
                ),
                _ => format!("{:.2} x 1 worker", m.rate() / one.rate()),
            };
            line(&format!("worker inbox, {w} worker(s), {}", r.name), m, vs);
        }
        line(
            &format!("outbox relay, 1 worker, {}", r.name),
            &r.outbox,
            format!(
                "{:.2} x raw publish, CPU/row {:.2} x raw's",
                r.outbox.rate() / publish.rate(),
                r.outbox.client_us() / publish.client_us()
            ),
        );
    }
    if !knob_rows.is_empty() {
        println!("knobs, each against the defaults' measurement above (sqlite):");
    }
    for (label, m, base) in &knob_rows {
        line(
            &format!("  {label}"),
            m,
            format!(
                "rate {:.2} x, client CPU/event {:.2} x the default's",
                m.rate() / base.rate(),
                m.client_us() / base.client_us()
            ),
        );
    }
    println!("sync_interval: always (fsync before every ack), a second cluster, sqlite:");
    for (label, always, default) in [
        ("raw publish", publish_always, publish.rate()),
        ("raw pull consume + ack", consume_always, consume.rate()),
        ("outbox relay, 1 worker", outbox_always, outbox_sqlite),
    ] {
        line(
            &format!("  {label}, always"),
            &always,
            format!("{:.2} x the default sync_interval", always.rate() / default),
        );
    }
    if let Some(t) = &tls {
        println!("TLS and accounts (--secure), a third cluster:");
        for (label, secured, plain) in [
            ("raw publish", t.publish, publish),
            ("raw pull consume + ack", t.consume, consume),
        ] {
            line(
                &format!("  {label}, TLS"),
                &secured,
                format!("{:.2} x plaintext", secured.rate() / plain.rate()),
            );
        }
    }
    if let Some(ab) = &against {
        let short = &ab.commit[..ab.commit.len().min(10)];
        println!(
            "A/B: the worker at {} ({short}) and this build, {}, each twice (A B B A):",
            ab.rev, ab.database
        );
        for ((path, _), base, this) in &ab.paths {
            line(&format!("  {path}, {}", ab.rev), base, String::new());
            line(
                &format!("  {path}, this build"),
                this,
                format!(
                    "rate {:.2} x, client CPU/event {:.2} x {}'s",
                    this.rate() / base.rate(),
                    this.client_us() / base.client_us(),
                    ab.rev
                ),
            );
        }
    }
    for (goal, ok) in goals {
        println!("{} {goal}", if ok { "met   " } else { "MISSED" });
    }
    Ok(())
}
