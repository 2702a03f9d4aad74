//! Thin binary over the `sea_nats_exporter` library: parse the environment, set up logs, run.

use std::process::ExitCode;

use sea_nats_exporter::config::{ExporterConfig, LogFormat};

fn main() -> ExitCode {
    let cfg = match ExporterConfig::from_process_env() {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("sea-nats-exporter: {errors}");
            return ExitCode::from(sea_infra::env::EXIT_CONFIG as u8);
        }
    };
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cfg.log_level))
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
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
