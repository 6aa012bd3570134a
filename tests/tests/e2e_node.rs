//! End-to-end tests of a real `lf node-start` driven by the `lf` binary and raw HTTP.

use lf_tests::{TestNode, ok, private_network, stderr};

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn e2e_set_get_ranges_and_json() {
    let dir = tempfile::tempdir().unwrap();
    private_network(dir.path());
    let node = TestNode::start(dir.path());
    ok(&node.lf(&["set", "bad", "horse#0", "the first"]));
    ok(&node.lf(&["set", "bad", "horse#1", "the second"]));
    ok(&node.lf(&["set", "bad", "horse#5", "the fifth"]));
    ok(&node.lf(&["set", "config#0", "single selector"]));

    let out = ok(&node.lf(&["get", "bad", "horse#"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("the first  | bad#0 horse#0"), "{out}");
    assert!(lines[2].starts_with("the fifth  | bad#0 horse#5"), "{out}");
    let out = ok(&node.lf(&["get", "bad", "horse#1#4"]));
    assert_eq!(out.trim(), "the second | bad#0 horse#1");
    assert_eq!(
        ok(&node.lf(&["get", "config"])).trim(),
        "single selector | config#0"
    );
    assert_eq!(ok(&node.lf(&["get", "nothing#"])).trim(), "");

    // -json (single dash, before the command): every candidate, array of arrays.
    let j = ok(&node.lf(&["-json", "get", "bad", "horse#"]));
    let sets: Vec<Vec<serde_json::Value>> = serde_json::from_str(&j).unwrap();
    assert_eq!(sets.len(), 3);
    assert_eq!(sets[1][0]["Value"], "the second");
    assert!(sets[1][0]["Hash"].as_str().unwrap().starts_with('='));
    let raw = node.lf(&["get", "-raw", "config"]);
    assert_eq!(raw.stdout, b"single selector");
}

#[test]
fn e2e_collision_first_owner_wins() {
    let dir = tempfile::tempdir().unwrap();
    private_network(dir.path());
    let node = TestNode::start(dir.path());
    ok(&node.lf(&["owner", "new", "alice"]));
    ok(&node.lf(&["owner", "new", "mallory"]));
    let list = ok(&node.lf(&["owner", "list"]));
    assert!(list.contains("alice") && list.contains("mallory"), "{list}");
    ok(&node.lf(&["set", "-owner", "alice", "motd", "hello from alice"]));
    ok(&node.lf(&["set", "-owner", "mallory", "motd", "hello from mallory"]));
    assert_eq!(
        ok(&node.lf(&["get", "motd"])).trim(),
        "hello from alice | motd#0"
    );
    let j = ok(&node.lf(&["-json", "get", "motd"]));
    let sets: Vec<Vec<serde_json::Value>> = serde_json::from_str(&j).unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].len(), 2, "both candidates are listed");
    assert_eq!(sets[0][0]["Value"], "hello from alice");
    assert_eq!(sets[0][0]["Trust"], 1.0);
    assert_eq!(sets[0][1]["Value"], "hello from mallory");
    assert_eq!(sets[0][1]["Reputation"], 0);
    // The owner's own update still wins.
    ok(&node.lf(&["set", "-owner", "alice", "motd", "alice again"]));
    assert_eq!(
        ok(&node.lf(&["get", "motd"])).trim(),
        "alice again | motd#0"
    );
}

