//! Thin binary over the `sea_mq_worker` library: parse the environment, set up logs, run.

use std::process::ExitCode;

use sea_infra::service::logs::eprint_redacted;
use sea_mq_worker::config::WorkerConfig;
use sea_mq_worker::run::{self, Stop};

fn main() -> ExitCode {
    let cfg = match WorkerConfig::from_process_env() {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprint_redacted(&format!("sea-mq-worker: {errors}"));
            return ExitCode::from(sea_infra::env::EXIT_CONFIG as u8);
        }
    };
    cfg.logs.init();
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
