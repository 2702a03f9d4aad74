//! `cargo xtask bench`: raw JetStream rates and the worker's, measured side by side in one run
//! on one private cluster (free ports), with the ratios the project's goals are stated in.
//!
//! The raw client runs from the release-built `sea-mq-bench` probe and the worker from its
//! release build, so both sides are compiled alike; both connect to the same kind of server
//! (see `placement`), so a ratio compares like with like.
//!
//! Then the durability setting's cost: a second private cluster whose servers fsync before every
//! acknowledgement (`sync_interval: always`), measured the same way for the paths a disk write
//! is on (raw publish, raw consume with its acks, the outbox relay), next to the default's.
//!
//! With `--secure`, the same raw paths on a secured cluster (see `tls`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sea_infra::client::provision;
use sea_infra::deployment::{ports, BackendKind, Throwaway, UpOptions};
use sea_infra::env::Secret;
use sea_infra::model::spec::Spec;
use sea_infra::model::topology::Topology;
use sea_infra::model::Role;
use sea_mq_worker::child::{Launch, WorkerProcess};
use sea_mq_worker::config::{
    ENV_LOG_LEVEL, ENV_OUTBOX_ENABLED, ENV_OUTBOX_POLL_INTERVAL_MS, ENV_STREAM_NAME,
    ENV_WORKER_BATCH_SIZE,
};
use serde::Serialize;
use serde_json::json;
use xshell::{cmd, Shell};

use crate::flags::Bench;

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

