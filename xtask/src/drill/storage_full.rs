//! `storage-full`: storage runs out, twice, under the drills' steady load and workers.
//!
//! 1. A stream reaches its byte limit with `discard: new` (a small R3 stream of its own): its
//!    publishers must get a clear error fast, the load on the drill stream and the workers go on,
//!    and once the limit is raised publishing resumes; nothing acknowledged is lost.
//! 2. A server reaches `max_file_store`: a stream of one replica fills its server. Publishes
//!    there must fail fast and clearly, the replicated streams (the drill stream, with a replica
//!    on that server) and the workers go on, and publishing resumes once the limit is raised
//!    (the config reloaded), and again once space is freed (the stream purged) after the limit
//!    was lowered back.
//!
//! The drill needs servers with little storage (`max_file_store` 64MB, so filling one takes a
//! second, not minutes), so it always runs on a throw-away `ha` cluster of its own, on free
//! ports. Its publisher backs off on a storage error (250 ms, doubling to 2 s) instead of
//! retrying at once: the drill checks it makes no more than a few attempts a second.

use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, stream};
use sea_infra::client::observe;
use sea_infra::deployment::ports;
use sea_infra::model::topology::{Profile, Topology};
use serde_json::json;

use super::session::{Ctx, Options, Session};
use super::Outcome;

/// Every server's `max_file_store` on the drill's own cluster.
pub const SERVER_STORE: &str = "64MB";
/// What the limit is raised to.
const RAISED_STORE: &str = "256MB";
/// The drill stream's `max_bytes` here (reserved on each replica's server, so it must fit).
const DRILL_STREAM_BYTES: i64 = 8 << 20;
/// The limited stream's `max_bytes`, and what it is raised to.
const LIMIT_BYTES: i64 = 64 << 10;
const RAISED_LIMIT_BYTES: i64 = 1 << 20;
/// An error must come back within this: anything slower is a hang.
const FAST: Duration = Duration::from_secs(1);
/// How long the publisher keeps trying while storage is full, to count its attempts.
const RETRY_WINDOW: Duration = Duration::from_secs(5);
/// Attempts a second allowed while full: more is a retry storm.
const MAX_ATTEMPTS_PER_SEC: f64 = 4.0;

/// The drill's cluster: `ha` on free ports, every server with [`SERVER_STORE`] of file store.
pub fn topology() -> Topology {
    let mut t = Topology::for_profile(Profile::Ha).remap_ports(ports::free_port);
    t.settings.max_file_store = SERVER_STORE.to_owned();
    t
}

/// A publisher to one stream: unique ids, each attempt awaited, acks recorded, backing off on
/// storage errors.
struct Filler {
    js: jetstream::Context,
    subject: String,
    payload: Vec<u8>,
    next: u64,
    acked: Vec<String>,
    attempts: u64,
}

/// One refused publish: how long it took and what the client was told.
struct Refusal {
    took: Duration,
    error: String,
}

impl Filler {
    fn new(js: jetstream::Context, subject: String, payload_bytes: usize) -> Filler {
        Filler {
            js,
            subject,
            payload: vec![b'x'; payload_bytes],
            next: 0,
            acked: Vec::new(),
            attempts: 0,
        }
    }

