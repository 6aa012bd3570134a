//! Cluster tests: real `lf node-start` processes replicating over P2P on 127.0.0.1.
//! Each wait polls with a deadline.

use std::path::{Path, PathBuf};

use lf_tests::{
    TestNode, hostile_peer, hostile_peer_bin, ok, private_network, stderr, stdout, wait_until,
};

/// `n` homes sharing one private network (no proof of work).
fn homes(dir: &Path, n: usize) -> Vec<PathBuf> {
    let net = dir.join("net");
    private_network(&net);
    (1..=n)
        .map(|i| {
            let h = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&h).unwrap();
            std::fs::copy(net.join("genesis.lf"), h.join("genesis.lf")).unwrap();
            h
        })
        .collect()
}

/// `lf -url <node> args...` (explicit URL: client.json may lag the port opening).
fn lf(node: &TestNode, args: &[&str]) -> std::process::Output {
    node.lf_url(args)
}

fn record_count(node: &TestNode) -> u64 {
    node.status()["RecordCount"].as_u64().unwrap_or(0)
}

#[test]
fn cluster_three_nodes_converge_and_get_on_node_3() {
    let dir = tempfile::tempdir().unwrap();
    let h = homes(dir.path(), 3);
    let n1 = TestNode::start(&h[0]);
    let n2 = TestNode::start_with_peers(&h[1], &[n1.p2p_addr()]);
    // Node 3 knows only node 2: node 1's writes reach it through node 2.
    let n3 = TestNode::start_with_peers(&h[2], &[n2.p2p_addr()]);
    assert!(
        wait_until(20, || n2.peers().len() == 2 && !n3.peers().is_empty()),
        "peers did not connect: {}\n{}",
        n2.output(),
        n3.output()
    );
    ok(&lf(&n1, &["set", "greeting", "hello from node 1"]));
    assert!(
        wait_until(20, || {
            let o = lf(&n3, &["get", "greeting"]);
            o.status.success() && stdout(&o).contains("hello from node 1")
        }),
        "node 3 never saw the record: {}",
        n3.output()
    );
    // Writes on node 3 flow back, and every node ends with the same records.
    ok(&lf(&n3, &["set", "reply", "hello from node 3"]));
    assert!(wait_until(20, || {
        let o = lf(&n1, &["get", "reply"]);
        stdout(&o).contains("hello from node 3")
    }));
    assert!(wait_until(20, || {
        let c = record_count(&n1);
        c == record_count(&n2) && c == record_count(&n3)
    }));
    // `lf status` lists the peers.
    let text = ok(&lf(&n2, &["status"]));
    assert!(text.contains("peers          2"), "{text}");
}

#[test]
fn cluster_node_connect_at_runtime_and_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let h = homes(dir.path(), 2);
    let n1 = TestNode::start(&h[0]);
    for i in 0..8 {
        ok(&lf(&n1, &["set", &format!("k{i}"), &format!("v{i}")]));
    }
    // Node 2 starts alone, then is told about node 1: it catches up by reconciliation.
    let n2 = TestNode::start(&h[1]);
    let addr = n1.p2p_addr();
    let o = lf(&n2, &["node-connect", &addr]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        wait_until(30, || record_count(&n2) == record_count(&n1)),
        "no catch-up: {}",
        n2.output()
    );
    assert!(stdout(&lf(&n2, &["get", "k7"])).contains("v7"));
    // Without the token, /connect is refused.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let raw = agent
        .post(format!("{}/connect", n2.url()))
        .send_json(serde_json::json!({ "Address": addr }))
        .unwrap();
    assert_eq!(raw.status().as_u16(), 401);
}

#[test]
fn cluster_other_network_cannot_connect() {
    let dir = tempfile::tempdir().unwrap();
    let h = homes(dir.path(), 1);
    let other = dir.path().join("other");
    private_network(&other);
    let n1 = TestNode::start(&h[0]);
    let n2 = TestNode::start(&other);
    let t = std::time::Instant::now();
    let o = lf(&n2, &["node-connect", &n1.p2p_addr()]);
    assert!(!o.status.success(), "connected across networks");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        stderr(&o).contains("another network"),
        "error does not say why: {}",
        stderr(&o)
    );
    assert_eq!(n1.peers().len(), 0);
    assert_eq!(n2.peers().len(), 0);
}

/// The genesis records of the network in `home` (new records link to them first).
fn genesis_records(home: &Path) -> Vec<lf_record::Record> {
    let bytes = std::fs::read(home.join("genesis.lf")).unwrap();
    lf_record::parse_records(&bytes).unwrap().1
}

