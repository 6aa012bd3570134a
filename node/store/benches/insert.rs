//! Insert throughput as the store grows: puts `LF_BENCH_RECORDS` (default 1,000,000)
//! records shaped like a real DAG (each links to 2–3 of the last 8 records; half carry a
//! value, half a selector) into a fresh store with `put_many`, 1,000 per batch, and
//! prints the insert rate around 1%, 10% and 100% of N (10k, 100k and 1M by default),
//! the ratio of the last to the first (the store's goal is ≥ 0.5: per-insert cost must
//! not grow with the store), disk bytes per record, RSS, and the time to reopen.
//!
//! Signing a million records would take minutes (P-384 ≈ 0.3 ms each), so the record
//! bytes are written directly per `node/record/FORMAT.md` with a dummy signature and
//! parsed with `Record::from_bytes`, which does not verify: the store trusts its callers
//! to have verified. A plain `main` (`harness = false`), run by
//! `contrib/bench/store_insert.sh`; `LF_BENCH_DIR` picks the directory (default: a
//! temporary directory under `TMPDIR`, removed at the end unless `LF_BENCH_KEEP` is
//! set); `LF_BENCH_OWNERS` spreads the records over that many owners (default 1,000).
//!
//! **Growth checkpoints.** At 10k, 100k, 1M, 10M, ... records (each power of ten up to
//! N, and N) the bench pauses inserting and measures what a growing store costs: the
//! insert rate over the last 1% before the checkpoint, `LF_BENCH_QUERIES` (default
//! 2,000) single-key queries ([`Store::query`] on one selector key drawn uniformly from
//! all the keys inserted so far, each answer checked) as p50/p99, the process RSS (the
//! store's in-memory graph and SQLite's page cache; a node adds its fixed overhead), and
//! disk bytes per record. `contrib/bench/store_growth.sh` runs it to 10M.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use lf_record::{Record, RecordHash, SelectorKey};
use lf_store::{KeyRange, PutOutcome, Query, Store, StoreConfig};

const BATCH: usize = 1000;
/// New records link to 2–3 of this many most recent records.
const RECENT: usize = 8;
/// Distinct owners the records are spread over, uniformly (`LF_BENCH_OWNERS`). Many
/// owners is the costly case for the `(owner, ts)` index: each batch touches a page per
/// owner.
const OWNERS: usize = 1000;

/// xorshift64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        out.extend((0..n).map(|_| self.next() as u8));
    }
}

