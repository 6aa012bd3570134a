//! Real links (issue 18): four `lf node-start` processes, each in its own network
//! namespace joined by an emulated link of 25 ms each way and 1 % frame loss
//! (`lf_tests::Bed`). Records and files written on one node reach every node in
//! bounded time; a silently cut node is noticed and converges within seconds of the
//! heal; a node killed with SIGKILL catches up right after its restart. The bounds
//! are generous (a loaded 2-core machine, a debug build); the figures themselves are
//! measured by `contrib/bench/links.sh`.

use std::path::Path;
use std::time::{Duration, Instant};

use lf_tests::{Bed, Mount, TestNet, TestNode, ok, stdout, wait_until};

fn has(node: &TestNode, key: &str, value: &str) -> bool {
    let o = node.lf_url(&["get", key]);
    o.status.success() && stdout(&o).contains(value)
}

fn set(node: &TestNode, key: &str, value: &str) {
    ok(&node.lf_url(&["set", key, value]));
}

fn record_count(node: &TestNode) -> u64 {
    node.status()["RecordCount"].as_u64().unwrap_or(0)
}

fn peer_count(node: &TestNode) -> usize {
    node.peers().len()
}

/// Waits until every node shows `key` = `value`; panics naming the laggards.
fn everywhere(nodes: &[&TestNode], key: &str, value: &str, secs: u64) -> Duration {
    let t = Instant::now();
    let all = wait_until(secs, || nodes.iter().all(|n| has(n, key, value)));
    let missing: Vec<usize> = (0..nodes.len())
        .filter(|&i| !has(nodes[i], key, value))
        .collect();
    assert!(
        all,
        "{key} did not reach nodes {missing:?} within {secs} s: {}",
        nodes[missing[0]].output()
    );
    t.elapsed()
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[test]
fn cluster_links_delivery_partition_and_restart_under_latency_and_loss() {
    let dir = tempfile::tempdir().unwrap();
    // Declared before the nodes: dropped after them.
    let bed = Bed::new(4);
    bed.set_link(25, 1.0);
    let net = TestNet::private().create(&dir.path().join("net"));
    let mnt: Vec<_> = (1..=4).map(|i| dir.path().join(format!("m{i}"))).collect();
    let n1 = bed
        .node(0, &net.home("n1"))
        .mount(Mount::new(&mnt[0], "links"))
        .start();
    let mut nodes = vec![n1];
    for (i, m) in mnt.iter().enumerate().skip(1) {
        let n = bed
            .node(i, &net.home(&format!("n{}", i + 1)))
            .peer(nodes[0].p2p_addr())
            .mount(Mount::new(m, "links"))
            .start();
        nodes.push(n);
    }
    // Peer exchange makes a full mesh.
    assert!(
        wait_until(60, || nodes.iter().all(|n| peer_count(n) == 3)),
        "no full mesh: {:?}",
        nodes.iter().map(peer_count).collect::<Vec<_>>()
    );

    // Records written on node 1, one by one.
    for i in 0..5 {
        let took = {
            let refs: Vec<&TestNode> = nodes.iter().collect();
            set(&nodes[0], &format!("k{i}"), &format!("v{i}"));
            everywhere(&refs, &format!("k{i}"), &format!("v{i}"), 15)
        };
        eprintln!("k{i} on every node after {took:?}");
    }

    // A burst of 100 writes: every record on every node, in bounded time.
    let t = Instant::now();
    for i in 0..100 {
        set(&nodes[0], &format!("burst{i}"), "b");
    }
    let written = t.elapsed();
    let target = record_count(&nodes[0]);
    assert!(
        wait_until(30, || nodes.iter().all(|n| record_count(n) >= target)),
        "burst not everywhere 30 s after it was written (in {written:?}): {:?} of {target}",
        nodes.iter().map(record_count).collect::<Vec<_>>()
    );
    eprintln!("burst everywhere {:?} after its first write", t.elapsed());

    // A file written on one mount shows on the others.
    std::fs::write(mnt[0].join("hello.txt"), "over a slow lossy link\n").unwrap();
    assert!(
        wait_until(30, || mnt[1..].iter().all(
            |m| read(&m.join("hello.txt")).is_some_and(|t| t.contains("slow lossy"))
        )),
        "the file did not reach every mount"
    );

    // Node 4 is cut off silently (no reset reaches either side): both sides notice
    // within seconds, keep writing, and converge after the heal.
    bed.cut(3);
    let cut_at = Instant::now();
    assert!(
        wait_until(30, || peer_count(&nodes[0]) == 2
            && peer_count(&nodes[3]) == 0),
        "the cut went unnoticed: node 1 has {} peers, node 4 {}",
        peer_count(&nodes[0]),
        peer_count(&nodes[3])
    );
    eprintln!("cut noticed after {:?}", cut_at.elapsed());
    set(&nodes[1], "during-cut", "majority");
    set(&nodes[3], "cut-off", "minority");
    bed.heal(3);
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let a = everywhere(&refs, "during-cut", "majority", 30);
    let b = everywhere(&refs, "cut-off", "minority", 30);
    eprintln!("converged {:?} after the heal", a.max(b));

    // Node 2 is killed (SIGKILL) and misses 20 records; right after its restart it
    // has them.
    nodes[1].kill();
    for i in 0..20 {
        set(&nodes[0], &format!("missed{i}"), "m");
    }
    let target = record_count(&nodes[0]);
    nodes[1].restart();
    let t = Instant::now();
    assert!(
        wait_until(30, || record_count(&nodes[1]) >= target),
        "the restarted node did not catch up: {} of {target}: {}",
        record_count(&nodes[1]),
        nodes[1].output()
    );
    eprintln!("restart catch-up {:?}", t.elapsed());
    assert!(has(&nodes[1], "missed19", "m"));
    let (forwarded, dropped) = bed.stats();
    assert!(
        dropped > 0 && forwarded > 0,
        "the link dropped nothing ({forwarded} forwarded): no loss was emulated"
    );
}
