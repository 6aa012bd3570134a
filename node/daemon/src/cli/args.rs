//! Command-line grammar (clap) and the seed-compatible single-dash long flags.
//!
//! The seed's CLI (Go `flag`) spells long options with one dash (`lf -json get ...`,
//! `lf -home DIR node-start`). clap wants two, so before parsing, any argument that is
//! a single dash followed by a known long option name (optionally `=value`) gets a
//! second dash. Known names are read from the clap definition itself, so new options
//! are covered without a list to keep in sync.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// LF: a fully replicated, decentralized key/value store and filesystem.
#[derive(Parser, Debug)]
#[command(
    name = "lf",
    version,
    arg_required_else_help = true,
    propagate_version = true
)]
pub struct Cli {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Node home directory (default: $HOME/.lf, or /var/lib/lf as root).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Node URL(s), comma-separated (default: from client.json in the home).
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the version.
    Version,
    /// Check records and proof of work on this machine, with timings.
    Selftest(SelftestArgs),
    /// Create a new network: genesis.lf and genesis-secret.pem in the current directory.
    Makegenesis(MakegenesisArgs),
    /// Run a node in the foreground (until SIGTERM or SIGINT).
    NodeStart(NodeStartArgs),
    /// Show the node's status.
    Status,
    /// Connect the running node to a peer (privileged).
    NodeConnect {
        /// The peer's address, e.g. /ip4/192.0.2.1/tcp/9908.
        #[arg(value_name = "MULTIADDR")]
        addr: String,
    },
    /// Read values: NAME (ordinal 0), NAME#ORD, NAME#FIRST#LAST, NAME# (all ordinals).
    Get(GetArgs),
    /// Write a value under one or more selectors: NAME[#ORD]... VALUE.
    Set(SetArgs),
    /// Manage owners (signing keys) kept in client.json.
    #[command(subcommand)]
    Owner(OwnerCommand),
    /// Manage the oracles whose commentary `lf get` trusts (kept in client.json).
    #[command(subcommand)]
    Oracle(OracleCommand),
    /// Print a line per change of a mount path (file or directory tree) or a selector
    /// (NAME[#ORD[#END]]); with `-- COMMAND ARGS...`, run the command after each burst
    /// of changes instead (changed paths in $LF_CHANGED, one per line).
    Watch(WatchArgs),
    /// List every version of a mount path or selector this node holds (timestamp,
    /// owner, size, hash, the winner and why); with -at, print one version's content.
    History(HistoryArgs),
    /// Write a version (-at TIME|HASH) of a mount path or selector back as a new one.
    Restore(RestoreArgs),
    /// Amend the network configuration (genesis owner only): FIELD=VALUE... for the
    /// fields the genesis lists as amendable, e.g. `work_difficulty=100`,
    /// `name="Corp net"`, `bootstrap_peers=["/ip4/192.0.2.1/tcp/9908"]`.
    Amend(AmendArgs),
    /// Print a shell completion script (e.g. `lf completions bash > /etc/bash_completion.d/lf`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `lf man > /usr/local/share/man/man1/lf.1`.
    Man,
}

/// `lf amend` options.
#[derive(Args, Debug)]
pub struct AmendArgs {
    /// The genesis owner's key (written by `lf makegenesis`).
    #[arg(long, value_name = "FILE", default_value = "genesis-secret.pem")]
    pub key: std::path::PathBuf,
    /// Changes: FIELD=VALUE (VALUE as JSON, or plain text for strings).
    #[arg(value_name = "FIELD=VALUE", required = true)]
    pub changes: Vec<String>,
}

