//! Trust on a private network, end to end across real nodes (issue 6): three `lf
//! node-start` processes on a network made with `lf makegenesis -ca -auth-required`,
//! every assertion checked on the nodes that did not do the write:
//!
//! - certified owners write without proof of work and their records reach every node;
//! - an uncertified owner is refused by `lf set` and by every node it posts to, and its
//!   record never appears anywhere;
//! - a revocation (CRL) published on node 1 reaches the other nodes, which then refuse
//!   the owner's new records and keep serving the ones timestamped before it;
//! - two certified owners collide on one name; a node that saw the impostor's claim
//!   first ranks it first, until its query trusts the network's oracles;
//! - an amendment by the genesis owner reaches all three nodes.
//!
//! A second test checks that an oracle publishes commentary (with work) even when
//! nothing collides (reference §8). Every wait polls with a deadline.

use std::path::{Path, PathBuf};

use lf_record::{OwnerSecret, Record, RecordBuilder, RecordType, lf_pow};
use lf_tests::{TestNet, TestNode, fails, free_port, ok, stdout, wait_until};
use serde_json::{Value, json};

/// Proof-of-work difficulty: uncertified records would need work (which the test pays
/// where it posts them, so that only the missing certificate can be what refuses
/// them), and the genesis records and the amendment stay cheap to pay.
const DIFFICULTY: &str = "50";

/// Oracle mode with a short round, for the nodes that run it.
const ORACLE: [&str; 3] = ["-oracle", "-oracle-interval", "1"];

/// A network with a root CA in `dir/net` (genesis.lf, genesis-ca.pem,
/// genesis-secret.pem): every writer needs a certificate, the name is amendable.
fn ca_network(dir: &Path) -> TestNet {
    let net = TestNet::private()
        .name("trust")
        .difficulty(DIFFICULTY.parse().unwrap())
        .args(&["--amendable", "name"])
        .ca()
        .auth_required()
        .create(&dir.join("net"));
    let out = net.output();
    assert!(out.contains("root CA"), "{out}");
    net
}

/// `lf -url <node> args...` (explicit URL: client.json may lag a restart).
fn on(node: &TestNode, args: &[&str]) -> std::process::Output {
    node.lf_url(args)
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap()
}

