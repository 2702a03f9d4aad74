//! PostgreSQL backend: one connection behind an async mutex, reopened if it drops. Several
//! workers may share one database: each relay claims outbox rows for itself (`FOR UPDATE SKIP
//! LOCKED` plus a `claimed_until` deadline), so relays run in parallel without publishing a row
//! twice; a claim left by a crashed relay is taken over once it expires.
//!
//! The link is TLS as `sslmode` says (`link.rs` reads it, `tls.rs` is the rustls connector).

mod link;
mod tls;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Connection, Socket};

pub use link::{CaFile, LinkError, PgEnv, PgLink, SslMode, CA_IN_URL};
use tls::{MakeRustls, RustlsStream};

use super::{DbError, InboxRow, NewOutboxRow, OutboxProgress, OutboxRow};

/// Any fixed key: it only serialises schema creation between workers starting at once
/// (concurrent `CREATE TABLE IF NOT EXISTS` can fail on a catalog unique constraint).
const SCHEMA_LOCK: i64 = 0x5ea_0b0c;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inbox (
    consumer_group TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    subject        TEXT NOT NULL,
    payload        TEXT NOT NULL,
    headers        TEXT,
    stream_seq     BIGINT NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, message_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id               TEXT PRIMARY KEY,
    subject          TEXT NOT NULL,
    payload          TEXT NOT NULL,
    headers          TEXT,
    -- clock_timestamp(): rows inserted in one transaction keep their insertion order.
    created_at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    first_attempt_at TIMESTAMPTZ,
    attempts         INT NOT NULL DEFAULT 0,
    published_at     TIMESTAMPTZ,
    failed_at        TIMESTAMPTZ,
    last_error       TEXT,
    claimed_by       TEXT,
    claimed_until    TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (created_at, id)
    WHERE published_at IS NULL AND failed_at IS NULL;
";

/// Claims in one statement; `first_attempt_at` is read from the locked row before the update so
/// the age is the one before this claim. MATERIALIZED: the SKIP LOCKED pick must run exactly
/// once, never be re-scanned by the join. `RETURNING` has no order: the outer SELECT sorts.
const CLAIM: &str = "
WITH picked AS MATERIALIZED (
    SELECT id, first_attempt_at FROM outbox
    WHERE published_at IS NULL AND failed_at IS NULL
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY created_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE outbox o
    SET claimed_by = $1,
        claimed_until = now() + $3::float8 * interval '1 millisecond',
        attempts = o.attempts + 1,
        first_attempt_at = COALESCE(o.first_attempt_at, now())
    FROM picked WHERE o.id = picked.id
    RETURNING o.id, o.subject, o.payload, o.headers, o.created_at,
        COALESCE((EXTRACT(EPOCH FROM now() - picked.first_attempt_at) * 1000)::bigint, 0) AS age_ms
)
SELECT id, subject, payload, headers, age_ms FROM claimed ORDER BY created_at, id";

/// A driver error with its cause (tokio-postgres' own text is only e.g. "db error"). Neither
/// carries the connection string.
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn failed(what: &'static str) -> impl Fn(tokio_postgres::Error) -> DbError {
    move |e| DbError::Failed {
        what,
        reason: describe(&e),
    }
}

#[derive(Clone)]
pub struct PgStore {
    link: Arc<PgLink>,
    tls: MakeRustls,
    client: Arc<Mutex<Client>>,
}

type PgConnection = Connection<Socket, RustlsStream<Socket>>;

/// One connection as `link.mode` asks, with libpq's second attempts: `allow` tries TLS when the
/// server refused the plaintext session, `prefer` tries plaintext when the TLS handshake failed.
/// Also whether the connection is encrypted.
async fn open_connection(
    link: &PgLink,
    tls: &MakeRustls,
) -> Result<(Client, PgConnection, bool), DbError> {
    let attempt = |wire: WireSslMode| async move {
        let mut config = link.config.clone();
        config.ssl_mode(wire);
        let tls = tls.attempt();
        let result = config.connect(tls.clone()).await;
        let encrypted = tls.outcome().encrypted.load(Ordering::Relaxed);
        let handshake_failed = tls.outcome().handshake_failed.load(Ordering::Relaxed);
        (
            result.map(|(c, conn)| (c, conn, encrypted)),
            handshake_failed,
        )
    };
    // PostgreSQL has no TLS on Unix sockets: libpq ignores sslmode there.
    let first = match link.mode {
        _ if link.only_unix_sockets() => WireSslMode::Disable,
        SslMode::Disable | SslMode::Allow => WireSslMode::Disable,
        SslMode::Prefer => WireSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireSslMode::Require,
    };
    let (result, handshake_failed) = attempt(first).await;
    let retry = match (&result, link.mode) {
        (Err(e), SslMode::Allow) if first == WireSslMode::Disable && e.as_db_error().is_some() => {
            Some(WireSslMode::Require)
        }
        (Err(e), SslMode::Prefer) if handshake_failed => {
            tracing::warn!(error = %describe(e), "TLS handshake with PostgreSQL failed; sslmode=prefer connects without TLS");
            Some(WireSslMode::Disable)
        }
        _ => None,
    };
    let result = match retry {
        Some(wire) => attempt(wire).await.0,
        None => result,
    };
    result.map_err(|e| DbError::Failed {
        what: "connect",
        reason: connect_failure(&e, link, first),
    })
}

/// Why a connection failed, and when the server refused a plaintext session, what to change.
fn connect_failure(e: &tokio_postgres::Error, link: &PgLink, first: WireSslMode) -> String {
    let reason = describe(e);
    let refused = e
        .as_db_error()
        .is_some_and(|d| *d.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
    if refused && first == WireSslMode::Disable && link.mode == SslMode::Disable {
        format!(
            "{reason} (sslmode=disable: the server may accept only TLS connections, a `hostssl` line in pg_hba.conf; set sslmode=verify-full with sslrootcert=/path/to/ca.pem, or sslmode=require, in DATABASE_URL)"
        )
    } else {
        reason
    }
}

async fn connect(link: &PgLink, tls: &MakeRustls) -> Result<Client, DbError> {
    let (client, connection, _) = open_connection(link, tls).await?;
    spawn_connection(connection);
    Ok(client)
}

fn spawn_connection(connection: PgConnection) {
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %describe(&e), "PostgreSQL connection lost; reconnecting on next use");
        }
    });
}

