//! The provisioning decision, without I/O: which managed fields differ between the live and the
//! desired configuration, whether the server can change each in place, and what to do about
//! the object as a whole.

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use serde::Serialize;

use crate::env::format_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Stream,
    Consumer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::Consumer => "consumer",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// Needs a change the server cannot apply in place; not recreated without permission.
    Refused,
    /// Delete and create again (the operator asked with `--recreate`).
    Recreate,
}

impl Action {
    /// In the order a summary lists them.
    pub const ALL: [Action; 5] = [
        Action::Create,
        Action::Update,
        Action::Recreate,
        Action::Refused,
        Action::Unchanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Refused => "refused",
            Action::Recreate => "recreate",
        }
    }
}

/// A field provisioning manages, named as async-nats names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Subjects,
    Storage,
    Retention,
    Discard,
    Replicas,
    MaxAge,
    MaxBytes,
    DuplicateWindow,
    MaxMessageSize,
    Placement,
    Mirror,
    /// Pull or push.
    #[serde(rename = "type")]
    ConsumerType,
    AckPolicy,
    DeliverPolicy,
    ReplayPolicy,
    AckWait,
    MaxDeliver,
    MaxAckPending,
    FilterSubject,
    Backoff,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Subjects => "subjects",
            Field::Storage => "storage",
            Field::Retention => "retention",
            Field::Discard => "discard",
            Field::Replicas => "replicas",
            Field::MaxAge => "max_age",
            Field::MaxBytes => "max_bytes",
            Field::DuplicateWindow => "duplicate_window",
            Field::MaxMessageSize => "max_message_size",
            Field::Placement => "placement",
            Field::Mirror => "mirror",
            Field::ConsumerType => "type",
            Field::AckPolicy => "ack_policy",
            Field::DeliverPolicy => "deliver_policy",
            Field::ReplayPolicy => "replay_policy",
            Field::AckWait => "ack_wait",
            Field::MaxDeliver => "max_deliver",
            Field::MaxAckPending => "max_ack_pending",
            Field::FilterSubject => "filter_subject",
            Field::Backoff => "backoff",
        }
    }

    /// Whether the server applies a change of this field from `live` to `desired` in place.
    pub fn changes_in_place(self, live: &str, desired: &str) -> bool {
        match self {
            // Retention moves between limits and interest, never to or from work-queue.
            Field::Retention => live != "workqueue" && desired != "workqueue",
            Field::Storage
            | Field::Mirror
            | Field::ConsumerType
            | Field::AckPolicy
            | Field::DeliverPolicy
            | Field::ReplayPolicy => false,
            Field::Subjects
            | Field::Discard
            | Field::Replicas
            | Field::MaxAge
            | Field::MaxBytes
            | Field::DuplicateWindow
            | Field::MaxMessageSize
            | Field::Placement
            | Field::AckWait
            | Field::MaxDeliver
            | Field::MaxAckPending
            | Field::FilterSubject
            | Field::Backoff => true,
        }
    }
}

/// The managed fields of one object, each with its value as plans print it.
pub type Fields = Vec<(Field, String)>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: Field,
    pub live: String,
    pub desired: String,
    pub in_place: bool,
}

/// The fields whose values differ, in the order given.
pub(crate) fn changes(live: &Fields, desired: &Fields) -> Vec<FieldChange> {
    live.iter()
        .zip(desired)
        .filter(|((_, l), (_, d))| l != d)
        .map(|((field, live), (_, desired))| FieldChange {
            field: *field,
            in_place: field.changes_in_place(live, desired),
            live: live.clone(),
            desired: desired.clone(),
        })
        .collect()
}

/// What to do with an object: `live` is `None` when it does not exist; `recreate` says whether
/// the operator allowed deleting and creating it again.
pub(crate) fn decide(
    live: Option<&Fields>,
    desired: &Fields,
    recreate: bool,
) -> (Action, Vec<FieldChange>) {
    let Some(live) = live else {
        return (Action::Create, Vec::new());
    };
    let changes = changes(live, desired);
    let action = match (
        changes.is_empty(),
        changes.iter().all(|c| c.in_place),
        recreate,
    ) {
        (true, _, _) => Action::Unchanged,
        (false, true, _) => Action::Update,
        (false, false, true) => Action::Recreate,
        (false, false, false) => Action::Refused,
    };
    (action, changes)
}

