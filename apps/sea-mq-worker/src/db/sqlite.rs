//! SQLite backend: one connection on the blocking pool, WAL mode, `synchronous=FULL` so a
//! committed inbox row survives a power loss before its ack is sent (only the outbox claim, a
//! lease, commits without an fsync). Several workers may share
//! one file: writes take the lock up front (`BEGIN IMMEDIATE`) and wait up to the busy timeout.
//! Outbox relaying is single-writer: a lease row names the one relay allowed to claim rows; each
//! claimed row also carries a deadline, so the relay can claim the next batch while the previous
//! one is still in flight, and a crashed relay's rows return after the lease.
//!
//! The store remembers which files it opened (device and inode of the database and its WAL) and
//! checks them after every write and ping, before anything is acked: a file deleted or replaced
//! under the worker would otherwise keep taking commits nobody will ever read.

use std::cell::Cell;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::config::SqliteSync;

use super::{DbError, InboxRow, NewOutboxRow, OutboxProgress, OutboxRow};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inbox (
    consumer_group TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    subject        TEXT NOT NULL,
    payload        TEXT NOT NULL,
    headers        TEXT,
    stream_seq     INTEGER NOT NULL,
    received_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    PRIMARY KEY (consumer_group, message_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id               TEXT PRIMARY KEY,
    subject          TEXT NOT NULL,
    payload          TEXT NOT NULL,
    headers          TEXT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    first_attempt_at TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    published_at     TEXT,
    failed_at        TEXT,
    last_error       TEXT,
    claimed_until_ms INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (created_at, id) WHERE published_at IS NULL AND failed_at IS NULL;
CREATE TABLE IF NOT EXISTS outbox_lease (
    name          TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
";

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// The files opened, to notice one deleted or replaced.
    files: Arc<Vec<OpenedFile>>,
    /// Set once a file is found replaced: every later write and ping fails the same way.
    replaced: Arc<OnceLock<DbError>>,
    /// What commits use (`WORKER_SQLITE_SYNCHRONOUS`); a claim relaxes it for itself only.
    synchronous: SqliteSync,
}

/// A file as the kernel knew it at open: a path that later names another file, or none, means
/// the file was deleted or replaced (`rm`, a restore by `mv`, a volume mounted over it).
struct OpenedFile {
    path: PathBuf,
    id: (u64, u64),
}

fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

impl OpenedFile {
    fn new(path: PathBuf) -> std::io::Result<OpenedFile> {
        Ok(OpenedFile {
            id: file_id(&path)?,
            path,
        })
    }

    /// `None` while the path still names the opened file; else what it names now.
    fn changed(&self) -> Option<String> {
        match file_id(&self.path) {
            Ok(id) if id == self.id => None,
            Ok((dev, ino)) => Some(format!(
                "{} is now another file: device {dev} inode {ino}, opened as device {} inode {}",
                self.path.display(),
                self.id.0,
                self.id.1
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("{} no longer exists", self.path.display()))
            }
            // Unreadable for now (e.g. a permission change): not proof of a replacement.
            Err(_) => None,
        }
    }
}

/// The database file and, in WAL mode, its `-wal` file (which holds the latest commits).
fn opened_files(path: &Path) -> Result<Vec<OpenedFile>, DbError> {
    let stat_failed = |e: std::io::Error| DbError::Failed {
        what: "stat",
        reason: format!("{}: {e}", path.display()),
    };
    let mut files = vec![OpenedFile::new(path.to_path_buf()).map_err(stat_failed)?];
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(wal) = OpenedFile::new(PathBuf::from(wal)) {
        files.push(wal);
    }
    Ok(files)
}

/// Maps a rusqlite error (the PostgreSQL backend has its own).
fn failed(what: &'static str) -> impl Fn(rusqlite::Error) -> DbError {
    move |e| DbError::Failed {
        what,
        reason: e.to_string(),
    }
}

/// The current time as the tables store it, read once per transaction: formatting it for every
/// row with `strftime` was a measurable share of the per-row cost.
fn now_text(conn: &Connection) -> Result<String, DbError> {
    conn.prepare_cached("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
        .map_err(failed("read the clock"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long a write waits for another process's lock (`DATABASE_BUSY_TIMEOUT_MS`). A static,
/// because SQLite takes the busy handler as a plain function: the store opened last sets it for
/// the whole process (a worker opens one).
static BUSY_TIMEOUT_MS: AtomicU64 = AtomicU64::new(5_000);

thread_local! {
    /// When the current wait for the lock began.
    static WAITING_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Retries a locked write every 200 us until the busy timeout. SQLite's own handler sleeps
/// 1, 2, 5, 10 ... 100 ms between tries, so workers sharing one file waited milliseconds for a
/// lock held a fraction of one.
fn busy_handler(tries: i32) -> bool {
    let now = Instant::now();
    // SQLite passes 0 on the first call of each wait, always on the waiting thread.
    let since = WAITING_SINCE.with(|w| {
        if tries == 0 {
            w.set(Some(now));
        }
        w.get().unwrap_or(now)
    });
    let timeout = Duration::from_millis(BUSY_TIMEOUT_MS.load(Ordering::Relaxed));
    if now.duration_since(since) >= timeout {
        return false;
    }
    std::thread::sleep(Duration::from_micros(200));
    true
}

/// Opens the file, switches it to WAL with `synchronous=FULL`, and creates the tables.
fn open_once(
    path: &std::path::Path,
    busy_timeout: Duration,
    synchronous: SqliteSync,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    BUSY_TIMEOUT_MS.store(busy_timeout.as_millis() as u64, Ordering::Relaxed);
    conn.busy_handler(Some(busy_handler))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous.as_str())?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

impl SqliteStore {
    pub async fn open(
        path: PathBuf,
        busy_timeout: Duration,
        synchronous: SqliteSync,
    ) -> Result<SqliteStore, DbError> {
        let db_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, DbError> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| DbError::Failed {
                    what: "create directory",
                    reason: format!("{}: {e}", dir.display()),
                })?;
            }
            // Workers starting together on a new file contend for the switch to WAL and the
            // schema, which fail at once with SQLITE_BUSY instead of waiting: retry, bounded.
            let deadline = std::time::Instant::now() + busy_timeout.max(Duration::from_secs(5));
            loop {
                match open_once(&path, busy_timeout, synchronous) {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::DatabaseBusy
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    other => return other.map_err(failed("open")),
                }
            }
        })
        .await
        .expect("the blocking pool runs the task")?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            files: Arc::new(opened_files(&db_path)?),
            replaced: Arc::new(OnceLock::new()),
            synchronous,
        })
    }

    /// Fails once any opened file was deleted or replaced (and from then on).
    fn check_files(&self) -> Result<(), DbError> {
        if let Some(e) = self.replaced.get() {
            return Err(e.clone());
        }
        let Some((file, now)) = self.files.iter().find_map(|f| Some((f, f.changed()?))) else {
            return Ok(());
        };
        let e = self.replaced.get_or_init(|| DbError::Replaced {
            path: self.files[0].path.clone(),
            now: if file.path == self.files[0].path {
                now
            } else {
                format!("its WAL file {now}")
            },
        });
        Err(e.clone())
    }

    /// Runs a write with the connection on the blocking pool: refused once a file was
    /// replaced, and checked again after its commit, so nothing written into a file readers
    /// will not find is reported as written (and acked).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let store = self.clone();
        self.with(move |conn| {
            store.check_files()?;
            let written = f(conn)?;
            store.check_files()?;
            Ok(written)
        })
        .await
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .expect("the blocking pool runs the task")
    }

    pub async fn insert_inbox(
        &self,
        group: String,
        rows: Vec<InboxRow>,
    ) -> Result<Vec<bool>, DbError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed("begin inbox batch"))?;
            let now = now_text(&tx)?;
            let mut inserted = Vec::with_capacity(rows.len());
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO inbox (consumer_group, message_id, subject, payload, headers, stream_seq, received_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (consumer_group, message_id) DO NOTHING",
                    )
                    .map_err(failed("prepare inbox insert"))?;
                for r in &rows {
                    let n = stmt
                        .execute(params![group, r.message_id, r.subject, r.payload, r.headers, r.stream_seq as i64, now])
                        .map_err(failed("insert inbox row"))?;
                    inserted.push(n == 1);
                }
            }
            tx.commit().map_err(failed("commit inbox batch"))?;
            Ok(inserted)
        })
        .await
    }

    pub async fn claim_outbox(
        &self,
        owner: String,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>, DbError> {
        // A claim is only a lease: losing it to a power cut returns its rows, republished under
        // the same ids, which JetStream drops as duplicates. So its commit skips the fsync
        // (`synchronous=NORMAL` in WAL mode); the mark that follows syncs both.
        let synchronous = self.synchronous;
        self.write(move |conn| {
            if synchronous == SqliteSync::Normal {
                return claim(conn, owner, limit, lease);
            }
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(failed("relax sync for the claim"))?;
            let claimed = claim(conn, owner, limit, lease);
            conn.pragma_update(None, "synchronous", synchronous.as_str())
                .map_err(failed("restore synchronous"))?;
            claimed
        })
        .await
    }

    pub async fn mark_published(&self, ids: Vec<String>) -> Result<(), DbError> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed("begin outbox mark"))?;
            let now = now_text(&tx)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE outbox SET published_at = ?2, last_error = NULL WHERE id = ?1",
                    )
                    .map_err(failed("prepare outbox mark"))?;
                for id in &ids {
                    stmt.execute(params![id, now])
                        .map_err(failed("mark outbox row published"))?;
                }
            }
            tx.commit().map_err(failed("commit outbox mark"))
        })
        .await
    }

    pub async fn mark_failed(&self, id: String, error: String) -> Result<(), DbError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE outbox SET failed_at = strftime('%Y-%m-%d %H:%M:%f', 'now'), last_error = ?2 WHERE id = ?1",
                params![id, error],
            )
            .map_err(failed("mark outbox row failed"))?;
            Ok(())
        })
        .await
    }

    pub async fn outbox_pending(&self) -> Result<u64, DbError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL AND failed_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(failed("count pending outbox rows"))
        })
        .await
    }

    pub async fn insert_outbox(&self, rows: Vec<NewOutboxRow>) -> Result<(), DbError> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed("begin outbox insert"))?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO outbox (id, subject, payload, headers) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(failed("prepare outbox insert"))?;
                for r in &rows {
                    stmt.execute(params![r.id, r.subject, r.payload, r.headers])
                        .map_err(failed("insert outbox row"))?;
                }
            }
            tx.commit().map_err(failed("commit outbox insert"))
        })
        .await
    }

    pub async fn inbox_ids(&self, group: String) -> Result<Vec<String>, DbError> {
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT message_id FROM inbox WHERE consumer_group = ?1")
                .map_err(failed("prepare inbox read"))?;
            let ids = stmt
                .query_map([group], |r| r.get::<_, String>(0))
                .map_err(failed("read inbox"))?;
            ids.collect::<Result<_, _>>().map_err(failed("read inbox"))
        })
        .await
    }

    pub async fn outbox_progress(&self, id_prefix: String) -> Result<OutboxProgress, DbError> {
        self.with(move |conn| {
            conn.query_row(
                "SELECT COUNT(*), COUNT(published_at), COALESCE(MIN(attempts), 0),
                        COALESCE(MAX(attempts), 0),
                        COUNT(CASE WHEN published_at IS NULL AND claimed_until_ms IS NOT NULL THEN 1 END)
                 FROM outbox WHERE substr(id, 1, length(?1)) = ?1",
                [id_prefix],
                |r| {
                    let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                    Ok(OutboxProgress {
                        rows: n(0)?,
                        published: n(1)?,
                        min_attempts: n(2)?,
                        max_attempts: n(3)?,
                        claimed: n(4)?,
                    })
                },
            )
            .map_err(failed("read outbox progress"))
        })
        .await
    }

    pub async fn inbox_span(&self, group: String) -> Result<(u64, f64), DbError> {
        self.with(move |conn| {
            conn.query_row(
                "SELECT COUNT(*), COALESCE((julianday(MAX(received_at)) - julianday(MIN(received_at))) * 86400.0, 0)
                 FROM inbox WHERE consumer_group = ?1",
                [group],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, f64>(1)?)),
            )
            .map_err(failed("read the inbox's span"))
        })
        .await
    }

    pub async fn outbox_span(&self, id_prefix: String) -> Result<(u64, f64), DbError> {
        self.with(move |conn| {
            conn.query_row(
                "SELECT COUNT(published_at), COALESCE((julianday(MAX(published_at)) - julianday(MIN(first_attempt_at))) * 86400.0, 0)
                 FROM outbox WHERE substr(id, 1, length(?1)) = ?1",
                [id_prefix],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, f64>(1)?)),
            )
            .map_err(failed("read the outbox's span"))
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.write(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(failed("ping"))?;
            Ok(())
        })
        .await
    }
}

