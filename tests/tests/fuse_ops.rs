//! FUSE end-to-end tests on a real kernel mount served by a real `lf node-start`
//! (needs root and /dev/fuse, as in CI).

use lf_tests::{FuseNode, Mount, TestNet, TestNode, is_mounted, wait_until};

#[test]
fn fuse_shell_operations() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    f.sh("echo hello > $M/a.txt");
    assert_eq!(f.sh("cat $M/a.txt"), "hello\n");
    f.sh("mkdir $M/etc && echo 'port=1' > $M/etc/app.conf");
    assert_eq!(f.sh("ls $M/etc"), "app.conf\n");
    assert!(f.sh("ls -a $M").contains(".passwd"));
    // Directory rename keeps its contents (the seed lost them).
    f.sh("mv $M/etc $M/config");
    assert_eq!(f.sh("cat $M/config/app.conf"), "port=1\n");
    assert!(!f.sh_status("ls $M/etc").status.success());
    // File rename, write-temp-then-rename (how config tools write), sed -i.
    f.sh("mv $M/a.txt $M/b.txt && cat $M/b.txt >/dev/null");
    f.sh(
        "echo 'port=2' > $M/config/.app.conf.tmp && mv $M/config/.app.conf.tmp $M/config/app.conf",
    );
    assert_eq!(f.sh("cat $M/config/app.conf"), "port=2\n");
    f.sh("sed -i s/port=2/port=3/ $M/config/app.conf");
    assert_eq!(f.sh("cat $M/config/app.conf"), "port=3\n");
    // truncate, chmod stored, chown refused.
    f.sh("truncate -s 2 $M/b.txt");
    assert_eq!(f.sh("cat $M/b.txt"), "he");
    f.sh("truncate -s 5 $M/b.txt");
    assert_eq!(f.sh("stat -c %s $M/b.txt"), "5\n");
    f.sh("chmod 600 $M/b.txt");
    assert_eq!(f.sh("stat -c %a $M/b.txt"), "600\n");
    let chown = f.sh_status("chown 12345 $M/b.txt");
    assert!(!chown.status.success());
    assert!(String::from_utf8_lossy(&chown.stderr).contains("not permitted"));
    // Symlinks.
    f.sh("ln -s config/app.conf $M/link");
    assert_eq!(f.sh("readlink $M/link"), "config/app.conf\n");
    assert_eq!(f.sh("cat $M/link"), "port=3\n");
    // rm, rmdir (and ENOTEMPTY).
    let busy = f.sh_status("rmdir $M/config");
    assert!(String::from_utf8_lossy(&busy.stderr).contains("not empty"));
    f.sh("rm $M/config/app.conf $M/link && rmdir $M/config");
    assert_eq!(f.sh("ls $M"), "b.txt\n");
}

#[test]
fn fuse_second_process_sees_a_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    // Writer keeps the file open; a separate reader process sees the bytes already.
    f.sh("exec 3>$M/live; printf 'first' >&3; cat $M/live > $M/../seen; exec 3>&-");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seen")).unwrap(),
        "first"
    );
    assert_eq!(f.sh("cat $M/live"), "first");
}

#[test]
fn fuse_large_file_copy_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    f.sh("head -c 10485760 /dev/urandom > $M/../big && cp $M/../big $M/big");
    f.sh("cmp $M/../big $M/big");
    // Change one byte in the middle: still equal to the edited original.
    f.sh("printf 'X' | dd of=$M/big bs=1 seek=5000000 conv=notrunc status=none");
    f.sh("printf 'X' | dd of=$M/../big bs=1 seek=5000000 conv=notrunc status=none");
    f.sh("cmp $M/../big $M/big");
}

#[test]
fn fuse_unmount_remount_and_kill9_keep_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = FuseNode::start(dir.path(), 1024);
    f.sh("mkdir $M/d && echo kept > $M/d/file && head -c 20000 /dev/urandom > $M/chunked");
    let sum = f.sh("md5sum < $M/chunked");
    let st = f.node.stop("TERM");
    assert_eq!(st.code(), Some(0));
    assert!(!is_mounted(&f.mnt), "SIGTERM unmounts");
    f.node.restart();
    f.wait_mounted();
    assert_eq!(f.sh("cat $M/d/file"), "kept\n");
    assert_eq!(f.sh("md5sum < $M/chunked"), sum);
    // Acknowledged by close, then kill -9 at once: nothing is lost, the stale mount
    // is cleared at the next start.
    f.sh("echo acknowledged > $M/d/after && head -c 30000 /dev/urandom > $M/more");
    let more = f.sh("md5sum < $M/more");
    f.node.stop("KILL");
    f.node.restart();
    assert!(wait_until(20, || f
        .sh_status("cat $M/d/after")
        .status
        .success()));
    assert_eq!(f.sh("cat $M/d/after"), "acknowledged\n");
    assert_eq!(f.sh("md5sum < $M/more"), more);
}

