//! Thin binary over the `sea_nats_exporter` library: parse the environment, set up logs, run.

use std::process::ExitCode;

use sea_infra::service::logs::eprint_redacted;
use sea_nats_exporter::config::ExporterConfig;

fn main() -> ExitCode {
    let cfg = match ExporterConfig::from_process_env() {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprint_redacted(&format!("sea-nats-exporter: {errors}"));
            return ExitCode::from(sea_infra::env::EXIT_CONFIG as u8);
        }
    };
    cfg.logs.init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sea-nats-exporter: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sea_nats_exporter::run::run(cfg)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("sea-nats-exporter: {e}");
            ExitCode::FAILURE
        }
    }
}
