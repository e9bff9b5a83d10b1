//! The process's log: a line per request and per delivery, written by a thread of its own.
//!
//! Formatted on the calling thread, the lines go through a bounded channel to a writer thread
//! that writes whatever has gathered with one `write` and flushes once the channel is empty.
//! Written straight to stderr, each line was a system call on the thread that served the
//! request, and a slow reader of stderr (a full pipe) held that thread. The channel is not
//! lossy: when it is full, a caller waits, as it did for stderr before, rather than a line being
//! dropped (docs/performance.md, 2026-12-07).

use std::io::{BufWriter, Stderr};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines that may wait for the writer thread before a caller waits too.
const QUEUED_LINES: usize = 16 * 1024;
/// The writer thread's buffer: many lines per `write` under load.
const WRITE_BUFFER: usize = 64 * 1024;

/// How a line is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

/// Keeps the writer thread; dropping it writes out what is queued.
#[must_use = "dropping the guard stops the log's writer thread"]
pub struct Guard {
    _worker: WorkerGuard,
}

/// Installs the global subscriber: `HOOKGATE_LOG` filters (default `info`), lines to stderr.
pub fn init(format: Format) -> Guard {
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("hookgate-log")
        .finish(stderr_buffered());
    let filter = EnvFilter::try_from_env("HOOKGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        Format::Text => builder.init(),
        Format::Json => builder.json().flatten_event(true).init(),
    }
    Guard { _worker: worker }
}

fn stderr_buffered() -> BufWriter<Stderr> {
    BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr())
}
