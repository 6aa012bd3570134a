//! The mount lifecycle never harms the host (issue 16): a filesystem that is not a dead
//! LFFS mount is never unmounted; non-empty mount points are refused unless allowed; an
//! edit of mounts.yaml reloads once; a failed mount is retried with backoff; SIGTERM and
//! SIGINT leave no mount behind. Needs root and /dev/fuse, as in CI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lf_tests::{FuseNode, Mount, TestNode, is_mounted, private_network, wait_until};

/// What `/proc/self/mountinfo` shows on top at `path`: (fstype, source).
fn top_mount(path: &Path) -> Option<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some(&*path.to_string_lossy()))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((f.get(dash + 1)?.to_string(), f.get(dash + 2)?.to_string()))
        })
        .next_back()
}

/// A tmpfs mounted for the test; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs");
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn entry(path: &Path, root: &str) -> String {
    Mount::new(path, root).yaml()
}

fn node_log(home: &Path) -> String {
    std::fs::read_to_string(home.join("node.log")).unwrap_or_default()
}

/// The node's mounts as `lf -json status` lists them.
fn mounts_status(n: &TestNode) -> Vec<serde_json::Value> {
    n.status()["Mounts"].as_array().cloned().unwrap_or_default()
}

fn mount_error(n: &TestNode, path: &Path) -> Option<String> {
    mounts_status(n)
        .into_iter()
        .find(|m| m["Path"] == path.display().to_string())
        .and_then(|m| m["Error"].as_str().map(str::to_string))
}

#[test]
fn fuse_foreign_mount_at_a_listed_path_is_untouched_and_only_that_mount_fails() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    private_network(&home);
    let good = dir.path().join("mnt");
    let foreign = dir.path().join("tmpfs");
    let t = Tmpfs::mount(&foreign);
    std::fs::write(foreign.join("precious"), "keep me").unwrap();
    let mut n = TestNode::on(&home)
        .mount(Mount::new(&good, "t.good"))
        .mount(Mount::new(&foreign, "t.foreign"))
        .start();
    assert!(wait_until(20, || is_mounted(&good)), "{}", n.output());
    let e = mount_error(&n, &foreign).expect("the mount on the tmpfs failed");
    assert!(
        e.contains("mounts.yaml: mount 2")
            && e.contains("key `path`")
            && e.contains("tmpfs filesystem (source tmpfs)")
            && e.contains("not this node's"),
        "{e}"
    );
    // SIGHUP retries at once: still untouched.
    let pid = std::fs::read_to_string(home.join("lf.pid")).unwrap();
    Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(top_mount(&foreign), Some(("tmpfs".into(), "tmpfs".into())));
    assert_eq!(
        std::fs::read_to_string(foreign.join("precious")).unwrap(),
        "keep me"
    );
    // Nor at shutdown.
    assert_eq!(n.stop("TERM").code(), Some(0));
    assert!(!is_mounted(&good));
    assert_eq!(top_mount(&foreign), Some(("tmpfs".into(), "tmpfs".into())));
    assert_eq!(
        std::fs::read_to_string(foreign.join("precious")).unwrap(),
        "keep me"
    );
    drop(t);
}

#[test]
fn fuse_stale_lffs_mount_of_a_killed_node_is_cleared_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = FuseNode::start(dir.path(), 60_000);
    f.sh("echo kept > $M/file");
    f.node.stop("KILL");
    // The dead mount is still there, answering ENOTCONN.
    let (fstype, source) = top_mount(&f.mnt).expect("the dead mount stays");
    assert!(
        fstype.starts_with("fuse") && source == "lffs",
        "{fstype} {source}"
    );
    assert!(std::fs::metadata(&f.mnt).is_err());
    f.node.restart();
    assert!(wait_until(20, || f
        .sh_status("cat $M/file")
        .status
        .success()));
    assert_eq!(f.sh("cat $M/file"), "kept\n");
    assert!(
        node_log(&f.node.home).contains("clearing a stale lffs mount"),
        "{}",
        node_log(&f.node.home)
    );
}

#[test]
fn fuse_non_empty_mount_point_is_refused_unless_allowed_and_root_mode_applies() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    private_network(&home);
    let full = dir.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("mine"), "underneath").unwrap();
    let n = TestNode::on(&home)
        .mount(Mount::new(&full, "t.full"))
        .start();
    assert!(
        wait_until(20, || mount_error(&n, &full).is_some()),
        "{}",
        n.output()
    );
    let e = mount_error(&n, &full).unwrap();
    assert!(
        e.contains("mounts.yaml: mount 1")
            && e.contains("key `path`")
            && e.contains("not empty")
            && e.contains("allow_non_empty: true"),
        "{e}"
    );
    assert!(!is_mounted(&full));
    assert_eq!(
        std::fs::read_to_string(full.join("mine")).unwrap(),
        "underneath"
    );
    // Allowed by the key (a changed entry is tried at once), with a root mode.
    std::fs::write(
        home.join("mounts.yaml"),
        format!(
            "{}  allow_non_empty: true\n  root_mode: \"0750\"\n",
            entry(&full, "t.full")
        ),
    )
    .unwrap();
    assert!(wait_until(10, || is_mounted(&full)), "{}", n.output());
    assert!(!full.join("mine").exists(), "the mount hides the directory");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&full).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o750, "{mode:o}");
    let mut n = n;
    assert_eq!(n.stop("TERM").code(), Some(0));
    assert!(!is_mounted(&full));
    assert_eq!(
        std::fs::read_to_string(full.join("mine")).unwrap(),
        "underneath"
    );
}

