//! Operations: the shipped systemd unit (`systemd/lf.service`) and the node's side of
//! it: readiness and stopping notifications over `$NOTIFY_SOCKET`, clean unmount on
//! SIGTERM, size-capped `node.log`.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lf_tests::{Mount, NodeBuilder, NodeProcess, TestNet, TestNode, is_mounted, lf_bin, stderr};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// `[Section] Key` → values (repeated keys keep every value), from a unit file.
fn parse_unit(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value line");
        out.entry(format!("{section}.{}", k.trim()))
            .or_default()
            .push(v.trim().to_string());
    }
    out
}

#[test]
fn e2e_systemd_unit_is_valid_and_keeps_fuse_usable() {
    let unit_path = repo_root().join("systemd/lf.service");
    let text = std::fs::read_to_string(&unit_path).unwrap();
    let u = parse_unit(&text);
    let one = |k: &str| -> &str {
        let v = u.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(v.len(), 1, "{k} given {} times", v.len());
        &v[0]
    };
    assert_eq!(one("Service.Type"), "notify");
    assert_eq!(one("Service.NotifyAccess"), "main");
    assert_eq!(one("Service.Restart"), "on-failure");
    assert_eq!(one("Service.KillSignal"), "SIGTERM");
    assert_eq!(one("Service.StateDirectory"), "lf");
    assert!(one("Service.ExecStart").contains("--home %S/lf node-start"));
    assert!(one("Service.TimeoutStopSec").ends_with('s'));
    assert_eq!(one("Service.DeviceAllow"), "/dev/fuse rw");
    assert!(one("Service.CapabilityBoundingSet").contains("CAP_SYS_ADMIN"));
    assert!(one("Service.SystemCallFilter").contains("@mount"));
    // Any of these gives the service its own mount namespace, and then the FUSE mounts
    // it makes would not be visible on the host (see systemd/README.md).
    for k in [
        "PrivateDevices",
        "PrivateTmp",
        "PrivateMounts",
        "ProtectSystem",
        "ProtectHome",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectHostname",
        "ProtectClock",
        "ProtectProc",
        "ProcSubset",
        "ReadOnlyPaths",
        "ReadWritePaths",
        "InaccessiblePaths",
        "TemporaryFileSystem",
        "BindPaths",
        "MountFlags",
        "MemoryDenyWriteExecute",
    ] {
        assert!(
            !u.contains_key(&format!("Service.{k}")),
            "{k} must not be set"
        );
    }
    // Every key is explained in the README.
    let readme = std::fs::read_to_string(repo_root().join("systemd/README.md")).unwrap();
    for key in u.keys() {
        let k = key.split_once('.').unwrap().1;
        assert!(
            readme.contains(&format!("`{k}=")),
            "README does not explain {k}"
        );
    }

    // .ci/run installs systemd; without it this half of the test would check nothing.
    let analyze = which("systemd-analyze")
        .expect("systemd-analyze is needed (apt-get install systemd; .ci/run installs it)");
    // Verify a copy whose ExecStart is the freshly built binary (verify checks it exists).
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("lf.service");
    std::fs::write(
        &copy,
        text.replace("/usr/local/bin/lf", lf_bin().to_str().unwrap()),
    )
    .unwrap();
    let o = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    // verify exits 0 on unknown keys and bad values too: demand silence.
    assert!(
        o.status.success() && o.stderr.is_empty() && o.stdout.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    // A broken copy is caught, so the silence above means something.
    let bad = dir.path().join("bad.service");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&copy)
            .unwrap()
            .replace("DeviceAllow=/dev/fuse rw", "DeviceAllow=/dev/fuse rwz"),
    )
    .unwrap();
    let o = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(stderr(&o).contains("rwz"), "{}", stderr(&o));
    // The offline security review scores the hardening (0 = locked down, 10 = none).
    let o = Command::new(&analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&copy)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let score: f64 = out
        .lines()
        .find_map(|l| l.split("exposure level for lf.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {out}{}", stderr(&o)));
    assert!(score <= 5.0, "exposure {score} (was 4.3): {out}");
}

fn which(cmd: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
        .ok_or(())
}

/// A node (not started) on a private network made in `<dir>/home`, with one mount at
/// `<dir>/mnt`; also the home and the mount point.
fn fuse_node(dir: &Path) -> (NodeBuilder, PathBuf, PathBuf) {
    let net = TestNet::private().name("ops").create(&dir.join("home"));
    let mnt = dir.join("mnt");
    let node = TestNode::on(net.dir()).mount(Mount::new(&mnt, "ops.root"));
    (node, net.dir().to_path_buf(), mnt)
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn fuse_sd_notify_ready_after_mounts_stopping_on_sigterm_and_log_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (node, home, mnt) = fuse_node(dir.path());
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let out = std::fs::File::create(dir.path().join("node.out")).unwrap();
    // Spawned here for its environment; killed and its mounts cleared if the test fails.
    let mut node = NodeProcess::spawn(
        node.command()
            .env("NOTIFY_SOCKET", &sock_path)
            .env("LF_LOG", "debug")
            .env("LF_LOG_MAX_BYTES", "1024")
            .stdout(out.try_clone().unwrap())
            .stderr(out),
        &home,
    );
    let child = &mut node.child;
    let node_out = || std::fs::read_to_string(dir.path().join("node.out")).unwrap_or_default();
    let ready = recv(&sock);
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(
        ready.contains(&format!("MAINPID={}", child.id())),
        "{ready}"
    );
    // Ready means usable: the mount is up when systemd hears it.
    assert!(is_mounted(&mnt), "READY before the mount: {}", node_out());
    std::fs::write(mnt.join("f"), "x").unwrap();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let stopping = recv(&sock);
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0), "{}", node_out());
    assert!(!is_mounted(&mnt), "SIGTERM unmounts");
    // Startup lines say what was loaded from where.
    let text = node_out();
    for want in [
        "logging to stderr and the log file",
        "network loaded",
        "genesis.lf",
        "identity loaded",
        "store open",
        "mounts loaded",
        "mounts.yaml",
        "HTTP API listening",
        "client.json",
    ] {
        assert!(
            text.contains(want),
            "no {want:?} in the startup log: {text}"
        );
    }
    // LF_LOG=debug with a 1 KiB cap: node.log rotated, neither file past the cap
    // (plus one line, since a line is never split).
    let log = std::fs::metadata(home.join("node.log")).unwrap().len();
    let old = std::fs::metadata(home.join("node.log.1")).unwrap().len();
    assert!(log <= 2048 && old <= 2048, "{log} {old}");
}