/// A deterministic owner (no proof of work needed on these networks).
fn test_owner(seed: u64) -> lf_record::OwnerSecret {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    lf_record::OwnerSecret::generate(|b| {
        for c in b.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *c = x as u8;
        }
    })
}

/// `n` signed records in layers of `layer`: each record links to two records of the
/// layer before (the first layer to the genesis records), so every record is valid
/// on its own network. Layers are signed on every core.
fn bulk_records(genesis: &[lf_record::Record], n: usize, layer: usize) -> Vec<lf_record::Record> {
    use lf_record::{RecordBuilder, RecordType};
    let owner = test_owner(42);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out: Vec<lf_record::Record> = Vec::with_capacity(n);
    let mut prev: Vec<lf_record::RecordHash> = genesis.iter().map(|r| r.hash()).collect();
    while out.len() < n {
        let start = out.len();
        let count = layer.min(n - start);
        let prev_ref = &prev;
        let owner = &owner;
        let made: Vec<lf_record::Record> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        (t..count)
                            .step_by(threads)
                            .map(|j| {
                                let i = start + j;
                                let a = prev_ref[j % prev_ref.len()];
                                let b = prev_ref[(j + 1) % prev_ref.len()];
                                RecordBuilder::new(RecordType::Datum, now)
                                    .value(format!("bulk value {i}").into_bytes())
                                    .links(vec![a, b])
                                    .selector(format!("bulk{i}").as_bytes(), 0)
                                    .build(&owner.public())
                                    .and_then(|u| u.sign_without_work(owner))
                                    .unwrap()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut parts: Vec<Vec<lf_record::Record>> =
                handles.into_iter().map(|h| h.join().unwrap()).collect();
            // Back in index order (thread t made indices t, t + threads, ...).
            let mut v = Vec::with_capacity(count);
            for j in 0..count {
                v.push(parts[j % threads].remove(0));
            }
            v
        });
        prev = made.iter().map(|r| r.hash()).collect();
        out.extend(made);
    }
    out
}

/// POSTs records to `node`'s `/post` from every core; panics on a refusal.
fn post_all(node: &TestNode, records: &[lf_record::Record], layer: usize) {
    let url = format!("{}/post", node.url());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) + 1;
    // Layer by layer, so that links are stored before the records linking to them.
    for chunk in records.chunks(layer) {
        std::thread::scope(|s| {
            for t in 0..threads {
                let url = &url;
                s.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    for r in chunk.iter().skip(t).step_by(threads) {
                        let mut resp = agent
                            .post(url)
                            .header("Content-Type", "application/octet-stream")
                            .send(r.to_bytes())
                            .unwrap();
                        let code = resp.status().as_u16();
                        let body = resp.body_mut().read_to_string().unwrap_or_default();
                        assert_eq!(code, 200, "post refused: {body}");
                    }
                });
            }
        });
    }
}

