//! `cargo xtask bench --exporter`: what one scrape of `sea-nats-exporter` costs on a loaded
//! cluster. A private `ha` cluster (3 servers, free ports) gets `--streams` file streams of
//! `--replicas` replicas with `--consumers-per-stream` durable pull consumers each and one
//! event per stream; the release-built exporter watches the three servers, and `/metrics` is
//! fetched `--scrapes` times one after the other (after one warm-up scrape). Per scrape: the
//! wall time until the whole answer is read, the CPU the exporter process used (user + system,
//! from `/proc/<pid>/stat`), and its resident memory (`VmRSS`) afterwards.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream::{self, consumer, stream};
use sea_infra::client::connect::NatsConfig;
use sea_infra::client::crosscheck;
use sea_infra::deployment::{ports, BackendKind, Throwaway, UpOptions};
use sea_infra::model::Profile;
use serde_json::json;
use xshell::Shell;

use crate::flags::BenchExporter;
use crate::project;

/// Figures of one scrape.
struct Scrape {
    seconds: f64,
    cpu_seconds: f64,
    rss_bytes: u64,
    body_bytes: usize,
    samples: usize,
}

impl BenchExporter {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        eprintln!("building sea-nats-exporter (release) ...");
        let exporter = project::build_binary(sh, "sea-nats-exporter", true)?;
        let bin = project::nats_server()?;
        let cluster = Throwaway::new(Profile::Ha, BackendKind::Process)?;
        let dep = &cluster.deployment;
        let rt = project::runtime()?;
        rt.block_on(dep.up(
            &bin.path,
            &UpOptions::default(),
            &|l| eprintln!("  {l}"),
            std::future::pending(),
        ))
        .context("start the private ha cluster")?;
        let t = &dep.topology;
        let urls: Vec<String> = t.servers().map(|(_, s)| t.client_url(s)).collect();
        let began = Instant::now();
        rt.block_on(self.populate(&urls))?;
        eprintln!(
            "{} streams ({} replicas), {} consumers created in {:.0?}",
            self.streams,
            self.replicas,
            self.streams * self.consumers_per_stream,
            began.elapsed()
        );

        let addr = format!("127.0.0.1:{}", ports::free_port());
        let monitors: Vec<String> = t.servers().map(|(_, s)| t.monitor_url(s)).collect();
        let mut child = std::process::Command::new(&exporter)
            .env("NATS_MONITOR_URLS", monitors.join(","))
            .env("EXPORTER_ADDR", &addr)
            .env("EXPORTER_TIMEOUT_MS", "30000")
            .env("LOG_LEVEL", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", exporter.display()))?;
        let pid = child.id() as i32;
        let scrapes = rt.block_on(self.measure(&addr, pid));
        let _ = child.kill();
        let _ = child.wait();
        let scrapes = scrapes?;
        self.report(&scrapes, bin.version.to_string())
    }

    /// Streams, their consumers and one event each.
    async fn populate(&self, urls: &[String]) -> anyhow::Result<()> {
        let client = crosscheck::connect(&NatsConfig::default(), urls).await?;
        let js = jetstream::new(client);
        for s in 0..self.streams {
            let name = format!("BENCH_EXPORTER_{s}");
            let subject = format!("bench.exporter.{s}");
            let st = js
                .create_stream(stream::Config {
                    name: name.clone(),
                    subjects: vec![subject.clone()],
                    num_replicas: self.replicas,
                    max_bytes: 1 << 20,
                    ..Default::default()
                })
                .await
                .with_context(|| format!("create stream {name}"))?;
            for c in 0..self.consumers_per_stream {
                st.create_consumer(consumer::pull::Config {
                    durable_name: Some(format!("c{c}")),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("create consumer {name}/c{c}"))?;
            }
            js.publish(subject, "{}".into())
                .await?
                .await
                .with_context(|| format!("publish to {name}"))?;
            if (s + 1) % 50 == 0 {
                eprintln!("  {} streams", s + 1);
            }
        }
        Ok(())
    }

    async fn measure(&self, addr: &str, pid: i32) -> anyhow::Result<Vec<Scrape>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let url = format!("http://{addr}/metrics");
        let began = Instant::now();
        while http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
        {
            if began.elapsed() > Duration::from_secs(30) {
                bail!("the exporter did not answer on {addr} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut out = Vec::new();
        for i in 0..=self.scrapes {
            let cpu_before = cpu_seconds(pid)?;
            let start = Instant::now();
            let body = http
                .get(&url)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            let seconds = start.elapsed().as_secs_f64();
            let cpu_seconds = cpu_seconds(pid)? - cpu_before;
            if i == 0 {
                let up = body
                    .lines()
                    .filter(|l| l.starts_with("nats_exporter_up{") && l.ends_with(" 1"))
                    .count();
                anyhow::ensure!(up == 3, "only {up} of 3 servers answered the exporter");
                continue; // warm-up
            }
            out.push(Scrape {
                seconds,
                cpu_seconds,
                rss_bytes: rss_bytes(pid)?,
                body_bytes: body.len(),
                samples: body.lines().filter(|l| !l.starts_with('#')).count(),
            });
        }
        Ok(out)
    }

    fn report(&self, scrapes: &[Scrape], version: String) -> anyhow::Result<()> {
        let stats = |f: &dyn Fn(&Scrape) -> f64| {
            let mut v: Vec<f64> = scrapes.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            // Nearest rank, rounded to 0.1 ms.
            let pick =
                |q: f64| (v[((v.len() - 1) as f64 * q).round() as usize] * 10.0).round() / 10.0;
            (pick(0.5), pick(0.95), pick(1.0))
        };
        let duration = stats(&|s| s.seconds * 1000.0);
        let cpu = stats(&|s| s.cpu_seconds * 1000.0);
        let rss = scrapes.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
        let last = scrapes.last().context("no scrape measured")?;
        if self.json {
            let out = json!({
                "nats_server": version,
                "servers": 3,
                "streams": self.streams,
                "replicas": self.replicas,
                "consumers": self.streams * self.consumers_per_stream,
                "scrapes": scrapes.len(),
                "scrape_ms": {"median": duration.0, "p95": duration.1, "max": duration.2},
                "cpu_ms_per_scrape": {"median": cpu.0, "p95": cpu.1, "max": cpu.2},
                "rss_max_bytes": rss,
                "body_bytes": last.body_bytes,
                "samples": last.samples,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        println!(
            "sea-nats-exporter on 3 servers (nats-server {version}), {} streams x {} replicas, {} consumers: {} scrapes",
            self.streams,
            self.replicas,
            self.streams * self.consumers_per_stream,
            scrapes.len()
        );
        println!(
            "  scrape duration   median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            duration.0, duration.1, duration.2
        );
        println!(
            "  CPU per scrape    median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            cpu.0, cpu.1, cpu.2
        );
        println!(
            "  RSS               max {:.1} MiB",
            rss as f64 / (1 << 20) as f64
        );
        println!(
            "  answer            {:.1} MiB, {} samples",
            last.body_bytes as f64 / (1 << 20) as f64,
            last.samples
        );
        Ok(())
    }
}

/// User + system CPU time of `pid` so far, in seconds.
fn cpu_seconds(pid: i32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("the exporter (pid {pid}) is gone"))?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space on every architecture.
    Ok(ticks / 100.0)
}

/// Resident memory of `pid`, in bytes.
fn rss_bytes(pid: i32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?;
    Ok(kb.parse::<u64>()? * 1024)
}
