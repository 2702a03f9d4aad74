//! Interruptions: Ctrl-C (SIGINT) from a person, SIGTERM from `timeout`, CI cancellation or a
//! supervisor. Both end a long command the same way: what it injected or started is undone
//! (dropping the work does it), and it exits with the shell's code for the signal, never as a
//! success.

use std::sync::OnceLock;

use tokio::signal::unix::{signal, SignalKind};

/// The signal that ended the command, once one arrived.
static RECEIVED: OnceLock<(&str, i32)> = OnceLock::new();

/// The command was interrupted; its work was dropped (and so undone).
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {signal}: {undone}")]
pub struct Interrupted {
    pub signal: &'static str,
    /// What was undone, for the operator.
    pub undone: &'static str,
}

/// Resolves at the first SIGINT or SIGTERM, with the signal's name. Never resolves when the
/// handlers cannot be installed (rather than interrupting at once).
pub async fn signalled() -> &'static str {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    let got = tokio::select! {
        _ = int.recv() => ("SIGINT", 2),
        _ = term.recv() => ("SIGTERM", 15),
    };
    RECEIVED.get_or_init(|| got).0
}

/// Runs `work` until it ends or a signal arrives; on a signal `work` is dropped (its drops undo
/// faults and stop what it started) and the result is [`Interrupted`].
pub async fn until_interrupted<T>(
    undone: &'static str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        result = work => result,
        signal = signalled() => Err(Interrupted { signal, undone }.into()),
    }
}

/// The exit code for a command that was interrupted: 128 + the signal's number (130 for
/// Ctrl-C, 143 for SIGTERM).
pub fn exit_code() -> i32 {
    128 + RECEIVED.get().map_or(2, |(_, n)| *n)
}
