//! The `hookgate` binary: parse the command line and hand over to `cli`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// jemalloc rather than glibc's malloc: buffers allocated on one thread and freed on another
/// (a request's body by the writer, a job by a delivery thread) cost glibc arena locks and
/// consolidation; jemalloc took 7–16 % off the CPU per event for ~6 MiB more resident memory
/// (docs/performance.md, 2026-12-07). benches/gateway.rs sets the same one.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::main(args)
}