fn claim(
    conn: &mut Connection,
    owner: String,
    limit: usize,
    lease: Duration,
) -> Result<Vec<OutboxRow>, DbError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed("begin outbox claim"))?;
    let now = now_ms();
    let holds = tx
                .execute(
                    "INSERT INTO outbox_lease (name, owner, expires_at_ms) VALUES ('relay', ?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at_ms = excluded.expires_at_ms
                     WHERE outbox_lease.owner = excluded.owner OR outbox_lease.expires_at_ms < ?3",
                    params![owner, now + lease.as_millis() as i64, now],
                )
                .map_err(failed("take the outbox lease"))?;
    if holds == 0 {
        tx.commit().map_err(failed("commit outbox claim"))?;
        return Ok(Vec::new());
    }
    let rows = {
        let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, subject, payload, headers,
                                CAST(COALESCE((julianday('now') - julianday(first_attempt_at)) * 86400000, 0) AS INTEGER)
                         FROM outbox WHERE published_at IS NULL AND failed_at IS NULL
                           AND (claimed_until_ms IS NULL OR claimed_until_ms < ?2)
                         ORDER BY created_at, id LIMIT ?1",
                    )
                    .map_err(failed("prepare outbox claim"))?;
        let rows = stmt
            .query_map(params![limit as i64, now], |row| {
                // Payloads inserted as TEXT or BLOB both relay as their bytes.
                let payload = match row.get_ref(2)? {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        t.to_vec()
                    }
                    other => other
                        .as_str()
                        .map(|s| s.as_bytes().to_vec())
                        .unwrap_or_default(),
                };
                Ok(OutboxRow {
                    id: row.get(0)?,
                    subject: row.get(1)?,
                    payload,
                    headers: row.get(3)?,
                    first_attempt_age: Duration::from_millis(row.get::<_, i64>(4)?.max(0) as u64),
                })
            })
            .map_err(failed("claim outbox rows"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(failed("read outbox rows"))?
    };
    if !rows.is_empty() {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, claimed_until_ms = ?2,
                         first_attempt_at = COALESCE(first_attempt_at, ?3) WHERE id = ?1",
            )
            .map_err(failed("prepare outbox attempt"))?;
        let until = now + lease.as_millis() as i64;
        let first_attempt = now_text(&tx)?;
        for r in &rows {
            stmt.execute(params![r.id, until, first_attempt])
                .map_err(failed("record outbox attempt"))?;
        }
    }
    tx.commit().map_err(failed("commit outbox claim"))?;
    Ok(rows)
}
