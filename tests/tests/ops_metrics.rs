//! Operations: `/metrics` (Prometheus text) after real activity, and the status page
//! at `/` in a real headless Chromium.

use std::path::Path;
use std::time::Duration;

use lf_tests::{Mount, TestNet, TestNode, is_mounted, stderr, stdout, wait_until};

/// A node and its mount (the node clears its mounts when dropped).
struct Mounted {
    node: TestNode,
    mnt: std::path::PathBuf,
}

/// A node with proof of work at difficulty 1 (about one Equi-X challenge per record,
/// so the node really pays work) and one LFFS mount at `<dir>/mnt`.
fn node_with_mount(dir: &Path) -> Mounted {
    let net = TestNet::private()
        .name("metrics-net")
        .difficulty(1)
        .max_value(4096)
        .create(&dir.join("home"));
    let mnt = dir.join("mnt");
    let node = TestNode::on(net.dir())
        .mount(Mount::new(&mnt, "metrics.root"))
        .start();
    assert!(
        wait_until(20, || is_mounted(&mnt)),
        "not mounted: {}",
        node.output()
    );
    Mounted { node, mnt }
}

fn get(url: &str) -> (String, String) {
    let mut r = ureq::get(url).call().unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (ct, r.body_mut().read_to_string().unwrap())
}

/// The value of the first sample of `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn fuse_metrics_after_set_get_and_a_fuse_write() {
    let dir = tempfile::tempdir().unwrap();
    let m = node_with_mount(dir.path());
    let (node, mnt) = (&m.node, &m.mnt);
    let o = node.lf(&["set", "metrics key", "some value"]);
    assert!(o.status.success(), "set: {}", stderr(&o));
    let o = node.lf(&["get", "metrics key"]);
    assert!(stdout(&o).contains("some value"), "get: {}", stderr(&o));
    std::fs::write(mnt.join("app.conf"), "port=1\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(mnt.join("app.conf")).unwrap(),
        "port=1\n"
    );
    assert!(std::fs::metadata(mnt.join("missing")).is_err());
    let url = format!("{}/metrics", node.url());
    // The node publishes the FUSE write in the background (paying work): wait for it.
    let mut text = String::new();
    assert!(
        wait_until(30, || {
            text = get(&url).1;
            sample(&text, "lf_commit_queue_published_total", &[]).is_some_and(|v| v >= 1.0)
                && sample(&text, "lf_commit_queue_records", &[]) == Some(0.0)
        }),
        "LFFS write not published: {text}\n{}",
        node.output()
    );
    let (ct, text) = get(&url);
    assert!(ct.starts_with("text/plain"), "{ct}");
    let s = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
    };
    // Store: the genesis records, the `lf set` record and the LFFS records.
    assert!(s("lf_records", &[]) >= 3.0);
    assert!(s("lf_data_bytes", &[]) > 0.0);
    assert_eq!(s("lf_fully_synchronized", &[]), 1.0);
    assert_eq!(s("lf_records_wanted", &[]), 0.0);
    assert!(s("lf_records_added_total", &[]) >= 2.0);
    assert_eq!(s("lf_mounts", &[]), 1.0);
    assert_eq!(s("lf_peers", &[]), 0.0);
    assert!(s("lf_uptime_seconds", &[]) >= 0.0);
    assert_eq!(s("lf_build_info", &[]), 1.0);
    // Queries and posts by endpoint, with latency histograms.
    assert!(
        s(
            "lf_http_requests_total",
            &[("endpoint", "/query"), ("code", "200")]
        ) >= 1.0
    );
    assert!(
        s(
            "lf_http_requests_total",
            &[("endpoint", "/post"), ("code", "200")]
        ) >= 1.0
    );
    assert!(
        s(
            "lf_http_request_duration_seconds_count",
            &[("endpoint", "/query")]
        ) >= 1.0
    );
    assert!(
        s(
            "lf_http_request_duration_seconds_bucket",
            &[("endpoint", "/query"), ("le", "+Inf")]
        ) >= 1.0
    );
    // FUSE operations by type with latency histograms; the failed lookup as an error.
    for op in ["write", "create", "read", "lookup", "getattr"] {
        assert!(
            s("lf_fuse_op_duration_seconds_count", &[("op", op)]) >= 1.0,
            "{op}"
        );
    }
    assert!(s("lf_fuse_op_duration_seconds_sum", &[("op", "write")]) > 0.0);
    assert!(s("lf_fuse_errors_total", &[("op", "lookup"), ("errno", "2")]) >= 1.0);
    // Reads of data run on the adapter's workers.
    assert!(s("lf_fuse_worker_jobs_total", &[("ran", "worker")]) >= 1.0);
    // The node paid proof of work for the LFFS records; the queue drained.
    assert!(s("lf_pow_duration_seconds_count", &[]) >= 1.0);
    assert!(s("lf_commit_queue_publish_delay_seconds_count", &[]) >= 1.0);
    assert_eq!(s("lf_commit_queue_oldest_age_seconds", &[]), 0.0);
    // Every name is documented.
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/daemon/METRICS.md"),
    )
    .unwrap();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(name.starts_with("lf_"), "{name}");
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} not in METRICS.md"
        );
    }
}

