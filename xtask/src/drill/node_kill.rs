//! `node-kill`: SIGKILL the server leading `SEA_EVENTS` under load; a new leader must be
//! elected, publishing and consuming must go on, and the server must catch up after a restart.

use std::time::Duration;

use anyhow::Context;
use sea_infra::client::observe::{self, time_until};

use super::session::{Ctx, Session, STREAM};
use super::Outcome;

/// How long a new leader, or progress after the fault, may take before the criterion fails.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(20);

pub async fn run(ctx: Ctx<'_>) -> anyhow::Result<Outcome> {
    let mut s = Session::start(ctx, "node-kill", ctx.servers_except(&[]), 2).await?;
    let js = s.observer();
    let victim = observe::stream_leader(&js, STREAM)
        .await
        .with_context(|| format!("{STREAM} has no leader to kill"))?;
    s.say(&format!("SIGKILL {victim}, the leader of {STREAM}"));
    s.figure("killed", victim.clone());
    s.figure("fault_at_ms", s.now_ms());
    let inbox_before = s.inbox_ids().await.len();
    s.kill_server(&victim).await?;
    after_leader_loss(&mut s, &victim, inbox_before).await;

    s.say(&format!("restarting {victim}"));
    s.restart_server(&victim).await?;
    s.measure_catch_up(&victim, Duration::from_secs(60)).await;
    s.check_gate(
        "health gate passes after the restart",
        Duration::from_secs(60),
    )
    .await;
    Ok(s.finish("node-kill").await)
}

/// What must happen once the stream leader is gone (killed or cut off): a new stream leader
/// and a meta leader among the others, and acks and inbox rows still coming.
pub async fn after_leader_loss(s: &mut Session<'_>, victim: &str, inbox_before: usize) {
    let js = s.observer();
    let elected = time_until(RECOVERY_BOUND, || async {
        observe::stream_leader(&js, STREAM)
            .await
            .is_some_and(|l| l != victim)
    })
    .await;
    let leader = observe::stream_leader(&js, STREAM).await;
    s.figure(
        "stream_leader_elected_ms",
        elected.map(|d| d.as_millis() as u64),
    );
    s.check(
        "a new stream leader is elected",
        elected.is_some(),
        match (elected, leader) {
            (Some(d), Some(l)) => format!("{l} after {} ms", d.as_millis()),
            _ => format!("none within {RECOVERY_BOUND:?}"),
        },
    );
    let except = [victim.to_owned()];
    let meta = time_until(RECOVERY_BOUND, || async {
        s.meta_leader(&except).await.is_some()
    })
    .await;
    s.figure("meta_leader_ms", meta.map(|d| d.as_millis() as u64));
    s.check(
        "a meta leader among the others",
        meta.is_some(),
        match meta {
            Some(d) => format!("after {} ms", d.as_millis()),
            None => format!("none within {RECOVERY_BOUND:?}"),
        },
    );
    let published = s.load().wait_more_acked(200, RECOVERY_BOUND).await;
    s.check(
        "publishing continues",
        published,
        if published {
            "200 more events acknowledged".to_owned()
        } else {
            format!("fewer than 200 acks within {RECOVERY_BOUND:?}")
        },
    );
    let consumed = time_until(RECOVERY_BOUND, || async {
        s.inbox_ids().await.len() >= inbox_before + 200
    })
    .await;
    s.check(
        "consuming continues",
        consumed.is_some(),
        if consumed.is_some() {
            "200 more inbox rows".to_owned()
        } else {
            format!("fewer than 200 new inbox rows within {RECOVERY_BOUND:?}")
        },
    );
}
