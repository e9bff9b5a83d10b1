//! The `hookgate` binary: parse the command line and hand over to `cli`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::main(args)
}
