//! `leaf-partition` (leaf): cut the leafnode link between the cells (their remotes rendered
//! `disabled` and reloaded; both cells keep running). Both cells must keep publishing and
//! consuming locally; after healing, the mirror of cell-a's `SEA_EVENTS` in cell-b must hold
//! every sequence again, and the time it took is reported.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use sea_infra::client::crosscheck;
use sea_infra::client::federation::mirror_name;
use sea_infra::client::observe::{self, time_until};
use sea_infra::model::Role;

use super::session::{Ctx, Session, STREAM};
use super::Outcome;

pub async fn run(ctx: Ctx<'_>) -> anyhow::Result<Outcome> {
    let topology = &ctx.dep.topology;
    let dialer = topology
        .clusters
        .iter()
        .find(|c| !c.leaf_remotes.is_empty())
        .context("leaf-partition needs cells joined by leafnodes (profile leaf)")?;
    let hub = topology
        .cluster(&dialer.leaf_remotes[0])
        .context("the dialled cell exists")?;
    let mut s = Session::start(ctx, "leaf-partition", topology.client_urls(hub), 2).await?;
    let nats = s.dep.nats(Role::Ops);
    let js_b = jetstream::new(crosscheck::connect(&nats, &topology.client_urls(dialer)).await?);
    let mirror = mirror_name(STREAM, &hub.name);

    s.say(&format!(
        "cutting the leafnode link {} -> {}",
        dialer.name, hub.name
    ));
    s.figure("fault_at_ms", s.now_ms());
    s.cut_leaf_links().await?;
    let monitor = s.dep.monitor();
    let cut = time_until(Duration::from_secs(20), || async {
        let mut up = 0;
        for n in &dialer.servers {
            up += monitor
                .leafz(&topology.monitor_url(n))
                .await
                .map_or(0, |l| l.leafnodes);
        }
        up == 0
    })
    .await;
    s.figure("link_down_ms", cut.map(|d| d.as_millis() as u64));
    s.check(
        "the link is cut",
        cut.is_some(),
        if cut.is_some() {
            "no leafnode connection left"
        } else {
            "leafnode connections stayed up"
        },
    );

    let a_publishes = s.load().wait_more_acked(200, Duration::from_secs(20)).await;
    s.check(
        &format!("{} keeps publishing and consuming", hub.name),
        a_publishes,
        if a_publishes {
            "200 more acks"
        } else {
            "stalled"
        },
    );
    let local = format!("{}.local", s.subject);
    let b_publishes = crosscheck::publish_acked(&js_b, &local, "local", 50).await;
    let b_reads = match &b_publishes {
        Ok(()) => observe::read_stream(&js_b, STREAM, &local, Duration::from_secs(20))
            .await
            .map(|m| m.len())
            .unwrap_or(0),
        Err(_) => 0,
    };
    s.check(
        &format!("{} keeps publishing and consuming", dialer.name),
        b_publishes.is_ok() && b_reads == 50,
        match &b_publishes {
            Ok(()) => format!("50 events acked and {b_reads} read back in {}", dialer.name),
            Err(e) => e.to_string(),
        },
    );
    let behind = crosscheck::state(&js_b, &mirror)
        .await
        .map(|m| m.0)
        .unwrap_or(0);
    let source = crosscheck::state(&s.js, STREAM)
        .await
        .map(|m| m.0)
        .unwrap_or(0);
    s.figure("mirror_behind_at_heal", source.saturating_sub(behind));

    s.say("healing the link");
    s.figure("healed_at_ms", s.now_ms());
    s.heal_leaf_links().await?;
    s.check_mirror("the mirror has every sequence again", &js_b, &mirror)
        .await;
    s.check_gate("health gate passes after healing", Duration::from_secs(60))
        .await;
    if let Ok(st) = js_b.get_stream(STREAM).await {
        let _ = st.purge().filter(local).await;
    }
    Ok(s.finish("leaf-partition").await)
}
