//! contrib/bench/links.sh: LF over real links (issue 18). Four `lf node-start`
//! processes in network namespaces joined by the test bed's switch (`lf_tests::Bed`),
//! measured with a perfect link and with `DELAY_MS` each way and `LOSS` % of frames
//! lost, in the same run. Prints one table row per figure and link.
//!
//! Usage: links_bench [DELAY_MS] [LOSS_PERCENT]     (default 25 and 1: 50 ms RTT)
//! Environment: LF_BIN (the binary measured), LINKS_WRITES (propagation samples, 30),
//! LINKS_KEYS (keys written on each side of the partition, 1000), LINKS_FLEET_ONLY
//! (only the one-owner partition), LINKS_VERBOSE (what the nodes logged after the heal).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lf_tests::{Bed, Mount, TestNet, TestNode, ok, stdout};

const NODES: usize = 4;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// p50 / p95 / max in milliseconds.
fn pct(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_millis();
    format!(
        "{} / {} / {}",
        at(0.5),
        at(0.95),
        v[v.len() - 1].as_millis()
    )
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("no (timeout)".into(), |d| {
        format!("{:.2} s", d.as_secs_f64())
    })
}

fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn count(n: &TestNode) -> u64 {
    n.status()["RecordCount"].as_u64().unwrap_or(0)
}

fn has(n: &TestNode, key: &str, value: &str) -> bool {
    let o = n.lf_url(&["get", key]);
    o.status.success() && stdout(&o).contains(value)
}

/// Runs `f(i)` for `0..n` on `threads` threads.
fn parallel(n: usize, threads: usize, f: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    f(i);
                }
            });
        }
    });
}

struct Cluster {
    // Field order: nodes are dropped before the bed.
    nodes: Vec<TestNode>,
    mounts: Vec<PathBuf>,
    bed: Bed,
    _dir: tempfile::TempDir,
}

