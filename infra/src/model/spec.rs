//! The stream and consumer spec (`infra/nats/streams.toml`) and its environment overrides.
//!
//! Provisioning, the worker and the tests all start from [`Spec::from_env`], so a value is
//! decided once. The TOML is compiled in: a binary never depends on a file next to it.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use serde::Deserialize;

use crate::env::{self, EnvReader};

pub const ENV_STREAM_REPLICAS: &str = "STREAM_REPLICAS";
pub const ENV_STREAM_MAX_AGE: &str = "STREAM_MAX_AGE";
pub const ENV_STREAM_MAX_BYTES: &str = "STREAM_MAX_BYTES";
pub const ENV_STREAM_DUPLICATE_WINDOW: &str = "STREAM_DUPLICATE_WINDOW";
pub const ENV_STREAM_MAX_MESSAGE_SIZE: &str = "STREAM_MAX_MESSAGE_SIZE";
/// The earlier name of `STREAM_MAX_MESSAGE_SIZE`: refused, naming the new one, so a value set
/// under it is never silently ignored.
pub const ENV_STREAM_MAX_MSG_SIZE_RENAMED: &str = "STREAM_MAX_MSG_SIZE";
pub const ENV_STREAM_PLACEMENT_CLUSTER: &str = "STREAM_PLACEMENT_CLUSTER";
pub const ENV_CONSUMER_GROUP: &str = "CONSUMER_GROUP";
pub const ENV_CONSUMER_DURABLE: &str = "CONSUMER_DURABLE";
pub const ENV_CONSUMER_ACK_WAIT_MS: &str = "CONSUMER_ACK_WAIT_MS";
pub const ENV_CONSUMER_MAX_DELIVER: &str = "CONSUMER_MAX_DELIVER";
pub const ENV_CONSUMER_MAX_ACK_PENDING: &str = "CONSUMER_MAX_ACK_PENDING";
pub const ENV_CONSUMER_FILTER_SUBJECT: &str = "CONSUMER_FILTER_SUBJECT";
/// `true` lets `STREAM_REPLICAS` put the critical streams on fewer than 3 replicas.
pub const ENV_STREAM_ALLOW_FEWER_REPLICAS: &str = "STREAM_ALLOW_FEWER_REPLICAS";

/// The checked-in spec text.
pub const SPEC_TOML: &str = include_str!("../../nats/streams.toml");

/// JetStream's largest replica count.
pub const MAX_REPLICAS: usize = 5;

#[derive(Clone, Debug, PartialEq)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
    /// Gets the worker's durable consumer.
    pub events: bool,
    /// Critical streams keep 3 replicas; only non-critical ones may use 2.
    pub critical: bool,
    pub storage: stream::StorageType,
    pub retention: stream::RetentionPolicy,
    pub discard: stream::DiscardPolicy,
    pub replicas: usize,
    pub max_age: Duration,
    pub max_bytes: i64,
    pub duplicate_window: Duration,
    pub max_message_size: i32,
    /// Place the stream in this cluster (supercluster deployments).
    pub placement_cluster: Option<String>,
    /// A read-only copy of another stream (federation adds these; see `federation.rs`).
    pub mirror: Option<MirrorSpec>,
}

