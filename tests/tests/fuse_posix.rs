//! POSIX conformance on a real mount, judged by the kernel: one script of system calls
//! runs in a directory of the LFFS mount and in a tmpfs directory, and their reports
//! must match line by line, except where `lffs/SEMANTICS.md` documents a difference
//! (hard links and special files: EPERM). Covers ENAMETOOLONG on every call that takes
//! a name, the times each call changes, unlink while open, rename rules, special files.

use std::path::Path;
use std::process::Command;

use lf_tests::{FuseNode, stderr, stdout};

/// The script: each line of its output is `check: result`, result an errno name or a
/// value that does not depend on the filesystem.
const SCRIPT: &str = r#"
import errno, os, stat, sys, time
d = sys.argv[1]
def report(name, f):
    try:
        r = f()
        print(f"{name}: ok" + ("" if r is None else f" {r}"))
    except OSError as e:
        print(f"{name}: {errno.errorcode[e.errno]}")
def p(*names): return os.path.join(d, *names)
long = "x" * 256
open(p("ok"), "w").close()
os.mkdir(p("sub"))
# ENAMETOOLONG, per call.
report("create long", lambda: open(p(long), "w").close())
report("mkdir long", lambda: os.mkdir(p(long)))
report("stat long", lambda: os.stat(p(long)))
report("symlink long", lambda: os.symlink("t", p(long)))
report("rename to long", lambda: os.rename(p("ok"), p(long)))
report("unlink long", lambda: os.unlink(p(long)))
report("create 255", lambda: open(p("y" * 255), "w").close())
# Times: what moves a directory's mtime, and a file's.
def write_close(path):
    with open(path, "a") as f: f.write("more")
def moves(path, act):
    before = os.stat(path).st_mtime_ns
    time.sleep(1.1)
    act()
    return os.stat(path).st_mtime_ns > before
report("dir mtime on create", lambda: moves(p("sub"), lambda: open(p("sub", "a"), "w").close()))
report("dir mtime on mkdir", lambda: moves(p("sub"), lambda: os.mkdir(p("sub", "dd"))))
report("dir mtime on rename within", lambda: moves(p("sub"), lambda: os.rename(p("sub", "a"), p("sub", "b"))))
report("dir mtime on unlink", lambda: moves(p("sub"), lambda: os.unlink(p("sub", "b"))))
report("dir mtime on rmdir", lambda: moves(p("sub"), lambda: os.rmdir(p("sub", "dd"))))
open(p("sub", "c"), "w").close()
report("dir mtime on a child's write", lambda: moves(p("sub"), lambda: write_close(p("sub", "c"))))
report("dir mtime is recent", lambda: time.time() - os.stat(p("sub")).st_mtime < 3600)
report("file mtime on write", lambda: moves(p("ok"), lambda: write_close(p("ok"))))
report("file mtime on truncate", lambda: moves(p("ok"), lambda: os.truncate(p("ok"), 1)))
report("utime stored", lambda: (os.utime(p("ok"), (1000000000, 1000000000)), os.stat(p("ok")).st_mtime)[1])
report("chmod stored", lambda: (os.chmod(p("ok"), 0o640), oct(stat.S_IMODE(os.stat(p("ok")).st_mode)))[1])
# Unlink while open: the descriptor keeps the file until the last close.
fd = os.open(p("held"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"hello")
report("unlink open file", lambda: os.unlink(p("held")))
report("name gone", lambda: os.path.exists(p("held")))
report("fstat after unlink", lambda: (os.fstat(fd).st_size, os.fstat(fd).st_nlink))
report("pread after unlink", lambda: os.pread(fd, 5, 0))
report("pwrite after unlink", lambda: os.pwrite(fd, b"J", 0))
report("read back", lambda: os.pread(fd, 5, 0))
report("ftruncate after unlink", lambda: (os.ftruncate(fd, 2), os.fstat(fd).st_size)[1])
report("close", lambda: os.close(fd))
report("still gone", lambda: os.path.exists(p("held")))
# Rename rules.
os.mkdir(p("full")); open(p("full", "f"), "w").close(); os.mkdir(p("empty"))
open(p("file"), "w").close()
report("dir over non-empty dir", lambda: os.rename(p("empty"), p("full")))
report("file over dir", lambda: os.rename(p("file"), p("empty")))
report("dir over file", lambda: os.rename(p("empty"), p("file")))
report("dir into itself", lambda: os.rename(p("full"), p("full", "inner")))
report("dir over empty dir", lambda: (os.mkdir(p("e2")), os.rename(p("e2"), p("empty")))[1])
report("rmdir non-empty", lambda: os.rmdir(p("full")))
report("rmdir file", lambda: os.rmdir(p("file")))
report("unlink dir", lambda: os.unlink(p("empty")))
# Special files and hard links.
report("mknod regular", lambda: os.mknod(p("reg"), 0o644 | stat.S_IFREG))
report("regular is a file", lambda: stat.S_ISREG(os.stat(p("reg")).st_mode))
report("mkfifo", lambda: os.mkfifo(p("fifo")))
report("mknod char device", lambda: os.mknod(p("dev"), 0o644 | stat.S_IFCHR, os.makedev(1, 3)))
report("hard link", lambda: os.link(p("file"), p("file2")))
report("listing", lambda: sorted(x for x in os.listdir(d) if x not in ("fifo", "dev", "file2")))
"#;

/// Checks where LFFS answers differently from tmpfs, by design (SEMANTICS.md).
const DOCUMENTED: [(&str, &str); 3] = [
    ("mkfifo", "EPERM"),
    ("mknod char device", "EPERM"),
    ("hard link", "EPERM"),
];

fn run(dir: &Path) -> Vec<String> {
    let o = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(dir)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    stdout(&o).lines().map(String::from).collect()
}

#[test]
fn fuse_posix_conformance_matches_tmpfs_where_not_documented() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    let tmpfs = dir.path().join("tmpfs");
    std::fs::create_dir(&tmpfs).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&tmpfs)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs needs root");
    let lffs_dir = f.mnt.join("posix");
    std::fs::create_dir(&lffs_dir).unwrap();
    let kernel = run(&tmpfs);
    let _ = Command::new("umount").arg(&tmpfs).status();
    let ours = run(&lffs_dir);
    assert_eq!(kernel.len(), ours.len(), "{kernel:#?}\n{ours:#?}");
    let semantics = include_str!("../../lffs/SEMANTICS.md");
    for (k, o) in kernel.iter().zip(&ours) {
        let check = k.split(':').next().unwrap();
        match DOCUMENTED.iter().find(|(c, _)| *c == check) {
            Some((_, errno)) => {
                assert_eq!(o, &format!("{check}: {errno}"), "tmpfs: {k}");
                assert!(
                    semantics.contains(errno),
                    "{errno} for {check} is not in SEMANTICS.md"
                );
            }
            None => assert_eq!(o, k, "LFFS differs from tmpfs"),
        }
    }
    // The mount root has a real time too (it showed 1970).
    let root = std::fs::metadata(&f.mnt).unwrap().modified().unwrap();
    assert!(root > std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000));
}
