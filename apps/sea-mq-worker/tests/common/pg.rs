//! A private PostgreSQL server for a test: `initdb` into a scratch directory, started on a free
//! loopback port with its unix socket inside that directory, trust auth. Stopped and removed on
//! drop, also when the test panics.
//!
//! Without PostgreSQL binaries the tests are skipped (and say so), unless
//! `SEA_REQUIRE_POSTGRES=1`, where they fail (`sea_infra::testing::require`).

#![allow(dead_code)] // each test binary that includes this file uses a different part

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sea_infra::testing::{require, scratch_dir, Prerequisite};
use sea_mq_worker::config::Database;
use sea_mq_worker::db::Store;

/// Written into the URL to check it is never printed; trust auth ignores it.
pub const PASSWORD: &str = "pg-test-secret";
const DATABASE: &str = "sea";

pub struct PgServer {
    bin: PathBuf,
    port: u16,
    /// Postgres refuses to run as root: then its commands run as the `postgres` user.
    as_postgres: bool,
    dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts a server with database `sea`; `None` (after saying why) when `test` must skip.
    pub async fn start(test: &str) -> Option<PgServer> {
        if !require(test, Prerequisite::Postgres) {
            return None;
        }
        let bin = find_bin_dir().expect("the prerequisite check found initdb");
        // /proc/self belongs to our effective user.
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        assert!(
            !as_postgres || run(Command::new("id").arg("postgres")).status.success(),
            "running as root and there is no `postgres` user to run the server as"
        );
        let server = PgServer {
            bin,
            port: sea_infra::deployment::ports::free_port(),
            as_postgres,
            dir: scratch_dir("pg"),
        };
        if as_postgres {
            server.check(run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(server.dir.path())));
        }
        server.check(run(server
            .pg("initdb")
            .args(["--auth=trust", "--username=postgres", "--no-locale"])
            .args(["--encoding=UTF8", "--no-sync", "-D"])
            .arg(server.data())));
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            server.port,
            server.dir.path().display()
        );
        // -W: don't let pg_ctl wait; readiness is polled below, bounded.
        server.check(run(server
            .pg("pg_ctl")
            .args(["start", "-W", "-D"])
            .arg(server.data())
            .arg("-l")
            .arg(server.log())
            .args(["-o", &options])));
        server.wait_ready().await;
        server
            .client_of("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .expect("create database");
        Some(server)
    }

    /// The worker's `DATABASE_URL` (with a password, to check it is never printed).
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    /// Its loopback port (for connection strings of other forms than [`url`](Self::url)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A direct client, for what only the server can tell (its sessions).
    pub async fn client(&self) -> tokio_postgres::Client {
        self.client_of(DATABASE).await
    }

    /// The worker's tables, as an auditor reads them.
    pub async fn store(&self) -> Store {
        Store::open(&Database::Postgres(self.url()), Duration::ZERO)
            .await
            .expect("open the worker's tables")
    }

    fn url_of(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    async fn client_of(&self, db: &str) -> tokio_postgres::Client {
        try_connect(&self.url_of(db))
            .await
            .unwrap_or_else(|e| panic!("connect to PostgreSQL: {e}\n{}", self.log_text()))
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match try_connect(&self.url_of("postgres")).await {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("PostgreSQL not ready within 30s: {e}\n{}", self.log_text())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// A PostgreSQL program, run as `postgres` when we are root. Its working directory is the
    /// scratch directory: `postgres` may not be allowed into ours.
    fn pg(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn check(&self, out: Output) {
        assert!(
            out.status.success(),
            "{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Immediate: nothing to keep. `-t` bounds pg_ctl's wait. The scratch directory is removed
        // after this, when the `dir` field drops.
        let _ = self
            .pg("pg_ctl")
            .args(["stop", "-m", "immediate", "-t", "30", "-D"])
            .arg(self.data())
            .output();
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()))
}

async fn try_connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The highest version under /usr/lib/postgresql, else the directory of `initdb` on PATH.
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let versioned = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_tools(bin))
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin);
    versioned.or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).find(|d| has_tools(d)))
}
