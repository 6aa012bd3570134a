//! Cluster membership tests: where real `lf node-start` processes on 127.0.0.1 find
//! their peers (peer exchange, `peers.json` at restart, the genesis bootstrap peers).
//! Each wait polls with a deadline.

use std::path::{Path, PathBuf};

use lf_tests::{TestNode, free_port, ok, private_network, stderr, stdout, wait_until};

/// Copies the network in `net` (its `genesis.lf`) into `n` new homes under `dir`.
fn homes_of(dir: &Path, net: &Path, n: usize) -> Vec<PathBuf> {
    (1..=n)
        .map(|i| {
            let h = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&h).unwrap();
            std::fs::copy(net.join("genesis.lf"), h.join("genesis.lf")).unwrap();
            h
        })
        .collect()
}

/// `n` homes sharing one private network (no proof of work).
fn homes(dir: &Path, n: usize) -> Vec<PathBuf> {
    let net = dir.join("net");
    private_network(&net);
    homes_of(dir, &net, n)
}

/// `lf -url <node> args...` (explicit URL: client.json may lag the port opening).
fn lf(node: &TestNode, args: &[&str]) -> std::process::Output {
    node.lf_url(args)
}

/// The node's libp2p peer ID.
fn p2p_id(node: &TestNode) -> String {
    node.status()["P2PIdentity"].as_str().unwrap().to_string()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Whether `lf get name` on `node` shows `value`.
fn has_value(node: &TestNode, name: &str, value: &str) -> bool {
    let o = lf(node, &["get", name]);
    o.status.success() && stdout(&o).contains(value)
}

/// A and C know only B (`-peer`); through B's peer exchange they find each other and
/// connect directly, so with B stopped a write on A still reaches C.
#[test]
fn peer_exchange_connects_peers_of_a_peer() {
    let dir = tempfile::tempdir().unwrap();
    let h = homes(dir.path(), 3);
    let mut b = TestNode::start(&h[1]);
    let a = TestNode::start_with_peers(&h[0], &[b.p2p_addr()]);
    let c = TestNode::start_with_peers(&h[2], &[b.p2p_addr()]);
    let (a_id, b_id, c_id) = (p2p_id(&a), p2p_id(&b), p2p_id(&c));
    // One reconciliation round (at connection, then every 30 s) exchanges peers; the
    // maintenance tick (5 s) dials the ones learned.
    let t = std::time::Instant::now();
    assert!(
        wait_until(90, || a.peer_ids().contains(&c_id)
            && c.peer_ids().contains(&a_id)),
        "A and C never connected: A has {:?}, C has {:?}\n{}\n{}",
        a.peer_ids(),
        c.peer_ids(),
        a.output(),
        c.output()
    );
    eprintln!("A and C connected {:?} after starting", t.elapsed());
    assert_eq!(a.peer_ids(), sorted(vec![b_id.clone(), c_id.clone()]));
    assert_eq!(c.peer_ids(), sorted(vec![a_id.clone(), b_id.clone()]));
    assert_eq!(b.peer_ids(), sorted(vec![a_id.clone(), c_id.clone()]));
    // `lf status` (text) shows them too.
    let text = ok(&lf(&a, &["status"]));
    assert!(text.contains("peers          2"), "{text}");
    assert!(text.contains(&c_id), "{text}");
    // The direct link carries records: without B, a write on A reaches C.
    assert!(b.stop("TERM").success(), "B did not stop cleanly");
    assert!(
        wait_until(60, || a.peer_ids() == vec![c_id.clone()]
            && c.peer_ids() == vec![a_id.clone()]),
        "A {:?}, C {:?}",
        a.peer_ids(),
        c.peer_ids()
    );
    ok(&lf(&a, &["set", "direct", "from A to C without B"]));
    assert!(
        wait_until(60, || has_value(&c, "direct", "from A to C without B")),
        "C never saw A's record: {}",
        c.output()
    );
}

/// `peers.json` lists the peers at shutdown; restarted without `-peer` (and on a new
/// port, so the others cannot dial it first), the node dials them from the file and
/// catches up with what was written while it was down.
#[test]
fn peers_json_is_saved_and_reused_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = homes(dir.path(), 3);
    let b = TestNode::start(&h[1]);
    let c = TestNode::start_with_peers(&h[2], &[b.p2p_addr()]);
    let mut a = TestNode::start_with_peers(&h[0], &[b.p2p_addr()]);
    let (a_id, b_id, c_id) = (p2p_id(&a), p2p_id(&b), p2p_id(&c));
    // A learns C from B (peer exchange) and connects to it.
    assert!(
        wait_until(90, || a.peer_ids()
            == sorted(vec![b_id.clone(), c_id.clone()])),
        "A has {:?}: {}",
        a.peer_ids(),
        a.output()
    );
    ok(&lf(&b, &["set", "before", "written before the restart"]));
    assert!(wait_until(60, || has_value(
        &a,
        "before",
        "before the restart"
    )));

    assert!(a.stop("TERM").success(), "A did not stop cleanly");
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h[0].join("peers.json")).unwrap()).unwrap();
    let saved: Vec<String> = file["Peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    for (n, id) in [(&b, &b_id), (&c, &c_id)] {
        let want = format!("{}/p2p/{id}", n.p2p_addr());
        assert!(saved.contains(&want), "{want} not in peers.json: {saved:?}");
    }
    assert!(
        !saved.iter().any(|s| s.contains(&a_id)),
        "A saved itself: {saved:?}"
    );

    // Written while A is down.
    ok(&lf(&c, &["set", "meanwhile", "written while A was down"]));
    assert!(wait_until(60, || has_value(
        &b,
        "meanwhile",
        "while A was down"
    )));
    assert!(wait_until(60, || b.peer_ids() == vec![c_id.clone()]));

    a.peers.clear();
    a.p2p_port = free_port();
    a.restart();
    assert_eq!(p2p_id(&a), a_id, "the P2P identity changed at restart");
    assert!(
        wait_until(90, || a.peer_ids()
            == sorted(vec![b_id.clone(), c_id.clone()])),
        "A did not reconnect from peers.json: {:?}\n{}",
        a.peer_ids(),
        a.output()
    );
    // A dialed them (they knew only its old port).
    let st = a.status();
    for p in st["Peers"].as_array().unwrap() {
        assert_eq!(p["Inbound"], false, "{p}");
    }
    assert!(
        wait_until(90, || has_value(&a, "meanwhile", "while A was down")),
        "A never caught up: {}",
        a.output()
    );
    assert!(has_value(&a, "before", "before the restart"));
}

