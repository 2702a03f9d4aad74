//! The worker's configuration: environment variables only, all parsed before anything starts.
//! Every invalid variable is reported in one run; secrets never appear in output.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sea_infra::client::connect::NatsConfig;
use sea_infra::env::{self, ConfigErrors, EnvReader};
use sea_infra::model::spec::{Spec, StreamSpec};
use sea_infra::service::logs::Logs;

use crate::db::{LinkError, PgEnv, PgLink};
pub use sea_infra::service::logs::{ENV_LOG_FORMAT, ENV_LOG_LEVEL};

pub const ENV_NATS_RECONNECT_MAX: &str = "NATS_RECONNECT_MAX";
pub const ENV_NATS_RECONNECT_DELAY_MS: &str = "NATS_RECONNECT_DELAY_MS";
pub const ENV_NATS_RECONNECT_DELAY_MAX_MS: &str = "NATS_RECONNECT_DELAY_MAX_MS";
pub const ENV_STREAM_NAME: &str = "STREAM_NAME";
pub const ENV_WORKER_BATCH_SIZE: &str = "WORKER_BATCH_SIZE";
pub const ENV_WORKER_PULL_EXPIRES_MS: &str = "WORKER_PULL_EXPIRES_MS";
pub const ENV_WORKER_NAME: &str = "WORKER_NAME";
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// libpq's: the `sslmode` of a PostgreSQL `DATABASE_URL` that does not give one.
pub const ENV_PGSSLMODE: &str = "PGSSLMODE";
/// libpq's: the CA file of a PostgreSQL `DATABASE_URL` that gives no `sslrootcert`.
pub const ENV_PGSSLROOTCERT: &str = "PGSSLROOTCERT";
pub const ENV_DATABASE_BUSY_TIMEOUT_MS: &str = "DATABASE_BUSY_TIMEOUT_MS";
pub const ENV_WORKER_SQLITE_SYNCHRONOUS: &str = "WORKER_SQLITE_SYNCHRONOUS";
pub const ENV_DATABASE_UNREADY_AFTER_FAILED_WRITES: &str = "DATABASE_UNREADY_AFTER_FAILED_WRITES";
pub const ENV_OUTBOX_ENABLED: &str = "OUTBOX_ENABLED";
pub const ENV_OUTBOX_POLL_INTERVAL_MS: &str = "OUTBOX_POLL_INTERVAL_MS";
pub const ENV_OUTBOX_BATCH_SIZE: &str = "OUTBOX_BATCH_SIZE";
pub const ENV_OUTBOX_LEASE_MS: &str = "OUTBOX_LEASE_MS";
pub const ENV_OUTBOX_RETRY_HORIZON: &str = "OUTBOX_RETRY_HORIZON";
pub const ENV_HTTP_ADDR: &str = "HTTP_ADDR";
pub const ENV_SHUTDOWN_GRACE_MS: &str = "SHUTDOWN_GRACE_MS";
pub const ENV_WORKER_FAILPOINT: &str = "WORKER_FAILPOINT";

/// Where the worker keeps its inbox and outbox tables.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created with its tables when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string, URL or `key=value` (it may carry a password: never
    /// printed), and the link it describes (TLS included).
    Postgres { url: String, link: Box<PgLink> },
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Database::Postgres { url, .. } => write!(f, "{}", env::redact_credentials(url)),
        }
    }
}

/// [`parse_database`] without `PGSSLMODE` and `PGSSLROOTCERT`.
pub fn parse_database_url(s: &str) -> Result<Database, String> {
    parse_database(s, &PgEnv::default()).map_err(|e| e.reason)
}

