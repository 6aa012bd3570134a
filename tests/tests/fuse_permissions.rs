//! FUSE end-to-end tests of the LFFS permission model (issue 16): only the mount's uid
//! (the node's unless `mounts.yaml` sets `uid`) and root change anything; other local
//! users (the mount has `allow_other: true`) read, and every change of theirs is refused
//! with EACCES (EPERM where the kernel answers chmod/utimes for a non-owner), whatever the
//! mode bits say. The root directory is 0755, owned by the mount's uid, and its mode is
//! stored. Users are switched with `setpriv`. Needs root and /dev/fuse, as in CI.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use lf_tests::{FuseNode, Mount, TestNet, TestNode, stderr, stdout};

/// `nobody`.
const NOBODY: u32 = 65534;
/// Another unprivileged user.
const OTHER: u32 = 65533;

/// Runs `sh -c script` as `uid` (gid the same, no supplementary groups), with `$M` the
/// mount point, from `/`.
fn as_user(f: &FuseNode, uid: u32, script: &str) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "sh", "-c", script])
        .env("M", &f.mnt)
        .current_dir("/")
        .output()
        .expect("running setpriv")
}

/// Stdout of a script run as `uid` that must succeed.
fn as_user_ok(f: &FuseNode, uid: u32, script: &str) -> String {
    let o = as_user(f, uid, script);
    assert!(
        o.status.success(),
        "as uid {uid}: {script}\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts that `script` run as `uid` fails with EACCES ("Permission denied"), or EPERM
/// ("Operation not permitted") when `eperm` allows it.
fn refused(f: &FuseNode, uid: u32, script: &str, eperm: bool) {
    let o = as_user(f, uid, script);
    let err = stderr(&o);
    assert!(
        !o.status.success()
            && (err.contains("Permission denied")
                || (eperm && err.contains("Operation not permitted"))),
        "as uid {uid}, {script} was not refused: status {}, {}{err}",
        o.status,
        stdout(&o)
    );
}

/// Makes `dir` (a temp dir, 0700) traversable by every user and checks its parents are.
fn traversable(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in dir.ancestors().skip(1) {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} (mode {mode:o}) is not traversable by other users: set TMPDIR elsewhere",
            p.display()
        );
    }
}

/// The uid this test (and so the node it starts) runs as.
fn my_uid() -> u32 {
    let o = Command::new("id").arg("-u").output().unwrap();
    stdout(&o).trim().parse().unwrap()
}

/// Everything root can see of the mount (paths, sizes, modes, uids, mtimes, contents),
/// to compare before and after other users' attempts.
fn snapshot(f: &FuseNode) -> String {
    f.sh(
        "cd $M && find . -not -name .passwd -printf '%p %y %s %m %U %T@ %l\\n' | sort && \
         find . -type f -not -name .passwd -exec md5sum {} + | sort",
    )
}

/// As `nobody` on a mount owned by the node's uid: reads of root's files work; every
/// change is refused — in the root (0755), in a 0777 directory and on 0666 files, where
/// only LFFS stands in the way — and root's files are untouched.
#[test]
fn fuse_permissions_other_users_read_but_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    traversable(dir.path());
    let f = FuseNode::start(dir.path(), 60_000);
    let uid = my_uid();
    f.sh(
        "echo root > $M/root.txt && mkdir $M/rootdir $M/emptydir && echo in > $M/rootdir/f \
         && ln -s root.txt $M/rootlink && mkdir $M/open $M/open/sub && chmod 777 $M/open \
         $M/open/sub && echo o > $M/open/f && chmod 666 $M/open/f",
    );
    assert_eq!(f.sh("stat -c '%a %u' $M"), format!("755 {uid}\n"));
    let before = snapshot(&f);

    // Reads.
    assert_eq!(
        as_user_ok(&f, NOBODY, "stat -c '%a %u' $M"),
        format!("755 {uid}\n")
    );
    assert_eq!(as_user_ok(&f, NOBODY, "cat $M/root.txt"), "root\n");
    assert_eq!(
        as_user_ok(&f, NOBODY, "cat $M/rootdir/f $M/open/f"),
        "in\no\n"
    );
    assert_eq!(as_user_ok(&f, NOBODY, "readlink $M/rootlink"), "root.txt\n");
    assert_eq!(as_user_ok(&f, NOBODY, "cat $M/rootlink"), "root\n");
    let ls = as_user_ok(&f, NOBODY, "ls -a $M");
    for n in [
        ".passwd", "emptydir", "open", "root.txt", "rootdir", "rootlink",
    ] {
        assert!(ls.lines().any(|l| l == n), "{n} not in {ls}");
    }
    as_user_ok(
        &f,
        NOBODY,
        "cat $M/.passwd >/dev/null && ls -la $M/open $M/rootdir",
    );
    assert_eq!(
        as_user_ok(&f, NOBODY, "stat -c '%a %u' $M/root.txt $M/open/f"),
        format!("644 {uid}\n666 {uid}\n")
    );

    // Changes where the mode bits already refuse them (the kernel's check) ...
    for (script, eperm) in [
        ("touch $M/new", false),
        ("echo x > $M/new", false),
        ("mkdir $M/newdir", false),
        ("ln -s root.txt $M/newlink", false),
        ("rm $M/root.txt", false),
        ("rm $M/rootlink", false),
        ("rmdir $M/emptydir", false),
        ("mv $M/root.txt $M/moved.txt", false),
        ("mv $M/rootdir $M/moveddir", false),
        ("echo x >> $M/root.txt", false),
        ("echo x > $M/root.txt", false),
        ("truncate -s 0 $M/root.txt", false),
        ("touch $M/root.txt", false),
        ("touch -d @0 $M/root.txt", true),
        ("chmod 666 $M/root.txt", true),
        ("chmod 777 $M", true),
        ("chmod 777 $M/rootdir", true),
        ("echo x > $M/rootdir/new", false),
    ] {
        refused(&f, NOBODY, script, eperm);
    }
    // ... and where they would allow them: a 0777 directory and a 0666 file of root's.
    for (script, eperm) in [
        ("touch $M/open/new", false),
        ("echo x > $M/open/new", false),
        ("mkdir $M/open/d", false),
        ("ln -s f $M/open/l", false),
        ("cp $M/root.txt $M/open/copy", false),
        ("echo x >> $M/open/f", false),
        ("echo x > $M/open/f", false),
        (": > $M/open/f", false),
        ("truncate -s 0 $M/open/f", false),
        ("truncate -s 100 $M/open/f", false),
        ("touch $M/open/f", false),
        ("rm $M/open/f", false),
        ("mv $M/open/f $M/open/g", false),
        ("rmdir $M/open/sub", false),
        ("mv $M/open/sub $M/open/sub2", false),
        ("chmod 600 $M/open/f", true),
        ("echo x > $M/open/sub/new", false),
        ("mkdir $M/open/sub/d", false),
    ] {
        refused(&f, NOBODY, script, eperm);
    }
    // A second unprivileged user fares no better.
    refused(&f, OTHER, "echo x >> $M/open/f", false);
    refused(&f, OTHER, "touch $M/open/other", false);

    // Root's tree is exactly as it was; root still changes it; nobody reads the change.
    assert_eq!(
        snapshot(&f),
        before,
        "other users' attempts changed the mount"
    );
    assert_eq!(f.sh("cat $M/root.txt $M/open/f"), "root\no\n");
    f.sh("echo 'root again' > $M/open/f && echo later > $M/later.txt");
    assert_eq!(
        as_user_ok(&f, NOBODY, "cat $M/open/f $M/later.txt"),
        "root again\nlater\n"
    );
}

