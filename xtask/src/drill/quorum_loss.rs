//! `quorum-loss`: stop two of three servers. Publishes must fail fast with a clear error rather
//! than hang; nothing acknowledged may be lost; once the servers are back, publishing resumes
//! without restarting the client.

use std::time::Duration;

use super::session::{Ctx, Session};
use super::Outcome;

pub async fn run(ctx: Ctx<'_>) -> anyhow::Result<Outcome> {
    let names = ctx.server_names();
    anyhow::ensure!(
        names.len() >= 3,
        "quorum-loss needs a profile of 3 or more servers"
    );
    let survivor = names[names.len() - 1].clone();
    let victims: Vec<String> = names[..2].to_vec();
    let others: Vec<&str> = names
        .iter()
        .filter(|n| **n != survivor)
        .map(String::as_str)
        .collect();
    let mut s = Session::start(ctx, "quorum-loss", ctx.servers_except(&others), 2).await?;
    s.say(&format!(
        "stopping {} (SIGTERM); {survivor} stays",
        victims.join(" and ")
    ));
    s.figure("stopped", victims.join(","));
    s.figure("fault_at_ms", s.now_ms());
    for v in &victims {
        s.stop_server(v).await?;
    }
    // Hold the outage for a while (20 failed attempts, about 2 s at the retry pace).
    let failing = s
        .load()
        .wait_failed_attempts(20, Duration::from_secs(30))
        .await;
    s.check(
        "publishes fail while quorum is lost",
        failing,
        if failing {
            "attempts failed, as they must without quorum".to_owned()
        } else {
            "publishes kept succeeding without quorum".to_owned()
        },
    );
    s.say("restoring the stopped servers");
    let restored_at = s.now_ms();
    s.figure("restored_at_ms", restored_at);
    for v in &victims {
        s.restart_server(v).await?;
    }
    s.check_gate(
        "health gate passes after restoring",
        Duration::from_secs(90),
    )
    .await;
    let resumed = s.load().wait_more_acked(100, Duration::from_secs(60)).await;
    s.figure("resumed_after_restore_ms", s.now_ms() - restored_at);
    s.check(
        "publishing resumes by itself",
        resumed,
        if resumed {
            "100 more acks with the same client".to_owned()
        } else {
            "no acks within 60s of restoring".to_owned()
        },
    );
    let mut outcome = s.finish("quorum-loss").await;
    let slowest = outcome.figure_u64("max_failed_attempt_ms");
    // An attempt waits at most its ack timeout (2 s); anything longer means a hang.
    outcome.check(
        "failed publishes fail fast",
        slowest <= 3000,
        format!("slowest failed attempt {slowest} ms (bound 3000 ms)"),
    );
    Ok(outcome)
}