/// `lf node-start` options.
#[derive(Args, Debug)]
pub struct NodeStartArgs {
    /// HTTP API port on 127.0.0.1.
    #[arg(long, default_value_t = 9980)]
    pub http: u16,
    /// P2P port (TCP).
    #[arg(long, default_value_t = 9908)]
    pub p2p: u16,
    /// Address the P2P port listens on (the HTTP API stays on 127.0.0.1).
    #[arg(long = "p2p-bind", value_name = "IP", default_value = "0.0.0.0")]
    pub p2p_bind: std::net::IpAddr,
    /// Peer to connect to, e.g. /ip4/192.0.2.1/tcp/9908 (repeatable).
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub peers: Vec<String>,
    /// Most peers connected to this node at once (connections they opened); further
    /// ones are refused. 0: dial out only.
    #[arg(long = "max-inbound", value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(0..=4096))]
    pub max_inbound: u32,
    /// Most peers this node connects to at once (connections it opens: `-peer`,
    /// peers.json, genesis bootstrap peers, peer exchange, `lf node-connect`).
    #[arg(long = "max-outbound", value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_outbound: u32,
    /// Let peer exchange dial loopback, private (10/8, 172.16/12, 192.168/16,
    /// 100.64/10, fc00::/7) and link-local addresses other peers name, even when none
    /// of this node's own addresses is in such a network.
    #[arg(long = "allow-private-peers")]
    pub allow_private_peers: bool,
    /// Look for peers on the LAN with mDNS, whatever the network says (by default a
    /// node does on every network but the embedded default one, unless its genesis
    /// says `mdns: false`).
    #[arg(long, conflicts_with = "no_mdns")]
    pub mdns: bool,
    /// Never look for peers on the LAN (no mDNS: nothing multicast, nothing heard).
    #[arg(long = "no-mdns")]
    pub no_mdns: bool,
    /// Oracle mode: publish commentary flagging records that lost a collision here (and,
    /// when nothing collides, an empty one every 30 rounds, adding work to the DAG).
    #[arg(long)]
    pub oracle: bool,
    /// Seconds between oracle rounds.
    #[arg(long = "oracle-interval", value_name = "SECONDS", default_value_t = 10)]
    pub oracle_interval: u64,
    /// MiB of LFFS writes waiting for proof of work past which new writes fail with
    /// ENOSPC until the queue drains (below it, a file of any size still enters).
    #[arg(long = "lffs-queue-mib", value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub lffs_queue_mib: u64,
    /// Also answer HTTP requests whose `Host` is this (`name` or `name:port`; beside
    /// 127.0.0.1, localhost and [::1], which always are), e.g. for a reverse proxy
    /// (repeatable). Any other `Host` is refused (DNS rebinding).
    #[arg(long = "http-allow-host", value_name = "HOST")]
    pub http_allow_hosts: Vec<String>,
    /// Most HTTP connections open at once; more are closed as soon as they connect.
    #[arg(long = "http-max-connections", value_name = "N", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub http_max_connections: u32,
    /// Most watchers (`/watch` long-polls and streams, `lf watch`) open at once; each
    /// also holds an HTTP connection (-http-max-connections).
    #[arg(long = "watch-max", value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub watch_max: u32,
    /// Stretches of new records kept for a watcher that is slow to take them; one
    /// further behind reads them from the store instead (lf_watch_lagged_total).
    #[arg(long = "watch-buffer", value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub watch_buffer: u32,
}

/// `lf get` options.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// Masking key (default: the first selector's name).
    #[arg(long)]
    pub mask: Option<String>,
    /// Only records at or after this Unix time.
    #[arg(long, value_name = "UNIX")]
    pub tstart: Option<u64>,
    /// Only records at or before this Unix time.
    #[arg(long, value_name = "UNIX")]
    pub tend: Option<u64>,
    /// Also match records with more selectors than given.
    #[arg(long)]
    pub open: bool,
    /// Print the winning values only, back to back, without formatting.
    #[arg(long)]
    pub raw: bool,
    /// Selectors.
    #[arg(required = true, value_name = "NAME[#ORD[#END]]")]
    pub selectors: Vec<String>,
}

/// `lf watch` options.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Wait for the next change, print it and exit (for scripts).
    #[arg(long)]
    pub once: bool,
    /// Resume after this position (the Cursor of the last event seen; 0: from the
    /// first version).
    #[arg(long, value_name = "N")]
    pub cursor: Option<u64>,
    /// For a directory: only its own entries, not the whole tree below it.
    #[arg(long = "no-tree")]
    pub no_tree: bool,
    /// Masking key of selector values (default: the selector's name).
    #[arg(long)]
    pub mask: Option<String>,
    /// Milliseconds without a change that end a burst (exec mode).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub debounce: u64,
    /// Exec mode: exit with the command's status when it fails (default: log it and
    /// keep watching).
    #[arg(long = "exit-on-error")]
    pub exit_on_error: bool,
    /// A path on a mount of this node, or a selector NAME[#ORD[#END]].
    #[arg(required = true, value_name = "PATH|SELECTOR")]
    pub target: String,
    /// Command to run after each burst of changes (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `lf history` options.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Print this version's content: a hash (=...) or a time (Unix seconds or
    /// YYYY-MM-DDTHH:MM:SSZ: the newest version not after it).
    #[arg(long, value_name = "TIME|HASH")]
    pub at: Option<String>,
    /// Masking key of selector values (default: the selector's name).
    #[arg(long)]
    pub mask: Option<String>,
    /// A path on a mount of this node, or a selector NAME[#ORD].
    #[arg(value_name = "PATH|SELECTOR")]
    pub target: String,
}