#[test]
fn e2e_http_auth_and_malformed_requests() {
    let dir = tempfile::tempdir().unwrap();
    private_network(dir.path());
    let node = TestNode::start(dir.path());
    let a = http();
    let u = node.url();
    let body = r#"{"Selectors":[{"Name":"x","Ordinal":1}],"Value":"made"}"#;
    let r = a.post(format!("{u}/makerecord")).send(body).unwrap();
    assert_eq!(r.status(), 401);
    let r = a
        .post(format!("{u}/makerecord"))
        .header("Authorization", "Bearer wrong")
        .send(body)
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        ok(&node.lf(&["get", "x#1"])).trim(),
        "",
        "nothing changed without the token"
    );
    let token = std::fs::read_to_string(dir.path().join("authtoken.secret")).unwrap();
    let mut r = a
        .post(format!("{u}/makerecord"))
        .header("Authorization", format!("Bearer {}", token.trim()))
        .send(body)
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
    assert_eq!(ok(&node.lf(&["get", "x#1"])).trim(), "made | x#1");

    let mut r = a.post(format!("{u}/post")).send(&b"garbage"[..]).unwrap();
    assert_eq!(r.status(), 400);
    let msg = r.body_mut().read_to_string().unwrap();
    assert!(msg.contains("malformed record"), "{msg}");
    let mut r = a
        .post(format!("{u}/query"))
        .send(r#"{"Ranges":[],"Bogus":1}"#)
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.body_mut().read_to_string().unwrap().contains("Bogus"));
    let mut r = a
        .post(format!("{u}/query"))
        .send(r#"{"Ranges":[]}"#)
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.body_mut()
            .read_to_string()
            .unwrap()
            .contains("at least one range")
    );
    // Oversized bodies are refused: 413, or the connection is closed mid-upload.
    match a.post(format!("{u}/post")).send(&vec![0u8; 300 * 1024][..]) {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(ureq::Error::Io(e)) => {
            assert!(matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ));
        }
        Err(e) => panic!("unexpected error {e}"),
    }
    let r = a.get(format!("{u}/record/=nothere")).call().unwrap();
    assert_eq!(r.status(), 400);
    let r = a.get(format!("{u}/owner/notanowner")).call().unwrap();
    assert_eq!(r.status(), 400);
    let r = a.get(format!("{u}/links?count=abc")).call().unwrap();
    assert_eq!(r.status(), 400);
    // A record that is valid (well formed, signed, no work needed on this network) but
    // carries too few links is rejected by name, and nothing is stored.
    let mut r = a.get(format!("{u}/status")).call().unwrap();
    let status: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(status["Network"]["name"], "test");
    assert_eq!(status["RecordCount"], 3);
    let owner = lf_record::OwnerSecret::from_scalar_bytes(&[9; 48]).unwrap();
    let one_link: lf_record::RecordHash = status_links(&a, &u, &owner)[0];
    let rec = lf_record::RecordBuilder::new(
        lf_record::RecordType::Datum,
        status["ServerTime"].as_u64().unwrap(),
    )
    .value(b"lonely".to_vec())
    .selector(b"lonely", 0)
    .links(vec![one_link])
    .build(&owner.public())
    .unwrap()
    .sign_without_work(&owner)
    .unwrap();
    let mut r = a
        .post(format!("{u}/post"))
        .header("Content-Type", "application/octet-stream")
        .send(rec.to_bytes())
        .unwrap();
    let msg = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status(), 400, "{msg}");
    assert!(
        msg.contains("record has 1 links, the network requires at least 2"),
        "{msg}"
    );
    let mut r = a.get(format!("{u}/status")).call().unwrap();
    let status: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(
        status["RecordCount"], 3,
        "the refused record was not stored"
    );
}

/// Link candidates the node offers a client that builds records itself.
fn status_links(
    a: &ureq::Agent,
    u: &str,
    owner: &lf_record::OwnerSecret,
) -> Vec<lf_record::RecordHash> {
    let info: serde_json::Value = a
        .get(format!("{u}/owner/{}", owner.public()))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    info["NewRecordLinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn e2e_restart_keeps_everything_and_sigterm_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    private_network(dir.path());
    let mut node = TestNode::start(dir.path());
    ok(&node.lf(&["set", "kept#3", "survives restarts"]));
    // A second node on the same home is refused with a clear message.
    let second = node.lf(&["node-start", "-http", &lf_tests::free_port().to_string()]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("another node is already running"),
        "{}",
        stderr(&second)
    );
    // Every long-lived thread and task is a worker that /status shows, and all of them
    // end within their deadline at SIGTERM.
    let workers = node.status()["Workers"].clone();
    let names: Vec<&str> = workers
        .as_array()
        .expect("Workers in /status")
        .iter()
        .map(|w| {
            assert_ne!(w["State"], "failed", "{w}");
            w["Name"].as_str().unwrap()
        })
        .collect();
    for want in [
        "lffs-commit",
        "mounts-reload",
        "peers-saver",
        "watch-hub",
        "sighup",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let st = node.stop("TERM");
    assert_eq!(st.code(), Some(0), "{}", node.output());
    assert!(!node.output().contains("did not stop"), "{}", node.output());
    assert!(!dir.path().join("lf.pid").exists());
    node.restart();
    assert_eq!(
        ok(&node.lf(&["get", "kept#3"])).trim(),
        "survives restarts | kept#3"
    );
    // kill -9 then restart: the acknowledged write is still there.
    ok(&node.lf(&["set", "kept#4", "after kill"]));
    node.stop("KILL");
    node.restart();
    assert_eq!(
        ok(&node.lf(&["get", "kept#4"])).trim(),
        "after kill | kept#4"
    );
    let status = ok(&node.lf(&["status"]));
    assert!(status.contains("records        4"), "{status}");
}

#[test]
fn e2e_default_network_newcomer_can_set_and_get() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path());
    let status = ok(&node.lf(&["status"]));
    assert!(status.contains("LF Default"), "{status}");
    // The default network needs proof of work: lf set pays it locally.
    ok(&node.lf(&["set", "hello#1", "world"]));
    assert_eq!(ok(&node.lf(&["get", "hello#1"])).trim(), "world | hello#1");
}

