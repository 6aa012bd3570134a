//! contrib/bench/p2p_attacks.sh, its daemon part: honest propagation under a limbo flood
//! (issue 17) beside the same figures with no attack, in the same run. Two `lf
//! node-start` processes on an `auth_required` network with a root CA (node 1 on
//! 127.0.0.2, node 2, the victim, on 127.0.0.3 dialing node 1); a certified owner writes
//! on node 1 with `lf set`, one record every 50 ms, and the time from the command's
//! return until node 2 serves the record is measured (p50, p95), beside node 2's CPU
//! time over the phase and its peak RSS. Phases: `quiet`, then `limbo-flood` (the
//! hostile peer's `limbo` attack on node 2 by three identities from 127.0.0.1: validly
//! signed records of fresh uncertified owners, 128 per announcement, which can only
//! wait in limbo; it lasts until the address is banned). Each run makes a fresh
//! network; the table gives the median of the runs.
//!
//! Usage: limbo_bench [records per phase [runs]]     (default 40 and 3)
//! Environment: LF_BIN (the binary measured).

use std::path::Path;
use std::time::{Duration, Instant};

use lf_tests::{TestNet, TestNode, ok};

/// CPU seconds of process `pid` (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of process `pid` now, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The value of metric `name` (labels included, as `/metrics` writes them).
fn metric(agent: &ureq::Agent, node: &TestNode, name: &str) -> f64 {
    let text = agent
        .get(format!("{}/metrics", node.url()))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// One phase's figures.
#[derive(Default)]
struct Figures {
    p50: f64,
    p95: f64,
    cpu: f64,
    rss: f64,
    /// Flood records node 2 fetched and verified (held in limbo or dropped as full).
    flood: f64,
}

/// `n` certified writes on node 1, each followed until node 2 serves it.
fn measure(n1: &TestNode, n2: &TestNode, agent: &ureq::Agent, tag: &str, n: usize) -> Figures {
    let pid = n2.pid().expect("node 2 runs");
    let cpu0 = cpu_seconds(pid);
    let mut delays = Vec::new();
    let mut rss: f64 = rss_mib(pid);
    for i in 0..n {
        let key = format!("{tag}-{i}");
        let out = ok(&n1.lf_url(&["-json", "set", "-owner", "alice", &key, "honest"]));
        let t = Instant::now();
        let rec: serde_json::Value = serde_json::from_str(&out).expect("set JSON");
        let url = format!(
            "{}/record/{}",
            n2.url(),
            rec["Hash"].as_str().expect("hash")
        );
        loop {
            let there = agent.get(&url).call().is_ok_and(|r| r.status() == 200);
            if there || t.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        delays.push(t.elapsed().as_secs_f64() * 1000.0);
        rss = rss.max(rss_mib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    Figures {
        p50: pct(&mut delays, 0.5),
        p95: pct(&mut delays, 0.95),
        cpu: cpu_seconds(pid) - cpu0,
        rss,
        flood: 0.0,
    }
}

/// One run: a fresh network and pair of nodes, the quiet phase, then the flood.
fn run(dir: &Path, round: usize, n: usize) -> [Figures; 2] {
    let net = TestNet::private()
        .name("limbo")
        .difficulty(50)
        .ca()
        .auth_required()
        .create(&dir.join("net"));
    let n1 = TestNode::on(&net.home("n1")).p2p_bind("127.0.0.2").start();
    let n2 = TestNode::on(&net.home("n2"))
        .p2p_bind("127.0.0.3")
        .peer(n1.p2p_addr())
        .start();
    let crt = n1.certify(&net.ca_key(), "alice");
    ok(&n1.lf_url(&["owner", "publish-cert", crt.to_str().unwrap()]));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    // The certificate must be on node 2 before alice's records are judged there.
    let show = |node: &TestNode, owner: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&node.lf_url(&["-json", "owner", "show", owner])))
            .expect("owner JSON")
    };
    let alice = show(&n1, "alice")["Owner"]
        .as_str()
        .expect("owner")
        .to_string();
    let t = Instant::now();
    while show(&n2, &alice)["HasCurrentCertificate"] != true {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "node 2 never got the certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let quiet = measure(&n1, &n2, &agent, &format!("quiet{round}"), n);
    let network = n2.status()["Network"]["id"]
        .as_str()
        .expect("network id")
        .to_string();
    // Three identities from one address, as in the e2e test: each is banned after
    // about 20 announcements of records that are not stored, the address after about
    // 60, so the flood lasts seconds; the honest writes start as it starts.
    let floods: Vec<_> = (0..3)
        .map(|_| lf_tests::hostile_peer(&n2, &network, "limbo", 60))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let fetched = || {
        metric(&agent, &n2, "lf_limbo_records")
            + metric(&agent, &n2, "lf_limbo_dropped_total{reason=\"full\"}")
    };
    let before = fetched();
    let mut under = measure(&n1, &n2, &agent, &format!("flood{round}"), n);
    under.flood = fetched() - before;
    for mut f in floods {
        let _ = f.kill();
        let o = f.wait_with_output().expect("hostile peer");
        let out = String::from_utf8_lossy(&o.stdout);
        if !out.contains("peer ") {
            eprintln!(
                "a flood never connected: {out}{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    [quiet, under]
}

fn median(mut v: Vec<f64>) -> f64 {
    pct(&mut v, 0.5)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(40);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let phases = ["quiet", "limbo-flood"];
    let mut all: Vec<Vec<Figures>> = vec![Vec::new(), Vec::new()];
    for round in 0..runs {
        let dir = tempfile::tempdir().expect("scratch directory");
        for (k, f) in run(dir.path(), round, n).into_iter().enumerate() {
            eprintln!(
                "run {} {}: p50 {:.1} ms, p95 {:.1} ms, node 2 CPU {:.2} s, RSS {:.0} MiB, {:.0} flood records fetched",
                round + 1,
                phases[k],
                f.p50,
                f.p95,
                f.cpu,
                f.rss,
                f.flood
            );
            all[k].push(f);
        }
    }
    println!(
        "| phase (daemons) | honest p50 ms | p95 ms | victim CPU s | victim RSS MiB | flood records fetched | p50 / quiet |"
    );
    println!("|---|---|---|---|---|---|---|");
    let med = |k: usize, f: fn(&Figures) -> f64| median(all[k].iter().map(f).collect());
    let quiet = med(0, |f| f.p50);
    for (k, p) in phases.iter().enumerate() {
        let p50 = med(k, |f| f.p50);
        let flood = if k == 0 {
            "-".to_string()
        } else {
            format!("{:.0}", med(k, |f| f.flood))
        };
        println!(
            "| {p} | {p50:.1} | {:.1} | {:.2} | {:.0} | {flood} | {:.2} |",
            med(k, |f| f.p95),
            med(k, |f| f.cpu),
            med(k, |f| f.rss),
            p50 / quiet.max(0.001)
        );
    }
    println!(
        "(median of {runs} runs, {n} certified records per phase; `lf node-start` processes on an auth_required network)"
    );
}