impl PgStore {
    pub async fn open(link: &PgLink) -> Result<PgStore, DbError> {
        let mut link = link.clone();
        let config = &mut link.config;
        // Without a timeout an unreachable host would hang start-up indefinitely.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("sea-mq-worker");
        }
        let tls = MakeRustls::new(&link).map_err(|reason| DbError::Failed {
            what: "set up TLS",
            reason,
        })?;
        let (mut client, connection, encrypted) = open_connection(&link, &tls).await?;
        spawn_connection(connection);
        tracing::info!(tls = encrypted, link = ?link, "connected to PostgreSQL");
        let tx = client.transaction().await.map_err(failed("begin schema"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(failed("lock schema"))?;
        tx.batch_execute(SCHEMA)
            .await
            .map_err(failed("create tables"))?;
        tx.commit().await.map_err(failed("commit schema"))?;
        Ok(PgStore {
            link: Arc::new(link),
            tls,
            client: Arc::new(Mutex::new(client)),
        })
    }

    /// The connection, reopened first if it was lost (e.g. the server restarted).
    async fn client(&self) -> Result<MutexGuard<'_, Client>, DbError> {
        let mut client = self.client.lock().await;
        if client.is_closed() {
            *client = connect(&self.link, &self.tls).await?;
        }
        Ok(client)
    }

