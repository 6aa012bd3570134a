//! A full disk under the node's home (a small tmpfs; needs root, as in CI): writes are
//! refused with a clear error that is logged, what was stored stays, reads and the
//! mount keep working, writes resume once there is room, and a start on a full disk
//! fails before any port is bound, naming the file it could not write.

use std::path::{Path, PathBuf};
use std::process::Command;

use lf_tests::{FuseNode, TestNode, fails, ok, stderr, wait_until};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs needs root");
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` to the last byte.
fn fill(dir: &Path) {
    for bs in ["1M", "4k", "512"] {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "status=none", &format!("bs={bs}")])
            .arg(format!("of={}", dir.join(format!("filler-{bs}")).display()))
            .stderr(std::process::Stdio::null())
            .status();
    }
    let avail = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    let left: u64 = String::from_utf8_lossy(&avail.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(u64::MAX);
    assert!(left < 4096, "{left} bytes still free");
}

fn unfill(dir: &Path) {
    for bs in ["1M", "4k", "512"] {
        let _ = std::fs::remove_file(dir.join(format!("filler-{bs}")));
    }
}

#[test]
fn fuse_disk_full_refuses_writes_keeps_data_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let _tmpfs = Tmpfs::mount(&home, "32m");
    // The node's output goes outside the full disk, so its error lines can be read.
    let out = dir.path().join("node.out");
    std::os::unix::fs::symlink(&out, home.join("test-node.out")).unwrap();
    let mut f = FuseNode::start(dir.path(), 60_000);
    f.sh("echo kept > $M/kept.txt && head -c 200000 /dev/urandom > $M/big.bin");
    let big = f.sh("md5sum < $M/big.bin");
    ok(&f.node.lf_url(&["set", "stored#0", "before"]));

    fill(&home);
    // The CLI's write: refused, saying why.
    let e = fails(&f.node.lf_url(&["set", "full#0", "x"]));
    assert!(e.contains("disk is full"), "{e}");
    // A file write through the mount that needs room: ENOSPC. (A few bytes may still
    // succeed, durably: a file's first 64 KiB wait in memory and their journal entry
    // can fit in the journal's last allocated page. Past 64 KiB they go to a spill
    // file, which needs new pages.) dd names the errno; the shell's echo says "I/O
    // error" for any failed write.
    let w = f.sh_status(
        "head -c 200000 /dev/urandom | dd of=$M/new.txt bs=64k iflag=fullblock status=none",
    );
    assert!(!w.status.success());
    assert!(
        stderr(&w).contains("No space left on device"),
        "{}\n{}",
        stderr(&w),
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    // Reads keep working, of the mount and of the store.
    assert_eq!(f.sh("cat $M/kept.txt"), "kept\n");
    assert_eq!(f.sh("md5sum < $M/big.bin"), big);
    assert!(ok(&f.node.lf_url(&["get", "stored#0"])).starts_with("before"));
    // Logged, with the cause.
    let log = std::fs::read_to_string(&out).unwrap();
    assert!(
        log.contains("disk is full") && log.contains("No space left on device"),
        "{log}"
    );

    // Room again: writes resume.
    unfill(&home);
    ok(&f.node.lf_url(&["set", "after#0", "again"]));
    f.sh("echo y > $M/new.txt");
    assert_eq!(f.sh("cat $M/new.txt"), "y\n");

    // A start on a full disk fails at once, naming the file, before binding a port.
    assert_eq!(f.node.stop("TERM").code(), Some(0));
    fill(&home);
    // (The home's mounts.yaml is kept; `f` clears the mounts under `dir` when dropped.)
    let o = TestNode::on(&home).command().output().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    // The first file it needs (lf.pid, else the write check) is named.
    assert!(
        err.contains(&format!("cannot write {}/", home.display()))
            && err.contains("No space left on device"),
        "{err}"
    );
    assert!(
        !err.contains("listening"),
        "nothing may be bound on a full disk: {err}"
    );

    // And nothing stored was lost or corrupted.
    unfill(&home);
    f.node.restart();
    f.wait_mounted();
    assert_eq!(f.sh("cat $M/kept.txt $M/new.txt"), "kept\ny\n");
    assert_eq!(f.sh("md5sum < $M/big.bin"), big);
    assert!(ok(&f.node.lf_url(&["get", "stored#0"])).starts_with("before"));
    assert!(ok(&f.node.lf_url(&["get", "after#0"])).starts_with("again"));
    assert!(wait_until(30, || f.node.status()["PendingCommits"] == 0));
}
