//! Helpers shared by the end-to-end tests in `tests/tests/`: building and locating the
//! real `lf` binary and running it in a scratch directory; the test network builder
//! (networks, homes, mounts, nodes that clean up their mounts) is in [`net`], the bed
//! of network namespaces joined by an emulated link ([`Bed`]) in [`netns`], the soak
//! driver (issue 19) in [`soak`].

mod net;
mod netns;
pub mod soak;

pub use netns::Bed;

pub use net::{
    FuseNode, Mount, MountGuard, NodeBuilder, NodeProcess, TestNet, TestNetBuilder, TestNode,
    private_network, test_dir_of, write_mounts,
};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Path to a freshly built `lf` binary (built once per test process, with the same
/// profile and target directory as the tests themselves, with `lf-node` beside it, which
/// `lf node-start` runs), or `$LF_BIN` when set (the bench scripts measure a given
/// binary that way; its `lf-node` must be beside it).
pub fn lf_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("LF_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => cargo_build(&["-p", "lf", "--bins"], "lf"),
    })
}

/// Runs `cargo build` with `args` in the caller's profile and target directory (taken
/// from the running executable: target/<profile>/{deps,examples}/<binary>) and returns
/// `target/<profile>/<output>`.
fn cargo_build(args: &[&str], output: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet"]).args(args);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
    let bin = profile_dir.join(output);
    assert!(bin.exists(), "{} missing after build", bin.display());
    bin
}

/// Path to the hostile peer (`node/p2p/examples/hostile_peer.rs`), built once per
/// process with the same profile and target directory as the caller.
pub fn hostile_peer_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        cargo_build(
            &["-p", "lf-p2p", "--example", "hostile_peer"],
            "examples/hostile_peer",
        )
    })
}

/// Starts the hostile peer's `attack` against `node` of `network` (its id in hex); it
/// exits by itself within `secs` + 10 s.
pub fn hostile_peer(
    node: &TestNode,
    network: &str,
    attack: &str,
    secs: u64,
) -> std::process::Child {
    Command::new(hostile_peer_bin())
        .args([network, node.p2p_addr().as_str(), attack, &secs.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting hostile_peer")
}

/// Runs `lf` with `args` in `dir` and returns its output.
pub fn lf(dir: &Path, args: &[&str]) -> Output {
    Command::new(lf_bin())
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .expect("running lf")
}

/// Stdout of a successful `lf` run (panics with its output otherwise).
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "lf failed: {}{}", stdout(o), stderr(o));
    stdout(o)
}

/// Stderr of an `lf` run that must fail (panics with its stdout otherwise).
pub fn fails(o: &Output) -> String {
    assert!(!o.status.success(), "lf succeeded: {}", stdout(o));
    stderr(o)
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Picks a free loopback port (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// LFFS mount points (source `lffs` in /proc/self/mountinfo) at or below `dir`.
pub fn lffs_mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            let point = PathBuf::from(f.get(4)?);
            (f.get(dash + 2) == Some(&"lffs")).then_some(point)
        })
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Whether the mount on top at `path` is an LFFS mount (what a lookup of `path` reaches).
pub fn lffs_on_top(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_string_lossy();
    info.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(&*p))
        .is_some_and(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.iter()
                .position(|x| *x == "-")
                .is_some_and(|dash| f.get(dash + 2) == Some(&"lffs"))
        })
}

/// Whether `path` is a mount point now.
pub fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

/// Polls `f` until it is true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f()
}