#[test]
fn fuse_an_edit_of_mounts_yaml_reloads_once() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    let reloads = || {
        node_log(&f.node.home)
            .matches("mounts.yaml reloaded")
            .count()
    };
    assert_eq!(reloads(), 0);
    let yaml = f.node.home.join("mounts.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("# edited\n{text}")).unwrap();
    assert!(wait_until(10, || reloads() >= 1), "{}", f.node.output());
    // The node reads the file at each reload: that must not trigger another one.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reloads(), 1, "{}", node_log(&f.node.home));
    assert!(is_mounted(&f.mnt));
    // Reading it from outside triggers nothing either.
    for _ in 0..5 {
        std::fs::read_to_string(&yaml).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(reloads(), 1, "{}", node_log(&f.node.home));
}

/// The `retrying in Ns` delays logged for failures of the mount at `path`.
fn retry_delays(home: &Path, path: &Path) -> Vec<u64> {
    let p = format!("path={}", path.display());
    node_log(home)
        .lines()
        .filter(|l| l.contains("cannot mount") && l.contains(&p))
        .filter_map(|l| {
            let s = l.split("retrying in ").nth(1)?;
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn fuse_failed_mount_is_retried_with_backoff_not_on_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    private_network(&home);
    let good = dir.path().join("mnt");
    // A mount point below a regular file cannot be created: that mount fails until the
    // file is gone.
    let blocker = dir.path().join("plain-file");
    std::fs::write(&blocker, "x").unwrap();
    let bad = blocker.join("mnt");
    let yaml = format!("{}{}", entry(&good, "t.good"), entry(&bad, "t.bad"));
    let n = TestNode::on(&home)
        .mount(Mount::new(&good, "t.good"))
        .mount(Mount::new(&bad, "t.bad"))
        .start();
    assert!(wait_until(20, || is_mounted(&good)), "{}", n.output());
    assert!(wait_until(5, || !retry_delays(&home, &bad).is_empty()));
    let first = std::time::Instant::now();
    // Edits in between (unchanged entries) do not make it retry.
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(600));
        std::fs::write(home.join("mounts.yaml"), format!("# edit {i}\n{yaml}")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5500).saturating_sub(first.elapsed()));
    // Attempts at about 0 s, 1 s and 3 s; the next at 7 s.
    let delays = retry_delays(&home, &bad);
    assert_eq!(delays, [1, 2, 4], "{}", node_log(&home));
    // Once the cause is gone, the next retry mounts it without any edit.
    std::fs::remove_file(&blocker).unwrap();
    assert!(wait_until(8, || is_mounted(&bad)), "{}", node_log(&home));
    assert_eq!(retry_delays(&home, &bad), [1, 2, 4]);
    let mut n = n;
    assert_eq!(n.stop("TERM").code(), Some(0));
    assert!(!is_mounted(&good) && !is_mounted(&bad));
}

#[test]
fn fuse_sigterm_and_sigint_leave_no_mount_after_an_edit_or_a_failed_mount() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    private_network(&home);
    let good = dir.path().join("mnt");
    let second = dir.path().join("second");
    std::fs::write(dir.path().join("plain-file"), "x").unwrap();
    let bad = dir.path().join("plain-file").join("mnt");
    let base = entry(&good, "t.good");
    // A passphrase mount takes a while to derive its owner: a signal may land while the
    // reload is mounting it.
    let edited = format!(
        "{base}- path: {}\n  root: t.second\n  passphrase: \"second mount\"\n",
        second.display()
    );
    for signal in ["TERM", "INT"] {
        for delay_ms in [0, 150, 400] {
            let mut n = TestNode::on(&home)
                .mount(Mount::new(&good, "t.good"))
                .start();
            assert!(wait_until(20, || is_mounted(&good)), "{}", n.output());
            std::fs::write(home.join("mounts.yaml"), &edited).unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let st = n.stop(signal);
            assert_eq!(st.code(), Some(0), "SIG{signal}: {}", n.output());
            assert!(
                !is_mounted(&good) && !is_mounted(&second),
                "SIG{signal} {delay_ms} ms after an edit left a mount: {}",
                n.output()
            );
        }
        // After a failed mount (its retry timer running).
        let mut n = TestNode::on(&home)
            .mount(Mount::new(&good, "t.good"))
            .mount(Mount::new(&bad, "t.bad"))
            .start();
        assert!(wait_until(20, || is_mounted(&good)), "{}", n.output());
        assert!(wait_until(5, || !retry_delays(&home, &bad).is_empty()));
        std::thread::sleep(Duration::from_millis(1200));
        let st = n.stop(signal);
        assert_eq!(st.code(), Some(0), "SIG{signal}: {}", n.output());
        assert!(
            !is_mounted(&good) && !is_mounted(&bad),
            "SIG{signal} after a failed mount left a mount: {}",
            n.output()
        );
    }
}

/// A mount asks the kernel for 1 MiB of readahead (the default 128 KiB keeps one or two
/// reads in flight; a cold sequential read fetches chunks on several FUSE threads with
/// more). The tests run as root, which may write the setting.
#[test]
fn fuse_mount_gets_a_wider_readahead() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    let ra = f.sh("cat /sys/class/bdi/$(mountpoint -d $M)/read_ahead_kb");
    assert_eq!(ra.trim(), "1024", "read_ahead_kb of the mount");
}
