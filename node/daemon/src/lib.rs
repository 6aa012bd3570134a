//! The `lf` command line and the node, as a library behind two programs (see
//! ARCHITECTURE.md, "Two programs"): `lf` (`src/main.rs`), the commands a user runs,
//! which hands `lf node-start` to `lf-node` (`src/bin/lf-node.rs`), the whole program.
//! `lf` links none of the node, so each `lf get` maps a third of the code and
//! relocates a sixth of the data. This file only parses arguments, dispatches and
//! turns errors into one clear line and a non-zero exit.

mod cli;
mod common;
mod daemon;
mod http;
mod lffs_glue;
mod node;
mod oracle;
mod replication;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use cli::args::{Cli, Command, NodeStartArgs};

/// How `lf node-start` is carried out.
type NodeStart = fn(PathBuf, &NodeStartArgs) -> anyhow::Result<()>;

/// `lf`: every command; `node-start` runs `lf-node`.
pub fn client_main() -> ExitCode {
    main_with(run_node_program)
}

/// `lf-node`: every command, `node-start` included.
pub fn node_main() -> ExitCode {
    if let Some(theirs) = std::env::var_os(BUILD_ENV)
        && theirs != BUILD_ID
    {
        eprintln!(
            "lf: {} is not from the build of the `lf` that ran it (rebuild and install both: \
             cargo build --release -p lf)",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "lf-node".into())
        );
        return ExitCode::FAILURE;
    }
    main_with(start_node)
}

/// Names the sources both programs were built from (`build.rs`): `lf` passes it to
/// the `lf-node` it runs, which refuses a mismatch (a node from older sources behind a
/// newer `lf`).
const BUILD_ID: &str = env!("LF_BUILD_ID");
const BUILD_ENV: &str = "LF_CLIENT_BUILD";

/// `lf node-start ...` as `lf-node node-start ...`, the program beside this one, in
/// this process (exec: the same PID for systemd and for whoever started it).
fn run_node_program(_home: PathBuf, _args: &NodeStartArgs) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let me = std::env::current_exe().context("cannot find the path of this program")?;
    let node = me.with_file_name("lf-node");
    let e = std::process::Command::new(&node)
        .args(std::env::args_os().skip(1))
        .env(BUILD_ENV, BUILD_ID)
        .exec();
    if e.kind() == std::io::ErrorKind::NotFound {
        bail!(
            "the node program {} is missing (or cannot be loaded): `lf node-start` runs it, \
             install it beside {} (cargo build --release -p lf builds both)",
            node.display(),
            me.display()
        );
    }
    Err(e).with_context(|| format!("cannot run the node program {}", node.display()))
}

/// `lf node-start`: the node, in this process.
fn start_node(home: PathBuf, a: &NodeStartArgs) -> anyhow::Result<()> {
    daemon::run(daemon::NodeOptions {
        home,
        http_port: a.http,
        p2p_port: a.p2p,
        p2p_bind: a.p2p_bind,
        peers: a.peers.clone(),
        max_connections: (a.max_inbound, a.max_outbound),
        allow_private_peers: a.allow_private_peers,
        mdns: match (a.mdns, a.no_mdns) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        oracle: a
            .oracle
            .then(|| std::time::Duration::from_secs(a.oracle_interval.max(1))),
        lffs_queue_bytes: a.lffs_queue_mib << 20,
        http_allow_hosts: a.http_allow_hosts.clone(),
        http_limits: http::server::HttpLimits {
            max_connections: a.http_max_connections as usize,
            ..http::server::HttpLimits::default()
        },
        watch_limits: watch::Limits {
            max_watchers: a.watch_max as usize,
            buffer: a.watch_buffer as usize,
        },
    })
}