/// `lf restore` options.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The version to write back: a hash (=...) or a time.
    #[arg(long, value_name = "TIME|HASH", required = true)]
    pub at: String,
    /// Masking key of selector values (default: the selector's name).
    #[arg(long)]
    pub mask: Option<String>,
    /// Owner to sign a restored selector value with (default: the default owner).
    #[arg(long)]
    pub owner: Option<String>,
    /// A path on a mount of this node, or a selector NAME[#ORD].
    #[arg(value_name = "PATH|SELECTOR")]
    pub target: String,
}

/// `lf set` options.
#[derive(Args, Debug)]
pub struct SetArgs {
    /// Read the value from this file (`-` for stdin) instead of the last argument.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Masking key (default: the first selector's name).
    #[arg(long)]
    pub mask: Option<String>,
    /// Owner name from client.json (default: the default owner).
    #[arg(long)]
    pub owner: Option<String>,
    /// Selectors, then the value (unless --file).
    #[arg(required = true, value_name = "NAME[#ORD]... VALUE")]
    pub args: Vec<String>,
}

/// `lf oracle` subcommands.
#[derive(Subcommand, Debug)]
pub enum OracleCommand {
    /// List trusted oracles.
    List,
    /// Trust an oracle (`@owner`, e.g. an oracle node's identity from `lf status`).
    Add {
        /// `@owner`.
        owner: String,
    },
    /// Stop trusting an oracle.
    Remove {
        /// `@owner`.
        owner: String,
    },
}