/// `sqlite:///abs.db`, `sqlite://relative.db`, `postgres://...` or PostgreSQL's
/// `host=... user=... password=...`. A PostgreSQL string is parsed here, with its TLS settings
/// (`sslmode`, `sslrootcert`, else `env`'s) and its CA file, so a bad one is refused at start;
/// a URL may not contain whitespace (percent-encode it, `%20`), so that no text around it can
/// be mistaken for it, nor it for text, when it is redacted. An error names the variable it is
/// about: `DATABASE_URL`, or the `PGSSL*` variable that gave the setting.
pub fn parse_database(s: &str, env: &PgEnv) -> Result<Database, LinkError> {
    let url_error = |reason: &str| LinkError {
        var: ENV_DATABASE_URL,
        reason: reason.to_owned(),
    };
    if let Some(path) = s
        .strip_prefix("sqlite://")
        .or_else(|| s.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(url_error("no file path: write sqlite:///absolute/path.db"));
        }
        return Ok(Database::Sqlite(PathBuf::from(path)));
    }
    let url = s.starts_with("postgres://") || s.starts_with("postgresql://");
    let key_value = !s.contains("://") && s.contains('=');
    if !url && !key_value {
        return Err(url_error("use sqlite:///absolute/path.db, sqlite://relative/path.db, postgres://user:password@host/db or host=... user=... password=... dbname=..."));
    }
    if url && s.chars().any(char::is_whitespace) {
        return Err(url_error(
            "a URL cannot contain whitespace: percent-encode it (%20)",
        ));
    }
    Ok(Database::Postgres {
        url: s.to_owned(),
        link: Box::new(PgLink::parse(s, env)?),
    })
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "not a host:port address such as 127.0.0.1:8080".into())
}

/// Test-only fault injection, so crash windows can be hit deterministically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failpoint {
    /// Exit at once after an outbox batch is published and acknowledged, before it is marked.
    OutboxAfterPublish,
}

fn parse_failpoint(s: &str) -> Result<Failpoint, String> {
    match s {
        "outbox-after-publish" => Ok(Failpoint::OutboxAfterPublish),
        _ => Err("use outbox-after-publish (testing only)".into()),
    }
}

/// Reconnect budget and delays: exponential from `base` to `max`, with jitter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// `None`: retry forever.
    pub max_attempts: Option<usize>,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Reconnect {
    /// Delay before reconnect attempt `attempt` (1-based): doubling, capped, with up to 25 % jitter.
    pub fn delay(&self, attempt: usize) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let jitter = capped.mul_f64(f64::from(nanos % 250) / 1000.0);
        capped.saturating_sub(jitter)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbox {
    pub enabled: bool,
    pub poll_interval: Duration,
    pub batch_size: usize,
    /// SQLite: how long the relay lease lasts without renewal. Postgres: how long a claimed row
    /// stays claimed before another relay may take it.
    pub lease: Duration,
    /// A row republished later than this after its first attempt may no longer be de-duplicated
    /// by JetStream: the stream's duplicate window must cover it (checked at start).
    pub retry_horizon: Duration,
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub nats: NatsConfig,
    pub servers: Vec<String>,
    pub reconnect: Reconnect,
    pub spec: Spec,
    /// The stream consumed (an event stream of the spec).
    pub stream: StreamSpec,
    pub batch_size: usize,
    pub pull_expires: Duration,
    pub name: String,
    pub database: Database,
    pub db_busy_timeout: Duration,
    /// SQLite's `synchronous` (FULL unless `WORKER_SQLITE_SYNCHRONOUS` says NORMAL).
    pub sqlite_synchronous: SqliteSync,
    /// Consecutive failed inbox commits (or outbox writes) after which `/readyz` is 503.
    pub unready_after_failed_writes: u32,
    pub outbox: Outbox,
    pub http_addr: SocketAddr,
    pub logs: Logs,
    pub shutdown_grace: Duration,
    pub failpoint: Option<Failpoint>,
}

/// SQLite's `synchronous` in WAL mode: whether a commit waits for the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// Every commit is fsynced before it returns, so before the batch is acked: an acked event
    /// is on disk. The default.
    #[default]
    Full,
    /// Commits are fsynced at checkpoints only: the database stays consistent, but the last
    /// commits (acked events) can be lost on a power cut or kernel crash (not on a worker
    /// crash). Cheaper per commit.
    Normal,
}

impl SqliteSync {
    pub fn parse(s: &str) -> Result<SqliteSync, String> {
        match s.to_ascii_uppercase().as_str() {
            "FULL" => Ok(SqliteSync::Full),
            "NORMAL" => Ok(SqliteSync::Normal),
            _ => Err("use FULL (the default: acked events survive a power cut) or NORMAL".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        }
    }
}

pub const DEFAULT_SERVERS: &str = "nats://127.0.0.1:4222";

impl WorkerConfig {
    pub fn from_process_env() -> Result<WorkerConfig, ConfigErrors> {
        WorkerConfig::from_env(EnvReader::from_process())
    }

