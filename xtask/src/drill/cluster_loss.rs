//! `cluster-loss` (mesh): stop every server of the cluster that does not hold `SEA_EVENTS`
//! and report what survives. It documents behaviour rather than demanding an ideal: the meta
//! group (six peers across the gateways) loses its majority, so JetStream management stops
//! (no meta leader), while core messaging inside the surviving cluster goes on and
//! `SEA_EVENTS`, whose own three replicas all live in the surviving cluster, may keep its
//! stream quorum. After the restart the mirror in the restored cluster must catch up.

use std::time::Duration;

use anyhow::Context;
use sea_infra::client::federation::mirror_name;
use sea_infra::client::{crosscheck, observe};
use sea_infra::model::Role;
use serde_json::Value;

use super::session::{Ctx, Session, STREAM};
use super::Outcome;

pub async fn run(ctx: Ctx<'_>) -> anyhow::Result<Outcome> {
    let topology = &ctx.dep.topology;
    let [home, lost] = topology.clusters.as_slice() else {
        anyhow::bail!("cluster-loss needs a profile of two gateway-joined clusters (mesh)");
    };
    anyhow::ensure!(
        home.gateways.contains(&lost.name),
        "cluster-loss needs gateway-joined clusters (mesh), not {}",
        topology.profile
    );
    let home_servers = topology.client_urls(home);
    let mut s = Session::start(ctx, "cluster-loss", home_servers.clone(), 2).await?;
    let victims: Vec<String> = lost.servers.iter().map(|n| n.name.clone()).collect();
    s.say(&format!(
        "stopping every server of {} ({})",
        lost.name,
        victims.join(", ")
    ));
    s.figure("stopped_cluster", lost.name.clone());
    s.figure("fault_at_ms", s.now_ms());
    for v in &victims {
        s.kill_server(v).await?;
    }

    let nats = s.dep.nats(Role::Ops);
    let a = crosscheck::connect(&nats, &home_servers).await?;
    let b = crosscheck::connect(&nats, &home_servers).await?;
    // Core messaging only: a subject no stream captures (the drill stream would store it, and
    // its non-event payload would reach the drill's workers).
    let probe = format!("sea.probe.{}", s.group);
    let core = crosscheck::crosses(&a, &b, &probe, Duration::from_secs(10)).await?;
    s.check(
        "core messaging in the surviving cluster",
        core.is_some(),
        match core {
            Some(d) => format!("pub/sub inside {} in {} ms", home.name, d.as_millis()),
            None => "nothing delivered within 10s".into(),
        },
    );
    // What JetStream does without its meta majority: observed and reported, not judged. The
    // old leader needs an election timeout to notice it lost the majority.
    let lost_meta = observe::time_until(Duration::from_secs(20), || async {
        s.meta_leader(&victims).await.is_none()
    })
    .await;
    s.figure(
        "meta_leader_gone_ms",
        lost_meta.map(|d| d.as_millis() as u64),
    );
    let meta = s.meta_leader(&victims).await;
    s.figure(
        "meta_leader_during_loss",
        meta.clone().map_or(Value::Null, Value::from),
    );
    let published = s.load().wait_more_acked(100, Duration::from_secs(10)).await;
    s.figure("stream_accepts_writes_during_loss", published);
    s.say(&format!(
        "during the loss: meta leader {}, {STREAM} {} writes",
        meta.as_deref()
            .unwrap_or("none (meta quorum lost: 3 of 6 peers)"),
        if published { "accepts" } else { "refuses" }
    ));

    s.say(&format!("restarting {}", lost.name));
    for v in &victims {
        s.restart_server(v).await?;
    }
    s.check_gate(
        "health gate passes after the restart",
        Duration::from_secs(90),
    )
    .await;
    let resumed = s.load().wait_more_acked(100, Duration::from_secs(60)).await;
    s.check(
        "publishing works after the restart",
        resumed,
        if resumed {
            "100 more acks"
        } else {
            "no acks within 60s"
        },
    );
    let mirror = mirror_name(STREAM, &home.name);
    let js_b = async_nats::jetstream::new(
        crosscheck::connect(&nats, &[topology.client_url(&lost.servers[0])])
            .await
            .context("connect to the restored cluster")?,
    );
    s.check_mirror(
        "the mirror in the restored cluster catches up",
        &js_b,
        &mirror,
    )
    .await;
    Ok(s.finish("cluster-loss").await)
}
