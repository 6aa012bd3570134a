//! `lf status` (text and `-json`) reports each mount's state, a refused `mounts.yaml`
//! edit, and the proof of work the commit queue is paying while the files stay usable;
//! a node killed with commits pending replays its journal (needs root and /dev/fuse,
//! as in CI).

use std::path::Path;

use lf_tests::{Mount, TestNet, TestNode, is_mounted, stderr, stdout, wait_until};
use serde_json::Value;

/// The network `status` (with proof of work at `difficulty`) made in `home`.
fn genesis(home: &Path, difficulty: u32) {
    TestNet::private()
        .name("status")
        .difficulty(difficulty)
        .create(home);
}

fn mount_yaml(path: &Path, root: &str) -> String {
    Mount::new(path, root).yaml()
}

fn status_json(n: &TestNode) -> Value {
    let o = n.lf(&["-json", "status"]);
    assert!(o.status.success(), "lf status: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("status JSON")
}

fn status_text(n: &TestNode) -> String {
    let o = n.lf(&["status"]);
    assert!(o.status.success(), "lf status: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn status_shows_each_mount_a_failed_mount_and_a_refused_edit() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    genesis(&home, 0);
    let good = dir.path().join("mnt");
    // A mount point below a regular file cannot be created: that mount fails.
    std::fs::write(dir.path().join("plain-file"), "x").unwrap();
    let bad = dir.path().join("plain-file").join("mnt");
    let yaml = format!(
        "{}{}",
        mount_yaml(&good, "status.good"),
        mount_yaml(&bad, "status.bad")
    );
    let n = TestNode::on(&home)
        .mount(Mount::new(&good, "status.good"))
        .mount(Mount::new(&bad, "status.bad"))
        .start();
    assert!(wait_until(20, || is_mounted(&good)), "{}", n.output());

    let s = status_json(&n);
    let mounts = s["Mounts"].as_array().expect("Mounts");
    assert_eq!(mounts.len(), 2, "{s}");
    let up = &mounts[0];
    assert_eq!(up["Path"], good.display().to_string());
    assert_eq!(up["Root"], "status.good");
    assert_eq!(up["State"], "mounted");
    assert_eq!(
        up["Owner"], s["Identity"],
        "the mount's owner is the node key"
    );
    assert!(up["Since"].as_u64().is_some_and(|t| t > 0));
    let failed = &mounts[1];
    assert_eq!(failed["State"], "failed");
    assert_eq!(failed["Root"], "status.bad");
    assert!(
        failed["Error"]
            .as_str()
            .is_some_and(|e| e.contains("plain-file")),
        "{failed}"
    );
    let text = status_text(&n);
    assert!(text.contains("mounts         1 up of 2"), "{text}");
    assert!(text.contains("FAILED"), "{text}");

    // A broken edit is refused and shown; the running mount stays.
    std::fs::write(home.join("mounts.yaml"), format!("{yaml}  colour: blue\n")).unwrap();
    assert!(wait_until(20, || status_json(&n)["MountsFileError"]
        .as_str()
        .is_some_and(|e| e.contains("colour"))));
    assert!(is_mounted(&good));
    assert!(status_text(&n).contains("mounts.yaml edit refused"));

    // Fixing the file (and dropping the bad mount) clears both.
    std::fs::write(home.join("mounts.yaml"), mount_yaml(&good, "status.good")).unwrap();
    assert!(wait_until(20, || {
        let s = status_json(&n);
        s["MountsFileError"].is_null() && s["Mounts"].as_array().is_some_and(|m| m.len() == 1)
    }));
    assert!(is_mounted(&good));
}

#[test]
fn status_shows_proof_of_work_progress_while_files_stay_usable() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // The default network's difficulty: a 1,000-byte file costs seconds of work.
    genesis(&home, 350);
    let mnt = dir.path().join("mnt");
    let n = TestNode::on(&home)
        .mount(Mount::new(&mnt, "status.pow"))
        .start();
    assert!(wait_until(20, || is_mounted(&mnt)), "{}", n.output());

    let content = "k=v;".repeat(250);
    let file = mnt.join("big.conf");
    std::fs::write(&file, &content).unwrap();

    let mut seen = None;
    assert!(
        wait_until(60, || {
            let s = status_json(&n);
            let pow = &s["ProofOfWork"];
            let ok = pow["ChallengesTried"].as_u64().is_some_and(|t| t > 0)
                && pow["ExpectedChallenges"].as_f64().is_some_and(|e| e > 0.0);
            if ok {
                seen = Some(s);
            }
            ok
        }),
        "no proof-of-work progress in status: {}",
        n.output()
    );
    let s = seen.unwrap();
    assert!(s["PendingCommits"].as_u64().is_some_and(|p| p >= 1), "{s}");
    assert!(s["PendingBatches"].as_u64().is_some_and(|p| p >= 1), "{s}");
    // While the work runs, the file reads back and new files can be made.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), content);
    std::fs::write(mnt.join("other"), "x").unwrap();
    assert_eq!(std::fs::read_to_string(mnt.join("other")).unwrap(), "x");
    // The text form shows it too (the 1,000-byte record keeps the solver busy).
    assert!(wait_until(30, || status_text(&n).contains("proof of work")));
}

#[test]
fn kill_9_with_commits_pending_replays_the_journal_and_publishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    genesis(&home, 350);
    let mnt = dir.path().join("mnt");
    let mut n = TestNode::on(&home)
        .mount(Mount::new(&mnt, "status.journal"))
        .start();
    assert!(wait_until(20, || is_mounted(&mnt)), "{}", n.output());
    std::fs::create_dir(mnt.join("d")).unwrap();
    for i in 0..10 {
        std::fs::write(mnt.join("d").join(format!("f{i}")), format!("value {i}\n")).unwrap();
    }
    let pending = status_json(&n)["PendingCommits"].as_u64().unwrap();
    assert!(pending > 0, "proof of work should still be running");
    n.stop("KILL");
    n.restart();
    // The killed node's mount stays listed (dead: ENOTCONN) until the new node
    // replaces it, which may come after the node serves HTTP: wait for a live one.
    assert!(
        wait_until(20, || std::fs::metadata(mnt.join("d")).is_ok()),
        "{}",
        n.output()
    );
    for i in 0..10 {
        assert_eq!(
            std::fs::read_to_string(mnt.join("d").join(format!("f{i}"))).unwrap(),
            format!("value {i}\n")
        );
    }
    assert!(n.output().contains("replaying the LFFS commit journal"));
    // The replayed batches get published; then the journal is down to one segment.
    assert!(
        wait_until(180, || status_json(&n)["PendingCommits"] == 0),
        "{}",
        n.output()
    );
    // The publisher removes the last batch from the count, then rotates the journal
    // (deleting the published segments) just after: a status read between the two
    // sees none pending and two segments (CI, once).
    let segments = || {
        std::fs::read_dir(home.join("lffs-journal"))
            .unwrap()
            .count()
    };
    assert!(
        wait_until(10, || segments() == 1),
        "{} journal segments left",
        segments()
    );
    // And the published records serve the files after another restart.
    n.stop("TERM");
    n.restart();
    assert!(wait_until(20, || is_mounted(&mnt)), "{}", n.output());
    assert_eq!(
        std::fs::read_to_string(mnt.join("d").join("f9")).unwrap(),
        "value 9\n"
    );
}