/// The stream a mirror copies, and the JetStream API prefix to reach it when it lives in
/// another domain (`$JS.<domain>.API`).
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorSpec {
    pub stream: String,
    pub api_prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerSpec {
    pub group: String,
    /// Explicit durable name; the group name when `None`.
    pub durable: Option<String>,
    pub ack_wait: Duration,
    pub max_deliver: i64,
    pub max_ack_pending: i64,
    /// Waits before the 2nd, 3rd, ... redelivery.
    pub redelivery_backoff: Vec<Duration>,
    /// Only messages on these subjects; the whole stream when `None` (drills scope a group to
    /// their own events this way).
    pub filter_subject: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// What provisioning creates and keeps in line.
    pub streams: Vec<StreamSpec>,
    pub consumer: ConsumerSpec,
    /// The drills' own stream: the event streams' settings on subjects no production consumer
    /// reads. Created and removed by the drills, never by provisioning.
    pub drill: StreamSpec,
    /// Whether provisioning creates the worker group's durable on every event stream.
    pub worker_durables: bool,
}

impl Spec {
    /// The checked-in spec, without environment overrides.
    pub fn builtin() -> Spec {
        parse_toml(SPEC_TOML).unwrap_or_else(|e| panic!("infra/nats/streams.toml is invalid: {e}"))
    }

    /// The checked-in spec with the environment's overrides; problems are recorded in `env`.
    pub fn from_env(env: &mut EnvReader) -> Spec {
        let mut spec = Spec::builtin();
        let replicas = env.parse(
            ENV_STREAM_REPLICAS,
            env::parse_u64_in(1, MAX_REPLICAS as u64),
        );
        let allow_fewer = env
            .parse(ENV_STREAM_ALLOW_FEWER_REPLICAS, env::parse_bool)
            .unwrap_or(false);
        let max_age = env.parse(ENV_STREAM_MAX_AGE, env::parse_duration);
        let max_bytes = env.parse(ENV_STREAM_MAX_BYTES, |s| {
            env::parse_bytes(s).and_then(|b| fits::<i64>(b, "JetStream"))
        });
        let dup = env.parse(ENV_STREAM_DUPLICATE_WINDOW, env::parse_duration);
        let msg_size = env.parse(ENV_STREAM_MAX_MESSAGE_SIZE, |s| {
            env::parse_bytes(s).and_then(|b| fits::<i32>(b, "JetStream"))
        });
        if let Some(old) = env.string(ENV_STREAM_MAX_MSG_SIZE_RENAMED) {
            env.reject(
                ENV_STREAM_MAX_MSG_SIZE_RENAMED,
                old,
                format!("renamed {ENV_STREAM_MAX_MESSAGE_SIZE} (async-nats' and the server's name); set that instead"),
            );
        }
        let placement = env.parse(ENV_STREAM_PLACEMENT_CLUSTER, env::parse_name);
        if let Some(r) = replicas.filter(|r| *r < 3 && !allow_fewer) {
            let critical: Vec<&str> = spec
                .streams
                .iter()
                .filter(|s| s.critical)
                .map(|s| s.name.as_str())
                .collect();
            env.reject(
                ENV_STREAM_REPLICAS,
                r.to_string(),
                format!(
                    "{} are critical and keep 3 replicas (it applies to every stream); set {ENV_STREAM_ALLOW_FEWER_REPLICAS}=true to run them on {r} anyway (development, or a drill meant to fail)",
                    critical.join(", ")
                ),
            );
        }
        let drill_age = spec.drill.max_age;
        for s in spec.streams.iter_mut().chain([&mut spec.drill]) {
            if let Some(r) = replicas {
                s.replicas = r as usize;
            }
            s.max_age = max_age.unwrap_or(s.max_age);
            s.max_bytes = max_bytes.unwrap_or(s.max_bytes);
            s.duplicate_window = dup.unwrap_or(s.duplicate_window);
            s.max_message_size = msg_size.unwrap_or(s.max_message_size);
            if placement.is_some() {
                s.placement_cluster = placement.clone();
            }
        }
        // What an interrupted drill leaves must still expire soon (and the server refuses a
        // duplicate window longer than the age).
        spec.drill.max_age = drill_age;
        spec.drill.duplicate_window = spec.drill.duplicate_window.min(drill_age);
        if let Some(s) = spec
            .streams
            .iter()
            .find(|s| !s.max_age.is_zero() && s.duplicate_window > s.max_age)
        {
            // Blame what was set: the window, else the age that made it too long.
            let (var, value, reason) = match (dup, max_age) {
                (None, Some(a)) => (
                    ENV_STREAM_MAX_AGE,
                    a,
                    format!(
                        "shorter than {}'s duplicate window {}; set {ENV_STREAM_DUPLICATE_WINDOW} to {} or less as well",
                        s.name,
                        env::format_duration(s.duplicate_window),
                        env::format_duration(a)
                    ),
                ),
                _ => (
                    ENV_STREAM_DUPLICATE_WINDOW,
                    s.duplicate_window,
                    format!(
                        "longer than {}'s max_age {}",
                        s.name,
                        env::format_duration(s.max_age)
                    ),
                ),
            };
            env.reject(var, env::format_duration(value), reason);
        }
        let c = &mut spec.consumer;
        c.group = env
            .parse(ENV_CONSUMER_GROUP, env::parse_name)
            .unwrap_or_else(|| c.group.clone());
        c.durable = env
            .parse(ENV_CONSUMER_DURABLE, env::parse_name)
            .or(c.durable.take());
        c.ack_wait = env
            .parse(ENV_CONSUMER_ACK_WAIT_MS, env::parse_millis(100))
            .unwrap_or(c.ack_wait);
        c.max_deliver = env
            .parse(ENV_CONSUMER_MAX_DELIVER, env::parse_u64_in(1, 10_000))
            .map_or(c.max_deliver, |n| n as i64);
        c.max_ack_pending = env
            .parse(
                ENV_CONSUMER_MAX_ACK_PENDING,
                env::parse_u64_in(1, 1_000_000),
            )
            .map_or(c.max_ack_pending, |n| n as i64);
        c.filter_subject = env
            .parse(ENV_CONSUMER_FILTER_SUBJECT, parse_subject)
            .or(c.filter_subject.take());
        if let Some(filter) = spec.consumer.filter_subject.clone() {
            if spec.matching(spec.consumable()).next().is_none() {
                let streams: Vec<String> = spec
                    .consumable()
                    .map(|s| format!("{} ({})", s.name, s.subjects.join(", ")))
                    .collect();
                env.reject(
                    ENV_CONSUMER_FILTER_SUBJECT,
                    filter,
                    format!(
                        "matches no subject of any stream a group consumes: {}",
                        streams.join("; ")
                    ),
                );
            }
        }
        spec
    }

    /// Only the drill stream, provisioned without the worker group's durable (each drill binds
    /// its own group): what a drill creates on a cluster, mirrors included.
    pub fn drills_only(&self) -> Spec {
        let mut drill = self.drill.clone();
        drill.events = true;
        Spec {
            streams: vec![drill.clone()],
            consumer: self.consumer.clone(),
            drill,
            worker_durables: false,
        }
    }

    /// The streams of the spec whose subjects `filter` can match (all when there is no filter).
    pub fn matching<'a>(
        &'a self,
        streams: impl Iterator<Item = &'a StreamSpec>,
    ) -> impl Iterator<Item = &'a StreamSpec> {
        let filter = self.consumer.filter_subject.clone();
        streams.filter(move |s| {
            filter.as_deref().is_none_or(|f| {
                s.subjects
                    .iter()
                    .any(|subject| subjects_overlap(f, subject))
            })
        })
    }

    pub fn stream(&self, name: &str) -> Option<&StreamSpec> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The streams the worker consumes and provisioning gives the group's durable.
    pub fn event_streams(&self) -> impl Iterator<Item = &StreamSpec> {
        self.streams.iter().filter(|s| s.events)
    }

    /// Every stream a worker may consume: the event streams and the drill stream.
    pub fn consumable(&self) -> impl Iterator<Item = &StreamSpec> {
        self.event_streams().chain([&self.drill])
    }
}

