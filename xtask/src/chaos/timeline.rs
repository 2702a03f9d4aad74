//! The timeline: one row per fault, with what the runner measured (leader election, replicas
//! current again, the health gate), what the check after the fault found, and what the final
//! records say about the fault's window (from its start to the next fault's): acknowledged
//! publishes, failed attempts, the longest time without an acknowledgement, acknowledged events
//! and outbox rows of the window missing or doubled at the end. Attribution is pure, so a
//! deliberately lost event is shown to land in its fault's row by a unit test.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::tracker::Check;
use crate::drill::session::Evidence;

/// One step of the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultRow {
    pub index: usize,
    /// `kill-stream-leader`, or two kinds joined by ` + ` when combined on purpose.
    pub fault: String,
    /// Servers (by name), `worker-<i>`, `relay`.
    pub targets: Vec<String>,
    /// When the fault was injected, on the load's clock.
    pub at_ms: u64,
    /// When it was undone (restart, resume, heal, replacement).
    pub healed_ms: Option<u64>,
    /// When recovery was measured and the check done.
    pub done_ms: u64,
    pub stream_leader_before: Option<String>,
    pub stream_leader_after: Option<String>,
    /// From the fault to a stream leader outside the faulted servers (for a quorum loss: to any
    /// leader, which needs the servers back).
    pub new_leader_ms: Option<u64>,
    /// From the fault to a meta leader outside the faulted servers.
    pub meta_leader_ms: Option<u64>,
    /// From the heal to every replica of the stream current again.
    pub replicas_current_ms: Option<u64>,
    /// From the heal to the health gate passing.
    pub gate_ms: Option<u64>,
    /// Recovered within the bounds (leader, replicas, gate, workers back).
    pub recovered: bool,
    /// What went wrong while injecting, measuring or healing.
    pub problems: Vec<String>,
    /// The check after recovery.
    pub check: Option<Check>,
    /// Cut short by Ctrl-C or SIGTERM (then healed by the run).
    pub interrupted: bool,
    // ---- from the final records, over [at_ms, window_end_ms) ----
    pub window_end_ms: u64,
    pub acked: usize,
    pub failed_attempts: usize,
    pub given_up: usize,
    /// The longest time without an acknowledged publish from the fault to the window's end.
    pub ack_gap_ms: u64,
    /// Events acknowledged in the window and missing from the stream at the end.
    pub lost: usize,
    pub outbox_rows: usize,
    pub outbox_unpublished: usize,
    pub outbox_doubled: usize,
}

impl FaultRow {
    /// Nothing lost or doubled in its window or at its check, and it recovered.
    pub fn clean(&self) -> bool {
        let check_clean = self.check.as_ref().is_none_or(|c| {
            c.new_lost == 0
                && c.new_duplicates == 0
                && c.new_inbox_doubled == 0
                && c.new_outbox_doubled == 0
        });
        self.recovered
            && check_clean
            && self.lost == 0
            && self.outbox_unpublished == 0
            && self.outbox_doubled == 0
    }
}

/// Fills each row's window figures from the final evidence; `end_ms` is when the load stopped.
pub fn attribute(rows: &mut [FaultRow], evidence: &Evidence, end_ms: u64) {
    let ms = |d: Duration| d.as_millis() as u64;
    let starts: Vec<u64> = rows.iter().map(|r| r.at_ms).collect();
    let first_failure: HashMap<&str, u64> = evidence
        .records
        .failed_attempts
        .iter()
        .rev()
        .map(|f| (f.id.as_str(), ms(f.at)))
        .collect();
    for (i, row) in rows.iter_mut().enumerate() {
        let start = row.at_ms;
        let end = starts.get(i + 1).copied().unwrap_or(end_ms).max(start);
        row.window_end_ms = end;
        let within = |t: u64| t >= start && t < end;
        let acked: Vec<_> = evidence
            .records
            .acked
            .iter()
            .filter(|a| within(ms(a.at)))
            .collect();
        row.acked = acked.len();
        row.lost = acked
            .iter()
            .filter(|a| !evidence.in_stream.contains_key(&a.id))
            .count();
        row.failed_attempts = evidence
            .records
            .failed_attempts
            .iter()
            .filter(|f| within(ms(f.at)))
            .count();
        row.given_up = evidence
            .records
            .given_up
            .iter()
            .filter(|id| first_failure.get(id.as_str()).is_some_and(|t| within(*t)))
            .count();
        let mut last = start;
        let mut gap = 0;
        for a in &acked {
            gap = gap.max(ms(a.at).saturating_sub(last));
            last = ms(a.at);
        }
        if acked.is_empty() {
            gap = end - start;
        }
        row.ack_gap_ms = gap;
        let rows_in: Vec<_> = evidence
            .outbox
            .iter()
            .filter(|r| within(ms(r.at)))
            .collect();
        let copies = |id: &String| evidence.in_stream.get(id).copied().unwrap_or(0);
        row.outbox_rows = rows_in.len();
        row.outbox_unpublished = rows_in.iter().filter(|r| copies(&r.id) == 0).count();
        row.outbox_doubled = rows_in.iter().filter(|r| copies(&r.id) > 1).count();
    }
}

