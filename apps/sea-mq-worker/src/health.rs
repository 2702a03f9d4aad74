//! What the worker knows of its own ability to do its job, beyond "the database answers": a
//! `SELECT 1` succeeds while every insert fails (a lock held elsewhere, a read-only or full
//! disk), and a deleted database file answers everything.
//!
//! - A **halt**: a local fault only a restart clears (the SQLite file deleted or replaced).
//!   Latched once; the consumer and the relay stop, `/readyz` and `/healthz` answer 503.
//! - **Failing writes**: consecutive failed inbox commits, and consecutive failed outbox writes
//!   (claims and marks, which also run while no event arrives). At the threshold `/readyz`
//!   answers 503; one successful write of that kind makes it ready again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::db::DbError;

/// Which writes a result belongs to: each kind counts its own failures, so a success of one
/// does not hide the other failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// An inbox batch's transaction.
    Inbox,
    /// An outbox claim or mark.
    Outbox,
}

#[derive(Default)]
struct Failures {
    consecutive: AtomicU32,
    last: Mutex<String>,
}

pub struct Health {
    halt: watch::Sender<Option<String>>,
    inbox: Failures,
    outbox: Failures,
    /// Consecutive failures of one kind that make the worker unready.
    unready_after: u32,
}

impl Health {
    pub fn new(unready_after: u32) -> Health {
        Health {
            halt: watch::Sender::new(None),
            inbox: Failures::default(),
            outbox: Failures::default(),
            unready_after: unready_after.max(1),
        }
    }

    /// Latches a fault only a restart clears; the first reason is kept (and logged once).
    pub fn halt(&self, reason: &str) {
        self.halt.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            tracing::error!(reason, "stopped consuming and relaying until restarted");
            *current = Some(reason.to_owned());
            true
        });
    }

    /// The latched fault, if any.
    pub fn halted(&self) -> Option<String> {
        self.halt.borrow().clone()
    }

    /// Changes when the worker halts.
    pub fn watch_halt(&self) -> watch::Receiver<Option<String>> {
        self.halt.subscribe()
    }

    /// Counts a write's outcome; a replaced database halts the worker.
    pub fn record<T>(&self, kind: Write, result: &Result<T, DbError>) {
        let failures = match kind {
            Write::Inbox => &self.inbox,
            Write::Outbox => &self.outbox,
        };
        match result {
            Ok(_) => failures.consecutive.store(0, Ordering::Relaxed),
            Err(e) if e.is_replaced() => self.halt(&e.to_string()),
            Err(e) => {
                *failures.last.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
                failures.consecutive.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Why the worker cannot do its job right now (empty: it can).
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.halted().into_iter().collect();
        for (what, failures) in [
            ("inbox commits", &self.inbox),
            ("outbox writes", &self.outbox),
        ] {
            let n = failures.consecutive.load(Ordering::Relaxed);
            if n >= self.unready_after {
                let last = failures.last.lock().unwrap_or_else(|p| p.into_inner());
                problems.push(format!(
                    "database writes failing: the last {n} {what} failed (latest: {last}); ready again after one succeeds"
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Result<(), DbError> {
        Err(DbError::Failed {
            what: "begin inbox batch",
            reason: "database is locked".into(),
        })
    }

    #[test]
    fn unready_after_consecutive_failures_of_one_kind_ready_after_a_success() {
        let h = Health::new(3);
        h.record(Write::Inbox, &failed());
        h.record(Write::Inbox, &failed());
        // An outbox success does not hide failing inbox commits.
        h.record(Write::Outbox, &Ok(()));
        assert!(h.problems().is_empty());
        h.record(Write::Inbox, &failed());
        let problems = h.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("the last 3 inbox commits failed")
                && problems[0].contains("database is locked"),
            "{problems:?}"
        );
        h.record(Write::Inbox, &Ok(1));
        assert!(h.problems().is_empty());
    }

    #[test]
    fn a_replaced_database_halts_for_good() {
        let h = Health::new(3);
        let replaced = DbError::Replaced {
            path: "/data/sea.db".into(),
            now: "/data/sea.db no longer exists".into(),
        };
        h.record::<()>(Write::Outbox, &Err(replaced.clone()));
        h.halt("a second reason is not kept");
        h.record(Write::Outbox, &Ok(()));
        assert_eq!(h.halted(), Some(replaced.to_string()));
        assert_eq!(h.problems(), vec![replaced.to_string()]);
    }
}