/// The root directory is 0755 and owned by the node's uid; root's `chmod` of it is
/// stored: it survives a node restart (and the kernel then applies it to other users).
#[test]
fn fuse_permissions_root_mode_is_stored_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    traversable(dir.path());
    let mut f = FuseNode::start(dir.path(), 60_000);
    let uid = my_uid();
    assert_eq!(f.sh("stat -c '%a %u' $M"), format!("755 {uid}\n"));
    f.sh("echo kept > $M/kept.txt");
    assert_eq!(as_user_ok(&f, NOBODY, "cat $M/kept.txt"), "kept\n");

    f.sh("chmod 700 $M");
    assert_eq!(f.sh("stat -c '%a %u' $M"), format!("700 {uid}\n"));
    refused(&f, NOBODY, "ls $M", false);

    let st = f.node.stop("TERM");
    assert_eq!(st.code(), Some(0), "{}", f.node.output());
    f.node.restart();
    f.wait_mounted();
    assert_eq!(
        f.sh("stat -c '%a %u' $M"),
        format!("700 {uid}\n"),
        "root mode lost at restart"
    );
    assert_eq!(f.sh("cat $M/kept.txt"), "kept\n");
    refused(&f, NOBODY, "cat $M/kept.txt", false);

    // Changed again, back to readable by others.
    f.sh("chmod 751 $M");
    assert_eq!(f.sh("stat -c %a $M"), "751\n");
    assert_eq!(as_user_ok(&f, NOBODY, "cat $M/kept.txt"), "kept\n");
    f.sh("chmod 755 $M");
    assert_eq!(as_user_ok(&f, NOBODY, "ls $M"), "kept.txt\n");
}

/// With `uid: 65534` in mounts.yaml the mount is `nobody`'s: the root shows that uid,
/// `nobody` creates, writes, renames and deletes; root still may; another user may not,
/// even in a 0777 directory.
#[test]
fn fuse_permissions_mount_uid_from_mounts_yaml() {
    let dir = tempfile::tempdir().unwrap();
    traversable(dir.path());
    let net = TestNet::private()
        .name("perm")
        .max_value(60_000)
        .create(&dir.path().join("home"));
    let mnt = dir.path().join("mnt");
    let f = FuseNode::start_on(
        TestNode::on(net.dir()).mount(
            Mount::new(&mnt, "perm.root")
                .allow_other()
                .key("uid", &NOBODY.to_string()),
        ),
    );

    assert_eq!(f.sh("stat -c '%a %u' $M"), format!("755 {NOBODY}\n"));
    as_user_ok(
        &f,
        NOBODY,
        "echo n > $M/n.txt && mkdir $M/d && echo x > $M/d/x && mv $M/d/x $M/d/y \
         && ln -s n.txt $M/l && rm $M/l && echo more >> $M/n.txt && mkdir $M/open \
         && chmod 777 $M/open && echo o > $M/open/f && chmod 666 $M/open/f",
    );
    assert_eq!(
        as_user_ok(&f, NOBODY, "stat -c %u $M/n.txt && cat $M/n.txt $M/d/y"),
        format!("{NOBODY}\nn\nmore\nx\n")
    );
    // Root may change the mount too.
    f.sh("echo r > $M/r.txt && rm $M/d/y");
    assert_eq!(as_user_ok(&f, NOBODY, "cat $M/r.txt"), "r\n");
    // Another user reads, changes nothing.
    assert_eq!(as_user_ok(&f, OTHER, "cat $M/n.txt"), "n\nmore\n");
    let before = snapshot(&f);
    for script in [
        "touch $M/open/new",
        "echo x >> $M/open/f",
        "rm $M/open/f",
        "mkdir $M/open/d",
    ] {
        refused(&f, OTHER, script, false);
    }
    assert_eq!(snapshot(&f), before);
}
