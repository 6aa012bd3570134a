//! A test bed of real hosts on one machine: one Linux network namespace per node, made
//! and removed by the test, joined by a user-space switch (`netsim.py`) that delays
//! and drops frames, because this kernel has no netem (`../shared/notes/netns.md`).
//!
//! ```text
//! let bed = Bed::new(4);                         // namespaces, TAP devices, switch
//! bed.set_link(25, 1.0);                         // 25 ms each way, 1 % of frames lost
//! let n1 = bed.node(0, &net.home("n1")).start(); // lf node-start inside namespace 0
//! let n2 = bed.node(1, &net.home("n2")).peer(n1.p2p_addr()).start();
//! bed.cut(1); ... bed.heal(1);                   // a partition, then its heal
//! ```
//!
//! Node `i` has the address `10.18.0.<i + 1>` on its TAP device, inside its namespace
//! only: nothing is routed anywhere else. Nodes run under `nsenter --net=...`, which
//! changes only the network namespace (`ip netns exec` would also give them a mount
//! namespace of their own, hiding their FUSE mounts from the test); their HTTP API
//! listens on 127.0.0.1 inside the namespace, so `lf` commands run there too
//! ([`crate::TestNode::lf`] does it).
//!
//! Why a switch over TAP devices rather than nftables: `numgen random` drops would give
//! loss but nothing in this kernel gives delay; one switch gives both, partitions
//! (a cut port drops everything, as a pulled cable would, with no reset sent to either
//! side) and a count of what it forwarded and dropped. Its cost is a few tens of
//! microseconds of CPU per frame, far below the delays measured.
//!
//! Cleanup: dropping the bed stops the switch (the process it started, by its handle;
//! the switch also stops when its stdin closes, i.e. when the test process dies) and
//! deletes the namespaces (their TAP devices go with them). Nodes started in the bed
//! must be dropped first: declare the bed before them. Namespaces left by a test
//! process that was killed (`lfbed<pid>...` with that process gone) are deleted by the
//! next bed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::TestNode;
use crate::net::NodeBuilder;

const SWITCH: &str = include_str!("netsim.py");

/// Beds made by this process so far (names stay unique).
static BEDS: AtomicU32 = AtomicU32::new(0);

/// Namespaces joined by an emulated link. See the module documentation.
#[derive(Debug)]
pub struct Bed {
    namespaces: Vec<String>,
    switch: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

/// Runs a command, panicking with its output if it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip` inside namespace `ns`.
fn ip_in(ns: &str, args: &[&str]) -> String {
    run(Command::new("ip").args(["-n", ns]).args(args))
}

/// Deletes `lfbed<pid>...` namespaces whose process is gone (a test killed before its
/// bed was dropped).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("lfbed") else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl Bed {
    /// `n` namespaces on one switch, with a perfect link (no delay, no loss).
    pub fn new(n: usize) -> Bed {
        assert!((1..=200).contains(&n), "1 to 200 nodes");
        remove_stale();
        let (pid, k) = (std::process::id(), BEDS.fetch_add(1, Ordering::Relaxed));
        let namespaces: Vec<String> = (0..n).map(|i| format!("lfbed{pid}b{k}n{i}")).collect();
        // Interface names have at most 15 bytes.
        let taps: Vec<String> = (0..n)
            .map(|i| format!("lt{}b{k}n{i}", pid % 1_000_000))
            .collect();
        let mut switch = Command::new("python3")
            .args(["-u", "-c", SWITCH])
            .args(&taps)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the bed's switch (python3)");
        let stdin = switch.stdin.take().expect("piped");
        let mut stdout = BufReader::new(switch.stdout.take().expect("piped"));
        let mut line = String::new();
        // On failure the switch stops by itself: its stdin closes.
        stdout.read_line(&mut line).expect("reading the switch");
        assert_eq!(line.trim(), "ready", "the switch did not start");
        // From here on, Drop stops the switch and deletes the namespaces.
        let bed = Bed {
            namespaces,
            switch,
            io: Mutex::new((stdin, stdout)),
        };
        for ns in &bed.namespaces {
            run(Command::new("ip").args(["netns", "add", ns]));
        }
        for (i, (ns, tap)) in bed.namespaces.iter().zip(&taps).enumerate() {
            run(Command::new("ip").args(["link", "set", tap, "netns", ns]));
            ip_in(ns, &["link", "set", "lo", "up"]);
            ip_in(ns, &["addr", "add", &format!("{}/24", addr(i)), "dev", tap]);
            ip_in(ns, &["link", "set", tap, "up"]);
        }
        bed
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.namespaces.len()
    }

    /// Whether the bed has no node (never: at least one is made).
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// Namespace of node `i` (under /run/netns).
    pub fn netns(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    /// Address of node `i` (inside its namespace).
    pub fn addr(&self, i: usize) -> String {
        addr(i)
    }

    /// How to start a node on `home` in namespace `i`: its P2P address is the
    /// namespace's, everything else as [`TestNode::on`].
    pub fn node(&self, i: usize, home: &Path) -> NodeBuilder {
        TestNode::on(home)
            .netns(self.netns(i))
            .p2p_bind(&self.addr(i))
    }

    /// `program args...` in namespace `i` (only the network namespace changes).
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns(i)))
            .arg(program);
        c
    }

    fn ask(&self, cmd: &str) -> String {
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(io.0, "{cmd}").expect("writing to the switch");
        io.0.flush().expect("writing to the switch");
        let mut line = String::new();
        io.1.read_line(&mut line).expect("reading the switch");
        assert!(line.starts_with("ok"), "switch: {cmd}: {line}");
        line.trim().to_string()
    }

    /// Every frame is delayed `delay_ms` (one way: a round trip takes twice that) and
    /// `loss_percent` % of frames are dropped.
    pub fn set_link(&self, delay_ms: u32, loss_percent: f64) {
        self.ask(&format!("link {delay_ms} {loss_percent}"));
    }

    /// Cuts node `i` off: every frame from or to it is dropped, silently.
    pub fn cut(&self, i: usize) {
        self.ask(&format!("cut {i}"));
    }

    /// Reconnects node `i`.
    pub fn heal(&self, i: usize) {
        self.ask(&format!("heal {i}"));
    }

    /// Frames forwarded and dropped by the switch so far.
    pub fn stats(&self) -> (u64, u64) {
        let line = self.ask("stats");
        let mut w = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0));
        (w.next().unwrap_or(0), w.next().unwrap_or(0))
    }
}

fn addr(i: usize) -> String {
    format!("10.18.0.{}", i + 1)
}

impl Drop for Bed {
    fn drop(&mut self) {
        // The process this bed started, by its handle (never by name).
        let _ = self.switch.kill();
        let _ = self.switch.wait();
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
