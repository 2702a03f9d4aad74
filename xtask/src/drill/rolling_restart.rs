//! `rolling-restart`: restart every server in turn through lame-duck mode (SIGUSR2: leadership
//! is handed off and clients are moved before the server exits), waiting for the health gate
//! and for every replica to be current before the next one. Goal: no publish fails after the
//! client's retry, nothing is lost.

use std::time::Duration;

use super::session::{Ctx, Session};
use super::Outcome;

pub async fn run(ctx: Ctx<'_>) -> anyhow::Result<Outcome> {
    let mut s = Session::start(ctx, "rolling-restart", ctx.servers_except(&[]), 2).await?;
    let names = ctx.server_names();
    let replicas = names.len();
    for name in &names {
        s.say(&format!(
            "{name}: lame-duck mode (SIGUSR2), waiting for it to exit"
        ));
        s.lame_duck_leave(name).await?;
        s.restart_server(name).await?;
        let passed = s
            .check_back(
                name,
                &format!("{name} back: gate passes, replicas current"),
                Duration::from_secs(60),
                replicas,
            )
            .await;
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
