//! The worker's log output: every line goes through `sea_infra::env::redact_credentials` on its
//! way to stderr. Libraries put URLs in their messages (async-nats logs each server it dials,
//! credentials included, at debug level), so redacting at the call sites is not enough.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

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
            .write_all(sea_infra::env::redact_credentials(&text).as_bytes());
    }
}

/// For messages printed without the log (before it is set up, or as the last word).
pub fn eprint_redacted(message: &str) {
    eprintln!("{}", sea_infra::env::redact_credentials(message));
}