#[test]
fn fuse_broken_mounts_yaml_edit_keeps_running_mounts_and_good_edit_applies() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    f.sh("echo before > $M/x");
    let yaml = f.node.home.join("mounts.yaml");
    let good = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("{good}  colour: blue\n")).unwrap();
    let log = f.node.home.join("node.log");
    assert!(wait_until(10, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("colour")
    }));
    assert!(is_mounted(&f.mnt));
    assert_eq!(f.sh("cat $M/x"), "before\n");
    // A valid edit adding a second mount applies without a restart.
    let second = dir.path().join("second");
    std::fs::write(
        &yaml,
        format!(
            "{good}- path: {}\n  root: other.root\n  passphrase: \"second mount\"\n",
            second.display()
        ),
    )
    .unwrap();
    assert!(
        wait_until(20, || is_mounted(&second)),
        "{}",
        f.node.output()
    );
    std::fs::write(second.join("y"), "in second").unwrap();
    assert_eq!(
        std::fs::read_to_string(second.join("y")).unwrap(),
        "in second"
    );
    // Removing it from the file unmounts it.
    std::fs::write(&yaml, &good).unwrap();
    assert!(wait_until(20, || !is_mounted(&second)));
    assert!(is_mounted(&f.mnt));
}

#[test]
fn fuse_bind_mount_into_another_namespace_with_allow_other() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    f.sh("echo shared > $M/app.conf");
    let target = dir.path().join("container");
    std::fs::create_dir_all(&target).unwrap();
    // As a container runtime does: a private mount namespace with a bind mount.
    let out = f.sh(&format!(
        "unshare -m sh -c 'mount --bind $M {t} && cat {t}/app.conf && echo from-ns > {t}/ns.txt'",
        t = target.display()
    ));
    assert_eq!(out, "shared\n");
    assert_eq!(f.sh("cat $M/ns.txt"), "from-ns\n");
    // A non-root user reads through the mount (allow_other).
    let o = f.sh(&format!(
        "setpriv --reuid=65534 --regid=65534 --clear-groups cat {}/app.conf",
        f.mnt.display()
    ));
    assert_eq!(o, "shared\n");
}

