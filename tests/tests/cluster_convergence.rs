//! Convergence after a partition, on two real nodes with LFFS mounts on 127.0.0.1 that
//! do not know each other at first (no bootstrap peers, no `-peer`): both write the
//! same keys and the same file, then one connects to the other (`lf node-connect`).
//!
//! - One owner on both (a fleet sharing `identity-secret.pem` and the client's owner):
//!   both nodes end with the same winner, in `lf get` and on the mounts.
//! - Two owners: each node keeps its own winner (first seen here), but both mounts list
//!   the same names (the file, and every version under its conflict name, with its
//!   content), and `lf status`, `/status` and `lf_collisions_open` show the collision.

use std::path::{Path, PathBuf};

use lf_tests::{Mount, TestNet, TestNode, is_mounted, ok, wait_until};

const ROOT: &str = "convergence.root";

/// A node on `home` (holding the network) with its mount at `mnt`, mounted.
fn start(home: &Path, mnt: &Path) -> TestNode {
    let node = TestNode::on(home).mount(Mount::new(mnt, ROOT)).start();
    assert!(
        wait_until(30, || is_mounted(mnt)),
        "not mounted: {}",
        node.output()
    );
    node
}

/// Two homes of one private network (no proof of work, no bootstrap peers).
fn homes(dir: &Path) -> (PathBuf, PathBuf) {
    let net = TestNet::private()
        .name("convergence")
        .create(&dir.join("net"));
    let h: Vec<PathBuf> = ["n1", "n2"]
        .iter()
        .map(|n| {
            let h = dir.join(n);
            std::fs::create_dir_all(&h).unwrap();
            std::fs::copy(net.genesis(), h.join("genesis.lf")).unwrap();
            h
        })
        .collect();
    (h[0].clone(), h[1].clone())
}

/// The file names in a mount's root, sorted (without `.passwd`).
fn names(mnt: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(mnt)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".passwd")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `lf get` of `key` (the value line), through the node's URL.
fn get(node: &TestNode, key: &str) -> String {
    let o = node.lf_url(&["get", key]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Connects `from` to `to` and waits until both list each other.
fn connect(from: &TestNode, to: &TestNode) {
    ok(&from.lf_url(&["node-connect", &to.p2p_addr()]));
    assert!(
        wait_until(30, || !from.peer_ids().is_empty()
            && !to.peer_ids().is_empty()),
        "not connected: {}\n{}",
        from.output(),
        to.output()
    );
}

#[test]
fn cluster_same_owner_on_two_nodes_converges_after_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2) = homes(dir.path());
    let (m1, m2) = (dir.path().join("m1"), dir.path().join("m2"));
    let n1 = start(&h1, &m1);
    // Node 2 is the same owner: node 1's identity (the mount's owner) and client owner.
    ok(&n1.lf_url(&["set", "fleet/warmup", "makes the client owner"]));
    std::fs::create_dir_all(&h2).unwrap();
    std::fs::copy(
        h1.join("identity-secret.pem"),
        h2.join("identity-secret.pem"),
    )
    .unwrap();
    let n2 = start(&h2, &m2);
    let client1: serde_json::Value = serde_json::from_str(&read(&h1.join("client.json"))).unwrap();
    let mut client2: serde_json::Value =
        serde_json::from_str(&read(&h2.join("client.json"))).unwrap();
    client2["Owners"] = client1["Owners"].clone();
    std::fs::write(h2.join("client.json"), client2.to_string()).unwrap();
    assert_eq!(n1.status()["Identity"], n2.status()["Identity"]);
    assert!(n1.peer_ids().is_empty() && n2.peer_ids().is_empty());

    // The partition: both write the same keys and the same file.
    let keys = ["fleet/a", "fleet/b", "fleet/c"];
    for k in keys {
        ok(&n1.lf_url(&["set", k, &format!("{k} from node 1")]));
        ok(&n2.lf_url(&["set", k, &format!("{k} from node 2")]));
    }
    std::fs::write(m1.join("part.txt"), "part from node 1\n").unwrap();
    std::fs::write(m2.join("part.txt"), "part from node 2, longer\n").unwrap();
    std::fs::write(m1.join("only1.txt"), "one\n").unwrap();
    std::fs::write(m2.join("only2.txt"), "two\n").unwrap();
    // And 100 more files, each written on both sides.
    let many: Vec<String> = (0..100).map(|i| format!("f{i:03}")).collect();
    for f in &many {
        std::fs::write(m1.join(f), format!("{f} from node 1\n")).unwrap();
        std::fs::write(m2.join(f), format!("{f} from node 2\n")).unwrap();
    }
    for n in [&n1, &n2] {
        assert!(
            wait_until(60, || n.status()["PendingCommits"] == 0),
            "{}",
            n.output()
        );
    }
    for k in keys {
        assert!(get(&n1, k).contains("from node 1"), "{}", get(&n1, k));
        assert!(get(&n2, k).contains("from node 2"), "{}", get(&n2, k));
    }

    let healed = std::time::Instant::now();
    connect(&n2, &n1);
    let converged = || {
        keys.iter().all(|k| {
            let (a, b) = (get(&n1, k), get(&n2, k));
            !a.is_empty() && a == b
        }) && names(&m1) == names(&m2)
            && names(&m1).len() == 103
            && read(&m1.join("part.txt")) == read(&m2.join("part.txt"))
            && many
                .iter()
                .all(|f| read(&m1.join(f)) == read(&m2.join(f)) && !read(&m1.join(f)).is_empty())
    };
    assert!(
        wait_until(60, converged),
        "not converged: {:?} {:?} / {:?} {:?}\n{}\n{}",
        keys.map(|k| get(&n1, k)),
        keys.map(|k| get(&n2, k)),
        names(&m1),
        names(&m2),
        n1.output(),
        n2.output()
    );
    eprintln!(
        "same owner: 3 keys and 103 files identical on both nodes {:?} after lf node-connect",
        healed.elapsed()
    );
    // One owner: no collision, no conflict copies; the files of both sides are there.
    let mut expected = many.clone();
    expected.extend(["only1.txt".into(), "only2.txt".into(), "part.txt".into()]);
    expected.sort();
    assert_eq!(names(&m1), expected);
    let part = read(&m1.join("part.txt"));
    assert!(part.starts_with("part from node"), "{part}");
    for n in [&n1, &n2] {
        assert_eq!(n.status()["Collisions"]["Open"], 0);
    }
    // Both sides' writes won somewhere (the newest, then the greatest hash, per file).
    let from = |n: &str| {
        many.iter()
            .filter(|f| read(&m1.join(f)).ends_with(n))
            .count()
    };
    eprintln!(
        "same owner: node 1's version won {} files, node 2's {}",
        from("node 1\n"),
        from("node 2\n")
    );
    // Still the same a little later (no flapping as more records arrive).
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(converged());
}