/// `lf owner` subcommands.
#[derive(Subcommand, Debug)]
pub enum OwnerCommand {
    /// List owners.
    List,
    /// Create a new random owner.
    New {
        /// Name.
        name: String,
    },
    /// Create an owner from a passphrase (the same passphrase gives the same owner).
    Newfrompass {
        /// Name.
        name: String,
        /// Passphrase.
        passphrase: String,
    },
    /// Make an owner the default.
    Default {
        /// Name.
        name: String,
    },
    /// Delete an owner (its secret key is lost).
    Delete {
        /// Name.
        name: String,
    },
    /// Show an owner's status on the node (by name or @owner).
    Show {
        /// Name or @owner.
        owner: String,
    },
    /// Write a certificate signing request (PKCS#10, PEM) for an owner, to be signed
    /// by the network's CA with `lf owner sign`.
    Csr {
        /// Owner name from client.json (default: the default owner).
        #[arg(long, conflicts_with = "key")]
        owner: Option<String>,
        /// Or the owner's secret key file (PEM), e.g. a mount's `owner_private` or the
        /// node's identity-secret.pem.
        #[arg(long, value_name = "PEM")]
        key: Option<PathBuf>,
        /// Common name to request (informational: the certificate binds the key).
        #[arg(long)]
        cn: Option<String>,
        /// Output file (default: NAME.csr in the current directory, NAME being the
        /// owner's name or the key file's stem).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Sign a certificate request with a CA file (from `lf makegenesis -ca`): writes
    /// the owner's certificate (PEM).
    Sign {
        /// The CA file (certificate and private key, PEM).
        #[arg(long, value_name = "PEM")]
        ca: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Output file (default: the request's name with .crt).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// The request (PEM or DER).
        csr: PathBuf,
    },
    /// Publish an owner certificate as a record (signed by the certified owner from
    /// client.json, or by the CA with -ca); nodes pick it up on arrival.
    PublishCert {
        /// Sign the record with this CA file instead of the certified owner.
        #[arg(long, value_name = "PEM")]
        ca: Option<PathBuf>,
        /// The certificate (PEM or DER).
        cert: PathBuf,
    },
    /// Revoke certificates: make a CRL with the CA file and publish it as a record.
    Revoke {
        /// The CA file that issued the certificates.
        #[arg(long, value_name = "PEM")]
        ca: PathBuf,
        /// Also write the CRL (DER) here.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// The certificates to revoke (PEM or DER).
        #[arg(required = true)]
        certs: Vec<PathBuf>,
    },
    /// Publish a CRL (DER or PEM) made elsewhere, signed by the CA file's key.
    PublishCrl {
        /// The CA file whose key signs the record.
        #[arg(long, value_name = "PEM")]
        ca: PathBuf,
        /// The CRL.
        crl: PathBuf,
    },
}

/// `lf selftest` options.
#[derive(Args, Debug)]
pub struct SelftestArgs {
    /// Skip the default-difficulty proof-of-work timing (seconds per record).
    #[arg(long)]
    pub quick: bool,
}

/// `lf makegenesis` options; any not given is asked for when stdin is a terminal.
#[derive(Args, Debug, Default)]
pub struct MakegenesisArgs {
    /// Network name (required).
    #[arg(long)]
    pub name: Option<String>,
    /// Contact (URL or e-mail).
    #[arg(long)]
    pub contact: Option<String>,
    /// Comment.
    #[arg(long)]
    pub comment: Option<String>,
    /// Fewest links per record (1..=15; default 2).
    #[arg(long, value_name = "N")]
    pub min_links: Option<u32>,
    /// Largest value in bytes (default 1024).
    #[arg(long, value_name = "BYTES")]
    pub max_value_size: Option<u32>,
    /// Largest clock drift into the future, seconds (default 60).
    #[arg(long, value_name = "SECONDS")]
    pub max_time_drift: Option<u64>,
    /// Comma-separated fields the genesis owner may amend later.
    #[arg(long, value_name = "FIELDS")]
    pub amendable: Option<String>,
    /// Proof-of-work difficulty factor; 0 = no proof of work (private test networks).
    #[arg(long, value_name = "N")]
    pub difficulty: Option<u32>,
    /// Bootstrap peer multiaddr (repeatable).
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub peers: Vec<String>,
    /// Nodes of this network do not look for each other on their LAN (mDNS) unless
    /// their operator says `-mdns` (genesis field `mdns: false`).
    #[arg(long = "no-mdns")]
    pub no_mdns: bool,
    /// Create a root CA (P-384): its certificate goes into the network configuration,
    /// its certificate and key into genesis-ca.pem (mode 0600).
    #[arg(long)]
    pub ca: bool,
    /// The root CA's common name (default: "<network name> root CA").
    #[arg(long, value_name = "NAME")]
    pub ca_name: Option<String>,
    /// Days the root CA is valid.
    #[arg(long, value_name = "DAYS", default_value_t = 36500)]
    pub ca_days: u64,
    /// Refuse records from owners without a valid certificate (needs -ca).
    #[arg(long)]
    pub auth_required: bool,
    /// Never prompt; use defaults for anything not given.
    #[arg(long)]
    pub yes: bool,
    /// Overwrite an existing genesis.lf.
    #[arg(long)]
    pub force: bool,
    /// Directory to write into (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn long_names(cmd: &clap::Command, out: &mut HashSet<String>) {
    for a in cmd.get_arguments() {
        if let Some(l) = a.get_long() {
            out.insert(l.to_string());
        }
    }
    for s in cmd.get_subcommands() {
        long_names(s, out);
    }
}

/// Rewrites `-name[=v]` to `--name[=v]` for every long option `name` of `cli` (the
/// grammar, [`Cli::command`], built once by the caller for this and for parsing).
pub fn normalize_single_dash(cli: &clap::Command, argv: Vec<OsString>) -> Vec<OsString> {
    let mut names = HashSet::new();
    long_names(cli, &mut names);
    names.insert("help".into());
    names.insert("version".into());
    let mut out = Vec::with_capacity(argv.len());
    let mut passthrough = false;
    for (i, a) in argv.into_iter().enumerate() {
        let s = a.to_string_lossy();
        if i == 0 || passthrough {
            out.push(a);
            continue;
        }
        if s == "--" {
            passthrough = true;
            out.push(a);
            continue;
        }
        let is_single = s.starts_with('-') && !s.starts_with("--") && s.len() > 2;
        let name = s
            .trim_start_matches('-')
            .split('=')
            .next()
            .unwrap_or_default();
        if is_single && names.contains(name) {
            out.push(format!("-{s}").into());
        } else {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn norm(a: &[&str]) -> Vec<String> {
        normalize_single_dash(&Cli::command(), a.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double() {
        assert_eq!(
            norm(&["lf", "-json", "version"]),
            ["lf", "--json", "version"]
        );
        assert_eq!(
            norm(&["lf", "-home=/x", "version"]),
            ["lf", "--home=/x", "version"]
        );
        assert_eq!(norm(&["lf", "--json", "-h"]), ["lf", "--json", "-h"]);
        assert_eq!(norm(&["lf", "-bogus"]), ["lf", "-bogus"]);
        assert_eq!(norm(&["lf", "--", "-json"]), ["lf", "--", "-json"]);
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
