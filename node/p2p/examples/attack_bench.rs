//! Honest propagation under the attacks of issue 17 (`contrib/bench/p2p_attacks.sh`).
//! The victim runs as its own process (this program re-run as `attack_bench victim`),
//! so its CPU time and RSS are read from `/proc/<pid>` alone, not mixed with the
//! attackers' and the honest node's: it serves an in-memory source with verification
//! on and prints a line for each record it stores. The honest node (on 127.0.0.2,
//! dialed by the victim) and the attackers run in this process. For each phase the
//! honest node writes records one by one and the time until the victim reports each is
//! measured (p50, p95), beside the victim's CPU time over the phase and its peak RSS.
//! Phases: `quiet` (no attack), `sig-flood` (256 records made from one by mutating
//! signature bytes, announced by a new identity each time the last one is thrown out,
//! until the address is refused: signature-mutation flood), `churn` (identity churn
//! from one address: each new identity announces only two of those records, so no
//! single identity is thrown out for many; the address's account must stop them),
//! `lister` (a peer that lists 20,000 hashes and serves none). Each phase gets a fresh
//! victim; the table gives the median of the runs.
//!
//! The honest node refuses the attackers (block list): on loopback every dial leaves
//! from 127.0.0.1, so when an attacker dialed the honest node too (it learns its
//! address from the victim) the honest node banned 127.0.0.1, which is also the
//! address of its connection with the victim, and honest records stopped for the ban's
//! duration: the 20 s p95 once measured here was that, a figure of the loopback bed.
//! On real hosts the honest node would ban the attacker's address, not the victim's.
//!
//! ```text
//! attack_bench [records per phase [runs]]
//! ```

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lf_p2p::harness::{MemSource, RecordMaker, test_config};
use lf_p2p::{Accepted, P2pConfig, P2pNode, RecordHash, RecordSource, Rejected};
use lf_record::Record;
use sha2::Digest as _;

const NET: [u8; 32] = [11; 32];

fn config_on(seed: u8, ip: &str) -> P2pConfig {
    let mut c = test_config(NET, seed);
    c.listen = vec![format!("/ip4/{ip}/tcp/0").parse().unwrap()];
    c
}

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