#[test]
fn e2e_cli_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // No node: a clear error naming the URL, non-zero exit.
    let o = lf_tests::lf(dir.path(), &["-url", "http://127.0.0.1:1", "get", "x"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("cannot reach node at http://127.0.0.1:1"), "{e}");
    let o = lf_tests::lf(dir.path(), &["-url", "http://127.0.0.1:1", "get", "x#nope"]);
    assert!(stderr(&o).contains("not a number"), "{}", stderr(&o));
    let o = lf_tests::lf(dir.path(), &["set", "onlyone"]);
    assert!(stderr(&o).contains("a value"), "{}", stderr(&o));
}

#[test]
fn e2e_cli_value_files_default_owner_and_explicit_node_url() {
    let dir = tempfile::tempdir().unwrap();
    private_network(dir.path());
    let node = TestNode::start(dir.path());

    // -file FILE: the value is the file's bytes, exactly (a trailing newline stays).
    let file = dir.path().join("value.txt");
    std::fs::write(&file, "from a file\n").unwrap();
    ok(&node.lf(&["set", "-file", file.to_str().unwrap(), "cfg#1"]));
    assert_eq!(node.lf(&["get", "-raw", "cfg#1"]).stdout, b"from a file\n");
    // -file - : from stdin.
    let mut child = std::process::Command::new(lf_tests::lf_bin())
        .args([
            "-home",
            dir.path().to_str().unwrap(),
            "set",
            "-file",
            "-",
            "cfg#2",
        ])
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"piped in").unwrap();
    ok(&child.wait_with_output().unwrap());
    assert_eq!(node.lf(&["get", "-raw", "cfg#2"]).stdout, b"piped in");
    let missing = node.lf(&["set", "-file", "/nonexistent/value", "cfg#3"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("/nonexistent/value"),
        "{}",
        stderr(&missing)
    );

    // owner default: later writes without -owner are signed by the new default.
    let bob = ok(&node.lf(&["owner", "new", "bob"]));
    let bob_public = bob.split_whitespace().last().unwrap().to_string();
    assert!(bob_public.starts_with('@'), "{bob}");
    ok(&node.lf(&["owner", "default", "bob"]));
    let list = ok(&node.lf(&["owner", "list"]));
    let starred: Vec<&str> = list.lines().filter(|l| l.contains(" * ")).collect();
    assert_eq!(starred.len(), 1, "{list}");
    assert!(starred[0].contains("bob"), "{list}");
    ok(&node.lf(&["set", "who", "bob wrote this"]));
    let j = ok(&node.lf(&["-json", "get", "who"]));
    let sets: Vec<Vec<serde_json::Value>> = serde_json::from_str(&j).unwrap();
    assert_eq!(sets[0][0]["Owner"], bob_public.as_str());
    let unknown = node.lf(&["owner", "default", "nobody"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("nobody"), "{}", stderr(&unknown));

    // --home/--url (double dash too): a client with its own home and no client.json
    // reaches the node by URL.
    let other = tempfile::tempdir().unwrap();
    let o = lf_tests::lf(
        other.path(),
        &[
            "--home",
            other.path().to_str().unwrap(),
            "--url",
            &node.url(),
            "get",
            "cfg#1",
        ],
    );
    assert_eq!(ok(&o).trim(), "from a file | cfg#1");
    // A node that is not there: one line naming the URL, non-zero exit.
    let dead = format!("http://127.0.0.1:{}", lf_tests::free_port());
    let o = lf_tests::lf(other.path(), &["-url", &dead, "get", "cfg#1"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&dead), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
