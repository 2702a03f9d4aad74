//! A service's logs: level and format from the environment (`LOG_LEVEL`, `LOG_FORMAT`), and every
//! line through [`redact_credentials`] on its way to stderr. Libraries put URLs in their messages
//! (async-nats logs each server it dials, credentials included, at debug level), so redacting at
//! the call sites is not enough.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

use crate::env::{redact_credentials, EnvReader};

pub const ENV_LOG_LEVEL: &str = "LOG_LEVEL";
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("use text or json".into()),
    }
}

/// A `tracing` filter such as `info` or `sea_mq_worker=debug,async_nats=warn`.
fn parse_log_level(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a log filter ({e}); try info or debug"))
}

/// How a service logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logs {
    pub level: String,
    pub format: LogFormat,
}

impl Logs {
    /// `LOG_LEVEL` (default `info`) and `LOG_FORMAT` (default `text`); problems go to `env`.
    pub fn from_env(env: &mut EnvReader) -> Logs {
        Logs {
            level: env
                .parse(ENV_LOG_LEVEL, parse_log_level)
                .unwrap_or_else(|| "info".into()),
            format: env
                .parse(ENV_LOG_FORMAT, parse_log_format)
                .unwrap_or(LogFormat::Text),
        }
    }

    /// Installs the subscriber: redacted stderr, colour only for a person at a terminal.
    pub fn init(&self) {
        let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let logs = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(&self.level))
            .with_ansi(colour)
            .with_writer(RedactedStderr);
        match self.format {
            LogFormat::Json => logs.json().init(),
            LogFormat::Text => logs.init(),
        }
    }
}

/// Hands the fmt layer one buffer per event; the event is redacted and written when dropped.
pub struct RedactedStderr;

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::with_capacity(256))
    }
}

/// One formatted event.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        // One write per event, so lines of concurrent events do not interleave.
        let _ = io::stderr()
            .lock()
            .write_all(redact_credentials(&text).as_bytes());
    }
}

/// For messages printed without the log (before it is set up, or as the last word).
pub fn eprint_redacted(message: &str) {
    eprintln!("{}", redact_credentials(message));
}
