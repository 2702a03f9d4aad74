//! Thin binary over the `sea_mq_worker` library: parse the environment, set up logs, run.
//! `sea-mq-worker provision` runs the one-shot provisioner instead (`sea_mq_worker::provision`).

use std::process::ExitCode;

use sea_infra::service::logs::eprint_redacted;
use sea_mq_worker::config::WorkerConfig;
use sea_mq_worker::provision;
use sea_mq_worker::run::{self, Stop};

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("provision") => return provision(),
        Some(other) => {
            eprint_redacted(&format!(
                "sea-mq-worker: unknown argument `{other}`: run it with none (the worker) or with `provision` (the one-shot provisioner)"
            ));
            return ExitCode::from(sea_infra::env::EXIT_CONFIG as u8);
        }
    }
    let cfg = match WorkerConfig::from_process_env() {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprint_redacted(&format!("sea-mq-worker: {errors}"));
            return ExitCode::from(sea_infra::env::EXIT_CONFIG as u8);
        }
    };
    cfg.logs.init();
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
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

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprint_redacted(&format!(
                "sea-mq-worker: cannot start the async runtime: {e}"
            ))
        })
        .ok()
}

/// `sea-mq-worker provision`: 0 when the live configuration matches the spec, 64 on a bad
/// variable, 1 when provisioning failed (the error says what and where).
fn provision() -> ExitCode {
    let env = sea_infra::env::EnvReader::from_process();
    let cfg = match provision::ProvisionConfig::from_env(env) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprint_redacted(&format!("sea-mq-worker provision: {errors}"));
            return ExitCode::from(sea_infra::env::EXIT_CONFIG as u8);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(provision::run(cfg, &|line| eprint_redacted(line))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error with its causes, as the worker's own errors are shown.
            let e = anyhow::Error::from(e);
            eprint_redacted(&format!("sea-mq-worker provision: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