/// Three nodes replicate 10k records live (posted to node 1, relayed through node 2 to
/// node 3); then a fresh fourth node that knows only node 3 catches up all of them by
/// reconciliation (no announcement ever reached it), and all four hold the same records.
#[test]
fn cluster_fresh_node_catches_up_10k_records() {
    const N: usize = 10_000;
    const LAYER: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let h = homes(dir.path(), 4);
    let t = std::time::Instant::now();
    let records = bulk_records(&genesis_records(&h[0]), N, LAYER);
    eprintln!("{N} records signed in {:?}", t.elapsed());
    let n1 = TestNode::start(&h[0]);
    let n2 = TestNode::start_with_peers(&h[1], &[n1.p2p_addr()]);
    let n3 = TestNode::start_with_peers(&h[2], &[n2.p2p_addr()]);
    assert!(
        wait_until(20, || n2.peers().len() == 2 && !n3.peers().is_empty()),
        "peers did not connect: {}\n{}",
        n2.output(),
        n3.output()
    );
    let base = record_count(&n1);
    let t = std::time::Instant::now();
    post_all(&n1, &records, LAYER);
    eprintln!("{N} records posted to node 1 in {:?}", t.elapsed());
    let total = base + N as u64;
    assert_eq!(record_count(&n1), total);
    let synced = |n: &TestNode| {
        let st = n.status();
        st["RecordCount"].as_u64() == Some(total)
            && st["SynchronizedCount"].as_u64() == Some(total)
            && st["WantedCount"] == 0
    };
    assert!(
        wait_until(120, || synced(&n2) && synced(&n3)),
        "the three nodes did not converge: {} and {} of {total}\n{}\n{}",
        record_count(&n2),
        record_count(&n3),
        n2.output(),
        n3.output()
    );
    eprintln!(
        "nodes 2 and 3 held all {N} records {:?} after the posting began",
        t.elapsed()
    );
    // A fresh node that knows only node 3's address.
    let t = std::time::Instant::now();
    let n4 = TestNode::start_with_peers(&h[3], &[n3.p2p_addr()]);
    assert!(
        wait_until(120, || record_count(&n4) == total),
        "the fresh node did not catch up: {} of {total}\n{}",
        record_count(&n4),
        n4.output()
    );
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "the fresh node caught up {N} records in {secs:.1} s ({:.0} records/s)",
        N as f64 / secs
    );
    // Fully synchronized, the same count on all four, and readable there.
    assert!(synced(&n4), "{}", n4.status());
    for n in [&n1, &n2, &n3] {
        assert_eq!(record_count(n), total);
    }
    for i in [0, N / 2, N - 1] {
        let o = lf(&n4, &["get", &format!("bulk{i}")]);
        assert!(
            stdout(&o).contains(&format!("bulk value {i}")),
            "bulk{i} on the fresh node: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
}

/// Peers that send garbage, oversized or forged messages and records are thrown out and
/// banned; a peer that announces and never answers does not stall replication; the
/// honest nodes keep replicating throughout and store nothing of it.
#[test]
fn cluster_hostile_peers_are_disconnected_and_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let h = homes(dir.path(), 2);
    // The hostile peers come from 127.0.0.1 and get that address banned: the honest
    // nodes use addresses of their own (a node dials out from its listen address).
    let n1 = TestNode::on(&h[0]).p2p_bind("127.0.0.2").start();
    let n2 = TestNode::on(&h[1])
        .p2p_bind("127.0.0.3")
        .peer(n1.p2p_addr())
        .start();
    assert!(wait_until(20, || n1.peers().len() == 1 && n2.peers().len() == 1));
    let network = n1.status()["Network"]["id"].as_str().unwrap().to_string();
    let before = record_count(&n1);
    hostile_peer_bin();
    // A silent peer on node 2 announces records and never serves them: node 2 must
    // still take node 1's writes at once.
    let silent = hostile_peer(&n2, &network, "silent", 20);
    let attacks = [
        "garbage-gossip",
        "garbage-request",
        "oversized-request",
        "forged",
        "oversized-record",
    ];
    let children: Vec<_> = attacks
        .iter()
        .map(|a| (*a, hostile_peer(&n1, &network, a, 15)))
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    for i in 0..3 {
        let t = std::time::Instant::now();
        ok(&lf(
            &n1,
            &["set", &format!("honest{i}"), &format!("still working {i}")],
        ));
        assert!(
            wait_until(10, || stdout(&lf(&n2, &["get", &format!("honest{i}")]))
                .contains(&format!("still working {i}"))),
            "replication stalled under attack: {}",
            n2.output()
        );
        eprintln!("honest write {i} visible on node 2 after {:?}", t.elapsed());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "replication slowed under attack: {:?}",
            t.elapsed()
        );
    }
    for (attack, child) in children {
        let o = child.wait_with_output().unwrap();
        let out = stdout(&o);
        // The earlier attackers may already have got their address (127.0.0.1) banned:
        // then this one is refused at the handshake, before it can do anything (it says
        // so on stdout or, as an error, on stderr).
        let said = format!("{out}{}", stderr(&o));
        if said.contains("cannot connect") && said.contains("Connection reset by peer") {
            continue;
        }
        assert!(
            out.contains("disconnected after"),
            "{attack}: the node kept the hostile peer: {out}{}\n{}",
            stderr(&o),
            n1.output()
        );
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("peer "))
            .unwrap()
            .to_string();
        assert!(!n1.peer_ids().contains(&id), "{attack}: still listed");
    }
    let o = silent.wait_with_output().unwrap();
    eprintln!("silent peer: {}", stdout(&o));
    // Nothing hostile was stored; node 1's peers are node 2 alone.
    assert_eq!(record_count(&n1), before + 3);
    assert!(wait_until(10, || record_count(&n2) == before + 3));
    let n2_id = n2.status()["P2PIdentity"].as_str().unwrap().to_string();
    assert_eq!(n1.peer_ids(), vec![n2_id], "{:?}", n1.status()["Peers"]);
}

