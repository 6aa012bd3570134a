//! The `lf` binary: the node (`lf node-start`, from the node issue on) and the command
//! line client. This file only parses arguments, dispatches and turns errors into one
//! clear line and a non-zero exit.

mod amendments;
mod api;
mod api_json;
mod args;
mod certs;
mod cli;
mod client;
mod commit_queue;
mod home;
mod journal;
mod lffs_store;
mod logfile;
mod makegenesis;
mod metrics;
mod mount_manager;
mod mounts;
mod network;
mod node;
mod oracle;
mod priority;
mod random;
mod replication;
mod sdnotify;
mod selftest;
mod shell;
mod status_page;

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
    let home = home::resolve(cli.home.as_deref());
    let url = cli.url.as_deref();
    match &cli.command {
        Command::Version => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Selftest(a) => selftest::run(a, cli.json),
        Command::Makegenesis(a) => makegenesis::run(a, cli.json),
        Command::NodeStart(a) => node::run(node::NodeOptions {
            home,
            http_port: a.http,
            p2p_port: a.p2p,
            p2p_bind: a.p2p_bind,
            peers: a.peers.clone(),
            oracle: a
                .oracle
                .then(|| std::time::Duration::from_secs(a.oracle_interval.max(1))),
        }),
        Command::Status => cli::status(&home, url, cli.json),
        Command::NodeConnect { addr } => cli::node_connect(&home, url, cli.json, addr),
        Command::Get(a) => cli::get(&home, url, cli.json, a),
        Command::Set(a) => cli::set(&home, url, cli.json, a),
        Command::Owner(c) => cli::owner(&home, url, cli.json, c),
        Command::Oracle(c) => cli::oracle(&home, cli.json, c),
        Command::Amend(a) => cli::amend(&home, url, cli.json, a),
        Command::Completions { shell } => shell::completions(*shell, &mut std::io::stdout()),
        Command::Man => shell::man(&mut std::io::stdout()),
    }
}
