//! What the worker knows of its own ability to do its job, beyond "the database answers": a
//! deleted database file answers everything.
//!
//! A **halt** is a local fault only a restart clears (the SQLite file deleted or replaced).
//! Latched once; the consumer and the relay stop, `/readyz` and `/healthz` answer 503.

use tokio::sync::watch;

use crate::db::DbError;

pub struct Health {
    halt: watch::Sender<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            halt: watch::Sender::new(None),
        }
    }
}

impl Health {
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

    /// Looks at a database result: a replaced database halts the worker.
    pub fn record<T>(&self, result: &Result<T, DbError>) {
        if let Err(e) = result {
            if e.is_replaced() {
                self.halt(&e.to_string());
            }
        }
    }

    /// Why the worker cannot do its job right now (empty: it can).
    pub fn problems(&self) -> Vec<String> {
        self.halted().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_database_halts_for_good() {
        let h = Health::default();
        let replaced = DbError::Replaced {
            path: "/data/sea.db".into(),
            now: "/data/sea.db no longer exists".into(),
        };
        h.record::<()>(&Ok(()));
        assert!(h.problems().is_empty());
        h.record::<()>(&Err(replaced.clone()));
        h.halt("a second reason is not kept");
        h.record(&Ok(()));
        assert_eq!(h.halted(), Some(replaced.to_string()));
        assert_eq!(h.problems(), vec![replaced.to_string()]);
    }
}
