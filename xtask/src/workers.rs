//! `sea-mq-worker` processes started by a command (bench, drills, verify), killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// What every worker of a group shares.
pub struct GroupSpec<'a> {
    pub bin: &'a Path,
    /// Comma-separated client URLs (`NATS_SERVERS`).
    pub servers: &'a str,
    pub db: &'a Path,
    pub group: &'a str,
    pub env: &'a [(&'a str, &'a str)],
    /// Where each worker's stderr goes (`<group>-<i>.log`); discarded when `None`.
    pub log_dir: Option<&'a Path>,
}

pub struct Worker {
    child: Option<Child>,
    pub http: String,
    pub log: Option<PathBuf>,
}

impl Worker {
    /// Whether the process is still alive (not killed, not exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One sample from its `/metrics`, named with its labels as printed
    /// (`events_total{outcome="inserted"}`); `None` when it is not running or does not answer
    /// within a second.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        self.child.as_ref()?;
        static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
        let http = HTTP.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .expect("an HTTP client with a timeout builds")
        });
        let text = http
            .get(format!("{}/metrics", self.http))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self
            .log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn spawn(spec: &GroupSpec<'_>, n: usize) -> anyhow::Result<Vec<Worker>> {
    (0..n).map(|i| spawn_one(spec, i)).collect()
}

fn spawn_one(spec: &GroupSpec<'_>, i: usize) -> anyhow::Result<Worker> {
    let port = sea_infra::ports::free_port();
    let log = spec
        .log_dir
        .map(|d| d.join(format!("{}-{i}.log", spec.group)));
    let stderr = match &log {
        Some(path) => Stdio::from(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    let child = Command::new(spec.bin)
        .env_clear()
        .env("NATS_SERVERS", spec.servers)
        .env("DATABASE_URL", format!("sqlite://{}", spec.db.display()))
        .env("CONSUMER_GROUP", spec.group)
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_LEVEL", "warn")
        .envs(spec.env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("start {}", spec.bin.display()))?;
    Ok(Worker {
        child: Some(child),
        http: format!("http://127.0.0.1:{port}"),
        log,
    })
}

/// Waits until every worker answers `/readyz` with 200; fails naming the first that does not.
pub async fn wait_ready(workers: &mut [Worker], timeout: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = Instant::now() + timeout;
    for w in workers.iter_mut() {
        loop {
            if let Some(Ok(Some(status))) = w.child.as_mut().map(Child::try_wait) {
                bail!("worker exited with {status}: {}", w.log_tail(20));
            }
            let ready = http
                .get(format!("{}/readyz", w.http))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "worker at {} not ready within {timeout:?}: {}",
                    w.http,
                    w.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
