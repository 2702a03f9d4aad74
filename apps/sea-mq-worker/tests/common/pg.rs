//! A private PostgreSQL server for a test: `initdb` into a scratch directory, started on a free
//! loopback port with its unix socket inside that directory, trust auth. Stopped and removed on
//! drop, also when the test panics. [`PgServer::start_tls`] starts one that accepts only TLS
//! over TCP, with a certificate from a development CA of its own.
//!
//! Without PostgreSQL binaries the tests are skipped (and say so), unless
//! `SEA_REQUIRE_POSTGRES=1`, where they fail (`sea_infra::testing::require`).

#![allow(dead_code)] // each test binary that includes this file uses a different part

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sea_infra::deployment::certs::{self, CertRequest, Usage};
use sea_infra::testing::{require, scratch_dir, Prerequisite};
use sea_mq_worker::config::parse_database_url;
use sea_mq_worker::db::Store;

/// Written into the URL to check it is never printed; trust auth ignores it, the TLS server
/// checks it (SCRAM).
pub const PASSWORD: &str = "pg-test-secret";
const DATABASE: &str = "sea";
/// The server certificate's file stem in `tls/`, and the names it holds.
const CERT: &str = "pg";
pub const CERT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

pub struct PgServer {
    bin: PathBuf,
    port: u16,
    /// Postgres refuses to run as root: then its commands run as the `postgres` user.
    as_postgres: bool,
    /// TLS on and required over TCP.
    tls: bool,
    dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts a server with database `sea`; `None` (after saying why) when `test` must skip.
    pub async fn start(test: &str) -> Option<PgServer> {
        PgServer::start_with(test, false).await
    }

    /// Like [`start`](Self::start), with `ssl = on` (a certificate for `localhost` and
    /// `127.0.0.1` signed by a development CA, [`ca`](Self::ca)) and a `pg_hba.conf` that
    /// accepts TCP sessions only over TLS (`hostssl`) and only with the password (SCRAM).
    pub async fn start_tls(test: &str) -> Option<PgServer> {
        PgServer::start_with(test, true).await
    }

    async fn start_with(test: &str, tls: bool) -> Option<PgServer> {
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
            tls,
            dir: scratch_dir("pg"),
        };
        let pwfile = server.dir.path().join("pwfile");
        if tls {
            // The project's certificate code, as for the NATS servers: files 0600 in a 0700
            // directory, which PostgreSQL requires of its key.
            let request = CertRequest {
                name: CERT.to_owned(),
                sans: CERT_NAMES.map(str::to_owned).to_vec(),
                usage: Usage::Server,
            };
            certs::ensure(&server.tls_dir(), &[request], false).expect("issue the certificates");
            std::fs::write(&pwfile, PASSWORD).expect("write the password file");
        }
        if as_postgres {
            server.check(run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(server.dir.path())));
        }
        let mut initdb = server.pg("initdb");
        initdb
            .args(["--auth=trust", "--username=postgres", "--no-locale"])
            .args(["--encoding=UTF8", "--no-sync", "-D"])
            .arg(server.data());
        if tls {
            initdb.arg("--pwfile").arg(&pwfile);
        }
        server.check(run(&mut initdb));
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            server.port,
            server.dir.path().display()
        );
        if tls {
            // Unix sockets (the test's own sessions) stay trusted; TCP only with TLS.
            std::fs::write(
                server.data().join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .expect("write pg_hba.conf");
            let tls_dir = server.tls_dir();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                tls_dir.join(format!("{CERT}.pem")).display(),
                tls_dir.join(format!("{CERT}-key.pem")).display()
            ));
        }
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

    /// The worker's `DATABASE_URL` (with a password, to check it is never printed); on a TLS
    /// server with `sslmode=verify-full` and the CA.
    pub fn url(&self) -> String {
        if self.tls {
            let ca = self.ca();
            self.url_with(
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
            )
        } else {
            format!(
                "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{DATABASE}",
                self.port
            )
        }
    }

    /// A URL of database `sea` at `host`, with `query` (`key=value&...`).
    pub fn url_with(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@{host}:{}/{DATABASE}?{query}",
            self.port
        )
    }

    /// The CA that signed the TLS server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.tls_dir().join("ca.pem")
    }

    fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
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
        let db = parse_database_url(&self.url()).expect("the test's DATABASE_URL");
        Store::open(&db, Duration::ZERO)
            .await
            .expect("open the worker's tables")
    }

    /// `sslmode` and SSL version of every session of `application_name`, as the server sees
    /// them (`pg_stat_ssl`).
    pub async fn sessions_tls(&self, application_name: &str) -> Vec<(bool, Option<String>)> {
        self.client()
            .await
            .query(
                "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.application_name = $1",
                &[&application_name],
            )
            .await
            .expect("read pg_stat_ssl")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    async fn client_of(&self, db: &str) -> tokio_postgres::Client {
        self.try_connect(db)
            .await
            .unwrap_or_else(|e| panic!("connect to PostgreSQL: {e}\n{}", self.log_text()))
    }

    /// Over the Unix socket in the scratch directory: trusted, no TLS, whatever TCP requires.
    async fn try_connect(&self, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(self.dir.path())
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.try_connect("postgres").await {
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
