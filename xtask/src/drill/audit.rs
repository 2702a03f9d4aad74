//! The drills' verdict on what happened to the events, from records only: what the publisher
//! was acknowledged, what the stream holds, what the inbox holds. No I/O, so a lost or
//! doubled event is caught by a unit test as surely as by a drill.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::load::LoadRecords;
use super::Criterion;

/// What the records say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    pub acked: usize,
    pub failed_attempts: usize,
    pub given_up: usize,
    pub longest_ack_gap_ms: u64,
    pub max_failed_attempt_ms: u64,
    pub first_error: Option<String>,
    pub stream_messages: u64,
    /// Acknowledged events the stream does not hold (one example kept).
    pub acked_lost: usize,
    pub lost_example: Option<String>,
    /// Extra copies of ids the stream holds more than once.
    pub stream_duplicates: u64,
    pub inbox_rows: usize,
    /// Events of the stream without an inbox row.
    pub inbox_missing: usize,
    /// Inbox rows beyond one per event.
    pub inbox_doubled: usize,
    /// Distinct events in the stream.
    pub events: usize,
}

impl Audit {
    /// `in_stream`: how often each `Nats-Msg-Id` occurs in the stream; `inbox`: the group's rows.
    pub fn of(records: &LoadRecords, in_stream: &BTreeMap<String, u64>, inbox: &[String]) -> Audit {
        let lost: Vec<&str> = records
            .acked
            .iter()
            .filter(|a| !in_stream.contains_key(&a.id))
            .map(|a| a.id.as_str())
            .collect();
        let distinct: BTreeSet<&String> = inbox.iter().collect();
        Audit {
            acked: records.acked.len(),
            failed_attempts: records.failed_attempts.len(),
            given_up: records.given_up.len(),
            longest_ack_gap_ms: records.longest_ack_gap().as_millis() as u64,
            max_failed_attempt_ms: records.slowest_failure().as_millis() as u64,
            first_error: records.failed_attempts.first().map(|f| f.error.clone()),
            stream_messages: in_stream.values().sum(),
            acked_lost: lost.len(),
            lost_example: lost.first().map(|id| id.to_string()),
            stream_duplicates: in_stream.values().map(|n| n - 1).sum(),
            inbox_rows: inbox.len(),
            inbox_missing: in_stream.keys().filter(|id| !distinct.contains(id)).count(),
            inbox_doubled: inbox.len() - distinct.len(),
            events: in_stream.len(),
        }
    }

    /// The figures every drill reports, by name.
    pub fn figures(&self) -> Vec<(&'static str, Value)> {
        let mut out = vec![
            ("acked", self.acked.into()),
            ("failed_attempts", self.failed_attempts.into()),
            ("given_up", self.given_up.into()),
            ("longest_ack_gap_ms", self.longest_ack_gap_ms.into()),
            ("max_failed_attempt_ms", self.max_failed_attempt_ms.into()),
            ("stream_messages", self.stream_messages.into()),
            ("acked_lost", self.acked_lost.into()),
            ("stream_duplicates", self.stream_duplicates.into()),
            ("inbox_rows", self.inbox_rows.into()),
            ("inbox_missing", self.inbox_missing.into()),
            ("inbox_doubled", self.inbox_doubled.into()),
        ];
        if let Some(e) = &self.first_error {
            out.push(("first_error", e.clone().into()));
        }
        out
    }

    /// Nothing acknowledged lost, nothing doubled in the stream, the inbox exactly once.
    pub fn criteria(&self, stream: &str) -> Vec<Criterion> {
        let criterion = |name: &str, pass: bool, detail: String| Criterion {
            name: name.to_owned(),
            pass,
            detail,
        };
        vec![
            criterion(
                "no acknowledged event lost",
                self.acked_lost == 0,
                match &self.lost_example {
                    None => format!("all {} acked events in {stream}", self.acked),
                    Some(id) => format!("{} acked events missing, e.g. {id}", self.acked_lost),
                },
            ),
            criterion(
                "no duplicate in the stream",
                self.stream_duplicates == 0,
                format!("{} extra copies", self.stream_duplicates),
            ),
            criterion(
                "inbox exactly once",
                self.inbox_missing == 0 && self.inbox_doubled == 0,
                format!(
                    "{} rows for {} events: {} missing, {} doubled",
                    self.inbox_rows, self.events, self.inbox_missing, self.inbox_doubled
                ),
            ),
        ]
    }
}

/// One consumer group's inbox against the events it should hold: every event once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupAudit {
    pub group: String,
    pub events: usize,
    pub rows: usize,
    /// Events without a row.
    pub missing: usize,
    /// Rows beyond one per event.
    pub doubled: usize,
}

impl GroupAudit {
    pub fn of<'a>(
        group: &str,
        events: impl IntoIterator<Item = &'a String>,
        rows: &[String],
    ) -> GroupAudit {
        let distinct: BTreeSet<&String> = rows.iter().collect();
        let events: BTreeSet<&String> = events.into_iter().collect();
        GroupAudit {
            group: group.to_owned(),
            events: events.len(),
            rows: rows.len(),
            missing: events.iter().filter(|id| !distinct.contains(*id)).count(),
            doubled: rows.len() - distinct.len(),
        }
    }

    pub fn criterion(&self) -> Criterion {
        Criterion {
            name: format!("inbox exactly once (group {})", self.group),
            pass: self.missing == 0 && self.doubled == 0,
            detail: format!(
                "{} rows for {} events: {} missing, {} doubled",
                self.rows, self.events, self.missing, self.doubled
            ),
        }
    }
}

