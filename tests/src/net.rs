//! The test network builder: every e2e/ops/FUSE test makes its private network, its node
//! homes, `mounts.yaml` and `lf node-start` processes through here, so that every node a
//! test starts (by [`TestNode`] or by a process the test spawns itself,
//! [`NodeProcess`]) leaves no LFFS mount behind, even when the test kills it or fails
//! half-way.
//!
//! ```text
//! let net = TestNet::private().name("certs").difficulty(50).ca().auth_required()
//!     .create(&dir.path().join("net"));          // lf makegenesis in dir/net
//! let n1 = TestNode::on(&net.home("n1")).start(); // dir/n1 with the net's genesis.lf
//! let n2 = TestNode::on(&net.home("n2")).peer(n1.p2p_addr())
//!     .mount(Mount::new(&dir.path().join("mnt"), "corp.root").owner("writer.pem"))
//!     .arg("-oracle").start();
//! ```
//!
//! Cleanup is scoped to the test's directory: the parent of the node's home (the
//! tempdir holding net, homes and mount points), or the home itself when the home is a
//! tempdir directly under the system's temporary directory (never all of /tmp).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};

use crate::{
    free_port, is_mounted, lf, lf_bin, lffs_mounts_under, lffs_on_top, ok, stderr, stdout,
    wait_until,
};

/// A private network made by `lf makegenesis` in a directory (its `genesis.lf`, the
/// genesis owner's key and, with [`TestNetBuilder::ca`], the root CA's key).
#[derive(Debug)]
pub struct TestNet {
    dir: PathBuf,
    output: String,
}

/// The options of a [`TestNet`]: by default named `test`, no proof of work, the
/// default limits, no CA.
#[derive(Debug, Clone)]
pub struct TestNetBuilder {
    name: String,
    difficulty: u32,
    max_value: Option<u32>,
    ca: bool,
    auth_required: bool,
    more: Vec<String>,
}

impl TestNet {
    /// A private network without proof of work, named `test`.
    pub fn private() -> TestNetBuilder {
        TestNetBuilder {
            name: "test".into(),
            difficulty: 0,
            max_value: None,
            ca: false,
            auth_required: false,
            more: Vec::new(),
        }
    }

    /// The directory holding the network's files (a node's home when the network was
    /// made in it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `lf makegenesis` printed.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// The network's `genesis.lf`.
    pub fn genesis(&self) -> PathBuf {
        self.dir.join("genesis.lf")
    }

    /// The genesis owner's key (`genesis-secret.pem`), which may amend the network.
    pub fn genesis_key(&self) -> PathBuf {
        self.dir.join("genesis-secret.pem")
    }

    /// The root CA's key (`genesis-ca.pem`; made with [`TestNetBuilder::ca`]).
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("genesis-ca.pem")
    }

    /// A fresh node home `name` beside the network's directory, holding its genesis.lf.
    pub fn home(&self, name: &str) -> PathBuf {
        let h = self
            .dir
            .parent()
            .expect("network directory has a parent")
            .join(name);
        std::fs::create_dir_all(&h).unwrap();
        std::fs::copy(self.genesis(), h.join("genesis.lf")).unwrap();
        h
    }
}

impl TestNetBuilder {
    /// The network's name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Proof-of-work difficulty (0: none; 350 is the default network's).
    pub fn difficulty(mut self, d: u32) -> Self {
        self.difficulty = d;
        self
    }

    /// Largest record value, in bytes.
    pub fn max_value(mut self, bytes: u32) -> Self {
        self.max_value = Some(bytes);
        self
    }

    /// With a root CA (`-ca`): its key goes to `genesis-ca.pem`.
    pub fn ca(mut self) -> Self {
        self.ca = true;
        self
    }

    /// Every writer needs a certificate (`-auth-required`; needs [`Self::ca`]).
    pub fn auth_required(mut self) -> Self {
        self.auth_required = true;
        self
    }

    /// More `makegenesis` options, e.g. `["--amendable", "name"]`.
    pub fn args(mut self, more: &[&str]) -> Self {
        self.more.extend(more.iter().map(|s| s.to_string()));
        self
    }