    pub fn from_env(mut env: EnvReader) -> Result<WorkerConfig, ConfigErrors> {
        let nats = NatsConfig::from_env(&mut env);
        let spec = Spec::from_env(&mut env);
        let stream_name = env
            .parse(ENV_STREAM_NAME, env::parse_name)
            .unwrap_or_else(|| "SEA_EVENTS".into());
        let stream = match spec.consumable().find(|s| s.name == stream_name) {
            Some(s) => Some(s.clone()),
            None => {
                let names: Vec<&str> = spec.consumable().map(|s| s.name.as_str()).collect();
                env.reject(
                    ENV_STREAM_NAME,
                    stream_name.clone(),
                    format!(
                        "not an event stream of the spec; use one of {}",
                        names.join(", ")
                    ),
                );
                None
            }
        };
        if let (Some(s), Some(filter)) = (&stream, &spec.consumer.filter_subject) {
            if spec.matching(std::iter::once(s)).next().is_none() {
                env.reject(
                    sea_infra::model::spec::ENV_CONSUMER_FILTER_SUBJECT,
                    filter.clone(),
                    format!(
                        "can never match a subject of {} ({}): the group would receive nothing",
                        s.name,
                        s.subjects.join(", ")
                    ),
                );
            }
        }
        let reconnect = Reconnect {
            // 0 means "forever" (async-nats' convention too).
            max_attempts: env
                .parse(ENV_NATS_RECONNECT_MAX, env::parse_u64_in(0, 1_000_000))
                .map_or(Some(60), |n| (n > 0).then_some(n as usize)),
            base_delay: env
                .parse(ENV_NATS_RECONNECT_DELAY_MS, env::parse_millis(10))
                .unwrap_or(Duration::from_millis(250)),
            max_delay: env
                .parse(ENV_NATS_RECONNECT_DELAY_MAX_MS, env::parse_millis(10))
                .unwrap_or(Duration::from_secs(5)),
        };
        let batch_size = env
            .parse(ENV_WORKER_BATCH_SIZE, env::parse_u64_in(1, 10_000))
            .map_or(128, |n| n as usize);
        let pull_expires = env
            .parse(ENV_WORKER_PULL_EXPIRES_MS, env::parse_millis(100))
            .unwrap_or(Duration::from_secs(5));
        let database = database_from_env(&mut env);
        let outbox = Outbox {
            enabled: env
                .parse(ENV_OUTBOX_ENABLED, env::parse_bool)
                .unwrap_or(true),
            poll_interval: env
                .parse(ENV_OUTBOX_POLL_INTERVAL_MS, env::parse_millis(1))
                .unwrap_or(Duration::from_millis(200)),
            batch_size: env
                .parse(ENV_OUTBOX_BATCH_SIZE, env::parse_u64_in(1, 10_000))
                .map_or(256, |n| n as usize),
            lease: env
                .parse(ENV_OUTBOX_LEASE_MS, env::parse_millis(100))
                .unwrap_or(Duration::from_secs(10)),
            retry_horizon: env
                .parse(ENV_OUTBOX_RETRY_HORIZON, env::parse_duration)
                .unwrap_or(Duration::from_secs(3600)),
        };
        let config = WorkerConfig {
            servers: nats
                .servers
                .clone()
                .unwrap_or_else(|| vec![DEFAULT_SERVERS.to_owned()]),
            nats,
            reconnect,
            stream: stream.unwrap_or_else(|| spec.streams[0].clone()),
            spec,
            batch_size,
            pull_expires,
            name: env
                .parse(ENV_WORKER_NAME, env::parse_name)
                .unwrap_or_else(default_name),
            database,
            db_busy_timeout: env
                .parse(ENV_DATABASE_BUSY_TIMEOUT_MS, env::parse_millis(0))
                .unwrap_or(Duration::from_secs(5)),
            sqlite_synchronous: env
                .parse(ENV_WORKER_SQLITE_SYNCHRONOUS, SqliteSync::parse)
                .unwrap_or_default(),
            unready_after_failed_writes: env
                .parse(
                    ENV_DATABASE_UNREADY_AFTER_FAILED_WRITES,
                    env::parse_u64_in(1, 1000),
                )
                .map_or(3, |n| n as u32),
            outbox,
            http_addr: env
                .parse(ENV_HTTP_ADDR, parse_addr)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            logs: Logs::from_env(&mut env),
            shutdown_grace: env
                .parse(ENV_SHUTDOWN_GRACE_MS, env::parse_millis(0))
                .unwrap_or(Duration::from_secs(10)),
            failpoint: env.parse(ENV_WORKER_FAILPOINT, parse_failpoint),
        };
        if config.reconnect.max_delay < config.reconnect.base_delay {
            env.reject(
                ENV_NATS_RECONNECT_DELAY_MAX_MS,
                config.reconnect.max_delay.as_millis().to_string(),
                "smaller than NATS_RECONNECT_DELAY_MS",
            );
        }
        env.finish()?;
        Ok(config)
    }
}

/// `DATABASE_URL`, with libpq's `PGSSLMODE` and `PGSSLROOTCERT` for a PostgreSQL one; an
/// error is reported against the variable it is about.
fn database_from_env(env: &mut EnvReader) -> Database {
    let pg_env = PgEnv {
        sslmode: env.string(ENV_PGSSLMODE),
        sslrootcert: env.string(ENV_PGSSLROOTCERT),
    };
    let mut refused = None;
    let database = env.parse_url(ENV_DATABASE_URL, |s| match parse_database(s, &pg_env) {
        Ok(db) => Ok(Some(db)),
        Err(e) if e.var == ENV_DATABASE_URL => Err(e.reason),
        Err(e) => {
            refused = Some(e);
            Ok(None)
        }
    });
    if let Some(e) = refused {
        let value = env.string(e.var).unwrap_or_default();
        env.reject(e.var, value, e.reason);
    }
    database
        .flatten()
        .unwrap_or_else(|| Database::Sqlite("sea-mq-worker.db".into()))
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!(
        "{}-{}",
        if host.is_empty() { "worker" } else { &host },
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<WorkerConfig, ConfigErrors> {
        WorkerConfig::from_env(EnvReader::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.servers, [DEFAULT_SERVERS]);
        assert_eq!(c.stream.name, "SEA_EVENTS");
        assert_eq!(c.spec.consumer.durable_name(), "sea-mq-worker");
        assert_eq!(c.database, Database::Sqlite("sea-mq-worker.db".into()));
        assert_eq!(c.reconnect.max_attempts, Some(60));
        assert_eq!(c.unready_after_failed_writes, 3);
        assert!(parse(&[("DATABASE_UNREADY_AFTER_FAILED_WRITES", "0")]).is_err());
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert!(c.outbox.enabled);
        // Durable unless told otherwise; NORMAL in any case.
        assert_eq!(c.sqlite_synchronous, SqliteSync::Full);
        let normal = parse(&[("WORKER_SQLITE_SYNCHRONOUS", "normal")]).unwrap();
        assert_eq!(normal.sqlite_synchronous, SqliteSync::Normal);
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            parse_database_url("sqlite:///tmp/x.db"),
            Ok(Database::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            parse_database_url("sqlite://rel.db"),
            Ok(Database::Sqlite("rel.db".into()))
        );
        assert!(matches!(
            parse_database_url("postgres://u:p@h/db"),
            Ok(Database::Postgres { .. })
        ));
        assert!(parse_database_url("mysql://x").is_err());
        assert!(parse_database_url("sqlite://").is_err());
        assert!(matches!(
            parse_database_url("host=db user=app password='a b' dbname=sea"),
            Ok(Database::Postgres { .. })
        ));
        assert!(parse_database_url("postgres://app:a b@db/sea")
            .unwrap_err()
            .contains("whitespace"));
        let err = parse_database_url("postgres://app@db/sea?sslpassword=x").unwrap_err();
        assert!(err.contains("unknown option `sslpassword`"), "{err}");
        assert_eq!(
            format!(
                "{:?}",
                parse_database_url("host=db password='s3 cret' user=app").unwrap()
            ),
            "host=db password='<redacted>' user=app"
        );
        assert_eq!(
            format!(
                "{:?}",
                parse_database_url("postgres://app:s3cret@db:5432/sea").unwrap()
            ),
            "postgres://app:<redacted>@db:5432/sea"
        );
    }

    #[test]
    fn every_invalid_variable_is_reported_and_no_secret_shown() {
        let err = parse(&[
            ("NATS_SERVERS", "nats://a:4222,localhost"),
            ("NATS_RECONNECT_MAX", "lots"),
            ("WORKER_BATCH_SIZE", "0"),
            ("DATABASE_URL", "mysql://root:hunter2@db"),
            ("HTTP_ADDR", "8080"),
            ("LOG_FORMAT", "xml"),
            ("LOG_LEVEL", "loud=="),
            ("STREAM_NAME", "SEA_DLQ"),
            ("NATS_AUTH_TOKEN", "tok-secret"),
            ("NATS_USER", "u"),
            ("NATS_PASSWORD", "pw-secret"),
            ("WORKER_SQLITE_SYNCHRONOUS", "OFF"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for var in [
            "NATS_SERVERS",
            "NATS_RECONNECT_MAX",
            "WORKER_BATCH_SIZE",
            "DATABASE_URL",
            "HTTP_ADDR",
            "LOG_FORMAT",
            "LOG_LEVEL",
            "STREAM_NAME",
            "NATS_AUTH_TOKEN",
            "WORKER_SQLITE_SYNCHRONOUS",
        ] {
            assert!(text.contains(&format!("{var}=")), "{var} missing: {text}");
        }
        assert!(
            !text.contains("tok-secret") && !text.contains("pw-secret"),
            "{text}"
        );
    }

    #[test]
    fn pgssl_variables_apply_to_postgres_only_and_their_errors_name_them() {
        let pg = parse(&[
            ("DATABASE_URL", "postgres://app:pg-secret@db/sea"),
            ("PGSSLMODE", "require"),
        ])
        .unwrap();
        let Database::Postgres { link, .. } = &pg.database else {
            panic!("{:?}", pg.database)
        };
        assert_eq!(link.mode, crate::db::SslMode::Require);
        // SQLite: not read at all (libpq's variables may be there for other tools).
        assert!(parse(&[("PGSSLMODE", "bogus"), ("PGSSLROOTCERT", "/nowhere")]).is_ok());
        for (pairs, var) in [
            ([("PGSSLMODE", "bogus"), ("PGSSLROOTCERT", "")], "PGSSLMODE"),
            (
                [
                    ("PGSSLMODE", "verify-full"),
                    ("PGSSLROOTCERT", "/no/ca.pem"),
                ],
                "PGSSLROOTCERT",
            ),
        ] {
            let mut all = vec![("DATABASE_URL", "postgres://app:pg-secret@db/sea")];
            all.extend(pairs);
            let text = parse(&all).unwrap_err().to_string();
            assert!(
                text.contains(&format!("\n  {var}=")) || text.contains(&format!("  {var}=")),
                "{text}"
            );
            assert!(!text.contains("DATABASE_URL="), "{text}");
            assert!(!text.contains("pg-secret"), "{text}");
        }
        let text = parse(&[(
            "DATABASE_URL",
            "postgres://app:pg-secret@db/sea?sslmode=verify-full",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("DATABASE_URL=") && text.contains("PGSSLROOTCERT"),
            "{text}"
        );
        assert!(!text.contains("pg-secret"), "{text}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = parse(&[
            ("NATS_AUTH_TOKEN", "tok-secret"),
            ("DATABASE_URL", "postgres://app:pg-secret@db/sea"),
        ])
        .unwrap();
        let dump = format!("{c:?}");
        assert!(
            !dump.contains("tok-secret") && !dump.contains("pg-secret"),
            "{dump}"
        );
    }

    #[test]
    fn reconnect_delays_grow_and_are_capped() {
        let r = Reconnect {
            max_attempts: Some(5),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert!(
            r.delay(1) <= Duration::from_millis(100) && r.delay(1) >= Duration::from_millis(75)
        );
        assert!(r.delay(3) >= Duration::from_millis(300));
        assert!(r.delay(30) <= Duration::from_secs(1));
    }
}
