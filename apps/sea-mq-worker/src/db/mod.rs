//! The worker's tables: `inbox` (JetStream -> database, one row per event per consumer group) and
//! `outbox` (database -> JetStream, relayed with `Nats-Msg-Id` = row id).
//!
//! One enum over the backends keeps the call sites plain; each backend owns its SQL.

mod postgres;
mod sqlite;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Database, SqliteSync};
pub use postgres::{CaFile, LinkError, PgEnv, PgLink, SslMode, CA_IN_URL};

/// One event to record in the inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxRow {
    pub message_id: String,
    pub subject: String,
    pub payload: String,
    /// Headers as a JSON object, if the message had any.
    pub headers: Option<String>,
    pub stream_seq: u64,
}

/// One outbox row claimed for relaying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: String,
    pub subject: String,
    pub payload: Vec<u8>,
    /// Headers as a JSON object of string values.
    pub headers: Option<String>,
    /// Time since the row was first claimed for publishing.
    pub first_attempt_age: Duration,
}

/// An outbox row as a service writes it: only these columns; the rest default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOutboxRow {
    pub id: String,
    pub subject: String,
    pub payload: String,
    /// Headers as a JSON object of string values.
    pub headers: Option<String>,
}

/// How far the relay got with the outbox rows whose id starts with a prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxProgress {
    pub rows: u64,
    pub published: u64,
    /// The fewest and most attempts any of them took (0 before the first claim).
    pub min_attempts: u64,
    pub max_attempts: u64,
    /// Unpublished rows that carry a relay's claim.
    pub claimed: u64,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {what}: {reason}")]
    Failed { what: &'static str, reason: String },
    /// The SQLite file the store opened is no longer the one at its path: whatever is written
    /// now goes into a file no reader (nor the next worker) will find. Only a restart helps.
    #[error("database file {} was deleted or replaced under the running worker ({now}); what it writes goes to a file nobody will read: restart the worker so it opens {} again", .path.display(), .path.display())]
    Replaced { path: PathBuf, now: String },
}

impl DbError {
    /// Whether this store can no longer be used at all (see [`DbError::Replaced`]).
    pub fn is_replaced(&self) -> bool {
        matches!(self, DbError::Replaced { .. })
    }
}

/// The database behind the inbox and outbox.
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens the database, creating the file (SQLite) and the tables when missing.
    /// `busy_timeout` applies to SQLite only.
    pub async fn open(db: &Database, busy_timeout: Duration) -> Result<Store, DbError> {
        Store::open_with(db, busy_timeout, SqliteSync::Full).await
    }

    /// [`open`](Self::open) with SQLite's `synchronous` (ignored for PostgreSQL).
    pub async fn open_with(
        db: &Database,
        busy_timeout: Duration,
        synchronous: SqliteSync,
    ) -> Result<Store, DbError> {
        match db {
            Database::Sqlite(path) => Ok(Store::Sqlite(
                sqlite::SqliteStore::open(path.clone(), busy_timeout, synchronous).await?,
            )),
            Database::Postgres { link, .. } => {
                Ok(Store::Postgres(postgres::PgStore::open(link).await?))
            }
        }
    }

    /// Inserts each row unless its (group, message id) is already there, in one transaction.
    /// Returns, per row, whether it was new.
    pub async fn insert_inbox(
        &self,
        group: &str,
        rows: Vec<InboxRow>,
    ) -> Result<Vec<bool>, DbError> {
        match self {
            Store::Sqlite(s) => s.insert_inbox(group.to_owned(), rows).await,
            Store::Postgres(s) => s.insert_inbox(group.to_owned(), rows).await,
        }
    }

    /// Claims up to `limit` unpublished rows, oldest first, for `owner`, for `lease`. SQLite:
    /// empty when another relay holds the lease. PostgreSQL: rows claimed by other relays are
    /// skipped, so relays share the work.
    pub async fn claim_outbox(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>, DbError> {
        match self {
            Store::Sqlite(s) => s.claim_outbox(owner.to_owned(), limit, lease).await,
            Store::Postgres(s) => s.claim_outbox(owner.to_owned(), limit, lease).await,
        }
    }

    pub async fn mark_published(&self, ids: Vec<String>) -> Result<(), DbError> {
        match self {
            Store::Sqlite(s) => s.mark_published(ids).await,
            Store::Postgres(s) => s.mark_published(ids).await,
        }
    }

    /// Records a row that can never be published (e.g. malformed headers); it is not retried.
    pub async fn mark_failed(&self, id: String, error: String) -> Result<(), DbError> {
        match self {
            Store::Sqlite(s) => s.mark_failed(id, error).await,
            Store::Postgres(s) => s.mark_failed(id, error).await,
        }
    }

    /// Rows waiting to be relayed.
    pub async fn outbox_pending(&self) -> Result<u64, DbError> {
        match self {
            Store::Sqlite(s) => s.outbox_pending().await,
            Store::Postgres(s) => s.outbox_pending().await,
        }
    }

    // ---- for audits and tests: what a service writes and what an auditor reads ----

    /// Inserts rows into the outbox in one transaction, as a service would.
    pub async fn insert_outbox(&self, rows: Vec<NewOutboxRow>) -> Result<(), DbError> {
        match self {
            Store::Sqlite(s) => s.insert_outbox(rows).await,
            Store::Postgres(s) => s.insert_outbox(rows).await,
        }
    }

    /// The message ids of a consumer group's inbox rows.
    pub async fn inbox_ids(&self, group: &str) -> Result<Vec<String>, DbError> {
        match self {
            Store::Sqlite(s) => s.inbox_ids(group.to_owned()).await,
            Store::Postgres(s) => s.inbox_ids(group.to_owned()).await,
        }
    }

    /// The relay's progress over the outbox rows whose id starts with `id_prefix`.
    pub async fn outbox_progress(&self, id_prefix: &str) -> Result<OutboxProgress, DbError> {
        match self {
            Store::Sqlite(s) => s.outbox_progress(id_prefix.to_owned()).await,
            Store::Postgres(s) => s.outbox_progress(id_prefix.to_owned()).await,
        }
    }

    /// A consumer group's inbox rows and the seconds from the first row's transaction to the
    /// last's (what `cargo xtask bench` takes a worker's rate from).
    pub async fn inbox_span(&self, group: &str) -> Result<(u64, f64), DbError> {
        match self {
            Store::Sqlite(s) => s.inbox_span(group.to_owned()).await,
            Store::Postgres(s) => s.inbox_span(group.to_owned()).await,
        }
    }

    /// Published outbox rows whose id starts with `id_prefix`, and the seconds from their first
    /// claim to their last mark.
    pub async fn outbox_span(&self, id_prefix: &str) -> Result<(u64, f64), DbError> {
        match self {
            Store::Sqlite(s) => s.outbox_span(id_prefix.to_owned()).await,
            Store::Postgres(s) => s.outbox_span(id_prefix.to_owned()).await,
        }
    }

    /// Whether the database answers; SQLite: also whether its file is still the one opened.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }
}