impl StreamSpec {
    /// The JetStream configuration to create or update the stream with.
    pub fn config(&self) -> stream::Config {
        let mirror = self.mirror.as_ref().map(|m| stream::Source {
            name: m.stream.clone(),
            external: m.api_prefix.as_ref().map(|api| stream::External {
                api_prefix: api.clone(),
                delivery_prefix: None,
            }),
            ..Default::default()
        });
        stream::Config {
            name: self.name.clone(),
            // A mirror takes no subjects of its own.
            subjects: if mirror.is_some() {
                Vec::new()
            } else {
                self.subjects.clone()
            },
            mirror,
            storage: self.storage,
            retention: self.retention,
            discard: self.discard,
            num_replicas: self.replicas,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            max_messages: -1,
            max_messages_per_subject: -1,
            max_consumers: -1,
            duplicate_window: self.duplicate_window,
            max_message_size: self.max_message_size,
            placement: self.placement_cluster.as_ref().map(|c| stream::Placement {
                cluster: Some(c.clone()),
                tags: Vec::new(),
            }),
            ..Default::default()
        }
    }
}

impl ConsumerSpec {
    pub fn durable_name(&self) -> &str {
        self.durable.as_deref().unwrap_or(&self.group)
    }

    /// The server's backoff list: `ack_wait` first (the server would otherwise replace ack_wait
    /// with the first entry), then the redelivery waits, truncated so `max_deliver` exceeds it.
    pub fn backoff(&self) -> Vec<Duration> {
        let max_len = usize::try_from(self.max_deliver - 1).unwrap_or(0);
        if max_len < 2 {
            // One wait only: plain ack_wait says the same without a backoff list.
            return Vec::new();
        }
        std::iter::once(self.ack_wait)
            .chain(self.redelivery_backoff.iter().copied())
            .take(max_len)
            .collect()
    }