/// The candidates `lf -json get <name>` shows on `node`, best first: (value, owner).
fn candidates(node: &TestNode, name: &str) -> Vec<(String, String)> {
    let o = lf(node, &["-json", "get", name]);
    let sets: Vec<Vec<serde_json::Value>> = serde_json::from_str(&stdout(&o)).unwrap_or_default();
    sets.into_iter()
        .next()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["Value"].as_str().unwrap_or("").to_string(),
                c["Owner"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// One node is cut off (restarted alone on a new port, forgetting its peers); both
/// sides write, including the same selector by two owners; after the heal every node
/// holds the same records and shows the same winner.
///
/// Which claim wins is local reputation (reference §9.4: the first owner to claim a
/// selector set *on this node* wins), so after a partition each side first prefers its
/// own claim; what makes the winners agree is the network's oracles (§9.6). Nodes 1 and
/// 2 run in oracle mode and every node's client trusts both.
#[test]
fn cluster_partition_heals_to_identical_winners() {
    let dir = tempfile::tempdir().unwrap();
    let h = homes(dir.path(), 3);
    let oracle = ["-oracle", "-oracle-interval", "1"];
    let n1 = TestNode::start_with_args(&h[0], &oracle);
    let n2 = TestNode::start_with_args(&h[1], &oracle);
    ok(&lf(&n2, &["node-connect", &n1.p2p_addr()]));
    let mut n3 = TestNode::start_with_peers(&h[2], &[n1.p2p_addr(), n2.p2p_addr()]);
    assert!(wait_until(20, || n1.peers().len() == 2
        && n2.peers().len() == 2
        && n3.peers().len() == 2));
    let oracles: Vec<String> = [&n1, &n2]
        .iter()
        .map(|n| n.status()["Identity"].as_str().unwrap().to_string())
        .collect();
    for n in [&n1, &n2, &n3] {
        for o in &oracles {
            ok(&n.lf(&["oracle", "add", o]));
        }
    }
    ok(&lf(&n1, &["set", "base", "before the partition"]));
    assert!(wait_until(20, || {
        let c = record_count(&n1);
        c == record_count(&n2) && c == record_count(&n3)
    }));
    // Cut node 3 off: it restarts on another port knowing no peer, and the others
    // cannot find it.
    assert!(n3.stop("TERM").success());
    let _ = std::fs::remove_file(h[2].join("peers.json"));
    n3.peers.clear();
    n3.p2p_port = lf_tests::free_port();
    n3.restart();
    assert!(wait_until(20, || n1.peers().len() == 1 && n2.peers().len() == 1));
    assert_eq!(n3.peers().len(), 0);
    // Writes on both sides; "contested" by node 1's owner and by node 3's owner.
    ok(&lf(
        &n1,
        &["set", "contested", "claimed on the majority side"],
    ));
    ok(&lf(
        &n3,
        &["set", "contested", "claimed on the cut-off node"],
    ));
    for i in 0..3 {
        ok(&lf(&n2, &["set", &format!("left{i}"), "majority"]));
        ok(&lf(&n3, &["set", &format!("right{i}"), "minority"]));
    }
    assert!(wait_until(20, || stdout(&lf(&n1, &["get", "left2"]))
        .contains("majority")));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(!stdout(&lf(&n1, &["get", "right0"])).contains("minority"));
    assert!(!stdout(&lf(&n3, &["get", "left0"])).contains("majority"));
    assert_eq!(candidates(&n3, "contested").len(), 1);
    assert_eq!(candidates(&n1, "contested").len(), 1);
    // Heal.
    ok(&lf(&n3, &["node-connect", &n1.p2p_addr()]));
    let same = || {
        let (a, b, c) = (n1.status(), n2.status(), n3.status());
        a["RecordCount"] == b["RecordCount"]
            && a["RecordCount"] == c["RecordCount"]
            && a["SynchronizedCount"] == a["RecordCount"]
            && b["SynchronizedCount"] == b["RecordCount"]
            && c["SynchronizedCount"] == c["RecordCount"]
    };
    assert!(
        wait_until(30, same),
        "no convergence after the heal: {}",
        n3.output()
    );
    // (Equal counts can be a coincidence while the oracles publish: look at the data.)
    for (i, n) in [&n1, &n2, &n3].iter().enumerate() {
        let both = || {
            stdout(&lf(n, &["get", "right2"])).contains("minority")
                && stdout(&lf(n, &["get", "left2"])).contains("majority")
        };
        assert!(wait_until(20, both), "node {} lacks a side's writes", i + 1);
    }
    // Once the oracles' commentary has spread, every node shows the same winner.
    let views = || -> Vec<Vec<(String, String)>> {
        [&n1, &n2, &n3]
            .iter()
            .map(|n| candidates(n, "contested"))
            .collect()
    };
    let agreed = wait_until(30, || {
        let v = views();
        v.iter().all(|c| c.len() == 2 && c[0] == v[0][0])
    });
    let v = views();
    assert!(agreed, "nodes disagree on the winner: {v:#?}");
    assert_eq!(v[0][0].0, "claimed on the majority side", "{v:#?}");
    assert!(wait_until(20, same));
}