/// Whether every subject `narrow` matches is also matched by `wide`.
pub(crate) fn covers(wide: &str, narrow: &str) -> bool {
    let (w, n): (Vec<&str>, Vec<&str>) = (wide.split('.').collect(), narrow.split('.').collect());
    for (i, token) in w.iter().enumerate() {
        match (*token, n.get(i)) {
            (">", Some(_)) => return true,
            ("*", Some(t)) if *t != ">" => {}
            (t, Some(u)) if t == *u => {}
            _ => return false,
        }
    }
    w.len() == n.len()
}

/// Subjects the live stream captures that the desired one would no longer capture.
pub(crate) fn removed_subjects(live: &[String], desired: &[String]) -> Vec<String> {
    live.iter()
        .filter(|s| !desired.iter().any(|d| covers(d, s)))
        .cloned()
        .collect()
}

/// What the live stream holds, as far as an update could lose it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub messages: u64,
    pub bytes: u64,
    /// Messages young enough for the desired `max_age` (`None` when the age does not shrink).
    pub within_new_age: Option<u64>,
    /// Messages on subjects the desired config drops (`None` when none are dropped).
    pub on_removed_subjects: Option<u64>,
}

/// What an in-place update from `live` to `desired` would lose, one line per cause: stored
/// messages the server would delete at once (a smaller `max_bytes` or `max_age`), and subjects
/// it would stop storing (a narrower subject set keeps what is stored, but publishes there fail
/// from then on).
pub(crate) fn losses(
    live: &stream::Config,
    desired: &stream::Config,
    stored: Stored,
) -> Vec<String> {
    let mut out = Vec::new();
    let drops_old = live.discard == DiscardPolicy::Old;
    if drops_old && desired.max_bytes >= 0 && stored.bytes > desired.max_bytes as u64 {
        let over = stored.bytes - desired.max_bytes as u64;
        let average = stored.bytes.div_ceil(stored.messages.max(1)).max(1);
        let messages = over.div_ceil(average).min(stored.messages);
        out.push(format!(
            "would discard about {messages} of {} stored messages: max_bytes {} -> {} is {over} bytes below what it holds",
            stored.messages, live.max_bytes, desired.max_bytes
        ));
    }
    if let Some(kept) = stored.within_new_age.filter(|k| *k < stored.messages) {
        out.push(format!(
            "would discard {} of {} stored messages older than the new max_age: {} -> {}",
            stored.messages - kept,
            stored.messages,
            format_duration(live.max_age),
            format_duration(desired.max_age)
        ));
    }
    let removed = removed_subjects(&live.subjects, &desired.subjects);
    if !removed.is_empty() {
        out.push(format!(
            "would stop storing events on {} (their {} stored messages stay; new publishes there would fail)",
            removed.join(", "),
            stored.on_removed_subjects.unwrap_or(0)
        ));
    }
    out
}

/// Whether the desired `max_age` is shorter than the live one (0 means unlimited).
pub(crate) fn age_shrinks(live: &stream::Config, desired: &stream::Config) -> bool {
    !desired.max_age.is_zero() && (live.max_age.is_zero() || desired.max_age < live.max_age)
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s
    }
}

fn storage(s: StorageType) -> &'static str {
    match s {
        StorageType::File => "file",
        StorageType::Memory => "memory",
    }
}

fn retention(r: RetentionPolicy) -> &'static str {
    match r {
        RetentionPolicy::Limits => "limits",
        RetentionPolicy::Interest => "interest",
        RetentionPolicy::WorkQueue => "workqueue",
    }
}

fn discard(d: DiscardPolicy) -> &'static str {
    match d {
        DiscardPolicy::Old => "old",
        DiscardPolicy::New => "new",
    }
}

fn ack_policy(a: AckPolicy) -> &'static str {
    match a {
        AckPolicy::Explicit => "explicit",
        AckPolicy::None => "none",
        AckPolicy::All => "all",
        AckPolicy::FlowControl => "flowcontrol",
    }
}

fn deliver_policy(d: DeliverPolicy) -> String {
    match d {
        DeliverPolicy::All => "all".into(),
        DeliverPolicy::Last => "last".into(),
        DeliverPolicy::New => "new".into(),
        DeliverPolicy::LastPerSubject => "lastpersubject".into(),
        DeliverPolicy::ByStartSequence { start_sequence } => {
            format!("bystartsequence {start_sequence}")
        }
        DeliverPolicy::ByStartTime { start_time } => format!("bystarttime {start_time}"),
    }
}

fn replay_policy(r: ReplayPolicy) -> &'static str {
    match r {
        ReplayPolicy::Instant => "instant",
        ReplayPolicy::Original => "original",
    }
}