/// Counts of faults by kind (a combined step counts for both of its kinds).
pub fn kinds(rows: &[FaultRow]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in rows {
        for kind in r.fault.split(" + ") {
            *out.entry(kind.to_owned()).or_insert(0) += 1;
        }
    }
    out
}

/// `1.2 s`, or `-` when not measured.
fn secs(ms: Option<u64>) -> String {
    ms.map_or("-".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

/// `+MM:SS` on the load's clock.
pub fn clock(ms: u64) -> String {
    format!("+{:02}:{:02}", ms / 60_000, (ms / 1000) % 60)
}

/// The timeline as a Markdown table, one row per fault.
pub fn markdown_table(rows: &[FaultRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| # | at | fault | target | new leader | meta leader | replicas current | gate | ack gap | failed attempts | acked | lost | dup | outbox rows (missing/doubled) | verdict |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in rows {
        let (dups, lost_check) = r.check.as_ref().map_or((0, 0), |c| {
            (c.new_duplicates + c.new_inbox_doubled as u64, c.new_lost)
        });
        let verdict = if r.interrupted {
            "interrupted"
        } else if r.clean() {
            "ok"
        } else {
            "**FAIL**"
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}/{}) | {} |",
            r.index,
            clock(r.at_ms),
            r.fault,
            r.targets.join(", "),
            secs(r.new_leader_ms),
            secs(r.meta_leader_ms),
            secs(r.replicas_current_ms),
            secs(r.gate_ms),
            secs(Some(r.ack_gap_ms)),
            r.failed_attempts,
            r.acked,
            r.lost.max(lost_check),
            dups,
            r.outbox_rows,
            r.outbox_unpublished,
            r.outbox_doubled,
            verdict,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::load::{Acked, FailedAttempt, LoadRecords};
    use crate::drill::service::Inserted;

    fn ack(id: &str, at_ms: u64) -> Acked {
        Acked {
            id: id.into(),
            seq: 0,
            at: Duration::from_millis(at_ms),
        }
    }

    fn row(index: usize, at_ms: u64) -> FaultRow {
        FaultRow {
            index,
            fault: "kill-stream-leader".into(),
            at_ms,
            recovered: true,
            ..FaultRow::default()
        }
    }

    fn evidence() -> Evidence {
        let acked = vec![
            ack("e1", 100),
            ack("e2", 900),
            ack("e3", 6_000),
            ack("e4", 10_500),
            ack("e5", 10_600),
        ];
        let in_stream = acked.iter().map(|a| (a.id.clone(), 1)).collect();
        Evidence {
            records: LoadRecords {
                acked,
                failed_attempts: vec![FailedAttempt {
                    id: "e3".into(),
                    at: Duration::from_millis(1_500),
                    took: Duration::from_millis(2_000),
                    error: "no ack".into(),
                }],
                given_up: Vec::new(),
            },
            in_stream,
            outbox: vec![Inserted {
                id: "o1".into(),
                at: Duration::from_millis(10_200),
            }],
            ..Evidence::default()
        }
    }

    #[test]
    fn windows_run_from_one_fault_to_the_next() {
        let mut rows = vec![row(1, 1_000), row(2, 10_000)];
        let mut ev = evidence();
        ev.in_stream.insert("o1".into(), 1);
        attribute(&mut rows, &ev, 12_000);
        assert_eq!(
            (rows[0].window_end_ms, rows[1].window_end_ms),
            (10_000, 12_000)
        );
        assert_eq!((rows[0].acked, rows[1].acked), (1, 2));
        assert_eq!(rows[0].failed_attempts, 1);
        // From the fault at 1.0 s to the next ack at 6.0 s.
        assert_eq!(rows[0].ack_gap_ms, 5_000);
        assert_eq!(rows[1].ack_gap_ms, 500);
        assert_eq!((rows[1].outbox_rows, rows[1].outbox_unpublished), (1, 0));
        assert!(rows.iter().all(FaultRow::clean));
        assert_eq!(kinds(&rows)["kill-stream-leader"], 2);
    }

    /// The audit catches a deliberately lost event, in the row of the fault it was acked
    /// after, and an outbox row published twice in its own.
    #[test]
    fn a_deliberately_lost_event_lands_in_its_faults_row() {
        let mut rows = vec![row(1, 1_000), row(2, 10_000)];
        let mut ev = evidence();
        ev.in_stream.remove("e3");
        ev.in_stream.insert("o1".into(), 2);
        attribute(&mut rows, &ev, 12_000);
        assert_eq!((rows[0].lost, rows[1].lost), (1, 0));
        assert!(!rows[0].clean());
        assert_eq!(rows[1].outbox_doubled, 1);
        assert!(!rows[1].clean());
        let table = markdown_table(&rows);
        assert!(
            table.contains("| 1 | +00:01 | kill-stream-leader |"),
            "{table}"
        );
        assert_eq!(table.matches("**FAIL**").count(), 2, "{table}");
    }

    #[test]
    fn a_window_without_acks_is_one_long_gap() {
        let mut rows = vec![row(1, 20_000)];
        attribute(&mut rows, &evidence(), 25_000);
        assert_eq!((rows[0].acked, rows[0].ack_gap_ms), (0, 5_000));
    }
}
