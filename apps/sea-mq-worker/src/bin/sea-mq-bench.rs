//! Measurement probes for `cargo xtask bench` (not for production use). Each prints one JSON line:
//! the span measured and the probe process's own CPU time.
//!
//! ```text
//! sea-mq-bench publish SERVERS PREFIX COUNT SIZE WINDOW
//! sea-mq-bench consume SERVERS STREAM DURABLE COUNT BATCH CLIENTS
//! sea-mq-bench fill-outbox DB PREFIX COUNT SIZE        (DB: a SQLite file or a DATABASE_URL)
//! sea-mq-bench inbox-span DB GROUP
//! sea-mq-bench outbox-span DB PREFIX
//! ```

use anyhow::{bail, Context};
use sea_mq_worker::bench::{self, Span};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> anyhow::Result<T> {
    args.get(i)
        .with_context(|| format!("missing {name}"))?
        .parse()
        .map_err(|_| anyhow::anyhow!("{name} is not valid"))
}

async fn probe(args: &[String]) -> anyhow::Result<Span> {
    let s = |i: usize, name: &str| arg::<String>(args, i, name);
    match args.first().map(String::as_str) {
        Some("publish") => bench::raw_publish(&s(1, "SERVERS")?, &s(2, "PREFIX")?, arg(args, 3, "COUNT")?, arg(args, 4, "SIZE")?, arg(args, 5, "WINDOW")?).await,
        Some("consume") => bench::raw_consume(&s(1, "SERVERS")?, &s(2, "STREAM")?, &s(3, "DURABLE")?, arg(args, 4, "COUNT")?, arg(args, 5, "BATCH")?, arg(args, 6, "CLIENTS")?).await,
        Some("fill-outbox") => {
            bench::fill_outbox(&s(1, "DB")?, &s(2, "PREFIX")?, arg(args, 3, "COUNT")?, arg(args, 4, "SIZE")?).await?;
            Ok(Span { events: arg(args, 3, "COUNT")?, seconds: 0.0, cpu_seconds: 0.0 })
        }
        Some("inbox-span") => bench::inbox_span(&s(1, "DB")?, &s(2, "GROUP")?).await,
        Some("outbox-span") => bench::outbox_span(&s(1, "DB")?, &s(2, "PREFIX")?).await,
        _ => bail!("usage: sea-mq-bench publish|consume|fill-outbox|inbox-span|outbox-span ARGS (see the source)"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match probe(&args).await {
        Ok(span) => {
            // The whole process's CPU, read as it ends, as the workers' is read from outside.
            let cpu = sea_infra::deployment::procfs::cpu_seconds(std::process::id() as i32);
            let span = Span {
                cpu_seconds: cpu.unwrap_or(0.0),
                ..span
            };
            println!(
                "{}",
                serde_json::to_string(&span).expect("a span serializes")
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sea-mq-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
