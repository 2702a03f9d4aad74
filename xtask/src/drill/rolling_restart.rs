//! `rolling-restart`: restart every server in turn through lame-duck mode (SIGUSR2: leadership
//! is handed off and clients are moved before the server exits), waiting for the health gate
//! and for every replica to be current before the next one. Goal: no publish fails after the
//! client's retry, nothing is lost.

use std::time::Duration;

use sea_infra::client::provision::wait_replicas_current;

use super::session::{Ctx, Session, STREAM};
use super::Outcome;

/// The rendered `lame_duck_duration` is 30 s; a server still up well after that is stuck.
const LAME_DUCK_BOUND: Duration = Duration::from_secs(60);

pub async fn run(ctx: Ctx<'_>) -> anyhow::Result<Outcome> {
    let mut s = Session::start(ctx, "rolling-restart", ctx.servers_except(&[]), 2).await?;
    let names = ctx.server_names();
    let replicas = names.len();
    for name in &names {
        s.say(&format!(
            "{name}: lame-duck mode (SIGUSR2), waiting for it to exit"
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
        s.restart_server(name).await?;
        let back = async {
            let gate = s.wait_gate(Duration::from_secs(60)).await?;
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
            &format!("{name} back: gate passes, replicas current"),
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
    let mut outcome = s.finish("rolling-restart").await;
    let given_up = outcome.figure_u64("given_up");
    outcome.check(
        "no publish fails after the client's retry",
        given_up == 0,
        format!("{given_up} events given up"),
    );
    Ok(outcome)
}
