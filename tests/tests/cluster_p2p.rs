//! Cluster tests: real `lf node-start` processes replicating over P2P on 127.0.0.1.
//! Each wait polls with a deadline.

use std::path::{Path, PathBuf};

use lf_tests::{TestNode, private_network, stderr, stdout, wait_until};

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "lf failed: {}{}", stdout(o), stderr(o));
    stdout(o)
}

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
    let url = node.url();
    let mut all = vec!["-url", url.as_str()];
    all.extend_from_slice(args);
    node.lf(&all)
}

fn status(node: &TestNode) -> serde_json::Value {
    serde_json::from_str(&ok(&lf(node, &["-json", "status"]))).unwrap()
}

fn peer_count(node: &TestNode) -> usize {
    status(node)["Peers"].as_array().map_or(0, Vec::len)
}

fn record_count(node: &TestNode) -> u64 {
    status(node)["RecordCount"].as_u64().unwrap_or(0)
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
        wait_until(20, || peer_count(&n2) == 2 && peer_count(&n3) >= 1),
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
    assert_eq!(peer_count(&n1), 0);
    assert_eq!(peer_count(&n2), 0);
}