    /// One publish of the next event (a refused one is tried again under the same id).
    async fn attempt(&mut self) -> Result<Duration, Refusal> {
        let id = format!("{}-{}", self.subject, self.next);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let began = Instant::now();
        self.attempts += 1;
        let subject = format!("{}.{}", self.subject, self.next % 4);
        let sent = self
            .js
            .publish_with_headers(subject, headers, self.payload.clone().into())
            .await;
        let result = match sent {
            Err(e) => Err(e.to_string()),
            Ok(ack) => match tokio::time::timeout(Duration::from_secs(5), ack).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer within 5s".to_owned()),
            },
        };
        let took = began.elapsed();
        match result {
            Ok(()) => {
                self.acked.push(id);
                self.next += 1;
                Ok(took)
            }
            Err(error) => Err(Refusal { took, error }),
        }
    }

    /// Publishes until one is refused (bounded by `bound`); the refusal.
    async fn until_refused(&mut self, bound: Duration) -> Option<Refusal> {
        let began = Instant::now();
        while began.elapsed() < bound {
            if let Err(r) = self.attempt().await {
                return Some(r);
            }
        }
        None
    }

    /// Keeps trying for `window` with backoff: attempts made, accepted, the slowest refusal.
    async fn retry_for(&mut self, window: Duration) -> (u64, u64, Duration) {
        let (began, before) = (Instant::now(), self.attempts);
        let (mut accepted, mut slowest, mut delay) =
            (0, Duration::ZERO, Duration::from_millis(250));
        while began.elapsed() < window {
            match self.attempt().await {
                Ok(_) => accepted += 1,
                Err(r) => {
                    slowest = slowest.max(r.took);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        (self.attempts - before, accepted, slowest)
    }

    /// Tries with backoff until a publish is accepted; how long that took.
    async fn until_accepted(&mut self, bound: Duration) -> Option<Duration> {
        let (began, mut delay) = (Instant::now(), Duration::from_millis(100));
        while began.elapsed() < bound {
            if self.attempt().await.is_ok() {
                return Some(began.elapsed());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
        None
    }

    /// Acknowledged ids the stream does not hold.
    async fn missing(&self, stream: &str) -> anyhow::Result<usize> {
        let ids = observe::read_ids(
            &self.js,
            stream,
            &format!("{}.>", self.subject),
            1,
            Duration::from_secs(60),
        )
        .await?;
        let held: std::collections::HashSet<&str> = ids.iter().map(|(_, id)| id.as_str()).collect();
        Ok(self
            .acked
            .iter()
            .filter(|id| !held.contains(id.as_str()))
            .count())
    }
}

pub async fn run(ctx: Ctx<'_>) -> anyhow::Result<Outcome> {
    let opts = Options {
        stream_max_bytes: Some(DRILL_STREAM_BYTES),
        ..Options::workers(2)
    };
    let mut s = Session::start_with(ctx, "storage-full", ctx.servers_except(&[]), opts).await?;
    let run = s.subject.trim_start_matches("sea.drill.").to_owned();
    limited_stream(&mut s, &run).await?;
    full_server(&mut s, &run).await?;
    Ok(s.finish("storage-full").await)
}

/// Part 1: a stream with `discard: new` at its byte limit.
async fn limited_stream(s: &mut Session<'_>, run: &str) -> anyhow::Result<()> {
    let name = format!("SEA_DRILL_LIMIT_{}", run.replace('-', "_").to_uppercase());
    let subject = format!("sea.drill-limit.{run}");
    let js = s.js.clone();
    let mut st = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject}.>")],
            num_replicas: 3,
            max_bytes: LIMIT_BYTES,
            discard: stream::DiscardPolicy::New,
            max_age: Duration::from_secs(3600),
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .with_context(|| format!("create {name}"))?;
    s.say(&format!(
        "{name}: {} KiB, discard new; publishing 1 KiB events until it is full",
        LIMIT_BYTES >> 10
    ));
    let mut p = Filler::new(js.clone(), subject, 1024);
    let refused = p.until_refused(Duration::from_secs(60)).await;
    judge_refusal(
        s,
        "stream limit",
        &refused,
        "maximum bytes exceeded",
        p.acked.len(),
    );
    judge_meanwhile(s, "stream limit", &mut p).await;

    s.say(&format!(
        "{name}: raising max_bytes to {} KiB",
        RAISED_LIMIT_BYTES >> 10
    ));
    let mut config = st.info().await?.config.clone();
    config.max_bytes = RAISED_LIMIT_BYTES;
    js.update_stream(&config)
        .await
        .context("raise the stream's limit")?;
    let resumed = p.until_accepted(Duration::from_secs(30)).await;
    judge_resumed(s, "stream limit", "the limit is raised", resumed);
    let missing = p.missing(&name).await?;
    s.check(
        "stream limit: nothing acknowledged lost",
        missing == 0,
        format!(
            "{} acknowledged, {missing} missing from {name}",
            p.acked.len()
        ),
    );
    let _ = js.delete_stream(&name).await;
    Ok(())
}

/// Part 2: a server at `max_file_store`, filled through a stream of one replica.
async fn full_server(s: &mut Session<'_>, run: &str) -> anyhow::Result<()> {
    let name = format!("SEA_DRILL_FILL_{}", run.replace('-', "_").to_uppercase());
    let subject = format!("sea.drill-fill.{run}");
    let js = s.js.clone();
    let mut st = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject}.>")],
            num_replicas: 1,
            max_age: Duration::from_secs(3600),
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .with_context(|| format!("create {name}"))?;
    let server = st
        .info()
        .await?
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .unwrap_or_default();
    s.figure("full_server", server.clone());
    s.say(&format!(
        "{name} (1 replica, on {server}): 256 KiB events until {server} reaches its {SERVER_STORE}"
    ));
    let mut p = Filler::new(js.clone(), subject, 256 << 10);
    let refused = p.until_refused(Duration::from_secs(120)).await;
    s.figure("filled_bytes", p.acked.len() as u64 * (256 << 10));
    judge_refusal(
        s,
        "server store",
        &refused,
        "insufficient resources",
        p.acked.len(),
    );
    judge_meanwhile(s, "server store", &mut p).await;
    consumer_off_the_full_server(s, &server).await;

    s.say(&format!(
        "raising every server's max_file_store to {RAISED_STORE} (config reload)"
    ));
    s.dep
        .blocking(|d| d.set_max_file_store(RAISED_STORE))
        .await
        .context("raise max_file_store")?;
    let resumed = p.until_accepted(Duration::from_secs(30)).await;
    judge_resumed(s, "server store", "the limit is raised", resumed);
    let missing = p.missing(&name).await?;
    s.check(
        "server store: nothing acknowledged lost",
        missing == 0,
        format!(
            "{} acknowledged, {missing} missing from {name}",
            p.acked.len()
        ),
    );

    s.say(&format!(
        "lowering max_file_store to {SERVER_STORE} again, then freeing space (purging {name})"
    ));
    s.dep
        .blocking(|d| d.set_max_file_store(SERVER_STORE))
        .await
        .context("lower max_file_store")?;
    let refused_again = p.until_refused(Duration::from_secs(60)).await;
    s.check(
        "server store: refused again at the lowered limit",
        refused_again.is_some(),
        refused_again
            .as_ref()
            .map_or("every publish accepted".to_owned(), |r| r.error.clone()),
    );
    let purged = st.purge().await.context("purge the full stream")?.purged;
    s.figure("purged_messages", purged);
    let resumed = p.until_accepted(Duration::from_secs(30)).await;
    judge_resumed(s, "server store", "space is freed", resumed);
    let _ = js.delete_stream(&name).await;
    let _ = s.dep.blocking(|d| d.set_max_file_store(SERVER_STORE)).await;
    Ok(())
}

/// The first refusal: fast and clear.
fn judge_refusal(
    s: &mut Session<'_>,
    part: &str,
    refused: &Option<Refusal>,
    want: &str,
    acked: usize,
) {
    let key = part.replace(' ', "_");
    s.figure(&format!("{key}_acked_before_full"), acked);
    match refused {
        Some(r) => {
            s.figure(&format!("{key}_error"), r.error.clone());
            s.figure(&format!("{key}_error_ms"), r.took.as_millis() as u64);
            s.check(
                &format!("{part}: publishes are refused fast with a clear error"),
                r.took <= FAST && r.error.contains(want),
                format!(
                    "`{}` after {} ms (bound {FAST:?})",
                    r.error,
                    r.took.as_millis()
                ),
            );
        }
        None => s.check(
            &format!("{part}: publishes are refused fast with a clear error"),
            false,
            "never refused".to_owned(),
        ),
    }
}

/// While storage is full: the publisher's attempts (no storm, each refusal fast), and the
/// drill stream's load and the workers going on.
async fn judge_meanwhile(s: &mut Session<'_>, part: &str, p: &mut Filler) {
    let key = part.replace(' ', "_");
    let acks_before = s.load().snapshot().acked.len();
    let (attempts, accepted, slowest) = p.retry_for(RETRY_WINDOW).await;
    let rate = attempts as f64 / RETRY_WINDOW.as_secs_f64();
    s.figure(&format!("{key}_attempts_while_full"), attempts);
    s.check(
        &format!("{part}: no retry storm, every refusal fast"),
        accepted == 0 && rate <= MAX_ATTEMPTS_PER_SEC && slowest <= FAST,
        format!(
            "{attempts} attempts in {RETRY_WINDOW:?} ({rate:.1}/s, bound {MAX_ATTEMPTS_PER_SEC}/s), {accepted} accepted, slowest refusal {} ms",
            slowest.as_millis()
        ),
    );
    let going = observe::time_until(Duration::from_secs(30), || async {
        s.load().snapshot().acked.len() >= acks_before + 200
    })
    .await;
    s.check(
        &format!("{part}: the drill stream keeps accepting writes"),
        going.is_some(),
        match going {
            Some(_) => format!(
                "{} more acks while full",
                s.load().snapshot().acked.len() - acks_before
            ),
            None => "fewer than 200 more acks within 30s".to_owned(),
        },
    );
    if part == "stream limit" {
        let consuming = inbox_grows(s, Duration::from_secs(30)).await;
        s.check(
            &format!("{part}: the workers keep consuming"),
            consuming.is_some(),
            consuming.map_or(
                "fewer than 200 more inbox rows within 30s".to_owned(),
                |n| format!("{n} more inbox rows"),
            ),
        );
    }
}

/// Whether the inbox grows by 200 rows within `bound`: how many it grew by.
async fn inbox_grows(s: &Session<'_>, bound: Duration) -> Option<usize> {
    let before = s.inbox_ids().await.len();
    observe::time_until(bound, || async {
        s.inbox_ids().await.len() >= before + 200
    })
    .await?;
    Some(s.inbox_ids().await.len() - before)
}

/// With a server full, the workers' consumer keeps delivering unless that server leads it:
/// measured (nats-server 2.15.1), such a leader sees no new messages (its replica of the stream
/// cannot store them), delivers nothing, and keeps its leadership. The runbook's remedy is to
/// step the consumer's leader down; the drill applies it when needed and checks the workers
/// consume again.
async fn consumer_off_the_full_server(s: &mut Session<'_>, full: &str) {
    let leader = consumer_leader(s).await;
    s.figure("consumer_leader_at_full", json!(leader));
    let led_by_full = leader.as_deref() == Some(full);
    s.figure("consumer_led_by_full_server", led_by_full);
    if !led_by_full {
        let consuming = inbox_grows(s, Duration::from_secs(30)).await;
        s.check(
            "server store: the workers keep consuming",
            consuming.is_some(),
            consuming.map_or(
                "fewer than 200 more inbox rows within 30s".to_owned(),
                |n| format!("{n} more inbox rows (their consumer is led by another server)"),
            ),
        );
        return;
    }
    let stalled = inbox_grows(s, Duration::from_secs(5)).await;
    s.figure("consumer_stalled_on_full_server", stalled.is_none());
    s.say(&format!(
        "the workers' consumer is led by {full}, the full server: stepping its leader down"
    ));
    let js = s.observer();
    let api = format!(
        "CONSUMER.LEADER.STEPDOWN.{}.{}",
        super::session::STREAM,
        s.group
    );
    let stepped: Result<serde_json::Value, _> = js.request(api, &json!({})).await;
    let consuming = inbox_grows(s, Duration::from_secs(30)).await;
    s.check(
        "server store: the workers keep consuming (after a consumer-leader step-down off the full server)",
        consuming.is_some(),
        match (consuming, stepped) {
            (Some(n), _) => format!(
                "{full} led their consumer and {}; after the step-down {n} more inbox rows",
                if stalled.is_none() { "delivered nothing" } else { "still delivered" }
            ),
            (None, Err(e)) => format!("step-down refused: {e}"),
            (None, Ok(_)) => "fewer than 200 more inbox rows within 30s of the step-down".to_owned(),
        },
    );
}

async fn consumer_leader(s: &Session<'_>) -> Option<String> {
    let js = s.observer();
    let st = js.get_stream(super::session::STREAM).await.ok()?;
    st.consumer_info(&s.group)
        .await
        .ok()?
        .cluster
        .as_ref()?
        .leader
        .clone()
}

fn judge_resumed(s: &mut Session<'_>, part: &str, after: &str, resumed: Option<Duration>) {
    let key = format!(
        "{}_resumed_after_{}_ms",
        part.replace(' ', "_"),
        if after.contains("raised") {
            "raise"
        } else {
            "free"
        }
    );
    s.figure(&key, json!(resumed.map(|d| d.as_millis() as u64)));
    s.check(
        &format!("{part}: publishing resumes once {after}"),
        resumed.is_some(),
        match resumed {
            Some(d) => format!("accepted {} ms after", d.as_millis()),
            None => "still refused after 30s".to_owned(),
        },
    );
}