/// The stream fields the spec manages.
pub(crate) fn stream_fields(c: &stream::Config) -> Fields {
    let mut subjects = c.subjects.clone();
    subjects.sort();
    vec![
        (Field::Subjects, subjects.join(",")),
        (Field::Storage, storage(c.storage).into()),
        (Field::Retention, retention(c.retention).into()),
        (Field::Discard, discard(c.discard).into()),
        (Field::Replicas, c.num_replicas.to_string()),
        (Field::MaxAge, format_duration(c.max_age)),
        (Field::MaxBytes, c.max_bytes.to_string()),
        (Field::DuplicateWindow, format_duration(c.duplicate_window)),
        (Field::MaxMessageSize, c.max_message_size.to_string()),
        (
            Field::Placement,
            or_dash(
                c.placement
                    .as_ref()
                    .and_then(|p| p.cluster.clone())
                    .unwrap_or_default(),
            ),
        ),
        (
            Field::Mirror,
            or_dash(
                c.mirror
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
            ),
        ),
    ]
}

/// The consumer fields the spec manages.
pub(crate) fn consumer_fields(c: &consumer::Config) -> Fields {
    let backoff: Vec<String> = c.backoff.iter().map(|d| format_duration(*d)).collect();
    let kind = if c.deliver_subject.is_some() {
        "push"
    } else {
        "pull"
    };
    vec![
        (Field::ConsumerType, kind.into()),
        (Field::AckPolicy, ack_policy(c.ack_policy).into()),
        (Field::DeliverPolicy, deliver_policy(c.deliver_policy)),
        (Field::ReplayPolicy, replay_policy(c.replay_policy).into()),
        (Field::AckWait, format_duration(c.ack_wait)),
        (Field::MaxDeliver, c.max_deliver.to_string()),
        (Field::MaxAckPending, c.max_ack_pending.to_string()),
        (Field::FilterSubject, or_dash(c.filter_subject.clone())),
        (Field::Backoff, or_dash(backoff.join(","))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stream(f: impl FnOnce(&mut stream::Config)) -> Fields {
        let mut c = stream::Config {
            name: "S".into(),
            subjects: vec!["b.>".into(), "a.>".into()],
            num_replicas: 3,
            max_age: Duration::from_secs(7 * 86_400),
            ..Default::default()
        };
        f(&mut c);
        stream_fields(&c)
    }

    #[test]
    fn nothing_live_is_a_create_and_the_same_config_is_unchanged() {
        let desired = stream(|_| {});
        assert_eq!(decide(None, &desired, false), (Action::Create, Vec::new()));
        assert_eq!(
            decide(Some(&desired), &desired, false),
            (Action::Unchanged, Vec::new())
        );
        // Subject order does not count as a change.
        let reordered = stream(|c| c.subjects.reverse());
        assert_eq!(
            decide(Some(&reordered), &desired, false).0,
            Action::Unchanged
        );
    }

    #[test]
    fn in_place_changes_are_an_update_listing_each_field() {
        let live = stream(|c| c.num_replicas = 1);
        let desired = stream(|c| c.max_age = Duration::from_secs(86_400));
        let (action, changes) = decide(Some(&live), &desired, false);
        assert_eq!(action, Action::Update);
        let fields: Vec<(Field, &str, &str)> = changes
            .iter()
            .map(|c| (c.field, c.live.as_str(), c.desired.as_str()))
            .collect();
        assert_eq!(
            fields,
            [(Field::Replicas, "1", "3"), (Field::MaxAge, "7d", "1d")]
        );
    }

    #[test]
    fn a_change_the_server_cannot_make_is_refused_unless_recreate_is_allowed() {
        let live = stream(|c| c.storage = StorageType::Memory);
        let desired = stream(|_| {});
        let (action, changes) = decide(Some(&live), &desired, false);
        assert_eq!(action, Action::Refused);
        assert_eq!(
            changes,
            [FieldChange {
                field: Field::Storage,
                live: "memory".into(),
                desired: "file".into(),
                in_place: false
            }]
        );
        assert_eq!(decide(Some(&live), &desired, true).0, Action::Recreate);
    }

    #[test]
    fn retention_moves_in_place_only_between_limits_and_interest() {
        assert!(Field::Retention.changes_in_place("limits", "interest"));
        assert!(!Field::Retention.changes_in_place("limits", "workqueue"));
        assert!(!Field::Retention.changes_in_place("workqueue", "interest"));
        let live = stream(|c| c.retention = RetentionPolicy::WorkQueue);
        assert_eq!(
            decide(Some(&live), &stream(|_| {}), false).0,
            Action::Refused
        );
    }

    #[test]
    fn consumer_policies_are_fixed_and_limits_change_in_place() {
        let base = consumer::Config {
            durable_name: Some("g".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            ..Default::default()
        };
        let desired = consumer_fields(&base);
        let slower = consumer_fields(&consumer::Config {
            ack_wait: Duration::from_secs(60),
            ..base.clone()
        });
        assert_eq!(decide(Some(&slower), &desired, false).0, Action::Update);
        let push = consumer_fields(&consumer::Config {
            deliver_subject: Some("d".into()),
            ..base.clone()
        });
        let (action, changes) = decide(Some(&push), &desired, false);
        assert_eq!(action, Action::Refused);
        assert_eq!(
            (changes[0].field, changes[0].live.as_str()),
            (Field::ConsumerType, "push")
        );
    }

    #[test]
    fn subject_cover_is_wildcard_aware() {
        assert!(covers("sea.event.>", "sea.event.orders.>"));
        assert!(covers("sea.*.x", "sea.event.x"));
        assert!(covers("a.b", "a.b"));
        assert!(!covers("sea.event.orders.>", "sea.event.>"));
        assert!(!covers("sea.*", "sea.>"));
        assert!(!covers("a.b", "a.b.c"));
        assert_eq!(
            removed_subjects(&["a.>".into(), "b.>".into()], &["a.>".into()]),
            ["b.>"]
        );
        assert!(removed_subjects(&["a.x".into()], &["a.>".into()]).is_empty());
    }

    fn config(f: impl FnOnce(&mut stream::Config)) -> stream::Config {
        let mut c = stream::Config {
            name: "S".into(),
            subjects: vec!["sea.event.>".into()],
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(7 * 86_400),
            ..Default::default()
        };
        f(&mut c);
        c
    }

    #[test]
    fn a_smaller_max_bytes_says_how_many_messages_it_would_drop() {
        let stored = Stored {
            messages: 200,
            bytes: 200 * 150,
            ..Default::default()
        };
        let lost = losses(&config(|_| {}), &config(|c| c.max_bytes = 1000), stored);
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(
            lost[0].starts_with(
                "would discard about 194 of 200 stored messages: max_bytes 1073741824 -> 1000"
            ),
            "{lost:?}"
        );
        // Room enough, or a discard-new stream (the server refuses new ones instead): nothing.
        assert!(losses(&config(|_| {}), &config(|c| c.max_bytes = 1 << 20), stored).is_empty());
        let new = config(|c| c.discard = DiscardPolicy::New);
        assert!(losses(&new, &config(|c| c.max_bytes = 1000), stored).is_empty());
    }

    #[test]
    fn a_shorter_max_age_and_fewer_subjects_are_losses_too() {
        let live = config(|c| c.subjects = vec!["sea.event.>".into(), "vibespro.event.>".into()]);
        let desired = config(|c| c.max_age = Duration::from_secs(3600));
        assert!(age_shrinks(&live, &desired));
        let stored = Stored {
            messages: 50,
            bytes: 500,
            within_new_age: Some(20),
            on_removed_subjects: Some(7),
        };
        let lost = losses(&live, &desired, stored);
        assert_eq!(lost.len(), 2, "{lost:?}");
        assert!(
            lost[0].contains(
                "would discard 30 of 50 stored messages older than the new max_age: 7d -> 1h"
            ),
            "{lost:?}"
        );
        assert!(
            lost[1].contains("vibespro.event.> (their 7 stored messages stay"),
            "{lost:?}"
        );
        assert!(!age_shrinks(&desired, &live));
    }

    #[test]
    fn names_and_values_are_printed_as_before() {
        let names: Vec<&str> = stream(|_| {}).iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "subjects",
                "storage",
                "retention",
                "discard",
                "replicas",
                "max_age",
                "max_bytes",
                "duplicate_window",
                "max_message_size",
                "placement",
                "mirror"
            ]
        );
        for f in [Field::MaxMessageSize, Field::ConsumerType, Field::AckWait] {
            assert_eq!(
                serde_json::to_value(f).unwrap(),
                serde_json::Value::from(f.as_str())
            );
        }
        let values: Vec<String> = stream(|_| {}).into_iter().map(|(_, v)| v).collect();
        assert_eq!(values[..4], ["a.>,b.>", "file", "limits", "old"]);
        assert_eq!(values[9..], ["-", "-"]);
    }
}
