//! `upgrade`: a rolling upgrade under load, one server at a time: lame-duck mode (SIGUSR2: its
//! leaderships are handed off and its clients moved before it exits), then the server is started
//! again on the new release (a process on the new binary, a container re-created from the new
//! release's image, its volume kept), and the next one waits for the health gate and for every
//! replica to be current. Each server's version is read from its `/varz` before and after.
//! Audited like the other drills: nothing acknowledged lost, nothing doubled, nothing given up.

use std::collections::BTreeMap;
use std::time::Duration;

use sea_infra::deployment::nats_server::NatsServer;
use sea_infra::deployment::Deployment;
use serde_json::json;

use super::session::{Ctx, Session};
use super::Outcome;

/// The two releases of an upgrade (or a downgrade).
#[derive(Clone, Copy)]
pub struct Releases<'a> {
    pub from: &'a NatsServer,
    pub to: &'a NatsServer,
}

/// Each server's version as its `/varz` reports it (`unreachable` when it does not answer).
pub async fn versions(dep: &Deployment) -> BTreeMap<String, String> {
    let monitor = dep.monitor();
    let mut out = BTreeMap::new();
    for (_, server) in dep.topology.servers() {
        let url = dep.topology.monitor_url(server);
        let v = match monitor.varz(&url).await {
            Ok(v) => v.version,
            Err(_) => "unreachable".to_owned(),
        };
        out.insert(server.name.clone(), v);
    }
    out
}

pub async fn run(ctx: Ctx<'_>, releases: Releases<'_>) -> anyhow::Result<Outcome> {
    let (from, to) = (releases.from.version, releases.to.version);
    let mut s = Session::start(ctx, "upgrade", ctx.servers_except(&[]), 2).await?;
    let before = versions(ctx.dep).await;
    s.figure("versions_before", json!(before));
    let on_from = before.values().all(|v| *v == from.to_string());
    s.check(
        &format!("every server runs {from} before"),
        on_from,
        format!("{before:?}"),
    );
    let names = ctx.server_names();
    let replicas = names.len();
    for name in &names {
        s.say(&format!(
            "{name}: lame-duck mode (SIGUSR2), then nats-server {to}"
        ));
        s.lame_duck_leave(name).await?;
        s.replace_server(name, &releases.to.path).await?;
        let passed = s
            .check_back(
                name,
                &format!("{name} back on {to}: gate passes, replicas current"),
                Duration::from_secs(90),
                replicas,
            )
            .await;
        if !passed {
            break;
        }
    }
    let after = versions(ctx.dep).await;
    s.figure("versions_after", json!(after));
    let on_to = after.values().all(|v| *v == to.to_string());
    s.check(
        &format!("every server reports {to} afterwards"),
        on_to,
        format!("{after:?}"),
    );
    let mut outcome = s.finish("upgrade").await;
    let given_up = outcome.figure_u64("given_up");
    outcome.check(
        "no publish fails after the client's retry",
        given_up == 0,
        format!("{given_up} events given up"),
    );
    Ok(outcome)
}
