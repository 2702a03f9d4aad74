//! `upgrade`: a rolling upgrade under load, one server at a time: lame-duck mode (SIGUSR2: its
//! leaderships are handed off and its clients moved before it exits), then the server is started
//! again on the new release (a process on the new binary, a container re-created from the new
//! release's image, its volume kept), and the next one waits for the health gate and for every
//! replica to be current. Each server's version is read from its `/varz` before and after.
//! Audited like the other drills: nothing acknowledged lost, nothing doubled, nothing given up.

use std::collections::BTreeMap;
use std::time::Duration;

use sea_infra::client::provision::wait_replicas_current;
use sea_infra::deployment::nats_server::NatsServer;
use sea_infra::deployment::Deployment;
use serde_json::json;

use super::session::{Ctx, Session, STREAM};
use super::Outcome;

/// The rendered `lame_duck_duration` is 30 s; a server still up well after that is stuck.
const LAME_DUCK_BOUND: Duration = Duration::from_secs(60);

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
        let exited = s.lame_duck_stop(name, LAME_DUCK_BOUND).await?;
        s.figure(
            &format!("{name}_lame_duck_exit_ms"),
            exited.map(|d| d.as_millis() as u64),
        );
        s.check(
            &format!("{name} leaves through lame-duck mode"),
            exited.is_some(),
            match exited {
                Some(d) => format!("exited after {} ms", d.as_millis()),
                None => format!("still running after {LAME_DUCK_BOUND:?}; killed"),
            },
        );
        s.replace_server(name, &releases.to.path).await?;
        let back = async {
            let gate = s.wait_gate(Duration::from_secs(90)).await?;
            wait_replicas_current(&s.js, STREAM, replicas, Duration::from_secs(60), &|l| {
                s.say(l)
            })
            .await?;
            anyhow::Ok(gate)
        }
        .await;
        s.figure(
            &format!("{name}_gate_ms"),
            back.as_ref().ok().map(|d| d.as_millis() as u64),
        );
        let passed = back.is_ok();
        s.check(
            &format!("{name} back on {to}: gate passes, replicas current"),
            passed,
            match back {
                Ok(d) => format!("gate in {} ms", d.as_millis()),
                Err(e) => format!("{e:#}"),
            },
        );
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