/// A big file is cut and journaled while it is written (its chunks wait in the commit
/// queue before its close), published only once its writer's close makes it durable,
/// and a copy of it to a new name adds no chunk record (the chunks journaled again for
/// the new file are found stored when they are published).
#[test]
fn fuse_big_file_is_cut_while_written_published_at_close_and_a_copy_adds_no_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    let records = |f: &FuseNode| f.node.status()["RecordCount"].as_u64().unwrap();
    let pending = |f: &FuseNode| f.node.status()["PendingCommits"].as_u64().unwrap();
    assert!(wait_until(30, || pending(&f) == 0));
    let before = records(&f);
    f.sh("head -c 12582912 /dev/urandom > $M/../big");
    // Written in 1 MiB pieces by another process (a descriptor this process held
    // would be closed, so flushed, in every child it starts), held open until the
    // file `closing` appears.
    let signal = dir.path().join("closing");
    let opened = std::time::Instant::now();
    let mut writer = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import os, sys, time\n\
             data = open(sys.argv[1], 'rb').read()\n\
             fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n\
             for i in range(0, len(data), 1 << 20): os.write(fd, data[i:i + (1 << 20)])\n\
             while not os.path.exists(sys.argv[3]): time.sleep(0.05)\n\
             os.close(fd)\n",
        )
        .arg(dir.path().join("big"))
        .arg(f.mnt.join("big"))
        .arg(&signal)
        .spawn()
        .unwrap();
    // 12 MiB in chunks of 8 KiB on average: most of them wait before the close.
    assert!(
        wait_until(30, || pending(&f) > 800),
        "chunks journaled before the close: {}",
        pending(&f)
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let now = records(&f);
    // The node publishes what waits unflushed after 5 s all the same.
    if opened.elapsed() < std::time::Duration::from_secs(4) {
        assert_eq!(now, before, "published before the file was closed");
    }
    std::fs::write(&signal, b"").unwrap();
    assert!(writer.wait().unwrap().success());
    assert!(wait_until(60, || pending(&f) == 0));
    let written = records(&f) - before;
    assert!(written > 1000, "{written} records for a 12 MiB file");
    f.sh("cmp $M/../big $M/big");
    // The copy: its chunks are journaled again and dropped at publication.
    let known = |f: &FuseNode| {
        let m = ureq::get(&format!("{}/metrics", f.node.url()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix("lf_commit_queue_chunks_known_total "))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };
    let (before_copy, known_before) = (records(&f), known(&f));
    f.sh("cp $M/big $M/copy");
    assert!(wait_until(60, || pending(&f) == 0));
    let copy = records(&f) - before_copy;
    assert!(copy <= 3, "{copy} records for a copy of a stored file");
    let dropped = known(&f) - known_before;
    assert!(dropped > 1000, "{dropped} chunks of the copy found stored");
    f.sh("cmp $M/../big $M/copy");
}

/// Two mounts of one tree on one node: each sees what the other writes, renames and
/// deletes (a mount keeps what it resolved until it changes the directory itself or
/// someone else changes the store, and the other mount's writes count as someone
/// else's).
#[test]
fn fuse_two_mounts_of_one_tree_see_each_others_changes() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::private()
        .name("fuse")
        .max_value(60_000)
        .create(&dir.path().join("home"));
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let f = FuseNode::start_on(
        TestNode::on(net.dir())
            .mount(Mount::new(&a, "shared.root"))
            .mount(Mount::new(&b, "shared.root")),
    );
    assert!(wait_until(20, || is_mounted(&b)));
    let read = |p: &std::path::Path| std::fs::read_to_string(p).ok();
    std::fs::write(a.join("conf"), "one").unwrap();
    assert!(wait_until(5, || read(&b.join("conf")).as_deref() == Some("one")));
    // b has resolved the name now; a changes it.
    std::fs::write(a.join("conf"), "two").unwrap();
    assert!(
        wait_until(5, || read(&b.join("conf")).as_deref() == Some("two")),
        "b still reads {:?}",
        read(&b.join("conf"))
    );
    std::fs::rename(a.join("conf"), a.join("conf2")).unwrap();
    assert!(wait_until(5, || !b.join("conf").exists()
        && read(&b.join("conf2")).as_deref() == Some("two")));
    std::fs::remove_file(a.join("conf2")).unwrap();
    assert!(wait_until(5, || !b.join("conf2").exists()));
    // And the other way round.
    std::fs::write(b.join("back"), "from b").unwrap();
    assert!(wait_until(5, || read(&a.join("back")).as_deref() == Some("from b")));
    drop(f);
}

#[test]
fn fuse_requests_are_answered_while_a_big_file_is_flushed() {
    // The session reads requests on one thread; a flush that takes long runs on a
    // worker, and what comes meanwhile must not wait behind it, not even a request
    // that waits for that flush itself (lffs/src/fuse.rs).
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    let mut data = vec![0u8; 64 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o644)
        .open(f.mnt.join("big"))
        .unwrap();
    file.write_all(&data).unwrap();
    let started = std::time::Instant::now();
    let flush = std::thread::spawn(move || {
        file.sync_all().unwrap();
        started.elapsed()
    });
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Attributes of the file being flushed, asked of the node (not the kernel's
    // cache): answered once the flush ends, on a worker.
    let big = f.mnt.join("big");
    let stat = std::thread::spawn(move || {
        rustix::fs::statx(
            rustix::fs::CWD,
            &big,
            rustix::fs::AtFlags::STATX_FORCE_SYNC,
            rustix::fs::StatxFlags::SIZE,
        )
        .map(|s| s.stx_size)
    });
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Lookups of names that do not exist: never cached by the kernel, each one is a
    // request to the node.
    let mut answered = Vec::new();
    for i in 0..2000 {
        assert!(std::fs::metadata(f.mnt.join(format!("absent-{i}"))).is_err());
        answered.push(started.elapsed());
        if flush.is_finished() {
            break;
        }
    }
    let flushed = flush.join().unwrap();
    assert_eq!(stat.join().unwrap().unwrap(), 64 << 20);
    let during = answered.iter().filter(|t| **t < flushed).count();
    assert!(
        during >= 1,
        "no lookup answered during a flush of {flushed:?}; first answer after {:?}",
        answered.first()
    );
    assert_eq!(std::fs::read(f.mnt.join("big")).unwrap(), data);
}