fn hex(h: &RecordHash) -> String {
    h.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// The victim's source: the in-memory source, reporting each record it stores on
/// stdout (`got <hash>`).
struct Reporting(Arc<MemSource>);

impl RecordSource for Reporting {
    fn has(&self, h: &RecordHash) -> bool {
        self.0.has(h)
    }
    fn absent(&self, hashes: Vec<RecordHash>) -> Vec<RecordHash> {
        self.0.absent(hashes)
    }
    fn get(&self, h: &RecordHash) -> Option<Vec<u8>> {
        self.0.get(h)
    }
    fn accept(&self, records: &[Vec<u8>]) -> Vec<Result<Accepted, Rejected>> {
        let out = self.0.accept(records);
        let mut lines = String::new();
        for (r, res) in records.iter().zip(&out) {
            if matches!(res, Ok(Accepted::New { .. })) {
                let h = RecordHash(sha2::Sha256::digest(r).into());
                lines.push_str(&format!("got {}\n", hex(&h)));
            }
        }
        if !lines.is_empty() {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(lines.as_bytes());
            let _ = o.flush();
        }
        out
    }
    fn hashes_in(&self, start: &RecordHash, end: &RecordHash, limit: usize) -> Vec<RecordHash> {
        self.0.hashes_in(start, end, limit)
    }
    fn wanted(&self, limit: usize) -> Vec<RecordHash> {
        self.0.wanted(limit)
    }
    fn hashes_stored_after(&self, after: u64, limit: usize) -> (Vec<RecordHash>, u64) {
        self.0.hashes_stored_after(after, limit)
    }
    fn stored_tail(&self) -> Option<u64> {
        self.0.stored_tail()
    }
}

/// The victim process: prints `addr <multiaddr>`, then dials each address read from
/// stdin (printing `connected`), until stdin closes.
async fn victim() {
    // Its log on stderr (LF_LOG, default warn: bans and refusals).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let node = P2pNode::start(
        config_on(1, "127.0.0.1"),
        Arc::new(Reporting(MemSource::new(true))),
    )
    .await
    .expect("victim starts");
    println!("addr {}", node.addr().expect("listening"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for l in std::io::stdin().lock().lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    while let Some(l) = rx.recv().await {
        if let Some(a) = l.strip_prefix("dial ") {
            let ok = node.connect(a.parse().expect("multiaddr")).await.is_ok();
            println!("{}", if ok { "connected" } else { "dial failed" });
        }
    }
    node.shutdown().await;
}

/// A victim process, with the arrivals it reports (hash → when read here).
struct Victim {
    child: Child,
    stdin: ChildStdin,
    addr: lf_p2p::Multiaddr,
    arrived: Arc<Mutex<HashMap<String, Instant>>>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Victim {
    fn start() -> Victim {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .arg("victim")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("victim process");
        let stdin = child.stdin.take().expect("piped");
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let arrived = Arc::new(Mutex::new(HashMap::new()));
        let (tx, lines) = std::sync::mpsc::channel();
        {
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                for l in out.lines().map_while(Result::ok) {
                    match l.strip_prefix("got ") {
                        Some(h) => {
                            arrived
                                .lock()
                                .unwrap()
                                .insert(h.to_string(), Instant::now());
                        }
                        None => {
                            let _ = tx.send(l);
                        }
                    }
                }
            });
        }
        let first = lines.recv().expect("victim says its address");
        let addr = first
            .strip_prefix("addr ")
            .expect("addr line")
            .parse()
            .expect("multiaddr");
        Victim {
            child,
            stdin,
            addr,
            arrived,
            lines,
        }
    }

    fn dial(&mut self, a: &lf_p2p::Multiaddr) {
        writeln!(self.stdin, "dial {a}").expect("victim alive");
        let answer = self.lines.recv().expect("victim answers");
        assert_eq!(
            answer, "connected",
            "the victim could not dial the honest node"
        );
    }

    fn arrived(&self, h: &RecordHash) -> Option<Instant> {
        self.arrived.lock().unwrap().get(&hex(h)).copied()
    }

    fn stop(mut self) {
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Lister {
    hashes: BTreeSet<RecordHash>,
}

impl RecordSource for Lister {
    fn has(&self, h: &RecordHash) -> bool {
        self.hashes.contains(h)
    }
    fn get(&self, _: &RecordHash) -> Option<Vec<u8>> {
        None
    }
    fn accept(&self, records: &[Vec<u8>]) -> Vec<Result<Accepted, Rejected>> {
        records
            .iter()
            .map(|_| Err(Rejected::Unavailable("lister".into())))
            .collect()
    }
    fn hashes_in(&self, start: &RecordHash, end: &RecordHash, limit: usize) -> Vec<RecordHash> {
        self.hashes
            .range(*start..=*end)
            .take(limit)
            .copied()
            .collect()
    }
    fn wanted(&self, _: usize) -> Vec<RecordHash> {
        Vec::new()
    }
    fn hashes_stored_after(&self, after: u64, limit: usize) -> (Vec<RecordHash>, u64) {
        let page: Vec<RecordHash> = self
            .hashes
            .iter()
            .skip(after as usize)
            .take(limit)
            .copied()
            .collect();
        let next = after + page.len() as u64;
        (page, next)
    }
}

fn mutations(r: &Record, n: usize) -> Vec<Record> {
    let b = r.to_bytes();
    let at = b.len() - lf_record::SIGNATURE_LEN;
    (0..n)
        .map(|i| {
            let mut m = b.to_vec();
            m[at + 8 + i % 80] ^= 1 + (i / 80) as u8;
            Record::from_bytes(&m).expect("parses")
        })
        .collect()
}

/// Keeps attacking until `stop`: returns the identities used.
async fn attack(
    kind: &str,
    target: lf_p2p::Multiaddr,
    honest: P2pNode,
    stop: Arc<AtomicBool>,
    seed: u8,
) -> u32 {
    let mut m = RecordMaker::new(seed);
    let flood = mutations(&m.record("paid", "once", &[]), 256);
    let mut identities = 0u32;
    let mut k = 0u8;
    while !stop.load(Ordering::Relaxed) {
        k = k.wrapping_add(1);
        let source: Arc<dyn RecordSource> = match kind {
            "lister" => Arc::new(Lister {
                hashes: (0u32..20_000)
                    .map(|i| RecordHash(sha2::Sha256::digest((i ^ k as u32).to_be_bytes()).into()))
                    .collect(),
            }),
            _ => {
                let s = MemSource::new(false);
                flood.iter().for_each(|r| {
                    s.insert(r);
                });
                s
            }
        };
        let evil = P2pNode::start(config_on(seed.wrapping_add(k), "127.0.0.1"), source)
            .await
            .unwrap();
        honest.set_blocked(evil.peer_id(), true);
        if evil.connect(target.clone()).await.is_ok() {
            identities += 1;
            match kind {
                "lister" => {}
                "churn" => {
                    let at = (2 * identities as usize) % flood.len();
                    evil.announce(flood[at..at + 2].iter().map(|r| r.hash()).collect());
                }
                _ => evil.announce(flood.iter().map(|r| r.hash()).collect()),
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) && !stop.load(Ordering::Relaxed) {
                if evil.peers().await.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        evil.shutdown().await;
    }
    identities
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// One phase's figures: honest p50 and p95 (ms), victim CPU (s) and peak RSS (MiB),
/// attacker identities used.
struct Figures {
    p50: f64,
    p95: f64,
    cpu: f64,
    rss: f64,
    ids: u32,
}

const PHASES: [&str; 4] = ["quiet", "sig-flood", "churn", "lister"];

async fn phase(phase: &str, round: usize, n: usize, m: &mut RecordMaker) -> Figures {
    let mut victim = Victim::start();
    let pid = victim.child.id();
    let honest_source = MemSource::new(true);
    let honest = P2pNode::start(config_on(2, "127.0.0.2"), honest_source.clone())
        .await
        .expect("honest node starts");
    victim.dial(&honest.addr().expect("listening"));
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = (phase != "quiet").then(|| {
        tokio::spawn(attack(
            match phase {
                "lister" => "lister",
                "churn" => "churn",
                _ => "flood",
            },
            victim.addr.clone(),
            honest.clone(),
            stop.clone(),
            100u8.wrapping_add(40u8.wrapping_mul(round as u8)),
        ))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu0 = cpu_seconds(pid);
    let mut delays = Vec::new();
    let mut rss: f64 = 0.0;
    for i in 0..n {
        let r = m.record(&format!("{phase}{round}-{i}"), "honest", &[]);
        let h = r.hash();
        let t = Instant::now();
        if honest_source.insert(&r) {
            honest.announce(vec![h]);
        }
        let arrived = loop {
            if let Some(at) = victim.arrived(&h) {
                break at;
            }
            if t.elapsed() > Duration::from_secs(20) {
                break Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        delays.push(arrived.saturating_duration_since(t).as_secs_f64() * 1000.0);
        rss = rss.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = cpu_seconds(pid) - cpu0;
    stop.store(true, Ordering::Relaxed);
    let ids = match attacker {
        Some(a) => a.await.unwrap_or(0),
        None => 0,
    };
    honest.shutdown().await;
    victim.stop();
    Figures {
        p50: pct(&mut delays, 0.5),
        p95: pct(&mut delays, 0.95),
        cpu,
        rss,
        ids,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    pct(&mut v, 0.5)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if args.get(1).map(String::as_str) == Some("victim") {
        rt.block_on(victim());
        return;
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(40);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let mut m = RecordMaker::new(1);
    let mut all: Vec<Vec<Figures>> = PHASES.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for (k, p) in PHASES.iter().enumerate() {
            let f = rt.block_on(phase(p, run * PHASES.len() + k, n, &mut m));
            eprintln!(
                "run {} {p}: p50 {:.1} ms, p95 {:.1} ms, victim CPU {:.2} s, RSS {:.0} MiB, {} identities",
                run + 1,
                f.p50,
                f.p95,
                f.cpu,
                f.rss,
                f.ids
            );
            all[k].push(f);
        }
    }
    println!(
        "| phase | honest p50 ms | p95 ms | victim CPU s | victim RSS MiB | attacker identities | p50 / quiet |"
    );
    println!("|---|---|---|---|---|---|---|");
    let med = |k: usize, f: fn(&Figures) -> f64| median(all[k].iter().map(f).collect());
    let quiet = med(0, |f| f.p50);
    for (k, p) in PHASES.iter().enumerate() {
        let p50 = med(k, |f| f.p50);
        let ids = if k == 0 {
            "-".to_string()
        } else {
            format!("{:.0}", med(k, |f| f.ids as f64))
        };
        println!(
            "| {p} | {p50:.1} | {:.1} | {:.2} | {:.0} | {ids} | {:.2} |",
            med(k, |f| f.p95),
            med(k, |f| f.cpu),
            med(k, |f| f.rss),
            p50 / quiet.max(0.001)
        );
    }
    println!(
        "(median of {runs} runs, {n} honest records per phase; victim measured as its own process)"
    );
}