/// Four nodes with a mount each, in a full mesh; `shared_identity`: every home holds
/// node 1's `identity-secret.pem` (a fleet of one owner).
fn cluster(delay: u32, loss: f64, shared_identity: bool) -> Cluster {
    let parent = std::env::var_os("BENCH_TMP").map(PathBuf::from);
    let dir = match parent {
        Some(p) => tempfile::tempdir_in(p),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let bed = Bed::new(NODES);
    let net = TestNet::private().create(&dir.path().join("net"));
    let homes: Vec<PathBuf> = (1..=NODES).map(|i| net.home(&format!("n{i}"))).collect();
    if shared_identity {
        // Made by a first start of node 1 (lf makes its identity at first start).
        let mut n = bed.node(0, &homes[0]).start();
        n.kill();
        drop(n);
        let key = homes[0].join("identity-secret.pem");
        for h in &homes[1..] {
            std::fs::copy(&key, h.join("identity-secret.pem")).unwrap();
        }
    }
    let mounts: Vec<PathBuf> = (1..=NODES)
        .map(|i| dir.path().join(format!("m{i}")))
        .collect();
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in 0..NODES {
        let mut b = bed
            .node(i, &homes[i])
            .mount(Mount::new(&mounts[i], "bench"));
        if i > 0 {
            b = b.peer(nodes[0].p2p_addr());
        }
        nodes.push(b.start());
    }
    let meshed = poll(Duration::from_secs(60), || {
        nodes
            .iter()
            .all(|n| n.peers().len() == NODES - 1)
            .then_some(())
    });
    assert!(meshed.is_some(), "the nodes did not form a full mesh");
    for m in &mounts {
        poll(Duration::from_secs(30), || {
            lf_tests::lffs_on_top(m).then_some(())
        })
        .expect("mounted");
    }
    // The owner `lf set` signs with: one per node, or one for the whole fleet
    // (`newfrompass`: the same passphrase gives the same owner), made before any
    // concurrent writes.
    for (i, n) in nodes.iter().enumerate() {
        let pass = if shared_identity {
            "links bench fleet".to_string()
        } else {
            format!("links bench node {i}")
        };
        ok(&n.lf_url(&["owner", "newfrompass", "bench", &pass]));
        ok(&n.lf_url(&["owner", "default", "bench"]));
    }
    bed.set_link(delay, loss);
    Cluster {
        nodes,
        mounts,
        bed,
        _dir: dir,
    }
}

/// Time from each `lf set` on node 1 returning to the record on each other node.
fn propagation_set(c: &Cluster, writes: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for i in 0..writes {
        let (k, v) = (format!("prop{i}"), format!("value{i}"));
        ok(&c.nodes[0].lf_url(&["set", &k, &v]));
        let t = Instant::now();
        let times: Vec<Option<Duration>> = std::thread::scope(|s| {
            let hs: Vec<_> = c.nodes[1..]
                .iter()
                .map(|n| {
                    let (k, v) = (&k, &v);
                    s.spawn(move || {
                        poll(Duration::from_secs(60), || {
                            has(n, k, v).then(|| t.elapsed())
                        })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        out.extend(
            times
                .into_iter()
                .map(|d| d.unwrap_or(Duration::from_secs(60))),
        );
    }
    out
}

/// Time from a file's close on mount 1 to its content on each other mount.
fn propagation_file(c: &Cluster, writes: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for i in 0..writes {
        let name = format!("file{i}.txt");
        let text = format!("written on node 1, number {i}\n");
        std::fs::write(c.mounts[0].join(&name), &text).unwrap();
        let t = Instant::now();
        let mut pending: Vec<&Path> = c.mounts[1..].iter().map(|p| p.as_path()).collect();
        let end = t + Duration::from_secs(60);
        while !pending.is_empty() && Instant::now() < end {
            pending.retain(|m| {
                let got = std::fs::read_to_string(m.join(&name)).is_ok_and(|s| s == text);
                if got {
                    out.push(t.elapsed());
                }
                !got
            });
            std::thread::sleep(Duration::from_millis(1));
        }
        out.extend(pending.iter().map(|_| Duration::from_secs(60)));
    }
    out
}

/// 100 writes on node 1 at once (8 `lf set` clients): time from the first write until
/// every node holds all of them, and how long the writing itself took.
fn burst(c: &Cluster) -> String {
    let base = count(&c.nodes[0]);
    let t = Instant::now();
    parallel(100, 8, |i| {
        ok(&c.nodes[0].lf_url(&["set", &format!("burst{i}"), "b"]));
    });
    let wrote = t.elapsed();
    let target = base + 100;
    let took = poll(Duration::from_secs(60), || {
        c.nodes
            .iter()
            .all(|n| count(n) >= target)
            .then(|| t.elapsed())
    });
    format!("{} (writing took {:.2} s)", secs(took), wrote.as_secs_f64())
}

/// Node 2 killed with SIGKILL, 100 records written on node 1, node 2 restarted: time
/// from its restart (serving) to all 100 there, and what its log says.
fn restart_catch_up(c: &mut Cluster) -> (Option<Duration>, String) {
    c.nodes[1].kill();
    parallel(100, 8, |i| {
        ok(&c.nodes[0].lf_url(&["set", &format!("missed{i}"), "m"]));
    });
    let target = count(&c.nodes[0]);
    c.nodes[1].restart();
    let t = Instant::now();
    let took = poll(Duration::from_secs(60), || {
        (count(&c.nodes[1]) >= target).then(|| t.elapsed())
    });
    let log = c.nodes[1].output();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("caught up from peer"))
        .map(|l| {
            l.split_whitespace()
                .filter(|w| w.starts_with("records=") || w.starts_with("ms="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    (took, line)
}

/// Node 4 cut off for 15 s while `keys` keys are written on node 1 and, with other
/// values, on node 4 (one owner: the fleet shares its identity and its `lf set`
/// owner): time from the heal
/// until every node holds the same records, and whether a sample of keys shows the
/// same value everywhere.
fn partition_same_owner(c: &Cluster, keys: usize) -> (Option<Duration>, String) {
    let base = count(&c.nodes[0]);
    c.bed.cut(3);
    let cut = Instant::now();
    // Both sides write at once.
    std::thread::scope(|s| {
        s.spawn(|| {
            parallel(keys, 4, |i| {
                ok(&c.nodes[0].lf_url(&["set", &format!("fleet{i}"), "majority"]));
            })
        });
        s.spawn(|| {
            parallel(keys, 4, |i| {
                ok(&c.nodes[3].lf_url(&["set", &format!("fleet{i}"), "minority"]));
            })
        });
    });
    let wrote = cut.elapsed();
    if wrote < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_secs(15) - wrote);
    }
    // Every record of both sides (the same names, other values: other records).
    let target = count(&c.nodes[0]) + count(&c.nodes[3]) - base;
    c.bed.heal(3);
    let t = Instant::now();
    let took = poll(Duration::from_secs(120), || {
        let counts: Vec<u64> = c.nodes.iter().map(count).collect();
        counts.iter().all(|&n| n >= target).then(|| t.elapsed())
    });
    // What the cut-off node logged after the heal (reconnections, catch-up rounds).
    if std::env::var_os("LINKS_VERBOSE").is_some() {
        for (i, n) in c.nodes.iter().enumerate() {
            for l in n.output().lines().filter(|l| {
                [
                    "caught up",
                    "peer connected",
                    "silent",
                    "banned",
                    "ban lifted",
                    "penalized",
                    "dialing",
                    "cannot connect",
                    "not connecting",
                ]
                .iter()
                .any(|w| l.contains(w))
            }) {
                eprintln!("   node {}: {l}", i + 1);
            }
        }
    }
    // The winner of each sampled key on every node.
    let sample: Vec<usize> = (0..20).map(|i| i * keys.max(20) / 20).collect();
    let winners = |i: usize| -> Vec<String> {
        c.nodes
            .iter()
            .map(|n| {
                let o = n.lf_url(&["get", &format!("fleet{i}")]);
                stdout(&o).trim().to_string()
            })
            .collect()
    };
    let same = sample.iter().all(|&i| {
        let w = winners(i);
        w.iter().all(|x| *x == w[0])
    });
    (
        took,
        format!(
            "{} (written in {:.1} s; same value on every node for 20 sampled keys: {})",
            secs(took),
            wrote.as_secs_f64(),
            if same { "yes" } else { "no" }
        ),
    )
}

/// Different owners: node 4 cut off for 15 s, `part.txt` written on mounts 1 and 4,
/// then the heal: whether every mount lists the same file names, and when.
fn partition_different_owners(c: &Cluster) -> String {
    c.bed.cut(3);
    std::fs::write(c.mounts[0].join("part.txt"), "majority side\n").unwrap();
    std::fs::write(c.mounts[3].join("part.txt"), "cut-off side\n").unwrap();
    std::thread::sleep(Duration::from_secs(15));
    c.bed.heal(3);
    let t = Instant::now();
    let names = |m: &PathBuf| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(m)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let read = |m: &PathBuf, n: &str| std::fs::read_to_string(m.join(n)).unwrap_or_default();
    let text = |m: &PathBuf| read(m, "part.txt");
    // The same names everywhere, and both versions kept (lffs/SEMANTICS.md, "Convergence
    // and collisions"): the winner here under part.txt (owners differ: first seen here
    // wins, so it may differ between nodes) and every owner's version under a conflict
    // name, the same name and content on every mount.
    let settled = || {
        let first = names(&c.mounts[0]);
        let copies: Vec<&String> = first
            .iter()
            .filter(|n| n.starts_with("part.sync-conflict-"))
            .collect();
        copies.len() >= 2
            && c.mounts.iter().all(|m| {
                names(m) == first && copies.iter().all(|n| read(m, n) == read(&c.mounts[0], n))
            })
    };
    let same = poll(Duration::from_secs(30), || settled().then(|| t.elapsed()));
    let views: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            let parts: Vec<String> = names(m)
                .into_iter()
                .filter(|n| n.starts_with("part"))
                .collect();
            format!("{} = {:?}", parts.join("+"), text(m).trim())
        })
        .collect();
    match same {
        Some(d) => format!("yes, {:.2} s after the heal", d.as_secs_f64()),
        None => format!("no, 30 s after the heal: {}", views.join("; ")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let delay: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(25);
    let loss: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let writes = env_num("LINKS_WRITES", 30);
    let keys = env_num("LINKS_KEYS", 1000);
    let links = [(0u32, 0.0f64), (delay, loss)];
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, col: usize, v: String| {
        eprintln!("   {name}: {v}");
        if let Some(r) = rows.iter_mut().find(|r| r.0 == name) {
            r.1[col] = v;
        } else {
            let mut cols = vec![String::new(); links.len()];
            cols[col] = v;
            rows.push((name.to_string(), cols));
        }
    };
    // LINKS_FLEET_ONLY=1: only the one-owner partition (investigating its convergence).
    let fleet_only = std::env::var_os("LINKS_FLEET_ONLY").is_some();
    for (col, &(d, l)) in links.iter().enumerate() {
        if fleet_only {
            let c = cluster(d, l, true);
            let (_, text) = partition_same_owner(&c, keys);
            row("15 s partition, one owner, converged", col, text);
            continue;
        }
        eprintln!("== link: {d} ms each way, {l} % loss: different owners");
        let mut c = cluster(d, l, false);
        row(
            "lf set -> every node, p50 / p95 / max ms",
            col,
            pct(propagation_set(&c, writes)),
        );
        row(
            "file on a mount -> every mount, p50 / p95 / max ms",
            col,
            pct(propagation_file(&c, writes)),
        );
        row("burst of 100 writes -> all on every node", col, burst(&c));
        let (took, log) = restart_catch_up(&mut c);
        row(
            "kill -9, 100 missed, restart -> caught up",
            col,
            format!("{} ({log})", secs(took)),
        );
        row(
            "15 s partition, different owners: same names and conflict copies on every mount",
            col,
            partition_different_owners(&c),
        );
        let (fwd, dropped) = c.bed.stats();
        row(
            "frames forwarded / dropped by the link (cut ports included)",
            col,
            format!("{fwd} / {dropped}"),
        );
        drop(c);
        eprintln!("== link: {d} ms each way, {l} % loss: one owner (shared identity)");
        let c = cluster(d, l, true);
        let (_, text) = partition_same_owner(&c, keys);
        row(
            &format!("15 s partition, one owner, {keys} keys on both sides -> converged"),
            col,
            text,
        );
    }
    let head: Vec<String> = links
        .iter()
        .map(|(d, l)| {
            if *d == 0 && *l == 0.0 {
                "no delay or loss".to_string()
            } else {
                format!("{} ms RTT, {l} % loss", 2 * d)
            }
        })
        .collect();
    println!("| figure | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(head.len()));
    for (name, cols) in rows {
        println!("| {name} | {} |", cols.join(" | "));
    }
}