/// Outbox rows a service committed against the stream: each must be published exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxAudit {
    pub rows: usize,
    pub published_once: usize,
    /// Rows not in the stream at all (one example kept).
    pub unpublished: usize,
    pub unpublished_example: Option<String>,
    /// Rows in the stream more than once, and the extra copies.
    pub doubled: usize,
    pub extra_copies: u64,
}

impl OutboxAudit {
    pub fn of(inserted: &[String], in_stream: &BTreeMap<String, u64>) -> OutboxAudit {
        let count = |id: &String| in_stream.get(id).copied().unwrap_or(0);
        let unpublished: Vec<&String> = inserted.iter().filter(|id| count(id) == 0).collect();
        let doubled: Vec<u64> = inserted.iter().map(count).filter(|n| *n > 1).collect();
        OutboxAudit {
            rows: inserted.len(),
            published_once: inserted.iter().filter(|id| count(id) == 1).count(),
            unpublished: unpublished.len(),
            unpublished_example: unpublished.first().map(|id| id.to_string()),
            doubled: doubled.len(),
            extra_copies: doubled.iter().map(|n| n - 1).sum(),
        }
    }

    pub fn figures(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("outbox_rows", self.rows.into()),
            ("outbox_unpublished", self.unpublished.into()),
            ("outbox_doubled", self.doubled.into()),
        ]
    }

    pub fn criterion(&self) -> Criterion {
        Criterion {
            name: "every outbox row published exactly once".to_owned(),
            pass: self.unpublished == 0 && self.doubled == 0,
            detail: match &self.unpublished_example {
                None => format!(
                    "{} of {} rows once, {} twice or more",
                    self.published_once, self.rows, self.doubled
                ),
                Some(id) => format!(
                    "{} of {} rows never published (e.g. {id}), {} twice or more",
                    self.unpublished, self.rows, self.doubled
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::load::Acked;
    use std::time::Duration;

    fn records(ids: &[&str]) -> LoadRecords {
        LoadRecords {
            acked: ids
                .iter()
                .enumerate()
                .map(|(i, id)| Acked {
                    id: id.to_string(),
                    seq: i as u64 + 1,
                    at: Duration::from_millis(10 * i as u64),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn stream(ids: &[(&str, u64)]) -> BTreeMap<String, u64> {
        ids.iter().map(|(id, n)| (id.to_string(), *n)).collect()
    }

    fn rows(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn failed(audit: &Audit) -> Vec<String> {
        audit
            .criteria("S")
            .into_iter()
            .filter(|c| !c.pass)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn a_clean_run_passes_every_criterion() {
        let a = Audit::of(
            &records(&["a", "b", "c"]),
            &stream(&[("a", 1), ("b", 1), ("c", 1)]),
            &rows(&["c", "a", "b"]),
        );
        assert!(failed(&a).is_empty(), "{a:?}");
        assert_eq!((a.acked, a.events, a.longest_ack_gap_ms), (3, 3, 10));
    }

    #[test]
    fn a_lost_acknowledged_event_fails_and_is_named() {
        let a = Audit::of(
            &records(&["a", "b", "c"]),
            &stream(&[("a", 1), ("c", 1)]),
            &rows(&["a", "c"]),
        );
        assert_eq!(failed(&a), ["no acknowledged event lost"]);
        assert_eq!((a.acked_lost, a.lost_example.as_deref()), (1, Some("b")));
    }

    #[test]
    fn outbox_rows_unpublished_or_doubled_fail() {
        let inserted = rows(&["o1", "o2", "o3"]);
        let clean = OutboxAudit::of(&inserted, &stream(&[("o1", 1), ("o2", 1), ("o3", 1)]));
        assert!(clean.criterion().pass, "{clean:?}");
        let bad = OutboxAudit::of(&inserted, &stream(&[("o1", 1), ("o3", 3)]));
        assert!(!bad.criterion().pass);
        assert_eq!((bad.unpublished, bad.doubled, bad.extra_copies), (1, 1, 2));
        assert_eq!(bad.unpublished_example.as_deref(), Some("o2"));
    }

    #[test]
    fn a_group_must_hold_each_of_its_events_once() {
        let events = rows(&["a", "b", "c"]);
        assert!(
            GroupAudit::of("g", &events, &rows(&["c", "b", "a"]))
                .criterion()
                .pass
        );
        let g = GroupAudit::of("g", &events, &rows(&["a", "a", "b"]));
        assert_eq!((g.missing, g.doubled), (1, 1));
        assert_eq!(g.criterion().name, "inbox exactly once (group g)");
        assert!(!g.criterion().pass);
    }

    #[test]
    fn stream_duplicates_and_inbox_gaps_and_doubles_each_fail() {
        let a = Audit::of(
            &records(&["a", "b"]),
            &stream(&[("a", 2), ("b", 1), ("x", 1)]),
            &rows(&["a", "a", "b"]),
        );
        assert_eq!(
            failed(&a),
            ["no duplicate in the stream", "inbox exactly once"]
        );
        assert_eq!(
            (a.stream_duplicates, a.inbox_missing, a.inbox_doubled),
            (1, 1, 1)
        );
    }
}
