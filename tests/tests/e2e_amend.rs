//! Amendable genesis on real nodes: the genesis owner amends the configuration with
//! `lf amend`, the amendment replicates across three nodes and every node applies it
//! (status, limits);
//! non-amendable fields and other owners are refused; a restart keeps the amended
//! configuration.

use std::path::Path;

use lf_tests::{TestNet, TestNode, ok, stderr, stdout, wait_until};

fn network(dir: &Path) -> TestNet {
    TestNet::private()
        .name("amend")
        .args(&["--amendable", "name,record_max_value_size"])
        .create(&dir.join("net"))
}

#[test]
fn e2e_amendment_reaches_every_node_and_changes_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path());
    let n1 = TestNode::start(&net.home("n1"));
    let mut n2 = TestNode::start_with_peers(&net.home("n2"), &[n1.p2p_addr()]);
    // Node 3 hears of node 1 only through node 2.
    let n3 = TestNode::start_with_peers(&net.home("n3"), &[n2.p2p_addr()]);
    let key = net.genesis_key();
    let key = key.to_str().unwrap();
    ok(&n2.lf(&["owner", "new", "alice"]));
    let big = "x".repeat(1500);
    // Before: values are limited to 1,024 bytes.
    let refused = n2.lf(&["set", "k#0", &big]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("1024"), "{}", stderr(&refused));

    // A field that is not amendable is named, and nothing is published.
    let o = n1.lf(&["amend", "-key", key, "record_min_links=5"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("record_min_links") && stderr(&o).contains("not amendable"),
        "{}",
        stderr(&o)
    );
    // Another network's genesis key is not this network's genesis owner.
    let other = network(&dir.path().join("other"));
    let other_key = other.genesis_key();
    let o = n1.lf(&["amend", "-key", other_key.to_str().unwrap(), "name=x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("genesis owner is"), "{}", stderr(&o));
    let o = n1.lf(&["amend", "-key", "/nonexistent.pem", "name=x"]);
    assert!(stderr(&o).contains("nonexistent.pem"), "{}", stderr(&o));

    // The genesis owner amends two fields on node 1.
    ok(&n1.lf(&[
        "amend",
        "-key",
        key,
        "name=Renamed net",
        "record_max_value_size=4000",
    ]));
    for n in [&n1, &n2, &n3] {
        assert!(
            wait_until(30, || {
                let s = n.status();
                s["Network"]["name"] == "Renamed net"
                    && s["Network"]["record_max_value_size"] == 4000
                    && s["ConfigAmendments"] == 1
            }),
            "amendment not applied: {}",
            n.output()
        );
    }
    let text = ok(&n2.lf(&["status"]));
    assert!(text.contains("values up to 4000 bytes"), "{text}");
    assert!(text.contains("(amended once)"), "{text}");
    // The new limit holds on node 2, and node 1 accepts the record too.
    ok(&n2.lf(&["set", "k#0", &big]));
    assert!(wait_until(30, || {
        let o = n1.lf(&["get", "k#0"]);
        o.status.success() && stdout(&o).contains(&big)
    }));

    // A restart rebuilds the amended configuration from the stored records.
    n2.stop("TERM");
    n2.restart();
    let s = n2.status();
    assert_eq!(s["Network"]["name"], "Renamed net");
    assert_eq!(s["ConfigAmendments"], 1);
}