fn owner_status(node: &TestNode, owner: &str) -> Value {
    json_of(&on(node, &["owner", "show", owner]))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// `/record/=hash` on `node`: `None` for a 404.
fn record_on(node: &TestNode, hash: &str) -> Option<Value> {
    let mut r = agent()
        .get(format!("{}/record/{hash}", node.url()))
        .call()
        .unwrap();
    match r.status().as_u16() {
        200 => Some(r.body_mut().read_json().unwrap()),
        404 => None,
        s => panic!("/record/{hash}: {s} {:?}", r.body_mut().read_to_string()),
    }
}

/// The candidates of the first result set for the plain selector `name` (HTTP
/// `/query`, the node unmasks), trusting `oracles`.
fn candidates(node: &TestNode, name: &str, oracles: &[String]) -> Vec<Value> {
    let mut r = agent()
        .post(format!("{}/query", node.url()))
        .send_json(json!({ "Ranges": [{ "Name": name }], "Oracles": oracles }))
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let sets: Vec<Vec<Value>> = r.body_mut().read_json().unwrap();
    sets.into_iter().next().unwrap_or_default()
}

/// The values of [`candidates`], best first.
fn ranking(node: &TestNode, name: &str, oracles: &[String]) -> Vec<String> {
    candidates(node, name, oracles)
        .iter()
        .map(|c| c["Value"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Whether `lf get -raw name` on `node` prints `value` (the winner's value).
fn reads(node: &TestNode, name: &str, value: &str) -> bool {
    let o = on(node, &["get", "-raw", name]);
    o.status.success() && stdout(&o) == value
}

/// An owner's secret key from the node's client.json (as `lf owner new` made it).
fn secret_of(node: &TestNode, name: &str) -> OwnerSecret {
    let c: Value =
        serde_json::from_slice(&std::fs::read(node.home.join("client.json")).unwrap()).unwrap();
    OwnerSecret::from_pem(c["Owners"][name]["Private"].as_str().unwrap()).unwrap()
}

/// Certifies the owner `owner` of the node's client.json: `lf owner new`, `csr`, the
/// CA's `sign`, and `publish-cert` by the owner itself. Returns (owner, certificate).
fn certify_owner(node: &TestNode, ca: &Path, owner: &str) -> (String, PathBuf) {
    ok(&on(node, &["owner", "new", owner]));
    let csr = node.home.join(format!("{owner}.csr"));
    let crt = node.home.join(format!("{owner}.crt"));
    let (csr_s, crt_s) = (csr.to_str().unwrap(), crt.to_str().unwrap());
    ok(&on(node, &["owner", "csr", "-owner", owner, "-out", csr_s]));
    let ca = ca.to_str().unwrap();
    ok(&on(
        node,
        &["owner", "sign", "-ca", ca, "-out", crt_s, csr_s],
    ));
    let published = json_of(&on(node, &["-json", "owner", "publish-cert", crt_s]));
    assert_eq!(published["Type"], "certificate", "{published}");
    assert_eq!(published["WorkEffort"], 0, "{published}");
    let public = owner_status(node, owner)["Owner"]
        .as_str()
        .unwrap()
        .to_string();
    (public, crt)
}

/// Certifies the node's identity (what an oracle signs its commentary with): a request
/// from `identity-secret.pem`, the CA's signature, published by the CA. Returns it.
fn certify_identity(node: &TestNode, ca: &Path) -> String {
    let key = node.home.join("identity-secret.pem");
    let csr = node.home.join("identity.csr");
    let crt = node.home.join("identity.crt");
    let (key, csr, crt) = (
        key.to_str().unwrap(),
        csr.to_str().unwrap(),
        crt.to_str().unwrap(),
    );
    let ca = ca.to_str().unwrap();
    ok(&on(node, &["owner", "csr", "-key", key, "-out", csr]));
    ok(&on(node, &["owner", "sign", "-ca", ca, "-out", crt, csr]));
    ok(&on(node, &["owner", "publish-cert", "-ca", ca, crt]));
    node.status()["Identity"].as_str().unwrap().to_string()
}

/// A datum record by `owner` under `name`, built as `lf set` would (links and
/// timestamp from `node`'s `/owner/@…`), with the proof of work the network's
/// difficulty asks of uncertified owners paid: a node can refuse it only for the
/// owner's certificate. Returns the record and the `/owner` status it was built from.
fn paid_record(node: &TestNode, owner: &OwnerSecret, name: &str, value: &str) -> (Record, Value) {
    let mut r = agent()
        .get(format!("{}/owner/{}", node.url(), owner.public()))
        .call()
        .unwrap();
    let st: Value = r.body_mut().read_json().unwrap();
    let links = st["NewRecordLinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap());
    let u = RecordBuilder::new(RecordType::Datum, st["ServerTime"].as_u64().unwrap())
        .value(value.as_bytes().to_vec())
        .selector(name.as_bytes(), 0)
        .links(links)
        .build(&owner.public())
        .unwrap();
    let effort = u.required_effort(DIFFICULTY.parse().unwrap());
    assert!(effort > 0);
    let u = u.sign(effort, owner).unwrap();
    let opts = lf_pow::SolveOptions {
        threads: 1,
        start_nonce: 0,
    };
    let never = std::sync::atomic::AtomicBool::new(false);
    let work = lf_pow::solve(&u.work_challenge(), effort, &opts, &never, &|_| {}).unwrap();
    (u.finish(Some(work)).unwrap(), st)
}

/// POSTs the record's bytes to `node`'s `/post`: (status, body).
fn post(node: &TestNode, r: &Record) -> (u16, String) {
    let mut resp = agent()
        .post(format!("{}/post", node.url()))
        .header("Content-Type", "application/octet-stream")
        .send(r.to_bytes())
        .unwrap();
    let code = resp.status().as_u16();
    (code, resp.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn e2e_trust_cluster_certificates_revocation_oracles_amendment() {
    let dir = tempfile::tempdir().unwrap();
    let net = ca_network(dir.path());
    let ca = net.ca_key();
    // Nodes 1 and 2 are oracles; node 3 is the one that will see a collision the other
    // way round.
    let n1 = TestNode::start_with_args(&net.home("n1"), &ORACLE);
    let n2 = TestNode::start_with_args(&net.home("n2"), &ORACLE);
    ok(&on(&n2, &["node-connect", &n1.p2p_addr()]));
    let h3 = net.home("n3");
    let mut n3 = TestNode::start_with_peers(&h3, &[n1.p2p_addr(), n2.p2p_addr()]);
    assert!(
        wait_until(30, || n1.peers().len() == 2
            && n2.peers().len() == 2
            && n3.peers().len() == 2),
        "peers did not connect: {}\n{}\n{}",
        n1.output(),
        n2.output(),
        n3.output()
    );
    assert_eq!(n3.status()["Network"]["auth_required"], true);

    // Certificates: the oracles' identities, alice and bob on node 1, mallory on node 3.
    let oracles = vec![certify_identity(&n1, &ca), certify_identity(&n2, &ca)];
    let (alice, _) = certify_owner(&n1, &ca, "alice");
    let (bob, bob_crt) = certify_owner(&n1, &ca, "bob");
    let (mallory, _) = certify_owner(&n3, &ca, "mallory");
    for n in [&n1, &n2, &n3] {
        for o in oracles.iter().chain([&alice, &bob, &mallory]) {
            assert!(
                wait_until(30, || owner_status(n, o)["HasCurrentCertificate"] == true),
                "{o}'s certificate never reached {}: {}",
                n.url(),
                n.output()
            );
        }
    }

    // 1. A certified owner writes on node 1 without proof of work (although the network
    // asks uncertified owners for some), and nodes 2 and 3 serve the record as is.
    let rec = json_of(&on(
        &n1,
        &["-json", "set", "-owner", "alice", "motd", "certified hello"],
    ));
    assert_eq!(rec["WorkEffort"], 0, "{rec}");
    let hash = rec["Hash"].as_str().unwrap();
    for n in [&n2, &n3] {
        assert!(
            wait_until(30, || reads(n, "motd", "certified hello")),
            "alice's record never readable on {}: {}",
            n.url(),
            n.output()
        );
        let r = record_on(n, hash).unwrap();
        assert_eq!(r["WorkEffort"], 0, "{r}");
        assert_eq!(r["Owner"], alice.as_str(), "{r}");
        assert_eq!(r["Synchronized"], true, "{r}");
        let c = candidates(n, "motd", &[]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0]["Signed"], true, "{c:?}");
    }

    // 2. An uncertified owner: `lf set` on node 1 says what is missing...
    ok(&on(&n1, &["owner", "new", "eve"]));
    let err = fails(&on(&n1, &["set", "-owner", "eve", "motd", "uncertified"]));
    assert!(
        err.contains("requires a certificate") && err.contains("lf owner csr"),
        "{err}"
    );
    // ...and the record, built and paid for as `lf set` would, is refused by every node.
    let eve = secret_of(&n1, "eve");
    let (eve_rec, _) = paid_record(&n2, &eve, "motd", "uncertified");
    for n in [&n2, &n3, &n1] {
        let (code, body) = post(n, &eve_rec);
        assert_eq!(code, 400, "{}: {body}", n.url());
        assert!(
            body.contains("requires a certificate") && body.contains(&eve.public().to_string()),
            "{}: {body}",
            n.url()
        );
    }
    let eve_hash = eve_rec.hash().to_string();

    // 3. Revocation. bob writes before it...
    let before = json_of(&on(
        &n1,
        &[
            "-json",
            "set",
            "-owner",
            "bob",
            "note",
            "before the revocation",
        ],
    ));
    let before_ts = before["Timestamp"].as_u64().unwrap();
    for n in [&n2, &n3] {
        assert!(
            wait_until(30, || reads(n, "note", "before the revocation")),
            "{}",
            n.output()
        );
    }
    // (CRLs carry whole seconds and revoke at or after their time: revoke in a later
    // second than bob's record, which stays certified at its timestamp.)
    assert!(wait_until(5, || n1.status()["ServerTime"]
        .as_u64()
        .is_some_and(|t| t > before_ts)));
    let crl = json_of(&on(
        &n1,
        &[
            "-json",
            "owner",
            "revoke",
            "-ca",
            ca.to_str().unwrap(),
            bob_crt.to_str().unwrap(),
        ],
    ));
    assert_eq!(crl["Type"], "crl", "{crl}");
    assert_eq!(crl["WorkEffort"], 0, "{crl}");
    let bob_key = secret_of(&n1, "bob");
    for n in [&n2, &n3] {
        assert!(
            wait_until(30, || owner_status(n, &bob)["CertificateRevoked"] == true),
            "the CRL never reached {}: {}",
            n.url(),
            n.output()
        );
        // ...a new record of his (timestamped now, when this node knows the CRL; work
        // paid) is refused here too...
        let (r, st) = paid_record(n, &bob_key, "note", "after the revocation");
        assert_eq!(st["CertificateRevoked"], true, "{st}");
        let (code, body) = post(n, &r);
        assert_eq!(code, 400, "{}: {body}", n.url());
        assert!(body.contains("revoked"), "{}: {body}", n.url());
        assert!(record_on(n, &r.hash().to_string()).is_none());
    }
    let err = fails(&on(&n1, &["set", "-owner", "bob", "note", "after"]));
    assert!(err.contains("revoked"), "{err}");
    // ...and his earlier record still reads back everywhere, certified: certification
    // is judged at the record's timestamp (node/record/CERTIFICATES.md).
    for n in [&n1, &n2, &n3] {
        let c = candidates(n, "note", &[]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0]["Value"], "before the revocation", "{c:?}");
        assert_eq!(c[0]["Signed"], true, "{c:?}");
    }

    // 4. Oracles. Which claim wins is local reputation (reference §9.4: the first owner
    // to claim a name *on this node* wins). Node 3 is cut off (restarted alone on a new
    // port, forgetting its peers) while alice claims "contested" on node 1; mallory,
    // also certified, claims it afterwards on node 3, which so sees hers first. After
    // the heal, nodes 1 and 2 (the oracles) saw alice's claim first and flag mallory's
    // record; node 3 ranks mallory's first on its own and alice's first only when the
    // query trusts the oracles. (Both owners are certified, so certification does not
    // decide; two oracles are needed for the commentary to outweigh node 3's local
    // trust: with k oracles trust is (local + oracle·k)/(k+1), 2/3 against 1/3 here,
    // where one oracle would tie at 1/2 and leave it to weight.)
    assert!(n3.stop("TERM").success());
    let _ = std::fs::remove_file(h3.join("peers.json"));
    n3.peers.clear();
    n3.p2p_port = free_port();
    n3.restart();
    assert!(
        wait_until(30, || n1.peers().len() == 1 && n2.peers().len() == 1),
        "nodes 1 and 2 still see node 3"
    );
    assert_eq!(n3.peers().len(), 0);
    ok(&on(
        &n1,
        &["set", "-owner", "alice", "contested", "alice's original"],
    ));
    assert!(wait_until(30, || reads(
        &n2,
        "contested",
        "alice's original"
    )));
    ok(&on(
        &n3,
        &[
            "set",
            "-owner",
            "mallory",
            "contested",
            "mallory's impostor",
        ],
    ));
    assert!(wait_until(10, || ranking(&n3, "contested", &[])
        == ["mallory's impostor"]));
    // Heal.
    ok(&on(&n3, &["node-connect", &n1.p2p_addr()]));
    for n in [&n1, &n2, &n3] {
        assert!(
            wait_until(30, || candidates(n, "contested", &[]).len() == 2),
            "{} never held both claims: {}",
            n.url(),
            n.output()
        );
    }
    let original_first = ["alice's original", "mallory's impostor"];
    let impostor_first = ["mallory's impostor", "alice's original"];
    // Node 3, trusting the oracles, ranks the impostor below the original once both
    // oracles' commentary is in (with one of the two, trust ties at 2/3 and weight
    // decides).
    let trusts = |c: &[Value]| -> Vec<f64> {
        c.iter()
            .map(|c| (c["Trust"].as_f64().unwrap() * 1e6).round() / 1e6)
            .collect()
    };
    let both_flagged = || {
        let c = candidates(&n3, "contested", &oracles);
        ranking(&n3, "contested", &oracles) == original_first && trusts(&c) == [0.666667, 0.333333]
    };
    assert!(
        wait_until(30, both_flagged),
        "node 3 with oracles: {:#?}\n{}\n{}",
        candidates(&n3, "contested", &oracles),
        n1.output(),
        n2.output()
    );
    let c = candidates(&n3, "contested", &oracles);
    assert!(c.iter().all(|c| c["Signed"] == true), "{c:#?}");
    // Without the oracles node 3 still ranks the impostor first: the commentary is
    // what changes the winner.
    let c = candidates(&n3, "contested", &[]);
    assert_eq!(ranking(&n3, "contested", &[]), impostor_first, "{c:#?}");
    assert_eq!(c[0]["Trust"], 1.0, "{c:#?}");
    assert_eq!(c[1]["Trust"], 0.0, "{c:#?}");
    // The same through the CLI: `lf oracle add` puts them in client.json for `lf get`.
    assert!(reads(&n3, "contested", "mallory's impostor"));
    for o in &oracles {
        ok(&n3.lf(&["oracle", "add", o]));
    }
    assert!(reads(&n3, "contested", "alice's original"));
    // The oracles themselves saw the collision in order: original first either way.
    for n in [&n1, &n2] {
        assert_eq!(ranking(n, "contested", &[]), original_first);
        assert_eq!(ranking(n, "contested", &oracles), original_first);
    }

    // 5. The genesis owner amends the configuration on node 3; every node applies it.
    let key = net.genesis_key();
    ok(&on(
        &n3,
        &["amend", "-key", key.to_str().unwrap(), "name=Trusted net"],
    ));
    for n in [&n1, &n2, &n3] {
        assert!(
            wait_until(30, || {
                let s = n.status();
                s["Network"]["name"] == "Trusted net" && s["ConfigAmendments"] == 1
            }),
            "amendment never applied on {}: {}",
            n.url(),
            n.output()
        );
        // The amendment changes only the name: certificates are still required.
        assert_eq!(n.status()["Network"]["auth_required"], true);
    }

    // The refused uncertified record is nowhere, after all that replication.
    for n in [&n1, &n2, &n3] {
        assert!(record_on(n, &eve_hash).is_none(), "{} holds it", n.url());
        assert_eq!(owner_status(n, &eve.public().to_string())["RecordCount"], 0);
    }
}

/// Reference §8: oracles publish commentary that adds work to the DAG even when no
/// collision is there to flag. A node in oracle mode on a network with proof of work,
/// where nobody writes anything, publishes an empty commentary record with work, and
/// its peer receives it.
#[test]
fn e2e_trust_oracle_publishes_commentary_without_collision() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::private()
        .name("quiet")
        .difficulty(DIFFICULTY.parse().unwrap())
        .create(&dir.path().join("net"));
    let n1 = TestNode::start_with_args(&net.home("n1"), &ORACLE);
    let n2 = TestNode::start_with_peers(&net.home("n2"), &[n1.p2p_addr()]);
    let oracle = n1.status()["Identity"].as_str().unwrap().to_string();
    let genesis = std::fs::read(net.genesis()).unwrap();
    let genesis_records = lf_record::parse_records(&genesis).unwrap().1.len() as u64;
    // The commentary is a tip, so it is among node 2's link candidates once it is there.
    let commentary_on_n2 = || -> Option<Value> {
        let mut r = agent()
            .get(format!("{}/links?count=15", n2.url()))
            .call()
            .ok()?;
        let links: Value = r.body_mut().read_json().ok()?;
        links["Links"]
            .as_array()?
            .iter()
            .filter_map(|h| record_on(&n2, h.as_str()?))
            .find(|r| r["Owner"] == oracle.as_str() && r["Type"] == "commentary")
    };
    let mut found = None;
    assert!(
        wait_until(60, || {
            found = commentary_on_n2();
            found.is_some()
        }),
        "no commentary reached node 2: {}\n{}",
        n1.output(),
        n2.output()
    );
    let c = found.unwrap();
    // Nothing collided (nothing but the genesis records and commentary exists): the
    // commentary flags nothing, carries work and links to records it adds weight to.
    assert_eq!(c["ValueSize"], 0, "{c}");
    assert!(c["WorkEffort"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["Synchronized"], true, "{c}");
    assert!(c["Links"].as_array().unwrap().len() >= 2, "{c}");
    let st = n2.status();
    assert_eq!(
        st["RecordCount"].as_u64().unwrap(),
        genesis_records + owner_status(&n2, &oracle)["RecordCount"].as_u64().unwrap(),
        "{st}"
    );
    let same = record_on(&n1, c["Hash"].as_str().unwrap()).unwrap();
    assert_eq!(same["WorkEffort"], c["WorkEffort"]);
}
