//! `partition`: cut the stream leader off from the others while the majority keeps quorum (a
//! process is frozen with SIGSTOP; a container is disconnected from the compose network); the
//! majority must keep accepting writes, and after the server rejoins (SIGCONT, network
//! connect) it must catch up. The drill's clients use the majority: clients of a frozen server
//! would stall until their ping timeout, which is the client's behaviour, not the cluster's.

use std::time::Duration;

use anyhow::Context;
use sea_infra::client::observe;
use sea_infra::model::Role;

use super::node_kill::after_leader_loss;
use super::session::{Ctx, Session, STREAM};
use super::Outcome;

pub async fn run(ctx: Ctx<'_>) -> anyhow::Result<Outcome> {
    let all = ctx.servers_except(&[]);
    // The victim is the drill stream's leader: the stream must exist before it is looked up.
    super::stream::ensure(ctx.dep).await?;
    let probe = ctx
        .dep
        .nats(Role::Ops)
        .connect(&all)
        .await
        .context("connect to find the stream leader")?;
    let victim = observe::stream_leader(&async_nats::jetstream::new(probe), STREAM)
        .await
        .with_context(|| format!("{STREAM} has no leader"))?;
    let mut s = Session::start(ctx, "partition", ctx.servers_except(&[&victim]), 2).await?;
    s.say(&format!("cutting off {victim}, the leader of {STREAM}"));
    s.figure("partitioned", victim.clone());
    s.figure("fault_at_ms", s.now_ms());
    let inbox_before = s.inbox_ids().await.len();
    s.partition_server(&victim).await?;
    after_leader_loss(&mut s, &victim, inbox_before).await;
    // Let the majority move on, so the healed server has something to catch up on.
    s.load().wait_more_acked(200, Duration::from_secs(10)).await;

    s.say(&format!("healing: {victim} rejoins"));
    s.figure("healed_at_ms", s.now_ms());
    s.heal_server(&victim).await?;
    s.measure_catch_up(&victim, Duration::from_secs(60)).await;
    s.check_gate("health gate passes after healing", Duration::from_secs(60))
        .await;
    Ok(s.finish("partition").await)
}
