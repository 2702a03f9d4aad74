//! `worker-crash`: SIGKILL one of three workers while events flow. Its unacked deliveries go to
//! the others after `ack_wait`; the inbox must still hold every event exactly once.
//!
//! The worker is frozen (SIGSTOP) for a second before the kill, so it surely dies holding
//! deliveries: the server keeps filling its open pull request while it cannot ack.

use std::time::Duration;

use sea_infra::client::observe::time_until;

use super::session::{Ctx, Session};
use super::Outcome;

pub async fn run(ctx: Ctx<'_>) -> anyhow::Result<Outcome> {
    let mut s = Session::start(ctx, "worker-crash", ctx.servers_except(&[]), 3).await?;
    let mid = time_until(Duration::from_secs(30), || async {
        s.inbox_ids().await.len() >= 200
    })
    .await;
    anyhow::ensure!(mid.is_some(), "the workers stored nothing within 30s");
    let pid = s.workers[0].pid();
    s.say(&format!(
        "freezing worker pid {} for 1 s, then SIGKILL",
        pid.unwrap_or(0)
    ));
    if let Some(pid) = pid {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
        s.load().wait_more_acked(100, Duration::from_secs(5)).await;
    }
    s.figure("fault_at_ms", s.now_ms());
    s.workers[0].kill();
    let published = s.load().wait_more_acked(300, Duration::from_secs(20)).await;
    s.check(
        "publishing continues",
        published,
        if published {
            "300 more acks"
        } else {
            "stalled"
        },
    );
    let mut outcome = s.finish("worker-crash").await;
    let redelivered = outcome.figure_u64("redelivered");
    outcome.check(
        "the others took over the killed worker's deliveries",
        redelivered > 0,
        format!("{redelivered} deliveries redelivered after ack_wait"),
    );
    Ok(outcome)
}
