//! Honest propagation under the attacks of issue 17 (`contrib/bench/p2p_attacks.sh`):
//! in one process, a victim node (0) and an honest node (1, on 127.0.0.2, dialed by the
//! victim), each over the in-memory source with verification on. For each phase the
//! honest node writes records one by one and the time until the victim holds each is
//! measured (p50, p95), beside the process's CPU time and RSS over the phase. Phases:
//! `quiet` (no attack), `sig-flood` (256 records made from one by mutating signature
//! bytes, announced by a new identity each time the last one is thrown out, until the
//! address is refused: signature-mutation flood and identity churn), `lister` (a peer
//! that lists 20,000 hashes and serves none).
//!
//! ```text
//! attack_bench [records per phase]
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lf_p2p::harness::{Cluster, MemSource, RecordMaker, test_config};
use lf_p2p::{Accepted, P2pConfig, P2pNode, RecordHash, RecordSource, Rejected};
use lf_record::Record;
use sha2::Digest as _;

const NET: [u8; 32] = [11; 32];

fn config_on(seed: u8, ip: &str) -> P2pConfig {
    let mut c = test_config(NET, seed);
    c.listen = vec![format!("/ip4/{ip}/tcp/0").parse().unwrap()];
    c
}

/// CPU seconds of this process (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
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
async fn attack(kind: &str, target: lf_p2p::Multiaddr, stop: Arc<AtomicBool>, seed: u8) -> u32 {
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
        if evil.connect(target.clone()).await.is_ok() {
            identities += 1;
            if kind != "lister" {
                evil.announce(flood.iter().map(|r| r.hash()).collect());
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let mut m = RecordMaker::new(1);
    println!(
        "| phase | honest p50 ms | p95 ms | process CPU s | RSS MiB | attacker identities | p50 / quiet |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut quiet_p50 = 0.0;
    for (round, phase) in ["quiet", "sig-flood", "lister"].iter().enumerate() {
        // A fresh victim and honest node per phase: no ban carries over.
        let mut c = Cluster::start(1, NET).await.unwrap();
        let b = c.add_node(config_on(2, "127.0.0.2")).await.unwrap();
        c.connect(0, b).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = (*phase != "quiet").then(|| {
            tokio::spawn(attack(
                phase,
                c.addr(0),
                stop.clone(),
                100 + 40 * round as u8,
            ))
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cpu0 = cpu_seconds();
        let mut delays = Vec::new();
        let mut rss: f64 = 0.0;
        for i in 0..n {
            let r = m.record(&format!("{phase}{i}"), "honest", &[]);
            let h = r.hash();
            let t = Instant::now();
            c.write(b, &r);
            while !c.nodes[0].source.has(&h) && t.elapsed() < Duration::from_secs(20) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            delays.push(t.elapsed().as_secs_f64() * 1000.0);
            rss = rss.max(rss_mib());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let cpu = cpu_seconds() - cpu0;
        stop.store(true, Ordering::Relaxed);
        let ids = match attacker {
            Some(a) => a.await.unwrap_or(0).to_string(),
            None => "-".into(),
        };
        let p50 = pct(&mut delays, 0.5);
        let p95 = pct(&mut delays, 0.95);
        if *phase == "quiet" {
            quiet_p50 = p50;
        }
        println!(
            "| {phase} | {p50:.1} | {p95:.1} | {cpu:.2} | {rss:.0} | {ids} | {:.2} |",
            p50 / quiet_p50.max(0.001)
        );
        c.shutdown().await;
    }
}