#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize)]
struct Span {
    events: u64,
    seconds: f64,
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
            bail!("sea-mq-bench {} failed", args.join(" "));
        }
        serde_json::from_slice(&out.stdout).context("read sea-mq-bench output")
    }

    /// `n` workers of `group` on `server`, logging warnings only (logs cost CPU too).
    fn workers(
        &self,
        n: usize,
        server: &str,
        db: &Path,
        group: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Vec<WorkerProcess>> {
        let launch = Launch::sqlite(&self.worker, &[server.to_owned()], db, group)
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
        eprintln!("building sea-mq-worker and sea-mq-bench (release) ...");
        crate::project::cargo(cmd!(
            sh,
            "cargo build --quiet --release -p sea-mq-worker --bins"
        ))
        .run()
        .context("build the release binaries")?;
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
        let batch = PULL_BATCH.to_string();

        eprintln!("starting a private {} cluster on free ports ...", profile);
        let rt = crate::project::runtime()?;
        let bin = crate::project::nats_server()?;
        let cluster = Throwaway::new(profile, BackendKind::Process)?;
        let place = start(&rt, &bin.path, &cluster)?;

        let step = |label: &str| eprintln!("  measuring {label} ...");
        step("raw publish");
        let publish = bins.probe(&[
            "publish",
            &rt.block_on(place.publisher())?,
            "raw",
            &count,
            &PAYLOAD_BYTES.to_string(),
            &PUBLISH_WINDOW.to_string(),
        ])?;
        let raw_consume = |durable: &str, clients: usize| -> anyhow::Result<Span> {
            let server = rt.block_on(place.durable(durable))?;
            let span = bins.probe(&[
                "consume",
                &server,
                placement::STREAM,
                durable,
                &count,
                &batch,
                &clients.to_string(),
            ])?;
            rt.block_on(place.remove(durable))?;
            Ok(span)
        };
        step("raw pull consume + ack");
        let consume = raw_consume("bench-raw", 1)?;
        // What the machine allows four consumers of one durable, without any database: the
        // ceiling the 4-worker inbox is judged against.
        step("raw pull consume + ack, 4 clients");
        let consume_4 = raw_consume("bench-raw-4", 4)?;

        let mut inbox = Vec::new();
        for workers in [1usize, 2, 4] {
            step(&format!("inbox with {workers} worker(s)"));
            let db = dir.path().join(format!("inbox-{workers}.db"));
            let group = format!("bench-{workers}");
            let server = rt.block_on(place.durable(&group))?;
            let mut running = bins.workers(
                workers,
                &server,
                &db,
                &group,
                &[
                    (ENV_OUTBOX_ENABLED, "false"),
                    (ENV_WORKER_BATCH_SIZE, &batch),
                ],
            )?;
            rt.block_on(wait_for(&mut running, INSERTED, n))?;
            drop(running);
            rt.block_on(place.remove(&group))?;
            let span = bins.probe(&["inbox-span", &db.display().to_string(), &group])?;
            inbox.push((workers, span));
        }

        step("outbox relay, 1 worker");
        let outbox = bins.outbox(&rt, &place, &dir.path().join("outbox.db"), n)?;
        drop(place);
        drop(cluster);

        // The durable variant: the same paths on servers that fsync every write.
        eprintln!("starting a second private {profile} cluster with sync_interval: always ...");
        let mut topology = Topology::for_profile(profile).remap_ports(ports::free_port);
        topology.settings.sync_interval = "always".to_owned();
        let cluster = Throwaway::with_topology(topology, BackendKind::Process)?;
        let place = start(&rt, &bin.path, &cluster)?;
        step("raw publish, sync_interval always");
        let publish_always = bins.probe(&[
            "publish",
            &rt.block_on(place.publisher())?,
            "raw",
            &count,
            &PAYLOAD_BYTES.to_string(),
            &PUBLISH_WINDOW.to_string(),
        ])?;
        step("raw pull consume + ack, sync_interval always");
        let server = rt.block_on(place.durable("bench-raw-always"))?;
        let consume_always = bins.probe(&[
            "consume",
            &server,
            placement::STREAM,
            "bench-raw-always",
            &count,
            &batch,
            "1",
        ])?;
        rt.block_on(place.remove("bench-raw-always"))?;
        step("outbox relay, 1 worker, sync_interval always");
        let outbox_always = bins.outbox(&rt, &place, &dir.path().join("outbox-always.db"), n)?;
        drop(place);
        drop(cluster);

        let tls = if self.secure {
            eprintln!("starting a secured private {profile} cluster (TLS, accounts) ...");
            Some(tls::measure(&rt, &bin.path, &bins, profile, n)?)
        } else {
            None
        };

        report(
            &self,
            profile,
            publish,
            [consume, consume_4],
            &inbox,
            outbox,
            ([publish_always, consume_always, outbox_always], tls),
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
    /// The outbox relay's rate: one release worker relaying `n` rows pre-inserted into `db`.
    fn outbox(
        &self,
        rt: &tokio::runtime::Runtime,
        place: &Placement<'_>,
        db: &Path,
        n: u64,
    ) -> anyhow::Result<Span> {
        let db_arg = db.display().to_string();
        self.probe(&[
            "fill-outbox",
            &db_arg,
            "outbox",
            &n.to_string(),
            &PAYLOAD_BYTES.to_string(),
        ])?;
        // The relay's worker consumes an empty stream, so its inbox side stays idle.
        let mut relay = self.workers(
            1,
            &rt.block_on(place.publisher())?,
            db,
            "bench-outbox",
            &[
                (ENV_STREAM_NAME, "VIBESPRO_EVENTS"),
                (ENV_OUTBOX_POLL_INTERVAL_MS, "10"),
            ],
        )?;
        rt.block_on(wait_for(&mut relay, PUBLISHED, n))?;
        drop(relay);
        self.probe(&["outbox-span", &db_arg])
    }
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

fn report(
    b: &Bench,
    profile: sea_infra::model::topology::Profile,
    publish: Span,
    [consume, consume_4]: [Span; 2],
    inbox: &[(usize, Span)],
    outbox: Span,
    (always, tls): ([Span; 3], Option<tls::TlsCost>),
) -> anyhow::Result<()> {
    let [publish_always, consume_always, outbox_always] = always;
    let one = inbox[0].1.rate();
    let four = inbox
        .iter()
        .find(|(w, _)| *w == 4)
        .map_or(0.0, |(_, s)| s.rate());
    let ratios = json!({
        "inbox_1_worker_vs_raw_consume": one / consume.rate(),
        "outbox_vs_raw_publish": outbox.rate() / publish.rate(),
        "inbox_4_workers_vs_1_worker": four / one,
        "raw_consume_4_clients_vs_1_client": consume_4.rate() / consume.rate(),
    });
    let goals = [
        (
            "inbox, 1 worker >= 0.80 x raw consume",
            one / consume.rate() >= 0.8,
        ),
        (
            "outbox relay >= 0.80 x raw publish",
            outbox.rate() / publish.rate() >= 0.8,
        ),
        ("inbox, 4 workers >= 1.5 x 1 worker", four / one >= 1.5),
    ];
    let always = json!({
        "raw_publish": publish_always.rate(),
        "raw_consume": consume_always.rate(),
        "outbox": outbox_always.rate(),
    });
    let always_ratios = json!({
        "raw_publish": publish_always.rate() / publish.rate(),
        "raw_consume": consume_always.rate() / consume.rate(),
        "outbox": outbox_always.rate() / outbox.rate(),
    });
    let secure = tls.as_ref().map(|t| {
        json!({
            "rates": { "raw_publish": t.publish.rate(), "raw_consume": t.consume.rate() },
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
            "rates": {
                "raw_publish": publish.rate(),
                "raw_consume": consume.rate(),
                "raw_consume_4_clients": consume_4.rate(),
                "inbox": inbox.iter().map(|(w, s)| json!({"workers": w, "rate": s.rate()})).collect::<Vec<_>>(),
                "outbox": outbox.rate(),
            },
            "ratios": ratios,
            "sync_interval_always": { "rates": always, "vs_default": always_ratios },
            "secure": secure,
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
    let line = |label: &str, rate: f64, note: String| {
        let text = format!("{label:<44} {rate:>10.0} events/s  {note}");
        println!("{}", text.trim_end());
    };
    line(
        &format!("raw publish (R3, window {PUBLISH_WINDOW})"),
        publish.rate(),
        String::new(),
    );
    line(
        &format!("raw pull consume + ack (batch {PULL_BATCH})"),
        consume.rate(),
        String::new(),
    );
    line(
        "raw pull consume + ack, 4 clients",
        consume_4.rate(),
        format!("{:.2} x 1 client", consume_4.rate() / consume.rate()),
    );
    for (w, s) in inbox {
        let vs = if *w == 1 {
            format!("{:.2} x raw consume", s.rate() / consume.rate())
        } else {
            format!("{:.2} x 1 worker", s.rate() / one)
        };
        line(&format!("worker inbox, {w} worker(s)"), s.rate(), vs);
    }
    line(
        "outbox relay, 1 worker",
        outbox.rate(),
        format!("{:.2} x raw publish", outbox.rate() / publish.rate()),
    );
    println!("sync_interval: always (fsync before every ack), a second cluster:");
    for (label, always, default) in [
        ("raw publish", publish_always, publish),
        ("raw pull consume + ack", consume_always, consume),
        ("outbox relay, 1 worker", outbox_always, outbox),
    ] {
        line(
            &format!("  {label}, always"),
            always.rate(),
            format!(
                "{:.2} x the default sync_interval",
                always.rate() / default.rate()
            ),
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
                secured.rate(),
                format!("{:.2} x plaintext", secured.rate() / plain.rate()),
            );
        }
    }
    for (goal, ok) in goals {
        println!("{} {goal}", if ok { "met   " } else { "MISSED" });
    }
    // Four workers cannot beat four raw clients: say where the machine's ceiling lies.
    println!(
        "ceiling here: 4 raw clients = {:.2} x 1 raw client; 4 workers = {:.2} x 4 raw clients",
        consume_4.rate() / consume.rate(),
        four / consume_4.rate()
    );
    Ok(())
}
