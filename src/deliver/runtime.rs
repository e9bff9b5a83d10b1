//! The delivery workers' own threads.
//!
//! On the ingress runtime, every delivery attempt waits in tokio's run queue behind every
//! request connection, each in turn: under a flood of requests, `concurrency` attempts in flight
//! then move at the pace of the connections' queue, ingest outruns delivery many times over and
//! the backlog grows for as long as the flood lasts (docs/performance.md, "2026-12-04,
//! later: deliveries that keep pace"). On threads of their own the operating system's scheduler gives delivery its
//! share of the CPU by thread, whatever the number of connections.

use tokio::runtime::Handle;

/// The delivery runtime: a multi-thread tokio runtime, shut down without waiting when dropped
/// (the gateway has drained or aborted its workers by then).
pub struct Runtime {
    /// Taken only by drop.
    runtime: Option<tokio::runtime::Runtime>,
    handle: Handle,
}

impl Runtime {
    /// Starts as many threads as the machine has cores, as many as the ingress runtime. With
    /// half as many, the scheduler's share by thread left delivery behind ingest under a flood
    /// on Redis (1–1.6 s of ingest queued after 8 s at 64 connections; none with as many,
    /// for 15–25 % fewer requests per second: docs/performance.md, 2026-12-07).
    pub fn start() -> std::io::Result<Runtime> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("hookgate-deliver")
            .enable_all()
            .build()?;
        Ok(Runtime {
            handle: rt.handle().clone(),
            runtime: Some(rt),
        })
    }

    /// Where to spawn delivery work.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime's task.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
