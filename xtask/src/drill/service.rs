//! A service writing outbox rows, as an application does: each row goes into the outbox table
//! through the worker's own `Store::insert_outbox` (xtask writes no SQL), one small transaction
//! at a steady pace, each with a unique id. A relay worker publishes them with that id as
//! `Nats-Msg-Id`; the audit then finds every row in the stream exactly once. Every insert that
//! committed is recorded with its time on the load's clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_mq_worker::db::{NewOutboxRow, Store};
use serde::Serialize;
use tokio::sync::watch;

/// A committed outbox row: its id and when (on the load's clock).
#[derive(Clone, Debug, Serialize)]
pub struct Inserted {
    pub id: String,
    pub at: Duration,
}

/// The rows a running service inserted so far; `stop` ends it.
pub struct OutboxService {
    rows: Arc<Mutex<Vec<Inserted>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Time between two inserts: about 40 rows a second next to the publisher's 200 events.
const PACE: Duration = Duration::from_millis(25);

impl OutboxService {
    /// Inserts rows `<id_prefix><k>` on `<subject>.<k % 4>` until stopped; times count from
    /// `clock`.
    pub fn start(store: Store, subject: String, id_prefix: String, clock: Instant) -> Self {
        let rows = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let written = rows.clone();
        let task = tokio::spawn(async move {
            let mut pace = tokio::time::interval(PACE);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut k = 0u64;
            loop {
                tokio::select! {
                    _ = pace.tick() => {}
                    _ = stopped.changed() => break,
                }
                let id = format!("{id_prefix}{k}");
                let row = NewOutboxRow {
                    id: id.clone(),
                    subject: format!("{subject}.{}", k % 4),
                    payload: serde_json::json!({ "id": id, "type": "sea.drill.outbox", "k": k })
                        .to_string(),
                    headers: None,
                };
                // A failed insert (the database busy) is tried again with the same id.
                if store.insert_outbox(vec![row]).await.is_ok() {
                    lock(&written).push(Inserted {
                        id,
                        at: clock.elapsed(),
                    });
                    k += 1;
                }
            }
        });
        OutboxService { rows, stop, task }
    }

    /// A copy of the rows so far.
    pub fn snapshot(&self) -> Vec<Inserted> {
        lock(&self.rows).clone()
    }

    /// Stops inserting; every row that committed.
    pub async fn stop(self) -> Vec<Inserted> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        std::mem::take(&mut *lock(&self.rows))
    }
}

fn lock(rows: &Mutex<Vec<Inserted>>) -> std::sync::MutexGuard<'_, Vec<Inserted>> {
    rows.lock().unwrap_or_else(|e| e.into_inner())
}
