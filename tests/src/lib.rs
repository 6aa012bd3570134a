//! Helpers shared by the end-to-end tests in `tests/tests/`: building and locating the
//! real `lf` binary and running it in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Path to a freshly built `lf` binary (built once per test process, with the same
/// profile and target directory as the tests themselves).
pub fn lf_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test-binary> → target/<profile>/lf
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "lf", "--bin", "lf"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the lf binary");
        assert!(status.success(), "cargo build -p lf failed");
        let bin = profile_dir.join("lf");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
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

/// A fresh node home `dir/name` holding the network of `net` (its genesis.lf).
pub fn home_on(net: &Path, dir: &Path, name: &str) -> std::path::PathBuf {
    let h = dir.join(name);
    std::fs::create_dir_all(&h).unwrap();
    std::fs::copy(net.join("genesis.lf"), h.join("genesis.lf")).unwrap();
    h
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A real `lf node-start` on a temporary home and a free loopback port; stopped
/// (SIGKILL) on drop if still running.
pub struct TestNode {
    /// The node's home (kept for restarts).
    pub home: PathBuf,
    /// HTTP port.
    pub port: u16,
    /// P2P port (bound on 127.0.0.1).
    pub p2p_port: u16,
    /// Peers given with `-peer` at every (re)start.
    pub peers: Vec<String>,
    /// More `node-start` options given at every (re)start.
    pub extra: Vec<String>,
    child: Option<std::process::Child>,
}

/// Picks a free loopback port (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a private test network without proof of work into `home/genesis.lf`.
pub fn private_network(home: &Path) {
    std::fs::create_dir_all(home).unwrap();
    let o = lf(
        home,
        &[
            "makegenesis",
            "--yes",
            "--name",
            "test",
            "--difficulty",
            "0",
            "--out",
            ".",
        ],
    );
    assert!(o.status.success(), "makegenesis: {}", stderr(&o));
}

impl TestNode {
    /// Starts a node on `home` (which may hold a genesis.lf) and waits until it serves.
    pub fn start(home: &Path) -> TestNode {
        TestNode::start_with_peers(home, &[])
    }

    /// Like [`TestNode::start`], with extra `node-start` options.
    pub fn start_with_args(home: &Path, extra: &[&str]) -> TestNode {
        TestNode::launch(home, &[], extra)
    }

    /// Like [`TestNode::start`], dialing `peers` (multiaddrs) at start.
    pub fn start_with_peers(home: &Path, peers: &[String]) -> TestNode {
        TestNode::launch(home, peers, &[])
    }

    /// Like [`TestNode::start`], listening for P2P on `p2p_port` (chosen beforehand,
    /// e.g. to name the node as a bootstrap peer in the network's genesis).
    pub fn start_on_p2p_port(home: &Path, p2p_port: u16) -> TestNode {
        TestNode::launch_on(home, p2p_port, &[], &[])
    }

    fn launch(home: &Path, peers: &[String], extra: &[&str]) -> TestNode {
        TestNode::launch_on(home, free_port(), peers, extra)
    }

    fn launch_on(home: &Path, p2p_port: u16, peers: &[String], extra: &[&str]) -> TestNode {
        // No FUSE mounts unless the test writes its own mounts.yaml (the shipped one
        // would mount /mnt/lf).
        let mounts = home.join("mounts.yaml");
        if !mounts.exists() {
            std::fs::create_dir_all(home).unwrap();
            std::fs::write(mounts, "[]\n").unwrap();
        }
        // (A port picked earlier is free again, so the HTTP port might repeat it.)
        let port = std::iter::repeat_with(free_port)
            .find(|p| *p != p2p_port)
            .unwrap();
        let mut n = TestNode {
            home: home.to_path_buf(),
            port,
            p2p_port,
            peers: peers.to_vec(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        n.restart();
        n
    }

    /// (Re)starts the process on the same home and port.
    pub fn restart(&mut self) {
        let port = self.port.to_string();
        let p2p = self.p2p_port.to_string();
        let log = std::fs::File::create(self.home.join("test-node.out")).unwrap();
        let mut args: Vec<&str> = vec![
            "-home",
            self.home.to_str().unwrap(),
            "node-start",
            "-http",
            &port,
            "-p2p",
            &p2p,
            "-p2p-bind",
            "127.0.0.1",
        ];
        for p in &self.peers {
            args.extend(["-peer", p.as_str()]);
        }
        args.extend(self.extra.iter().map(String::as_str));
        let child = Command::new(lf_bin())
            .args(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning lf node-start");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            // Serving, and client.json points at this node (the CLI reads it).
            let client = std::fs::read_to_string(self.home.join("client.json")).unwrap_or_default();
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && client.contains(&format!(":{}", self.port))
            {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("node exited with {st}: {}", self.output());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node did not start: {}",
                self.output()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// What the node printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.home.join("test-node.out")).unwrap_or_default()
    }

    /// The node's P2P address.
    pub fn p2p_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port)
    }

    /// The node's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `lf -home <home> args...` against this node.
    pub fn lf(&self, args: &[&str]) -> Output {
        let mut all = vec!["-home", self.home.to_str().unwrap()];
        all.extend_from_slice(args);
        lf(&self.home, &all)
    }

    /// Runs `lf -home <home> -url <this node> args...`: the explicit URL, because
    /// client.json may lag a restart or the port opening.
    pub fn lf_url(&self, args: &[&str]) -> Output {
        let url = self.url();
        let mut all = vec!["-url", url.as_str()];
        all.extend_from_slice(args);
        self.lf(&all)
    }

    /// `lf -json status` of this node, parsed (asked through [`TestNode::lf_url`]).
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&ok(&self.lf_url(&["-json", "status"]))).expect("status JSON")
    }

    /// The connected peers `lf -json status` lists, as (peer ID, inbound), by ID.
    pub fn peers(&self) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self.status()["Peers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        let id = p["PeerID"].as_str()?.to_string();
                        Some((id, p["Inbound"].as_bool().unwrap_or(false)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The connected peers' IDs, sorted.
    pub fn peer_ids(&self) -> Vec<String> {
        self.peers().into_iter().map(|(id, _)| id).collect()
    }

    /// Sends a signal with kill(1) and waits for the exit status.
    pub fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("node running");
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        child.wait().unwrap()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A node killed (or stopped by a failing test) leaves its FUSE mounts dead:
        // clear every LFFS mount under the test's directory, so none outlives the test.
        if let Some(dir) = self.home.parent() {
            for m in lffs_mounts_under(dir) {
                let _ = Command::new("umount").arg("-l").arg(&m).status();
            }
        }
    }
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

/// A node with one LFFS mount at `<dir>/mnt` on a private network without proof of
/// work (values up to `max_value` bytes).
pub struct FuseNode {
    /// The node.
    pub node: TestNode,
    /// The mount point.
    pub mnt: PathBuf,
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

impl FuseNode {
    /// Creates the network and mounts.yaml in `dir/home`, starts the node, waits for
    /// the mount.
    pub fn start(dir: &Path, max_value: u32) -> FuseNode {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let o = lf(
            &home,
            &[
                "makegenesis",
                "--yes",
                "--name",
                "fuse",
                "--difficulty",
                "0",
                "--max-value-size",
                &max_value.to_string(),
                "--out",
                ".",
            ],
        );
        assert!(o.status.success(), "makegenesis: {}", stderr(&o));
        let mnt = dir.join("mnt");
        std::fs::write(
            home.join("mounts.yaml"),
            format!(
                "- path: {}\n  root: test.root\n  owner_private: identity-secret.pem\n  \
                 allow_other: true\n",
                mnt.display()
            ),
        )
        .unwrap();
        let node = TestNode::start(&home);
        let n = FuseNode { node, mnt };
        n.wait_mounted();
        n
    }

    /// Waits until the mount is up.
    pub fn wait_mounted(&self) {
        assert!(
            wait_until(20, || is_mounted(&self.mnt)),
            "not mounted: {}",
            self.node.output()
        );
    }

    /// Runs `sh -c script` with `$M` set to the mount point; returns stdout, panics on
    /// failure.
    pub fn sh(&self, script: &str) -> String {
        let o = self.sh_status(script);
        assert!(
            o.status.success(),
            "script failed: {script}\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Like [`FuseNode::sh`] but returns the output whatever the status.
    pub fn sh_status(&self, script: &str) -> Output {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("M", &self.mnt)
            .output()
            .unwrap()
    }
}

impl Drop for FuseNode {
    fn drop(&mut self) {
        // Kill the node, then make sure no mount outlives the test.
        if let Some(mut c) = self.node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}