#[test]
fn cluster_collision_between_owners_shows_conflict_copies_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2) = homes(dir.path());
    let (m1, m2) = (dir.path().join("m1"), dir.path().join("m2"));
    let n1 = start(&h1, &m1);
    let n2 = start(&h2, &m2);
    let id = |n: &TestNode| n.status()["Identity"].as_str().unwrap().to_string();
    let (o1, o2) = (id(&n1), id(&n2));
    assert_ne!(o1, o2);

    // The partition: each owner writes part.txt (and one key) on its own node.
    std::fs::write(m1.join("part.txt"), "version of owner 1\n").unwrap();
    std::fs::write(m2.join("part.txt"), "version of owner 2\n").unwrap();
    // A file without a rival: when it shows on the other node is the baseline.
    std::fs::write(m1.join("plain.txt"), "no rival\n").unwrap();
    ok(&n1.lf_url(&["set", "shared/name", "owner 1's value"]));
    ok(&n2.lf_url(&["set", "shared/name", "owner 2's value"]));
    // Published before the nodes meet (a commit waits in the queue at most briefly).
    for n in [&n1, &n2] {
        assert!(
            wait_until(30, || n.status()["PendingCommits"] == 0),
            "{}",
            n.output()
        );
    }

    let healed = std::time::Instant::now();
    connect(&n2, &n1);
    assert!(wait_until(60, || m2.join("plain.txt").exists()));
    let baseline = healed.elapsed();
    let short = |o: &str| o[o.len() - 8..].to_string();
    let copy_of = |names: &[String], o: &str| {
        names
            .iter()
            .find(|n| {
                n.starts_with(&format!("part.sync-conflict-{}-", short(o))) && n.ends_with(".txt")
            })
            .cloned()
    };
    assert!(
        wait_until(60, || {
            let l = names(&m1);
            l.len() == 4 && l == names(&m2)
        }),
        "mounts never listed the same names: {:?} / {:?}\n{}\n{}",
        names(&m1),
        names(&m2),
        n1.output(),
        n2.output()
    );
    eprintln!(
        "two owners: the same names (winner and conflict copies) on both mounts {:?} after \
         lf node-connect; a file without a rival {baseline:?}",
        healed.elapsed()
    );
    let listed = names(&m1);
    let c1 = copy_of(&listed, &o1).unwrap_or_else(|| panic!("no copy of owner 1: {listed:?}"));
    let c2 = copy_of(&listed, &o2).unwrap_or_else(|| panic!("no copy of owner 2: {listed:?}"));
    assert!(listed.contains(&"part.txt".to_string()));
    // Each node's own owner was seen there first: its version under the name.
    assert_eq!(read(&m1.join("part.txt")), "version of owner 1\n");
    assert_eq!(read(&m2.join("part.txt")), "version of owner 2\n");
    for m in [&m1, &m2] {
        assert_eq!(read(&m.join(&c1)), "version of owner 1\n");
        assert_eq!(read(&m.join(&c2)), "version of owner 2\n");
    }
    // Conflict copies are read-only; another owner's cannot be removed, one's own
    // can (that withdraws it).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(m1.join(&c1))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o222, 0, "mode {mode:o}");
    let e = std::fs::OpenOptions::new()
        .write(true)
        .open(m1.join(&c1))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(13), "{e}");
    let e = std::fs::remove_file(m1.join(&c2)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(13), "{e}");

    // The status of each node lists both collisions (the file, by the mount owners;
    // the key, by the client owners), each with this node's own owner winning.
    let client_owner = |h: &Path| {
        let c: serde_json::Value = serde_json::from_str(&read(&h.join("client.json"))).unwrap();
        let owners = c["Owners"].as_object().unwrap();
        owners.values().next().unwrap()["Public"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (k1, k2) = (client_owner(&h1), client_owner(&h2));
    for (n, me, other, mnt, key_me, key_other) in [
        (&n1, &o1, &o2, &m1, &k1, &k2),
        (&n2, &o2, &o1, &m2, &k2, &k1),
    ] {
        let s = n.status();
        let c = &s["Collisions"];
        assert_eq!(c["Open"], 2, "{c:#}");
        let listed = c["Listed"].as_array().unwrap();
        assert_eq!(listed.len(), 2, "{c:#}");
        let file = mnt.join("part.txt").display().to_string();
        for col in listed {
            let (win, lose) = if col["Path"] == file.as_str() {
                (me, other)
            } else {
                assert!(col.get("Path").is_none(), "{col:#}");
                (key_me, key_other)
            };
            assert_eq!(col["Winner"], win.as_str(), "{col:#}");
            assert_eq!(col["Reason"], "first seen here", "{col:#}");
            assert_eq!(col["SameEverywhere"], false, "{col:#}");
            let owners: Vec<&str> = col["Owners"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["Owner"].as_str().unwrap())
                .collect();
            assert_eq!(owners, vec![win.as_str(), lose.as_str()], "{col:#}");
        }
        assert!(
            listed.iter().any(|col| col["Path"] == file.as_str()),
            "no collision at {file}: {c:#}"
        );
        let text = ok(&n.lf_url(&["status"]));
        assert!(text.contains("collisions     2 open"), "{text}");
        assert!(
            text.contains(&format!(
                "{file}: {me} wins here (first seen here, this node only)"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("also {other}")), "{text}");
        let metrics = ureq::get(&format!("{}/metrics", n.url()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(
            metrics.lines().any(|l| l == "lf_collisions_open 2"),
            "{metrics}"
        );
    }

    // Owner 1 withdraws its version through its own conflict copy: the copy goes on
    // both mounts; owner 2's stays, with its content.
    std::fs::remove_file(m1.join(&c1)).unwrap();
    assert!(
        wait_until(60, || {
            let (a, b) = (names(&m1), names(&m2));
            !a.contains(&c1) && !b.contains(&c1) && a.contains(&c2) && b.contains(&c2)
        }),
        "withdrawal not seen: {:?} / {:?}",
        names(&m1),
        names(&m2)
    );
    assert_eq!(read(&m1.join(&c2)), "version of owner 2\n");
    assert_eq!(read(&m2.join("part.txt")), "version of owner 2\n");
}

/// On a network with a root CA, a certified owner's version wins on every node, even
/// on the node that saw an uncertified owner's version first: both mounts show the
/// certified one under the name (the other beside it as a conflict copy), and both
/// statuses say so ("certified", the same everywhere).
#[test]
fn cluster_certified_owner_wins_a_collision_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::private()
        .name("convergence-ca")
        .difficulty(1)
        .max_value(60_000)
        .ca()
        .create(&dir.path().join("net"));
    let (h1, h2) = (net.home("n1"), net.home("n2"));
    let (m1, m2) = (dir.path().join("m1"), dir.path().join("m2"));
    // Node 1's mount owner is certified (a key file, its CSR signed by the CA and the
    // certificate published); node 2's (its identity) is not.
    let writer = lf_record::OwnerSecret::from_scalar_bytes(&[9; 48]).unwrap();
    std::fs::write(h1.join("writer.pem"), writer.to_pem()).unwrap();
    let n1 = TestNode::on(&h1)
        .mount(Mount::new(&m1, ROOT).owner("writer.pem"))
        .start();
    let n2 = start(&h2, &m2);
    assert!(wait_until(30, || is_mounted(&m1)), "{}", n1.output());
    let (key, csr, crt) = (
        h1.join("writer.pem"),
        h1.join("writer.csr"),
        h1.join("writer.crt"),
    );
    let ca = net.ca_key();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    ok(&n1.lf_url(&["owner", "csr", "-key", &path(&key), "-out", &path(&csr)]));
    ok(&n1.lf_url(&["owner", "sign", "-ca", &path(&ca), &path(&csr)]));
    ok(&n1.lf_url(&["owner", "publish-cert", "-ca", &path(&ca), &path(&crt)]));

    // Node 2 writes first (it pays proof of work), node 1 after; each during the
    // partition. Node 2 has seen only its own version when they meet.
    std::fs::write(m2.join("part.txt"), "uncertified, first\n").unwrap();
    std::fs::write(m1.join("part.txt"), "certified, later\n").unwrap();
    for n in [&n1, &n2] {
        assert!(
            wait_until(60, || n.status()["PendingCommits"] == 0),
            "{}",
            n.output()
        );
    }
    connect(&n2, &n1);
    let certified = "certified, later\n";
    assert!(
        wait_until(60, || {
            names(&m1).len() == 3
                && names(&m1) == names(&m2)
                && read(&m1.join("part.txt")) == certified
                && read(&m2.join("part.txt")) == certified
        }),
        "the certified version does not win on both: {:?} {:?} / {:?} {:?}\n{}\n{}",
        names(&m1),
        read(&m1.join("part.txt")),
        names(&m2),
        read(&m2.join("part.txt")),
        n1.output(),
        n2.output()
    );
    let uncertified = names(&m2)
        .into_iter()
        .find(|n| {
            let o = n2.status()["Identity"].as_str().unwrap().to_string();
            n.starts_with(&format!("part.sync-conflict-{}-", &o[o.len() - 8..]))
        })
        .expect("a conflict copy of node 2's version");
    for m in [&m1, &m2] {
        assert_eq!(read(&m.join(&uncertified)), "uncertified, first\n");
    }
    for n in [&n1, &n2] {
        let c = &n.status()["Collisions"];
        let col = &c["Listed"][0];
        assert_eq!(c["Open"], 1, "{c:#}");
        assert_eq!(col["Winner"], writer.public().to_string(), "{col:#}");
        assert_eq!(col["Reason"], "certified", "{col:#}");
        assert_eq!(col["SameEverywhere"], true, "{col:#}");
    }
}

/// Two owners make the same directory during a partition: both mounts list the
/// directory and both owners' directories as conflict copies, whose trees can be
/// walked (`find`) and read, the same on both nodes.
#[test]
fn cluster_directory_collision_lists_both_trees() {
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2) = homes(dir.path());
    let (m1, m2) = (dir.path().join("m1"), dir.path().join("m2"));
    let n1 = start(&h1, &m1);
    let n2 = start(&h2, &m2);
    for (m, who) in [(&m1, "1"), (&m2, "2")] {
        std::fs::create_dir_all(m.join("proj/sub")).unwrap();
        std::fs::write(m.join("proj/sub/notes.txt"), format!("notes of {who}\n")).unwrap();
    }
    for n in [&n1, &n2] {
        assert!(
            wait_until(30, || n.status()["PendingCommits"] == 0),
            "{}",
            n.output()
        );
    }
    connect(&n2, &n1);
    assert!(
        wait_until(60, || names(&m1).len() == 3 && names(&m1) == names(&m2)),
        "{:?} / {:?}",
        names(&m1),
        names(&m2)
    );
    // Walk every tree on both mounts: each conflict copy holds its owner's files.
    for (m, mine) in [(&m1, "1"), (&m2, "2")] {
        let o = std::process::Command::new("find")
            .arg(m)
            .arg("-type")
            .arg("f")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "find: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let found = String::from_utf8_lossy(&o.stdout);
        let files = found.lines().filter(|l| !l.ends_with("/.passwd")).count();
        assert_eq!(files, 3, "{found}");
        assert_eq!(
            read(&m.join("proj/sub/notes.txt")),
            format!("notes of {mine}\n")
        );
        let mut contents: Vec<String> = names(m)
            .iter()
            .filter(|n| n.starts_with("proj.sync-conflict-"))
            .map(|n| read(&m.join(n).join("sub/notes.txt")))
            .collect();
        contents.sort();
        assert_eq!(contents, vec!["notes of 1\n", "notes of 2\n"]);
        // The plain name still works after the copies were walked.
        assert_eq!(
            read(&m.join("proj/sub/notes.txt")),
            format!("notes of {mine}\n")
        );
    }
}
