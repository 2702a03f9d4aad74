//! The audit after each fault: once the cluster has recovered, what the stream holds is read
//! again and checked against what was acknowledged so far, so a loss shows up at the fault
//! that caused it, not only at the end.
//!
//! Reading the whole stream after every fault would cost more than the faults (a 10-minute run
//! stores about 150,000 events), so each check reads only what was stored since the last one
//! (headers only), and checks that nothing verified earlier went away: the message verified last
//! must still be at its sequence, and the stream must hold at least as many messages as were
//! verified. When either fails the stream is read again from the start. The final audit reads
//! everything regardless.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_nats::jetstream;
use sea_infra::client::observe;
use serde::Serialize;

use crate::drill::load::Acked;
use crate::drill::service::Inserted;
use crate::drill::session::STREAM;

/// What one check found. Counts named `new_*` are what this check found and no earlier one
/// did; the others are over the whole run so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Events acknowledged before the check began.
    pub acked: usize,
    /// Acknowledged events the stream does not hold, first found by this check.
    pub new_lost: usize,
    pub lost_example: Option<String>,
    /// Extra copies of an id in the stream, first found by this check.
    pub new_duplicates: u64,
    /// Rows beyond one per event in each group's inbox, first found by this check.
    pub new_inbox_doubled: usize,
    /// Outbox rows in the stream more than once, first found by this check.
    pub new_outbox_doubled: usize,
    /// Stream events not yet in the workers' inbox (lag, not a failure until the end).
    pub inbox_behind: usize,
    /// Outbox rows committed more than 30 s before the check and not yet in the stream.
    pub outbox_behind: usize,
    /// Whether something verified earlier was gone, so the stream was read from the start.
    pub rescanned: bool,
    pub messages_read: usize,
}

/// What the checks verified so far.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Copies of each id among the messages read.
    seen: HashMap<String, u64>,
    /// The next sequence to read from.
    next_seq: u64,
    /// The last message read: (sequence, id).
    last: Option<(u64, String)>,
    lost_reported: BTreeSet<String>,
    duplicates_reported: u64,
    inbox_doubled_reported: usize,
    outbox_doubled_reported: BTreeSet<String>,
}

/// How old an outbox row must be before a check counts it as behind.
const OUTBOX_GRACE: Duration = Duration::from_secs(30);

impl Tracker {
    /// Takes in messages read from the stream (sequence, id), in order.
    pub fn absorb(&mut self, msgs: &[(u64, String)]) {
        for (seq, id) in msgs {
            *self.seen.entry(id.clone()).or_insert(0) += 1;
            self.next_seq = self.next_seq.max(seq + 1);
            self.last = Some((*seq, id.clone()));
        }
    }

    /// Forgets what was read (the stream is read again from the start).
    pub fn restart(&mut self) {
        self.seen.clear();
        self.next_seq = 1;
        self.last = None;
    }

    /// Messages read so far.
    pub fn total(&self) -> u64 {
        self.seen.values().sum()
    }

    /// Judges what was read against the records. `acked`: events acknowledged before the read
    /// began; `outbox`: rows committed so far; `now`: the check's time on the load's clock;
    /// `inboxes`: every group's rows.
    pub fn judge(
        &mut self,
        acked: &[Acked],
        outbox: &[Inserted],
        now: Duration,
        inboxes: &[&[String]],
    ) -> Check {
        let lost: Vec<&String> = acked
            .iter()
            .map(|a| &a.id)
            .filter(|id| !self.seen.contains_key(*id))
            .collect();
        let new_lost: Vec<&String> = lost
            .iter()
            .copied()
            .filter(|id| !self.lost_reported.contains(*id))
            .collect();
        self.lost_reported
            .extend(new_lost.iter().map(|id| id.to_string()));
        let duplicates: u64 = self.seen.values().map(|n| n - 1).sum();
        let new_duplicates = duplicates.saturating_sub(self.duplicates_reported);
        self.duplicates_reported = self.duplicates_reported.max(duplicates);
        let doubled: usize = inboxes
            .iter()
            .map(|rows| rows.len() - rows.iter().collect::<BTreeSet<_>>().len())
            .sum();
        let new_inbox_doubled = doubled.saturating_sub(self.inbox_doubled_reported);
        self.inbox_doubled_reported = self.inbox_doubled_reported.max(doubled);
        let outbox_doubled: Vec<&String> = outbox
            .iter()
            .map(|r| &r.id)
            .filter(|id| self.seen.get(*id).is_some_and(|n| *n > 1))
            .collect();
        let new_outbox_doubled = outbox_doubled
            .iter()
            .filter(|id| self.outbox_doubled_reported.insert(id.to_string()))
            .count();
        let inbox: BTreeSet<&String> = inboxes
            .first()
            .map_or_else(BTreeSet::new, |rows| rows.iter().collect());
        Check {
            acked: acked.len(),
            new_lost: new_lost.len(),
            lost_example: new_lost.first().map(|id| id.to_string()),
            new_duplicates,
            new_inbox_doubled,
            new_outbox_doubled,
            inbox_behind: self.seen.keys().filter(|id| !inbox.contains(id)).count(),
            outbox_behind: outbox
                .iter()
                .filter(|r| now.saturating_sub(r.at) >= OUTBOX_GRACE)
                .filter(|r| !self.seen.contains_key(&r.id))
                .count(),
            rescanned: false,
            messages_read: 0,
        }
    }

