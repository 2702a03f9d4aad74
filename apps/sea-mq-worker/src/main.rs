//! Thin binary over the `sea_mq_worker` library: parse the environment, set up logs, run.

use std::process::ExitCode;

use sea_mq_worker::config::{LogFormat, WorkerConfig};
use sea_mq_worker::logs::{eprint_redacted, RedactedStderr};
use sea_mq_worker::run::{self, Stop};

fn main() -> ExitCode {
    let cfg = match WorkerConfig::from_process_env() {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprint_redacted(&format!("sea-mq-worker: {errors}"));
            return ExitCode::from(sea_infra::env::EXIT_CONFIG as u8);
        }
    };
    let filter = tracing_subscriber::EnvFilter::new(&cfg.log_level);
    // Colour only for a person at a terminal, never into files or collectors.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(RedactedStderr);
    match cfg.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprint_redacted(&format!(
                "sea-mq-worker: cannot start the async runtime: {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(cfg)) {
        Ok(Stop::Signal(_)) => ExitCode::SUCCESS,
        Ok(Stop::ReconnectBudgetExhausted) => {
            tracing::error!("exiting: could not reach NATS within NATS_RECONNECT_MAX attempts");
            // EX_UNAVAILABLE: a supervisor should restart us once NATS is back.
            ExitCode::from(69)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprint_redacted(&format!("sea-mq-worker: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