    /// The durable pull consumer's configuration.
    pub fn config(&self) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.durable_name().to_owned()),
            description: Some(format!("sea-mq-worker group {}", self.group)),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            replay_policy: consumer::ReplayPolicy::Instant,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            max_ack_pending: self.max_ack_pending,
            backoff: self.backoff(),
            filter_subject: self.filter_subject.clone().unwrap_or_default(),
            ..Default::default()
        }
    }
}

/// A NATS subject: dot-separated tokens, no spaces, wildcards `*` and a final `>` allowed.
fn parse_subject(s: &str) -> Result<String, String> {
    let tokens: Vec<&str> = s.split('.').collect();
    let bad_token = |(i, t): (usize, &&str)| {
        t.is_empty()
            || t.chars().any(char::is_whitespace)
            || (t.contains('>') && (*t != ">" || i + 1 != tokens.len()))
            || (t.contains('*') && *t != "*")
    };
    if tokens.iter().enumerate().any(bad_token) {
        return Err("not a subject: use dot-separated tokens like sea.event.orders.>".into());
    }
    Ok(s.to_owned())
}

/// Whether some subject matches both `a` and `b` (each may hold `*` and a final `>`).
pub fn subjects_overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (None, None) => return true,
            (Some(x), Some(y)) if x == y || *x == "*" || *y == "*" => i += 1,
            _ => return false,
        }
    }
}

/// `n` as the integer type a JetStream field holds, or why it does not fit.
fn fits<T: TryFrom<u64>>(n: u64, what: &str) -> Result<T, String> {
    T::try_from(n).map_err(|_| format!("{n} is more than {what} can hold"))
}

// ---- TOML ------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    stream_defaults: RawStream,
    streams: Vec<RawStream>,
    drill_stream: RawStream,
    consumer: RawConsumer,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    name: Option<String>,
    subjects: Option<Vec<String>>,
    events: Option<bool>,
    critical: Option<bool>,
    storage: Option<String>,
    retention: Option<String>,
    discard: Option<String>,
    replicas: Option<usize>,
    max_age: Option<String>,
    max_bytes: Option<String>,
    duplicate_window: Option<String>,
    max_message_size: Option<String>,
    placement_cluster: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsumer {
    group: String,
    durable: Option<String>,
    ack_wait: String,
    max_deliver: i64,
    max_ack_pending: i64,
    #[serde(default)]
    redelivery_backoff: Vec<String>,
}

/// Parses and validates a spec text.
pub(crate) fn parse_toml(text: &str) -> Result<Spec, String> {
    let raw: RawSpec = toml::from_str(text).map_err(|e| e.to_string())?;
    let streams = raw
        .streams
        .iter()
        .map(|s| parse_stream(s, &raw.stream_defaults))
        .collect::<Result<Vec<_>, _>>()?;
    let mut drill = parse_stream(&raw.drill_stream, &raw.stream_defaults)?;
    drill.events = true;
    drill.duplicate_window = drill.duplicate_window.min(drill.max_age);
    let c = raw.consumer;
    let consumer = ConsumerSpec {
        group: c.group,
        durable: c.durable,
        ack_wait: env::parse_duration(&c.ack_wait)
            .map_err(|e| format!("consumer ack_wait: {e}"))?,
        max_deliver: c.max_deliver,
        max_ack_pending: c.max_ack_pending,
        redelivery_backoff: c
            .redelivery_backoff
            .iter()
            .map(|d| {
                env::parse_duration(d).map_err(|e| format!("consumer redelivery_backoff: {e}"))
            })
            .collect::<Result<_, _>>()?,
        filter_subject: None,
    };
    Ok(Spec {
        streams,
        consumer,
        drill,
        worker_durables: true,
    })
}