/// Chromium's binary, if installed.
fn chromium() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn e2e_status_page_in_headless_chromium() {
    // A page with everything on it: a mount that is up, one that failed, and LFFS
    // changes waiting for proof of work (the default network's difficulty keeps the
    // queue busy for a while).
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::private()
        .difficulty(350)
        .create(&dir.path().join("home"));
    let mnt = dir.path().join("mnt");
    std::fs::write(dir.path().join("plain-file"), "x").unwrap();
    let bad = dir.path().join("plain-file").join("mnt");
    let node = TestNode::on(net.dir())
        .mount(Mount::new(&mnt, "page.root"))
        .mount(Mount::new(&bad, "page.bad"))
        .start();
    assert!(wait_until(20, || is_mounted(&mnt)), "{}", node.output());
    // About 25 chunk records of distinct content, seconds of work each.
    let content: String = (0..1500).map(|i| format!("key{i}=value{i}\n")).collect();
    std::fs::write(mnt.join("page.conf"), content).unwrap();
    let (_, status) = get(&format!("{}/status", node.url()));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let records = status["RecordCount"].as_u64().unwrap();
    assert!(records >= 2);
    let pending = status["PendingCommits"].as_u64().unwrap();
    assert!(
        pending > 0,
        "proof of work should still be running: {status}"
    );
    // The HTML itself: self-contained, refreshing, escaped.
    let (ct, html) = get(&format!("{}/", node.url()));
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(html.contains("http-equiv=\"refresh\""));
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("@import"));
    let Some(chromium) = chromium() else {
        panic!("chromium is not installed (.ci/run installs it)");
    };
    let profile = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("{}/", node.url()))
        .stdout(std::fs::File::create(dir.path().join("dom.html")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("chromium.err")).unwrap())
        .spawn()
        .unwrap();
    wait_or_kill(child, Duration::from_secs(60));
    let dom = std::fs::read_to_string(dir.path().join("dom.html")).unwrap();
    let err = std::fs::read_to_string(dir.path().join("chromium.err")).unwrap_or_default();
    assert!(
        dom.contains("<span id=\"network\">test</span>"),
        "network name not rendered: {dom}\n{err}"
    );
    let rendered = |id: &str| {
        dom.split(&format!("<td id=\"{id}\">"))
            .nth(1)
            .and_then(|r| r.split(['<', ' ']).next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    // Records may have been published since /status was read: at least as many.
    assert!(
        rendered("records").is_some_and(|n| n >= records),
        "record count {records} not rendered: {dom}"
    );
    assert!(dom.contains("fully synchronized"), "{dom}");
    assert!(
        dom.contains(&format!(
            "<th>{}</th><td id=\"mount\">mounted: page.root (read-write)",
            mnt.display()
        )),
        "mount not rendered: {dom}"
    );
    assert!(
        dom.contains(&format!(
            "<th>{}</th><td id=\"mount-failed\">FAILED: page.bad (",
            bad.display()
        )),
        "failed mount not rendered: {dom}"
    );
    assert!(
        dom.contains("<td id=\"mount-count\">1</td>"),
        "mounts up: {dom}"
    );
    assert!(
        rendered("pending").is_some_and(|n| n > 0),
        "pending commits not rendered: {dom}"
    );
}

/// Waits for a child with a deadline (kills it past the deadline).
fn wait_or_kill(mut child: std::process::Child, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A create is made durable by the file's own fsync or close (as on ext4), not by a
/// journal sync of its own: 40 × (create, write, fsync, close) cost about 40 journal
/// syncs, not 80. A file created and closed empty is still durable at close (kill -9
/// right after keeps it; the close synced the journal).
#[test]
fn fuse_small_files_cost_one_journal_sync_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = node_with_mount(dir.path());
    let url = format!("{}/metrics", m.node.url());
    let syncs = || sample(&get(&url).1, "lf_commit_journal_syncs_total", &[]).unwrap_or(0.0);
    let before = syncs();
    let script = format!(
        "import os\nfor i in range(40):\n    fd = os.open('{}/f%d' % i, os.O_WRONLY | os.O_CREAT, 0o644)\n    os.write(fd, b'x' * 100)\n    os.fsync(fd)\n    os.close(fd)\n",
        m.mnt.display()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let spent = syncs() - before;
    // Segment rotations may add a sync or two.
    assert!(
        (40.0..=46.0).contains(&spent),
        "{spent} journal syncs for 40 small fsynced files"
    );
    std::fs::File::create(m.mnt.join("empty")).unwrap();
    m.node.stop("KILL");
    m.node.restart();
    assert!(
        wait_until(20, || is_mounted(&m.mnt) && m.mnt.join("empty").exists()),
        "the empty file closed before kill -9 is gone: {}",
        m.node.output()
    );
    assert_eq!(std::fs::read(m.mnt.join("f39")).unwrap(), vec![b'x'; 100]);
}
