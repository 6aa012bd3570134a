//! The `lf` binary: the node (`lf node-start`, from the node issue on) and the command
//! line client. This file only parses arguments, dispatches and turns errors into one
//! clear line and a non-zero exit.

mod args;
mod makegenesis;
mod network;
mod random;
mod selftest;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let argv = args::normalize_single_dash(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            // Help and version are not errors; clap prints them with the right stream.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lf: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Selftest(a) => selftest::run(&a, cli.json),
        Command::Makegenesis(a) => makegenesis::run(&a, cli.json),
    }
}
