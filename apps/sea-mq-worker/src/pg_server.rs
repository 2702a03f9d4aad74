//! A private PostgreSQL server: `initdb` into a scratch directory, started on a free loopback
//! port with its unix socket inside that directory, trust auth. Stopped and removed on drop.
//! The worker's tests start one per test (`tests/common/pg.rs` wraps this), and `cargo xtask
//! bench --database postgres` one per run. [`PgOptions::tls`] starts one that accepts only TLS
//! over TCP, with a certificate from a development CA of its own.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sea_infra::deployment::certs::{self, CertRequest, Usage};

/// Written into the URL so that tests can check it is never printed; trust auth ignores it, the
/// TLS server checks it (SCRAM).
pub const PASSWORD: &str = "pg-test-secret";
const DATABASE: &str = "sea";
/// The server certificate's file stem in `tls/`, and the names it holds.
const CERT: &str = "pg";
const CERT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// How to start the server.
#[derive(Clone, Copy, Debug, Default)]
pub struct PgOptions {
    /// `ssl = on` (a certificate for `localhost` and `127.0.0.1` signed by a development CA,
    /// [`PgServer::ca`]) and a `pg_hba.conf` that accepts TCP sessions only over TLS
    /// (`hostssl`) and only with the password (SCRAM).
    pub tls: bool,
    /// Keep PostgreSQL's `fsync = on` (a commit waits for the disk, as in production). Off, the
    /// tests' default, a commit returns before the disk has it.
    pub fsync: bool,
}

pub struct PgServer {
    bin: PathBuf,
    port: u16,
    /// Postgres refuses to run as root: then its commands run as the `postgres` user.
    as_postgres: bool,
    tls: bool,
    dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts a server with database `sea`; an error (with the server's log) when it cannot.
    pub async fn start(options: PgOptions) -> anyhow::Result<PgServer> {
        let bin = find_bin_dir()
            .context("PostgreSQL is not installed (no initdb and pg_ctl under /usr/lib/postgresql/*/bin nor on PATH)")?;
        // /proc/self belongs to our effective user.
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if as_postgres && !run(Command::new("id").arg("postgres"))?.status.success() {
            bail!("running as root and there is no `postgres` user to run PostgreSQL as");
        }
        let server = PgServer {
            bin,
            port: sea_infra::deployment::ports::free_port(),
            as_postgres,
            tls: options.tls,
            dir: tempfile::Builder::new()
                .prefix("sea-pg-")
                .tempdir()
                .context("create PostgreSQL's scratch directory")?,
        };
        let pwfile = server.dir.path().join("pwfile");
        if options.tls {
            // The project's certificate code, as for the NATS servers: files 0600 in a 0700
            // directory, which PostgreSQL requires of its key.
            let request = CertRequest {
                name: CERT.to_owned(),
                sans: CERT_NAMES.map(str::to_owned).to_vec(),
                usage: Usage::Server,
            };
            certs::ensure(&server.tls_dir(), &[request], false)
                .context("issue PostgreSQL's certificates")?;
            std::fs::write(&pwfile, PASSWORD).context("write the password file")?;
        }
        if as_postgres {
            server.check(run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(server.dir.path()))?)?;
        }
        let mut initdb = server.pg("initdb");
        initdb
            .args(["--auth=trust", "--username=postgres", "--no-locale"])
            .args(["--encoding=UTF8", "--no-sync", "-D"])
            .arg(server.data());
        if options.tls {
            initdb.arg("--pwfile").arg(&pwfile);
        }
        server.check(run(&mut initdb)?)?;
        let mut settings = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={}",
            server.port,
            server.dir.path().display(),
            if options.fsync { "on" } else { "off" }
        );
        if options.tls {
            // Unix sockets (the test's own sessions) stay trusted; TCP only with TLS.
            std::fs::write(
                server.data().join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .context("write pg_hba.conf")?;
            let tls_dir = server.tls_dir();
            settings.push_str(&format!(
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
            .args(["-o", &settings]))?)?;
        server.wait_ready().await?;
        server
            .client_of("postgres")
            .await?
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .context("create database sea")?;
        Ok(server)
    }

    /// The worker's `DATABASE_URL` (with a password: print it never); on a TLS server with
    /// `sslmode=verify-full` and the CA.
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

    /// The server's process id (the postmaster's, from its pid file).
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// A direct client of database `sea`, over the Unix socket.
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        self.client_of(DATABASE).await
    }

    async fn client_of(&self, db: &str) -> anyhow::Result<tokio_postgres::Client> {
        self.try_connect(db)
            .await
            .with_context(|| format!("connect to PostgreSQL\n{}", self.log_text()))
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

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.try_connect("postgres").await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    bail!("PostgreSQL not ready within 30s: {e}\n{}", self.log_text())
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

    /// The server's log.
    pub fn log_text(&self) -> String {
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

    fn check(&self, out: Output) -> anyhow::Result<()> {
        if !out.status.success() {
            bail!(
                "{}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_text()
            );
        }
        Ok(())
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

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.output()
        .with_context(|| format!("run {:?}", cmd.get_program()))
}

/// The highest version under /usr/lib/postgresql, else the directory of `initdb` on PATH.
pub fn find_bin_dir() -> Option<PathBuf> {
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