    /// One statement for the whole batch (its own transaction: committed when it returns),
    /// rather than a round trip per row: the rows go as arrays, and `RETURNING` names the
    /// ones that were new. An id twice in one batch is inserted once: its first row counts as
    /// new, as one insert after another would have it.
    pub async fn insert_inbox(
        &self,
        group: String,
        rows: Vec<InboxRow>,
    ) -> Result<Vec<bool>, DbError> {
        let client = self.client().await?;
        let ids: Vec<&str> = rows.iter().map(|r| r.message_id.as_str()).collect();
        let subjects: Vec<&str> = rows.iter().map(|r| r.subject.as_str()).collect();
        let payloads: Vec<&str> = rows.iter().map(|r| r.payload.as_str()).collect();
        let headers: Vec<Option<&str>> = rows.iter().map(|r| r.headers.as_deref()).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.stream_seq as i64).collect();
        let new = client
            .query(
                "INSERT INTO inbox (consumer_group, message_id, subject, payload, headers, stream_seq)
                 SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
                 ON CONFLICT (consumer_group, message_id) DO NOTHING
                 RETURNING message_id",
                &[&group, &ids, &subjects, &payloads, &headers, &seqs],
            )
            .await
            .map_err(failed("insert inbox batch"))?;
        let mut new: std::collections::HashSet<String> =
            new.iter().map(|r| r.get::<_, String>(0)).collect();
        Ok(ids.iter().map(|id| new.remove(*id)).collect())
    }

    pub async fn claim_outbox(
        &self,
        owner: String,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(
                CLAIM,
                &[&owner, &(limit as i64), &(lease.as_millis() as f64)],
            )
            .await
            .map_err(failed("claim outbox rows"))?;
        Ok(rows
            .iter()
            .map(|row| OutboxRow {
                id: row.get(0),
                subject: row.get(1),
                payload: row.get::<_, String>(2).into_bytes(),
                headers: row.get(3),
                first_attempt_age: Duration::from_millis(row.get::<_, i64>(4).max(0) as u64),
            })
            .collect())
    }

    pub async fn mark_published(&self, ids: Vec<String>) -> Result<(), DbError> {
        self.client()
            .await?
            .execute(
                "UPDATE outbox SET published_at = now(), last_error = NULL, claimed_by = NULL,
                 claimed_until = NULL WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(failed("mark outbox rows published"))?;
        Ok(())
    }

    pub async fn mark_failed(&self, id: String, error: String) -> Result<(), DbError> {
        self.client()
            .await?
            .execute(
                "UPDATE outbox SET failed_at = now(), last_error = $2 WHERE id = $1",
                &[&id, &error],
            )
            .await
            .map_err(failed("mark outbox row failed"))?;
        Ok(())
    }

    pub async fn outbox_pending(&self) -> Result<u64, DbError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL AND failed_at IS NULL",
                &[],
            )
            .await
            .map_err(failed("count pending outbox rows"))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    pub async fn insert_outbox(&self, rows: Vec<NewOutboxRow>) -> Result<(), DbError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(failed("begin outbox insert"))?;
        let stmt = tx
            .prepare("INSERT INTO outbox (id, subject, payload, headers) VALUES ($1, $2, $3, $4)")
            .await
            .map_err(failed("prepare outbox insert"))?;
        for r in &rows {
            tx.execute(&stmt, &[&r.id, &r.subject, &r.payload, &r.headers])
                .await
                .map_err(failed("insert outbox row"))?;
        }
        tx.commit().await.map_err(failed("commit outbox insert"))
    }

    pub async fn inbox_ids(&self, group: String) -> Result<Vec<String>, DbError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT message_id FROM inbox WHERE consumer_group = $1",
                &[&group],
            )
            .await
            .map_err(failed("read inbox"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn outbox_progress(&self, id_prefix: String) -> Result<OutboxProgress, DbError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*), COUNT(published_at), COALESCE(MIN(attempts), 0)::bigint,
                        COALESCE(MAX(attempts), 0)::bigint, COUNT(claimed_by)
                 FROM outbox WHERE starts_with(id, $1)",
                &[&id_prefix],
            )
            .await
            .map_err(failed("read outbox progress"))?;
        let n = |i: usize| row.get::<_, i64>(i) as u64;
        Ok(OutboxProgress {
            rows: n(0),
            published: n(1),
            min_attempts: n(2),
            max_attempts: n(3),
            claimed: n(4),
        })
    }

    pub async fn inbox_span(&self, group: String) -> Result<(u64, f64), DbError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*), COALESCE(EXTRACT(EPOCH FROM MAX(received_at) - MIN(received_at)), 0)::float8
                 FROM inbox WHERE consumer_group = $1",
                &[&group],
            )
            .await
            .map_err(failed("read the inbox's span"))?;
        Ok((row.get::<_, i64>(0) as u64, row.get(1)))
    }

    pub async fn outbox_span(&self, id_prefix: String) -> Result<(u64, f64), DbError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(published_at), COALESCE(EXTRACT(EPOCH FROM MAX(published_at) - MIN(first_attempt_at)), 0)::float8
                 FROM outbox WHERE starts_with(id, $1)",
                &[&id_prefix],
            )
            .await
            .map_err(failed("read the outbox's span"))?;
        Ok((row.get::<_, i64>(0) as u64, row.get(1)))
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.client()
            .await?
            .query_one("SELECT 1", &[])
            .await
            .map_err(failed("ping"))?;
        Ok(())
    }
}
