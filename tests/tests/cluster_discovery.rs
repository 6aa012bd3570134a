//! Discovery without addresses typed in (issue 19), between `lf node-start` processes
//! in network namespaces joined by the bed's switch (one LAN segment; the switch
//! floods multicast, so mDNS works as on a real LAN):
//! - a node started with no `-peer` finds a running node by mDNS and catches up, and a
//!   node started with `-no-mdns` on the same segment stays alone;
//! - in a chain of 6 nodes where each knows only the next (mDNS off), every node ends
//!   up connected to more than its neighbours, and Kademlia's walks found peers.
//!
//! Bounds are generous: a loaded 2-core machine, a debug build.

use lf_tests::{Bed, TestNet, TestNode, ok, stdout, wait_until};

fn has(node: &TestNode, key: &str, value: &str) -> bool {
    let o = node.lf_url(&["get", key]);
    o.status.success() && stdout(&o).contains(value)
}

/// The node's `/metrics`, asked from inside its namespace (its HTTP API listens on
/// 127.0.0.1 there).
fn metrics(bed: &Bed, i: usize, node: &TestNode) -> String {
    let o = bed
        .command(i, "curl")
        .args(["-sf", &format!("{}/metrics", node.url())])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The sum of every series of metric `name` (all label sets).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn cluster_discovery_lan_node_without_peers_joins_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    // Declared before the nodes: dropped after them.
    let bed = Bed::new(3);
    let net = TestNet::private().create(&dir.path().join("net"));
    let n1 = bed.node(0, &net.home("n1")).lan_discovery().start();
    for i in 0..5 {
        ok(&n1.lf_url(&["set", &format!("before{i}"), &format!("v{i}")]));
    }
    // On the same segment, told not to look.
    let quiet = bed.node(2, &net.home("quiet")).start();
    // No -peer: it finds n1 by itself, and gets what n1 held before it started.
    let n2 = bed.node(1, &net.home("n2")).lan_discovery().start();
    let t = std::time::Instant::now();
    assert!(
        wait_until(60, || (0..5).all(|i| has(
            &n2,
            &format!("before{i}"),
            &format!("v{i}")
        ))),
        "the node with no -peer did not catch up within 60 s: peers {:?}: {}",
        n2.peers(),
        n2.output()
    );
    eprintln!("caught up {:?} after its start", t.elapsed());
    let n1_id = n1.status()["P2PIdentity"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        n2.peer_ids().contains(&n1_id),
        "{:?} lacks {n1_id}",
        n2.peer_ids()
    );
    // And a write after the join travels too.
    ok(&n2.lf_url(&["set", "after", "joined"]));
    assert!(
        wait_until(30, || has(&n1, "after", "joined")),
        "a write on the joined node did not reach the first one"
    );
    let m2 = metrics(&bed, 1, &n2);
    assert_eq!(metric(&m2, "lf_p2p_mdns_active"), 1.0, "{m2}");
    assert!(metric(&m2, "lf_p2p_mdns_peers_found_total") >= 1.0, "{m2}");
    // The node started with -no-mdns had as long as n2 and found no one.
    let mq = metrics(&bed, 2, &quiet);
    assert_eq!(metric(&mq, "lf_p2p_mdns_active"), 0.0, "{mq}");
    assert!(
        quiet.peers().is_empty(),
        "-no-mdns node connected: {:?}",
        quiet.peers()
    );
}

#[test]
fn cluster_discovery_chain_of_six_connects_beyond_neighbours() {
    const N: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let bed = Bed::new(N);
    let net = TestNet::private().create(&dir.path().join("net"));
    // From the far end: node i's only peer, node i+1, runs when it starts. No mDNS
    // (the test nodes' default): the chain is all they are told.
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in (0..N).rev() {
        let mut b = bed.node(i, &net.home(&format!("n{i}")));
        if let Some(next) = nodes.last() {
            b = b.peer(next.p2p_addr());
        }
        nodes.push(b.start());
    }
    nodes.reverse();
    let t = std::time::Instant::now();
    let neighbours = |i: usize| if i == 0 || i == N - 1 { 1 } else { 2 };
    let counts = |nodes: &[TestNode]| nodes.iter().map(|n| n.peers().len()).collect::<Vec<_>>();
    assert!(
        wait_until(90, || {
            let c = counts(&nodes);
            (0..N).all(|i| c[i] > neighbours(i))
        }),
        "not every node is connected beyond its neighbours after 90 s: {:?}",
        counts(&nodes)
    );
    eprintln!(
        "peers per node: {:?} after {:?}",
        counts(&nodes),
        t.elapsed()
    );
    // Kademlia took part: its walks found more peers than each node's neighbours, and
    // its routing table holds them (the gauge is sampled every few seconds).
    let found = |i: usize| metric(&metrics(&bed, i, &nodes[i]), "lf_p2p_kad_peers_found_total");
    let table = |i: usize| {
        metric(
            &metrics(&bed, i, &nodes[i]),
            "lf_p2p_kad_routing_table_peers",
        )
    };
    assert!(
        wait_until(90, || (0..N).all(
            |i| found(i) > neighbours(i) as f64 && table(i) > neighbours(i) as f64
        )),
        "Kademlia found (walk results) {:?}, routing tables {:?}",
        (0..N).map(found).collect::<Vec<_>>(),
        (0..N).map(table).collect::<Vec<_>>()
    );
    eprintln!(
        "Kademlia found peers beyond the neighbours after {:?}",
        t.elapsed()
    );
    // A record written at one end reaches the other.
    ok(&nodes[0].lf_url(&["set", "end", "to-end"]));
    assert!(
        wait_until(30, || has(&nodes[N - 1], "end", "to-end")),
        "a record did not cross the chain"
    );
}