/// Builds record bytes per FORMAT.md: the current version, datum, owner, timestamp, sorted links,
/// an optional dummy masked value (17+ bytes), an optional selector, no work, a dummy
/// signature.
fn record_bytes(rng: &mut Rng, owner: &[u8; 49], ts: u64, links: &[RecordHash]) -> Vec<u8> {
    let mut links = links.to_vec();
    links.sort();
    let mut b = Vec::with_capacity(512);
    b.push(lf_record::FORMAT_VERSION);
    b.push(0);
    b.extend_from_slice(owner);
    b.extend_from_slice(&ts.to_be_bytes());
    b.push(links.len() as u8);
    for l in &links {
        b.extend_from_slice(&l.0);
    }
    let value_len = if rng.below(2) == 0 {
        0
    } else {
        17 + rng.below(200)
    };
    b.extend_from_slice(&(value_len as u16).to_be_bytes());
    rng.fill(&mut b, value_len);
    let selectors = rng.below(2);
    b.push(selectors as u8);
    rng.fill(&mut b, 112 * selectors);
    b.push(0);
    rng.fill(&mut b, 96);
    b
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A measuring window: records `[start, end)`, put time spent on them.
struct Window {
    label: String,
    start: usize,
    end: usize,
    records: usize,
    time: Duration,
}

impl Window {
    fn new(label: String, start: usize, end: usize) -> Self {
        Window {
            label,
            start,
            end,
            records: 0,
            time: Duration::ZERO,
        }
    }
    fn rate(&self) -> f64 {
        self.records as f64 / self.time.as_secs_f64().max(1e-9)
    }
}

/// Selector keys kept to query, a uniform sample of every key inserted (reservoir).
const SAMPLE: usize = 8192;

/// What the store costs at one size.
struct Checkpoint {
    records: usize,
    /// Insert rate over the last 1% of records before the checkpoint.
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    rss_kib: u64,
    disk_per_record: f64,
}

/// The checkpoints up to `n`: each power of ten from 10k, and `n`.
fn checkpoint_sizes(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = 10_000;
    while p < n {
        out.push(p);
        p *= 10;
    }
    out.push(n);
    out
}

/// Runs `queries` single-key queries on keys from `sample`, each must find its record;
/// returns (p50, p99) in microseconds.
fn measure_queries(
    store: &Store,
    sample: &[SelectorKey],
    queries: usize,
    rng: &mut Rng,
) -> (f64, f64) {
    let mut took: Vec<f64> = Vec::with_capacity(queries);
    for _ in 0..queries {
        let key = sample[rng.below(sample.len())];
        let q = Query {
            ranges: vec![KeyRange {
                start: key,
                end: key,
            }],
            ..Query::default()
        };
        let t = Instant::now();
        let sets = store.query(&q).unwrap();
        took.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(
            sets.iter()
                .flatten()
                .any(|r| r.record.selector_key(0) == Some(key)),
            "a query for an inserted key must find its record"
        );
    }
    took.sort_by(f64::total_cmp);
    let at = |p: f64| took[((took.len() - 1) as f64 * p).round() as usize];
    (at(0.50), at(0.99))
}

fn human(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not use.
    let n: usize = std::env::var("LF_BENCH_RECORDS")
        .ok()
        .map(|v| v.parse().expect("LF_BENCH_RECORDS is a number"))
        .unwrap_or(1_000_000);
    assert!(n >= 1000, "LF_BENCH_RECORDS must be at least 1000");
    let tmp = match std::env::var_os("LF_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let dir = tmp.path().join("store");
    let config = StoreConfig { max_time_drift: 60 };
    let store = Store::open(&dir, config).unwrap();

    // Windows around 1%, 10% and 100% of N: 5k–15k, 95k–105k and 990k–1M for 1M.
    let (p1, p2) = (n / 100, n / 10);
    // Rates are per batch, so a window holds at least one batch start.
    let window = |label: usize, start: usize, end: usize| {
        Window::new(human(label), start.min(end.saturating_sub(BATCH)), end)
    };
    let mut windows = vec![
        window(p1, p1 / 2, p1 + p1 / 2),
        window(p2, p2 - p2 / 20, p2 + p2 / 20),
        window(n, n - n / 100, n),
    ];
    let mut rng = Rng(0x5eed_1f5e_ed1f_0001);
    let owner_count: usize = std::env::var("LF_BENCH_OWNERS")
        .ok()
        .map(|v| v.parse().expect("LF_BENCH_OWNERS is a number"))
        .unwrap_or(OWNERS)
        .max(1);
    let owners: Vec<[u8; 49]> = (0..owner_count)
        .map(|_| {
            let mut o = [0u8; 49];
            o[0] = 2;
            for b in &mut o[1..] {
                *b = rng.next() as u8;
            }
            o
        })
        .collect();
    let queries: usize = std::env::var("LF_BENCH_QUERIES")
        .ok()
        .map(|v| v.parse().expect("LF_BENCH_QUERIES is a number"))
        .unwrap_or(2000)
        .max(1);
    let mut query_rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sample: Vec<SelectorKey> = Vec::with_capacity(SAMPLE);
    let mut keys_seen = 0usize;
    let mut checkpoints: Vec<usize> = checkpoint_sizes(n);
    checkpoints.reverse(); // popped from the end, smallest first
    let mut growth: Vec<Checkpoint> = Vec::new();
    // Put time at the start of the current checkpoint's last-1% window.
    let mut tail_mark: Option<(usize, Duration)> = None;
    let mut recent: VecDeque<RecordHash> = VecDeque::with_capacity(RECENT + 1);
    let mut put_time = Duration::ZERO;
    let mut mark = Duration::ZERO;
    let mut slowest = (Duration::ZERO, 0usize);
    let mut build_time = Duration::ZERO;
    let started = Instant::now();
    let mut done = 0usize;
    while done < n {
        let size = BATCH.min(n - done);
        let t = Instant::now();
        let mut batch = Vec::with_capacity(size);
        for k in 0..size {
            let i = done + k;
            let want = (2 + rng.below(2)).min(recent.len());
            let mut links: Vec<RecordHash> = Vec::with_capacity(want);
            while links.len() < want {
                let h = recent[rng.below(recent.len())];
                if !links.contains(&h) {
                    links.push(h);
                }
            }
            let owner = &owners[rng.below(owner_count)];
            let bytes = record_bytes(&mut rng, owner, 1_700_000_000 + i as u64 / 10, &links);
            let r = Record::from_bytes(&bytes).expect("bench record parses");
            if let Some(key) = r.selector_key(0) {
                keys_seen += 1;
                if sample.len() < SAMPLE {
                    sample.push(key);
                } else {
                    let j = query_rng.below(keys_seen);
                    if j < SAMPLE {
                        sample[j] = key;
                    }
                }
            }
            recent.push_back(r.hash());
            if recent.len() > RECENT {
                recent.pop_front();
            }
            batch.push(r);
        }
        build_time += t.elapsed();
        let t = Instant::now();
        let outcomes = store.put_many(&batch).unwrap();
        let took = t.elapsed();
        put_time += took;
        if took > slowest.0 {
            slowest = (took, done);
        }
        assert!(
            outcomes
                .iter()
                .all(|o| *o == PutOutcome::Added { synced: true })
        );
        for w in &mut windows {
            if done >= w.start && done < w.end {
                w.records += size;
                w.time += took;
            }
        }
        done += size;
        if let Some(&next) = checkpoints.last() {
            let tail_start = next - (next / 100).max(BATCH);
            if tail_mark.is_none() && done >= tail_start {
                tail_mark = Some((done, put_time));
            }
            if done >= next {
                checkpoints.pop();
                let (from, t0) = tail_mark.take().unwrap_or((done - size, put_time - took));
                let rate = (done - from) as f64 / (put_time - t0).as_secs_f64().max(1e-9);
                let (p50_us, p99_us) = measure_queries(&store, &sample, queries, &mut query_rng);
                let disk: u64 = dir_bytes(&dir).iter().map(|f| f.1).sum();
                let c = Checkpoint {
                    records: done,
                    rate,
                    p50_us,
                    p99_us,
                    rss_kib: rss_kib("VmRSS:"),
                    disk_per_record: disk as f64 / done as f64,
                };
                eprintln!(
                    "checkpoint {}: {:.0} records/s, query p50 {:.0} us p99 {:.0} us, RSS {:.1} MiB, {:.0} B/record",
                    human(c.records),
                    c.rate,
                    c.p50_us,
                    c.p99_us,
                    c.rss_kib as f64 / 1024.0,
                    c.disk_per_record
                );
                growth.push(c);
            }
        }
        if done.is_multiple_of(100_000) {
            eprintln!(
                "{done:>9} records  {:>8.0} records/s over the last 100k  {:.1?} elapsed",
                100_000.0 / (put_time - mark).as_secs_f64(),
                started.elapsed()
            );
            mark = put_time;
        }
    }
    assert!(
        outcomes_all_synced(&store, n),
        "every bench record must end synchronized"
    );
    let stats = store.stats().unwrap();
    drop(store);
    let files = dir_bytes(&dir);
    let disk: u64 = files.iter().map(|f| f.1).sum();
    let rss = rss_kib("VmRSS:");
    let hwm = rss_kib("VmHWM:");
    let t = Instant::now();
    let reopened = Store::open(&dir, config).unwrap();
    let reopen = t.elapsed();
    assert_eq!(reopened.stats().unwrap().records, n as u64);

    println!(
        "lf-store insert: {n} records, put_many of {BATCH}, links to 2-3 of the last \
         {RECENT}, {owner_count} owners"
    );
    println!("{:<22} {:>14}", "records around", "records/s");
    for w in &windows {
        println!(
            "{:<22} {:>14.0}",
            format!("{} ({}-{})", w.label, human(w.start), human(w.end)),
            w.rate()
        );
    }
    let ratio = windows[2].rate() / windows[0].rate();
    println!(
        "{:<22} {:>14.2}   (goal >= 0.5)",
        format!("ratio {}/{}", windows[2].label, windows[0].label),
        ratio
    );
    println!(
        "{:<22} {:>14.0}   ({:.1?} in put_many, {:.1?} building records)",
        "overall records/s",
        n as f64 / put_time.as_secs_f64(),
        put_time,
        build_time
    );
    println!(
        "{:<22} {:>14.1}   ({:.1} MiB in all)",
        "disk bytes/record",
        disk as f64 / n as f64,
        disk as f64 / (1 << 20) as f64
    );
    for (name, len) in &files {
        println!("  {name:<20} {:>14.1}", *len as f64 / n as f64);
    }
    println!(
        "{:<22} {:>14.1}   (peak {:.1} MiB)",
        "RSS MiB at the end",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "{:<22} {:>14.2?}   (the batch after {} records)",
        "slowest put_many",
        slowest.0,
        human(slowest.1)
    );
    println!("{:<22} {:>14.2?}", "reopen (DAG rebuild)", reopen);
    println!(
        "growth ({queries} single-key queries per checkpoint, keys drawn from all inserted; \
         rate over the last 1% before it)"
    );
    println!(
        "{:<10} {:>12} {:>14} {:>14} {:>10} {:>12}",
        "records", "records/s", "query p50 us", "query p99 us", "RSS MiB", "disk B/rec"
    );
    for c in &growth {
        println!(
            "{:<10} {:>12.0} {:>14.0} {:>14.0} {:>10.1} {:>12.0}",
            human(c.records),
            c.rate,
            c.p50_us,
            c.p99_us,
            c.rss_kib as f64 / 1024.0,
            c.disk_per_record
        );
    }
    if std::env::var_os("LF_BENCH_KEEP").is_some() {
        drop(reopened);
        println!("kept {}", tmp.keep().join("store").display());
    }
    println!(
        "{:<22} {:>14}",
        "synced / tips",
        format!("{} / {}", stats.synced, stats.tips)
    );
}

/// All records synchronized and none wanted (the generated DAG only links backwards).
fn outcomes_all_synced(store: &Store, n: usize) -> bool {
    let s = store.stats().unwrap();
    s.records == n as u64 && s.synced == n as u64 && s.wanted == 0
}