    /// Reads what the stream stored since the last check (from the start when something
    /// verified earlier is gone) and judges it. `acked` must be taken before this is called.
    #[allow(clippy::too_many_arguments)]
    pub async fn check(
        &mut self,
        js: &jetstream::Context,
        filter: &str,
        acked: &[Acked],
        outbox: &[Inserted],
        now: Duration,
        inboxes: &[&[String]],
    ) -> anyhow::Result<Check> {
        let mut rescanned = false;
        if let Some((seq, id)) = self.last.clone() {
            let still = observe::msg_id_at(js, STREAM, seq).await;
            if still.as_deref() != Some(id.as_str()) {
                self.restart();
                rescanned = true;
            }
        }
        let read = Duration::from_secs(120);
        let mut msgs = observe::read_ids(js, STREAM, filter, self.next_seq.max(1), read).await?;
        let mut read_count = msgs.len();
        self.absorb(&msgs);
        let held = js.get_stream(STREAM).await?.info().await?.state.messages;
        if !rescanned && held < self.total() {
            self.restart();
            rescanned = true;
            msgs = observe::read_ids(js, STREAM, filter, 1, read).await?;
            read_count += msgs.len();
            self.absorb(&msgs);
        }
        let mut check = self.judge(acked, outbox, now, inboxes);
        check.rescanned = rescanned;
        check.messages_read = read_count;
        Ok(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(ids: &[&str]) -> Vec<Acked> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| Acked {
                id: id.to_string(),
                seq: i as u64 + 1,
                at: Duration::from_millis(i as u64),
            })
            .collect()
    }

    fn msgs(ids: &[&str]) -> Vec<(u64, String)> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| (i as u64 + 1, id.to_string()))
            .collect()
    }

    fn rows(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_lost_event_is_reported_once_at_the_check_that_finds_it() {
        let mut t = Tracker::default();
        t.absorb(&msgs(&["a", "c"]));
        assert_eq!(t.next_seq, 3);
        let inbox = rows(&["a", "c"]);
        let first = t.judge(&acked(&["a", "b", "c"]), &[], Duration::ZERO, &[&inbox]);
        assert_eq!(
            (first.new_lost, first.lost_example.as_deref()),
            (1, Some("b"))
        );
        let again = t.judge(&acked(&["a", "b", "c"]), &[], Duration::ZERO, &[&inbox]);
        assert_eq!(again.new_lost, 0, "already reported");
    }

    #[test]
    fn duplicates_doubled_rows_and_lagging_rows_are_told_apart() {
        let mut t = Tracker::default();
        t.absorb(&msgs(&["a", "b", "b", "o1", "o1"]));
        let outbox = vec![
            Inserted {
                id: "o1".into(),
                at: Duration::ZERO,
            },
            Inserted {
                id: "o2".into(),
                at: Duration::ZERO,
            },
            Inserted {
                id: "o3".into(),
                at: Duration::from_secs(50),
            },
        ];
        let inbox = rows(&["a", "a"]);
        let c = t.judge(
            &acked(&["a", "b"]),
            &outbox,
            Duration::from_secs(60),
            &[&inbox],
        );
        assert_eq!(c.new_lost, 0);
        assert_eq!(c.new_duplicates, 2);
        assert_eq!(c.new_outbox_doubled, 1);
        assert_eq!(c.new_inbox_doubled, 1);
        // b and o1 are not in the inbox yet; o2 is old enough to count as behind, o3 is not.
        assert_eq!((c.inbox_behind, c.outbox_behind), (2, 1));
        let again = t.judge(
            &acked(&["a", "b"]),
            &outbox,
            Duration::from_secs(60),
            &[&inbox],
        );
        assert_eq!(
            (
                again.new_duplicates,
                again.new_outbox_doubled,
                again.new_inbox_doubled
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn reading_again_from_the_start_forgets_what_was_read() {
        let mut t = Tracker::default();
        t.absorb(&msgs(&["a", "b"]));
        assert_eq!(t.total(), 2);
        t.restart();
        assert_eq!((t.total(), t.next_seq, t.last.clone()), (0, 1, None));
        t.absorb(&msgs(&["a"]));
        let c = t.judge(&acked(&["a", "b"]), &[], Duration::ZERO, &[]);
        assert_eq!(c.new_lost, 1, "b went away after it was verified");
    }
}
