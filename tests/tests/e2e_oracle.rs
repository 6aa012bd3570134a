//! Oracle mode end to end: a node started with `-oracle` flags the record that lost a
//! collision, and a client that trusts it (`lf oracle add`) sees that in trust values.

use lf_tests::{TestNode, ok, private_network, wait_until};

fn candidates(node: &TestNode) -> Vec<serde_json::Value> {
    let j = ok(&node.lf(&["-json", "get", "motd"]));
    let sets: Vec<Vec<serde_json::Value>> = serde_json::from_str(&j).unwrap();
    sets.into_iter().next().unwrap_or_default()
}

#[test]
fn e2e_oracle_commentary_lowers_the_impostor() {
    let dir = tempfile::tempdir().unwrap();
    private_network(dir.path());
    let node = TestNode::start_with_args(dir.path(), &["-oracle", "-oracle-interval", "1"]);
    ok(&node.lf(&["owner", "new", "alice"]));
    ok(&node.lf(&["owner", "new", "mallory"]));
    ok(&node.lf(&["set", "-owner", "alice", "motd", "from alice"]));
    ok(&node.lf(&["set", "-owner", "mallory", "motd", "from mallory"]));
    let status: serde_json::Value =
        serde_json::from_str(&ok(&node.lf(&["-json", "status"]))).unwrap();
    let oracle = status["Identity"].as_str().unwrap().to_string();
    ok(&node.lf(&["oracle", "add", &oracle]));
    assert_eq!(ok(&node.lf(&["oracle", "list"])).trim(), oracle);
    // Once the oracle's commentary is in, trusting it keeps alice at 1 and puts
    // mallory at 0 (local reputation 0, and the oracle calls the record an impostor).
    assert!(
        wait_until(30, || {
            let c = candidates(&node);
            c.len() == 2
                && c[0]["Value"] == "from alice"
                && c[0]["Trust"] == 1.0
                && c[1]["Trust"] == 0.0
        }),
        "{:?}\n{}",
        candidates(&node),
        node.output()
    );
    // The log line follows the store by a moment.
    let log = || std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default();
    assert!(
        wait_until(10, || log().contains("oracle: commentary published")),
        "{}",
        log()
    );
    ok(&node.lf(&["oracle", "remove", &oracle]));
    assert!(ok(&node.lf(&["oracle", "list"])).trim().is_empty());
    let bad = node.lf(&["oracle", "add", "not-an-owner"]);
    assert!(!bad.status.success());
}