/// A network whose genesis names node 1's P2P address as a bootstrap peer: a node
/// started with no `-peer` and no `peers.json` connects to node 1 and syncs both ways;
/// node 1, which finds its own address in the list, never takes itself for a peer.
#[test]
fn genesis_bootstrap_peer_is_dialed() {
    let dir = tempfile::tempdir().unwrap();
    let p2p_port = free_port();
    let bootstrap = format!("/ip4/127.0.0.1/tcp/{p2p_port}");
    let net = dir.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    let o = lf_tests::lf(
        &net,
        &[
            "makegenesis",
            "--yes",
            "--name",
            "bootstrap test",
            "--difficulty",
            "0",
            "--peer",
            &bootstrap,
            "--out",
            ".",
        ],
    );
    assert!(o.status.success(), "makegenesis: {}", stderr(&o));
    let h = homes_of(dir.path(), &net, 2);
    let n1 = TestNode::start_on_p2p_port(&h[0], p2p_port);
    assert_eq!(n1.p2p_addr(), bootstrap);
    // The configuration in force names the peer.
    let st = n1.status();
    assert!(
        st["Network"].to_string().contains(&bootstrap),
        "bootstrap peer not in the network configuration: {}",
        st["Network"]
    );
    ok(&lf(&n1, &["set", "early", "written before node 2 existed"]));

    assert!(!h[1].join("peers.json").exists());
    let n2 = TestNode::start(&h[1]);
    let (id1, id2) = (p2p_id(&n1), p2p_id(&n2));
    assert!(
        wait_until(90, || n2.peer_ids() == vec![id1.clone()]),
        "node 2 did not reach the bootstrap peer: {:?}\n{}",
        n2.peer_ids(),
        n2.output()
    );
    let st = n2.status();
    assert_eq!(st["Peers"][0]["Inbound"], false, "{st}");
    assert!(
        wait_until(90, || has_value(&n2, "early", "before node 2 existed")),
        "node 2 did not sync: {}",
        n2.output()
    );
    ok(&lf(&n2, &["set", "late", "written on node 2"]));
    assert!(wait_until(60, || has_value(
        &n1,
        "late",
        "written on node 2"
    )));
    // Node 1 dialed its own address from the genesis: it is not its own peer.
    assert_eq!(n1.peer_ids(), vec![id2]);
}