fn main_with(node_start: NodeStart) -> ExitCode {
    quiet_on_closed_stdout();
    // The grammar is built once (it was a tenth of an `lf get`'s own time, twice).
    let grammar = <Cli as clap::CommandFactory>::command();
    let argv = cli::args::normalize_single_dash(&grammar, std::env::args_os().collect());
    let parsed = grammar.try_get_matches_from(&argv).and_then(|m| {
        <Cli as clap::FromArgMatches>::from_arg_matches(&m)
            .map_err(|e| e.format(&mut <Cli as clap::CommandFactory>::command()))
    });
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            // Help and version are not errors; clap prints them with the right stream,
            // and `lf` alone prints the help (with a usage error's exit code).
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                let _ = e.print();
                return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
            }
            eprintln!(
                "lf: {}",
                one_line(&e.render().to_string(), &subcommand(&argv))
            );
            return ExitCode::from(2);
        }
    };
    match run(cli, node_start) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            // The reader of our output went away (`lf man | head`): nothing to report.
            ExitCode::from(141)
        }
        Err(e) => {
            eprintln!("lf: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `lf get ... | head` closes the pipe early: Rust ignores SIGPIPE, so the next print
/// panics (or, for writers that return errors, fails: see `main`). End quietly instead, with the status a process killed by SIGPIPE has (141),
/// as other command-line tools do; every other panic keeps the default report.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        // std's print! and clap_complete's generator panic when the pipe is gone.
        if msg.contains("Broken pipe") || msg.contains("BrokenPipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// "lf" and the subcommand named in `argv`, if any: where a usage error's help is.
fn subcommand(argv: &[std::ffi::OsString]) -> String {
    let cmd = <Cli as clap::CommandFactory>::command();
    let name = argv.iter().skip(1).find_map(|a| {
        let a = a.to_str()?;
        cmd.get_subcommands()
            .any(|s| s.get_name() == a)
            .then(|| a.to_string())
    });
    match name {
        Some(n) => format!("lf {n}"),
        None => "lf".into(),
    }
}

/// Clap's usage error as one line, as every other `lf` error: the message, its tips,
/// and where to read more ("error: X\n\n  tip: Y\n\nUsage: lf get ..." becomes
/// "X (tip: Y; see 'lf get --help')"); `command` ("lf get") is used when clap printed
/// no usage line.
fn one_line(rendered: &str, command: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let mut out = first.strip_prefix("error: ").unwrap_or(first).to_string();
    let mut extra: Vec<String> = Vec::new();
    let mut help = false;
    for l in lines {
        if let Some(tip) = l.strip_prefix("tip: ") {
            extra.push(format!("tip: {tip}"));
        } else if let Some(usage) = l.strip_prefix("Usage: ") {
            let path: Vec<&str> = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect();
            if !path.is_empty() {
                extra.push(format!("see '{} --help'", path.join(" ")));
                help = true;
            }
        }
    }
    if !help {
        extra.push(format!("see '{command} --help'"));
    }
    if !extra.is_empty() {
        out.push_str(&format!(" ({})", extra.join("; ")));
    }
    out
}

fn run(cli: Cli, node_start: NodeStart) -> anyhow::Result<()> {
    let home = common::home::resolve(cli.home.as_deref());
    let url = cli.url.as_deref();
    match &cli.command {
        Command::Version => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Selftest(a) => cli::selftest::run(a, cli.json),
        Command::Makegenesis(a) => cli::makegenesis::run(a, cli.json),
        Command::NodeStart(a) => node_start(home, a),
        Command::Watch(a) => cli::watch::watch(&home, url, cli.json, a),
        Command::History(a) => cli::watch::history(&home, url, cli.json, a),
        Command::Restore(a) => cli::watch::restore(&home, url, cli.json, a),
        Command::Status => cli::status(&home, url, cli.json),
        Command::NodeConnect { addr } => cli::node_connect(&home, url, cli.json, addr),
        Command::Get(a) => cli::get(&home, url, cli.json, a),
        Command::Set(a) => cli::set(&home, url, cli.json, a),
        Command::Owner(c) => cli::owner(&home, url, cli.json, c),
        Command::Oracle(c) => cli::oracle(&home, cli.json, c),
        Command::Amend(a) => cli::amend(&home, url, cli.json, a),
        Command::Completions { shell } => cli::shell::completions(*shell, &mut std::io::stdout()),
        Command::Man => cli::shell::man(&mut std::io::stdout()),
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn clap_errors_become_one_line_with_tip_and_help_pointer() {
        let rendered = "error: unexpected argument '-x' found\n\n  tip: to pass '-x' as a value, \
                        use '-- -x'\n\nUsage: lf get [OPTIONS] <SELECTORS>...\n\nFor more \
                        information, try '--help'.\n";
        assert_eq!(
            one_line(rendered, "lf get"),
            "unexpected argument '-x' found (tip: to pass '-x' as a value, use '-- -x'; \
             see 'lf get --help')"
        );
        assert_eq!(
            one_line(
                "error: bad value\n\nFor more information, try '--help'.\n",
                "lf set"
            ),
            "bad value (see 'lf set --help')"
        );
    }
}