#[test]
fn a_full_commit_queue_refuses_writes_with_enospc_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // Proof of work at the default network's difficulty keeps the queue from draining.
    genesis(&home, 350);
    let mnt = dir.path().join("mnt");
    let n = TestNode::on(&home)
        .mount(Mount::new(&mnt, "status.full"))
        .args(&["-lffs-queue-mib", "1"])
        .start();
    assert!(wait_until(20, || is_mounted(&mnt)), "{}", n.output());

    // Below the bound a change of any size enters: a 1.5 MiB file, over the bound (the
    // mount's root directory may still be waiting: that is below the bound too).
    // Not repetitive (chunks are deduplicated): xorshift bytes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let big: Vec<u8> = (0..3 << 19)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    {
        use std::io::Write;
        // fsync, not just close: close errors are not reported by std::fs::write.
        let mut f = std::fs::File::create(mnt.join("big.bin")).unwrap();
        f.write_all(&big).unwrap();
        f.sync_all().unwrap();
    }
    let s = status_json(&n);
    assert!(s["PendingBytes"].as_u64().unwrap() > 1 << 20, "{s}");
    assert_eq!(s["PendingMaxBytes"], 1 << 20, "{s}");
    assert_eq!(s["PendingMaxRecords"], 1 << 16, "{s}");

    // Now it is over the bound: the next change fails at once with ENOSPC...
    let started = std::time::Instant::now();
    let err = std::fs::write(mnt.join("small.conf"), "k=v\n").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "no waiting for the worker"
    );
    let err = std::fs::create_dir(mnt.join("newdir")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    // ...what was acknowledged is intact, and status says why writes fail.
    assert_eq!(std::fs::read(mnt.join("big.bin")).unwrap(), big);
    assert!(!mnt.join("newdir").exists());
    let text = status_text(&n);
    assert!(text.contains("full, new writes fail with ENOSPC"), "{text}");
    assert!(n.output().contains("LFFS write refused"), "{}", n.output());
    let metrics = ureq::get(format!("{}/metrics", n.url()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("lf_errors_total{kind=\"commit_queue_full\"}"),
        "{metrics}"
    );
}