/// The IDs of the node's peers that it dialed (`outbound`) or that dialed it.
fn peers_dialed(node: &TestNode, outbound: bool) -> Vec<String> {
    node.peers()
        .into_iter()
        .filter(|(_, inbound)| *inbound != outbound)
        .map(|(id, _)| id)
        .collect()
}

/// Connection limits: with `-max-inbound 1`, node A keeps its first inbound peer (B),
/// refuses the next (C) and says why in its log, and keeps replicating with B. With
/// `-max-outbound 1`, node D, given two peers, connects to one of them only, also after
/// peer exchange has told it about more.
#[test]
fn connection_limits_refuse_peers_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let h = homes(dir.path(), 4);
    let a = TestNode::start_with_args(&h[0], &["-max-inbound", "1"]);
    let b = TestNode::start_with_peers(&h[1], &[a.p2p_addr()]);
    let b_id = p2p_id(&b);
    let inbound = |n: &TestNode| peers_dialed(n, false);
    assert!(
        wait_until(60, || inbound(&a) == vec![b_id.clone()]),
        "B did not connect to A: {:?}\n{}",
        a.peers(),
        a.output()
    );
    let c = TestNode::start_with_peers(&h[2], &[a.p2p_addr(), b.p2p_addr()]);
    let c_id = p2p_id(&c);
    let refused = "inbound connection refused: connection limit exceeded: at most 1 \
                   established incoming";
    assert!(
        wait_until(60, || a.output().contains(refused)),
        "A did not refuse C with a log line saying why:\n{}",
        a.output()
    );
    assert!(
        wait_until(60, || c.peer_ids() == vec![b_id.clone()]),
        "C did not connect to B: {:?}",
        c.peer_ids()
    );
    // C redials A every few seconds and is never let in; B still replicates with A.
    ok(&lf(&a, &["set", "limits", "from A"]));
    assert!(wait_until(60, || has_value(&b, "limits", "from A")));
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(inbound(&a), vec![b_id.clone()], "{}", a.output());

    let d = TestNode::start_with_args(
        &h[3],
        &[
            "-max-outbound",
            "1",
            "-peer",
            &b.p2p_addr(),
            "-peer",
            &c.p2p_addr(),
        ],
    );
    let outbound = |n: &TestNode| peers_dialed(n, true);
    assert!(
        wait_until(60, || outbound(&d).len() == 1),
        "D made no outbound connection: {:?}\n{}",
        d.peers(),
        d.output()
    );
    let first = outbound(&d)[0].clone();
    assert!(first == b_id || first == c_id, "{first}");
    assert!(
        wait_until(30, || d.output().contains(
            "connection limit exceeded: at most 1 established outgoing"
        )),
        "D's log does not say why it did not connect to its second peer:\n{}",
        d.output()
    );
    // Peer exchange (at connection) tells D about the others and the maintenance tick
    // (every 5 s) would dial them: still one outbound connection, the same one.
    std::thread::sleep(std::time::Duration::from_secs(12));
    assert_eq!(outbound(&d), vec![first], "{}", d.output());
    // Through its one peer, D has what A wrote.
    assert!(
        wait_until(60, || has_value(&d, "limits", "from A")),
        "{}",
        d.output()
    );
}