    /// The `lf makegenesis` arguments of this network (written to the current directory).
    pub fn makegenesis_args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["makegenesis", "--yes", "--name", &self.name, "--difficulty"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(self.difficulty.to_string());
        if let Some(m) = self.max_value {
            a.extend(["--max-value-size".into(), m.to_string()]);
        }
        if self.ca {
            a.push("-ca".into());
        }
        if self.auth_required {
            a.push("-auth-required".into());
        }
        a.extend(self.more.iter().cloned());
        a.extend(["--out".into(), ".".into()]);
        a
    }

    /// Runs `lf makegenesis` in `dir` (made if missing); panics with its output if it
    /// fails.
    pub fn create(&self, dir: &Path) -> TestNet {
        std::fs::create_dir_all(dir).unwrap();
        let args = self.makegenesis_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = lf(dir, &args);
        assert!(
            o.status.success(),
            "makegenesis: {}{}",
            stdout(&o),
            stderr(&o)
        );
        TestNet {
            dir: dir.to_path_buf(),
            output: stdout(&o),
        }
    }
}

/// Writes a private test network without proof of work into `home/genesis.lf`.
pub fn private_network(home: &Path) {
    TestNet::private().create(home);
}

/// One entry of a node's `mounts.yaml`: by default owned by the node's identity.
#[derive(Debug, Clone)]
pub struct Mount {
    path: PathBuf,
    root: String,
    owner: String,
    more: String,
}

impl Mount {
    /// A mount of the tree `root` at `path`, owned by `identity-secret.pem`.
    pub fn new(path: &Path, root: &str) -> Mount {
        Mount {
            path: path.to_path_buf(),
            root: root.into(),
            owner: "identity-secret.pem".into(),
            more: String::new(),
        }
    }

    /// Owned by another key file (relative to the home, as in mounts.yaml).
    pub fn owner(mut self, key_file: &str) -> Self {
        self.owner = key_file.into();
        self
    }

    /// One more `key: value` line of the entry.
    pub fn key(mut self, key: &str, value: &str) -> Self {
        self.more.push_str(&format!("  {key}: {value}\n"));
        self
    }

    /// `allow_other: true`.
    pub fn allow_other(self) -> Self {
        self.key("allow_other", "true")
    }

    /// `read_only: true`.
    pub fn read_only(self) -> Self {
        self.key("read_only", "true")
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry as mounts.yaml text.
    pub fn yaml(&self) -> String {
        format!(
            "- path: {}\n  root: {}\n  owner_private: {}\n{}",
            self.path.display(),
            self.root,
            self.owner,
            self.more
        )
    }
}

/// Writes `home/mounts.yaml` with `mounts` (`[]` when there is none).
pub fn write_mounts(home: &Path, mounts: &[Mount]) {
    let text = if mounts.is_empty() {
        "[]\n".to_string()
    } else {
        mounts.iter().map(Mount::yaml).collect()
    };
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(home.join("mounts.yaml"), text).unwrap();
}

/// The directory a node's cleanup covers: the parent of its home (the test's
/// tempdir), or the home itself when that parent is the system's temporary directory.
pub fn test_dir_of(home: &Path) -> PathBuf {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match home.parent() {
        Some(p) if !p.as_os_str().is_empty() && canon(p) != canon(&std::env::temp_dir()) => {
            p.to_path_buf()
        }
        _ => home.to_path_buf(),
    }
}

/// Clears, when dropped, every LFFS mount at or below a directory (lazy unmount): a
/// node killed, or left running by a failing test, leaves its FUSE mounts dead
/// ("Transport endpoint is not connected") otherwise.
#[derive(Debug)]
pub struct MountGuard(PathBuf);

impl MountGuard {
    /// Guards the LFFS mounts under `dir`.
    pub fn new(dir: &Path) -> MountGuard {
        MountGuard(dir.to_path_buf())
    }