fn parse_stream(s: &RawStream, d: &RawStream) -> Result<StreamSpec, String> {
    let name = s.name.clone().ok_or("a stream has no name")?;
    let ctx = |e: String| format!("stream {name}: {e}");
    macro_rules! pick {
        ($field:ident) => {
            s.$field
                .clone()
                .or_else(|| d.$field.clone())
                .ok_or_else(|| ctx(format!("no {}", stringify!($field))))?
        };
    }
    let bytes = |v: String| env::parse_bytes(&v).map_err(ctx);
    let spec = StreamSpec {
        subjects: s
            .subjects
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ctx("no subjects".into()))?,
        events: s.events.unwrap_or(false),
        critical: pick!(critical),
        storage: match pick!(storage).as_str() {
            "file" => stream::StorageType::File,
            "memory" => stream::StorageType::Memory,
            other => return Err(ctx(format!("storage `{other}`: use file or memory"))),
        },
        retention: match pick!(retention).as_str() {
            "limits" => stream::RetentionPolicy::Limits,
            "interest" => stream::RetentionPolicy::Interest,
            "workqueue" => stream::RetentionPolicy::WorkQueue,
            other => {
                return Err(ctx(format!(
                    "retention `{other}`: use limits, interest or workqueue"
                )))
            }
        },
        discard: match pick!(discard).as_str() {
            "old" => stream::DiscardPolicy::Old,
            "new" => stream::DiscardPolicy::New,
            other => return Err(ctx(format!("discard `{other}`: use old or new"))),
        },
        replicas: pick!(replicas),
        max_age: env::parse_duration(&pick!(max_age)).map_err(ctx)?,
        max_bytes: fits(bytes(pick!(max_bytes))?, "JetStream").map_err(ctx)?,
        duplicate_window: env::parse_duration(&pick!(duplicate_window)).map_err(ctx)?,
        max_message_size: fits(bytes(pick!(max_message_size))?, "JetStream").map_err(ctx)?,
        placement_cluster: s.placement_cluster.clone(),
        mirror: None,
        name,
    };
    if spec.critical && spec.replicas < 3 {
        return Err(format!(
            "stream {}: critical streams need 3 replicas; mark it `critical = false` to use {}",
            spec.name, spec.replicas
        ));
    }
    if !(1..=MAX_REPLICAS).contains(&spec.replicas) {
        return Err(format!(
            "stream {}: replicas must be 1 to {MAX_REPLICAS}",
            spec.name
        ));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked_token_by_token() {
        for ok in ["sea.event.>", "sea.*.orders", "a"] {
            assert_eq!(parse_subject(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "",
            "sea..event",
            "sea.>.x",
            "sea.ev*",
            "sea event",
            "sea.event.",
        ] {
            assert!(parse_subject(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn builtin_spec_has_the_contract_streams() {
        let spec = Spec::builtin();
        let names: Vec<&str> = spec.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SEA_EVENTS",
                "VIBESPRO_EVENTS",
                "SEA_DLQ",
                "SEA_MAX_DELIVERIES"
            ]
        );
        let sea = spec.stream("SEA_EVENTS").unwrap();
        assert_eq!(
            (sea.replicas, sea.storage, sea.subjects.as_slice()),
            (
                3,
                stream::StorageType::File,
                &["sea.event.>".to_owned()][..]
            )
        );
        assert_eq!(
            spec.stream("SEA_DLQ").unwrap().subjects,
            ["sea.dlq.>", "vibespro.dlq.>"]
        );
        assert_eq!(spec.event_streams().count(), 2);
        assert_eq!(spec.consumer.durable_name(), "sea-mq-worker");
        assert_eq!(
            spec.consumer.backoff(),
            [30, 60, 300, 900].map(Duration::from_secs)
        );
    }

    #[test]
    fn env_overrides_apply_and_backoff_follows_max_deliver() {
        let mut env = EnvReader::from_pairs([
            ("STREAM_REPLICAS", "1"),
            ("STREAM_ALLOW_FEWER_REPLICAS", "true"),
            ("STREAM_MAX_AGE", "1d"),
            ("STREAM_DUPLICATE_WINDOW", "1h"),
            ("CONSUMER_GROUP", "billing"),
            ("CONSUMER_ACK_WAIT_MS", "5000"),
            ("CONSUMER_MAX_DELIVER", "3"),
        ]);
        let spec = Spec::from_env(&mut env);
        env.finish().unwrap();
        assert!(spec
            .streams
            .iter()
            .all(|s| s.replicas == 1 && s.max_age == Duration::from_secs(86_400)));
        assert_eq!(spec.consumer.durable_name(), "billing");
        assert_eq!(
            spec.consumer.backoff(),
            [Duration::from_secs(5), Duration::from_secs(60)]
        );
        let config = spec.consumer.config();
        assert_eq!(
            (config.ack_wait, config.max_deliver),
            (Duration::from_secs(5), 3)
        );
    }

    #[test]
    fn every_bad_override_is_reported() {
        let mut env = EnvReader::from_pairs([
            ("STREAM_REPLICAS", "banana"),
            ("CONSUMER_MAX_DELIVER", "-7"),
            ("STREAM_DUPLICATE_WINDOW", "30d"),
            ("CONSUMER_GROUP", "a.b"),
        ]);
        Spec::from_env(&mut env);
        let text = env.finish().unwrap_err().to_string();
        let reported = |var: &str| text.contains(var);
        assert!(reported("STREAM_REPLICAS=\"banana\""), "{text}");
        assert!(reported("CONSUMER_MAX_DELIVER=\"-7\""), "{text}");
        assert!(reported("STREAM_DUPLICATE_WINDOW"), "{text}");
        assert!(reported("CONSUMER_GROUP=\"a.b\""), "{text}");
    }

    fn errors(pairs: &[(&str, &str)]) -> String {
        let mut env = EnvReader::from_pairs(pairs.iter().copied());
        Spec::from_env(&mut env);
        env.finish()
            .map_or_else(|e| e.to_string(), |()| String::new())
    }

    #[test]
    fn fewer_replicas_for_critical_streams_need_an_explicit_yes() {
        let text = errors(&[("STREAM_REPLICAS", "1")]);
        assert!(
            text.contains(
                "STREAM_REPLICAS=\"1\": SEA_EVENTS, VIBESPRO_EVENTS, SEA_DLQ are critical"
            ) && text.contains("STREAM_ALLOW_FEWER_REPLICAS=true"),
            "{text}"
        );
        assert_eq!(errors(&[("STREAM_REPLICAS", "5")]), "");
        let mut env = EnvReader::from_pairs([
            ("STREAM_REPLICAS", "1"),
            ("STREAM_ALLOW_FEWER_REPLICAS", "true"),
        ]);
        let spec = Spec::from_env(&mut env);
        env.finish().unwrap();
        assert!(spec.streams.iter().all(|s| s.replicas == 1));
        assert_eq!(spec.drill.replicas, 1, "drills run on what production runs");
    }

    #[test]
    fn values_the_server_cannot_hold_are_refused_not_clamped_or_wrapped() {
        let text = errors(&[
            ("STREAM_MAX_AGE", "200000d"),
            ("STREAM_MAX_MESSAGE_SIZE", "3GiB"),
            ("STREAM_MAX_BYTES", "16000000TiB"),
        ]);
        assert!(text.starts_with("3 invalid"), "{text}");
        assert!(
            text.contains("STREAM_MAX_AGE=\"200000d\": too long"),
            "{text}"
        );
        assert!(
            text.contains(
                "STREAM_MAX_MESSAGE_SIZE=\"3GiB\": 3221225472 is more than JetStream can hold"
            ),
            "{text}"
        );
        assert!(text.contains("STREAM_MAX_BYTES=\"16000000TiB\""), "{text}");
    }

    #[test]
    fn a_too_short_max_age_is_blamed_not_the_window_nobody_set() {
        let text = errors(&[("STREAM_MAX_AGE", "30m")]);
        assert!(
            text.contains("STREAM_MAX_AGE=\"30m\": shorter than SEA_EVENTS's duplicate window 2h")
                && !text.contains("STREAM_DUPLICATE_WINDOW="),
            "{text}"
        );
        assert_eq!(text.matches("STREAM_").count(), 2, "reported once: {text}");
        let text = errors(&[("STREAM_DUPLICATE_WINDOW", "30d")]);
        assert!(
            text.contains("STREAM_DUPLICATE_WINDOW=\"30d\": longer than"),
            "{text}"
        );
    }

    #[test]
    fn a_filter_no_stream_can_match_is_refused_naming_the_streams() {
        let text = errors(&[("CONSUMER_FILTER_SUBJECT", "orders.>")]);
        assert!(
            text.contains("CONSUMER_FILTER_SUBJECT=\"orders.>\": matches no subject of any stream")
                && text.contains("SEA_EVENTS (sea.event.>)"),
            "{text}"
        );
        let mut env = EnvReader::from_pairs([("CONSUMER_FILTER_SUBJECT", "sea.event.orders.*")]);
        let spec = Spec::from_env(&mut env);
        env.finish().unwrap();
        let names: Vec<&str> = spec
            .matching(spec.event_streams())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["SEA_EVENTS"], "never VIBESPRO_EVENTS");
    }

    #[test]
    fn the_old_name_of_the_message_size_is_refused_with_the_new_one() {
        let text = errors(&[("STREAM_MAX_MSG_SIZE", "2MiB")]);
        assert!(text.contains("renamed STREAM_MAX_MESSAGE_SIZE"), "{text}");
    }

    #[test]
    fn subjects_overlap_with_wildcards() {
        for (a, b) in [
            ("sea.event.>", "sea.event.orders"),
            ("sea.*.orders", "sea.event.>"),
            ("*.dlq.>", "sea.dlq.x.y"),
            ("a.b", "a.b"),
            (">", "x"),
        ] {
            assert!(
                subjects_overlap(a, b) && subjects_overlap(b, a),
                "{a} ~ {b}"
            );
        }
        for (a, b) in [
            ("sea.event.>", "vibespro.event.x"),
            ("a.b", "a.b.c"),
            ("a.*", "a"),
            ("sea.drill.>", "sea.event.>"),
        ] {
            assert!(
                !subjects_overlap(a, b) && !subjects_overlap(b, a),
                "{a} !~ {b}"
            );
        }
    }

    #[test]
    fn the_drill_stream_takes_the_event_streams_settings_on_its_own_subjects() {
        let spec = Spec::builtin();
        let (drill, events) = (&spec.drill, spec.stream("SEA_EVENTS").unwrap());
        assert_eq!(drill.name, "SEA_DRILLS");
        assert_eq!(drill.subjects, ["sea.drill.>"]);
        assert!(drill.events);
        assert_eq!(
            (drill.replicas, drill.storage, drill.max_bytes),
            (events.replicas, events.storage, events.max_bytes)
        );
        assert_eq!(drill.max_age, Duration::from_secs(3600));
        assert_eq!(
            drill.duplicate_window, drill.max_age,
            "the server refuses a longer window"
        );
        assert!(spec.stream("SEA_DRILLS").is_none(), "never provisioned");
        for s in spec.consumable() {
            assert!(
                !s.subjects
                    .iter()
                    .any(|x| subjects_overlap(x, "sea.drill.>"))
                    || s.name == "SEA_DRILLS",
                "{} would capture drill traffic",
                s.name
            );
        }
    }

    #[test]
    fn critical_streams_refuse_two_replicas() {
        let text = SPEC_TOML.replace(
            "[[streams]]\nname = \"SEA_DLQ\"",
            "[[streams]]\nname = \"SEA_DLQ\"\nreplicas = 2",
        );
        let err = parse_toml(&text).unwrap_err();
        assert!(
            err.contains("stream SEA_DLQ: critical streams need 3 replicas"),
            "{err}"
        );
        assert!(parse_toml("nonsense = 1").is_err());
    }
}