    /// Clears them now: at each point, LFFS mounts are taken off the top one by one
    /// (a restarted node may have stacked one on a dead one), and whatever lies below
    /// the last LFFS mount (a test's tmpfs, say) is left alone.
    pub fn clear(&self) {
        let mut points = lffs_mounts_under(&self.0);
        points.sort();
        points.dedup();
        for m in points {
            while lffs_on_top(&m) {
                let unmounted = Command::new("umount")
                    .arg("-l")
                    .arg(&m)
                    .status()
                    .is_ok_and(|s| s.success())
                    || Command::new("fusermount3")
                        .arg("-uz")
                        .arg(&m)
                        .status()
                        .is_ok_and(|s| s.success());
                if !unmounted {
                    break;
                }
            }
        }
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        self.clear();
    }
}

/// How to start one `lf node-start` on a home: ports, peers, options, mounts.
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    home: PathBuf,
    port: u16,
    p2p_port: u16,
    peers: Vec<String>,
    extra: Vec<String>,
    mounts: Option<Vec<Mount>>,
    p2p_bind: String,
    netns: Option<String>,
}

/// `lf` (the binary under test), inside network namespace `netns` when given (only the
/// network namespace changes: FUSE mounts stay visible to the test).
fn lf_command(netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg(lf_bin());
            c
        }
        None => Command::new(lf_bin()),
    }
}

impl NodeBuilder {
    /// Runs the node (and the `lf` commands of [`TestNode::lf`]) in this network
    /// namespace (see `crate::Bed`).
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.into());
        self
    }

    /// Listens for P2P on `p2p_port` (chosen beforehand, e.g. to name the node as a
    /// bootstrap peer in the network's genesis).
    pub fn p2p_port(mut self, p2p_port: u16) -> Self {
        self.p2p_port = p2p_port;
        // (A port picked earlier is free again, so the HTTP port might repeat it.)
        while self.port == self.p2p_port {
            self.port = free_port();
        }
        self
    }

    /// Listens for P2P on this loopback address (default 127.0.0.1). Nodes of one test
    /// on different addresses dial out from them too, so address-based bans of one
    /// (hostile) loopback peer do not hit the others.
    pub fn p2p_bind(mut self, ip: &str) -> Self {
        self.p2p_bind = ip.into();
        self
    }

    /// Dials `addr` (a multiaddr) at every (re)start.
    pub fn peer(mut self, addr: String) -> Self {
        self.peers.push(addr);
        self
    }

    /// Dials each of `addrs` at every (re)start.
    pub fn peers(mut self, addrs: &[String]) -> Self {
        self.peers.extend_from_slice(addrs);
        self
    }

    /// Leaves LAN discovery (mDNS) as the network decides (on for a private network),
    /// instead of `-no-mdns`: only for nodes in a [`crate::Bed`], whose multicast
    /// stays on its switch.
    pub fn lan_discovery(mut self) -> Self {
        self.extra.retain(|a| a != "-no-mdns");
        self
    }

    /// One more `node-start` option given at every (re)start.
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.into());
        self
    }

    /// More `node-start` options given at every (re)start.
    pub fn args(mut self, more: &[&str]) -> Self {
        self.extra.extend(more.iter().map(|s| s.to_string()));
        self
    }

    /// A mount in the home's mounts.yaml (written at start). Without any, a home with
    /// no mounts.yaml gets `[]` (the shipped default would mount /mnt/lf) and an
    /// existing one is kept.
    pub fn mount(mut self, m: Mount) -> Self {
        self.mounts.get_or_insert_with(Vec::new).push(m);
        self
    }

    /// The HTTP port.
    pub fn http_port(&self) -> u16 {
        self.port
    }

    /// The arguments of `lf` that start this node.
    pub fn start_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-home".into(),
            self.home.to_str().unwrap().into(),
            "node-start".into(),
            "-http".into(),
            self.port.to_string(),
            "-p2p".into(),
            self.p2p_port.to_string(),
            "-p2p-bind".into(),
            self.p2p_bind.clone(),
        ];
        for p in &self.peers {
            a.extend(["-peer".into(), p.clone()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Writes the home's mounts.yaml (see [`Self::mount`]).
    pub fn write_mounts(&self) {
        match &self.mounts {
            Some(m) => write_mounts(&self.home, m),
            None if !self.home.join("mounts.yaml").exists() => write_mounts(&self.home, &[]),
            None => {}
        }
    }

    /// `lf <start args>`, mounts.yaml written, for a test that spawns the process
    /// itself (its own environment or output): spawn it with [`NodeProcess::spawn`].
    pub fn command(&self) -> Command {
        self.write_mounts();
        let mut c = lf_command(self.netns.as_deref());
        c.args(self.start_args());
        c
    }

    /// Starts the node and waits until it serves (and client.json names it).
    pub fn start(self) -> TestNode {
        self.write_mounts();
        let mut n = TestNode {
            _mounts: MountGuard::new(&test_dir_of(&self.home)),
            home: self.home,
            port: self.port,
            p2p_port: self.p2p_port,
            peers: self.peers,
            extra: self.extra,
            p2p_bind: self.p2p_bind,
            netns: self.netns,
            child: None,
        };
        n.restart();
        n
    }
}

/// An `lf node-start` a test spawned itself (see [`NodeBuilder::command`]): killed on
/// drop if still running, then the LFFS mounts under the test's directory are cleared.
#[derive(Debug)]
pub struct NodeProcess {
    /// The process (wait for it, signal it by its id).
    pub child: Child,
    // Dropped after `Drop::drop` killed the process.
    _mounts: MountGuard,
}

impl NodeProcess {
    /// Spawns `cmd`, a node on `home`.
    pub fn spawn(cmd: &mut Command, home: &Path) -> NodeProcess {
        // The guard exists before the process, so no mount of it is ever unguarded.
        let guard = MountGuard::new(&test_dir_of(home));
        let child = cmd.spawn().expect("spawning lf node-start");
        NodeProcess {
            child,
            _mounts: guard,
        }
    }

    /// Sends a signal with kill(1) (the process is not waited for).
    pub fn signal(&self, signal: &str) {
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A real `lf node-start` on a home and free loopback ports; stopped (SIGKILL) on drop if
/// still running, and then the LFFS mounts under the test's directory are cleared.
#[derive(Debug)]
pub struct TestNode {
    /// The node's home (kept for restarts).
    pub home: PathBuf,
    /// HTTP port.
    pub port: u16,
    /// P2P port (bound on `p2p_bind`).
    pub p2p_port: u16,
    /// P2P listen address (a loopback address).
    pub p2p_bind: String,
    /// Peers given with `-peer` at every (re)start.
    pub peers: Vec<String>,
    /// More `node-start` options given at every (re)start.
    pub extra: Vec<String>,
    /// The network namespace it runs in, if not the test's.
    pub netns: Option<String>,
    child: Option<Child>,
    _mounts: MountGuard,
}

impl TestNode {
    /// How to start a node on `home` (which may hold a genesis.lf): free ports, no peers,
    /// no LAN discovery (`-no-mdns`: tests send nothing beyond loopback and their own
    /// namespaces, and find no other test's nodes; see [`NodeBuilder::lan_discovery`]),
    /// the home's mounts.yaml (or none).
    pub fn on(home: &Path) -> NodeBuilder {
        let p2p_port = free_port();
        NodeBuilder {
            home: home.to_path_buf(),
            port: free_port(),
            p2p_port,
            peers: Vec::new(),
            extra: vec!["-no-mdns".into()],
            mounts: None,
            p2p_bind: "127.0.0.1".into(),
            netns: None,
        }
        .p2p_port(p2p_port)
    }

    /// Starts a node on `home` (which may hold a genesis.lf) and waits until it serves.
    pub fn start(home: &Path) -> TestNode {
        TestNode::on(home).start()
    }

    /// Like [`TestNode::start`], with extra `node-start` options.
    pub fn start_with_args(home: &Path, extra: &[&str]) -> TestNode {
        TestNode::on(home).args(extra).start()
    }

    /// Like [`TestNode::start`], dialing `peers` (multiaddrs) at start.
    pub fn start_with_peers(home: &Path, peers: &[String]) -> TestNode {
        TestNode::on(home).peers(peers).start()
    }

    /// Like [`TestNode::start`], listening for P2P on `p2p_port`.
    pub fn start_on_p2p_port(home: &Path, p2p_port: u16) -> TestNode {
        TestNode::on(home).p2p_port(p2p_port).start()
    }

    /// (Re)starts the process on the same home and ports.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.home.join("test-node.out")).unwrap();
        let b = NodeBuilder {
            home: self.home.clone(),
            port: self.port,
            p2p_port: self.p2p_port,
            peers: self.peers.clone(),
            extra: self.extra.clone(),
            mounts: None,
            p2p_bind: self.p2p_bind.clone(),
            netns: self.netns.clone(),
        };
        let child = lf_command(self.netns.as_deref())
            .args(b.start_args())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning lf node-start");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            // Serving, and client.json points at this node (the CLI reads it).
            let client = std::fs::read_to_string(self.home.join("client.json")).unwrap_or_default();
            if client.contains(&format!(":{}", self.port)) && self.serving() {
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

    /// Whether the HTTP API answers (asked from the node's network namespace).
    fn serving(&self) -> bool {
        match &self.netns {
            None => std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            Some(_) => self.lf_url(&["status"]).status.success(),
        }
    }

    /// What the node printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.home.join("test-node.out")).unwrap_or_default()
    }

    /// The node's P2P address.
    pub fn p2p_addr(&self) -> String {
        format!("/ip4/{}/tcp/{}", self.p2p_bind, self.p2p_port)
    }

    /// The node's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Rewrites the home's mounts.yaml (the running node reloads it).
    pub fn set_mounts(&self, mounts: &[Mount]) {
        write_mounts(&self.home, mounts);
    }

    /// Runs `lf -home <home> args...` against this node.
    pub fn lf(&self, args: &[&str]) -> Output {
        let mut all = vec!["-home", self.home.to_str().unwrap()];
        all.extend_from_slice(args);
        match &self.netns {
            None => lf(&self.home, &all),
            Some(ns) => lf_command(Some(ns))
                .args(&all)
                .current_dir(&self.home)
                .env("HOME", &self.home)
                .output()
                .expect("running lf"),
        }
    }

    /// Runs `lf -home <home> -url <this node> args...`: the explicit URL, because
    /// client.json may lag a restart or the port opening.
    pub fn lf_url(&self, args: &[&str]) -> Output {
        let url = self.url();
        let mut all = vec!["-url", url.as_str()];
        all.extend_from_slice(args);
        self.lf(&all)
    }

    /// Makes `owner` in this node's client.json and certifies it with the CA key file
    /// `ca` for 30 days (`lf owner new`, `csr`, `sign`); returns the certificate's
    /// path (not published: `lf owner publish-cert` does that).
    pub fn certify(&self, ca: &Path, owner: &str) -> PathBuf {
        ok(&self.lf_url(&["owner", "new", owner]));
        let csr = self.home.join(format!("{owner}.csr"));
        let csr = csr.to_str().expect("UTF-8 home");
        ok(&self.lf_url(&["owner", "csr", "-owner", owner, "-out", csr]));
        let crt = self.home.join(format!("{owner}.crt"));
        let ca = ca.to_str().expect("UTF-8 path");
        let args = ["owner", "sign", "-ca", ca, "-days", "30", "-out"];
        let signed = ok(&self.lf_url(&[&args[..], &[crt.to_str().unwrap(), csr]].concat()));
        assert!(signed.contains("valid 30 days"), "{signed}");
        crt
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
    pub fn stop(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("node running");
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        child.wait().unwrap()
    }

    /// The process ID of the running node (the `lf` process: `nsenter` execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (if running); its mounts stay until the node is dropped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // Then `_mounts` clears the mounts the killed process left dead.
        self.kill();
    }
}

/// A node with one LFFS mount at `<dir>/mnt` on a private network without proof of
/// work (values up to `max_value` bytes), the network made in `<dir>/home`.
#[derive(Debug)]
pub struct FuseNode {
    /// The node.
    pub node: TestNode,
    /// The mount point.
    pub mnt: PathBuf,
}

impl FuseNode {
    /// Creates the network and mounts.yaml in `dir/home`, starts the node, waits for
    /// the mount.
    pub fn start(dir: &Path, max_value: u32) -> FuseNode {
        let net = TestNet::private()
            .name("fuse")
            .max_value(max_value)
            .create(&dir.join("home"));
        let mnt = dir.join("mnt");
        let mount = Mount::new(&mnt, "test.root").allow_other();
        FuseNode::start_on(TestNode::on(net.dir()).mount(mount))
    }

    /// Starts `node` (whose first mount is the one the helpers use) and waits for that
    /// mount.
    pub fn start_on(node: NodeBuilder) -> FuseNode {
        let mnt = node
            .mounts
            .as_ref()
            .and_then(|m| m.first())
            .expect("a mount")
            .path
            .clone();
        let n = FuseNode {
            node: node.start(),
            mnt,
        };
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
