//! Crash recovery under `kill -9`, in the style of sled's `tests/test_crash_recovery.rs`.
//!
//! The parent test re-executes this test binary so that it runs only
//! [`crash_writer_child`], selected by the `LF_CRASH_WRITER_DIR` environment variable.
//! The child opens the store, puts records forever (a small DAG, some with selectors,
//! some batched with `put_many`, some parents put after their children) and appends
//! every acknowledged record to a side file once `put` has returned. The parent kills it
//! with SIGKILL after a random 20–300 ms, sometimes also leaves a complete but unindexed
//! frame or a torn frame at the end of `records.lf` (what a crash between the fsync and
//! the index commit, or a power loss mid-append, leaves), then reopens the store and
//! checks the contract in the crate README: every acknowledged record is there
//! unchanged, the index covers exactly the complete frames of `records.lf`, sync state,
//! wanted hashes, link counts and weights are what the graph says, and the store takes
//! new writes. The same directory is reused so recovery runs on a growing store.
//!
//! `LF_CRASH_ITERATIONS` (default 50) sets the number of kills, `LF_CRASH_SEED` the
//! seed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lf_record::{OwnerSecret, Record, RecordBuilder, RecordHash, RecordType, SelectorName};
use lf_store::{PutOutcome, Store, StoreConfig, StoreError, WEIGHT_HORIZON, WEIGHT_VISIT_CAP};

const CONFIG: StoreConfig = StoreConfig { max_time_drift: 60 };
/// Set in the child: the store directory. Absent: `crash_writer_child` does nothing.
const ENV_DIR: &str = "LF_CRASH_WRITER_DIR";
/// Set in the child: the side file of acknowledged records.
const ENV_ACKS: &str = "LF_CRASH_WRITER_ACKS";
/// Set in the child: its iteration number (seeds its RNG and its timestamps).
const ENV_ITERATION: &str = "LF_CRASH_WRITER_ITERATION";
const DEFAULT_ITERATIONS: u64 = 50;
const DEFAULT_SEED: u64 = 0x1f_c4a5_4e55;
/// Timestamps of iteration `i` are `i * TS_STRIDE + n`, so later records are newer.
const TS_STRIDE: u64 = 100_000;
/// The child stops by itself after this long if nobody kills it.
const WRITER_DEADLINE: Duration = Duration::from_secs(30);
/// New records link to 1–3 of this many recent records. Small, so that the ancestors
/// within the weight horizon stay few and reopening (which recomputes weights) stays
/// quick in this debug-built test as the store grows.
const RECENT: usize = 4;
/// Frame header of `records.lf`: u32 LE length, u32 LE CRC-32.
const FRAME_HEADER: usize = 8;

/// xorshift64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn owner() -> OwnerSecret {
    OwnerSecret::from_scalar_bytes(&[42; 48]).unwrap()
}

fn build(
    o: &OwnerSecret,
    ts: u64,
    links: &[RecordHash],
    selector: Option<(&SelectorName, u64)>,
    value: Vec<u8>,
) -> Record {
    let mut b = RecordBuilder::new(RecordType::Datum, ts)
        .value(value)
        .links(links.to_vec());
    if let Some((name, ordinal)) = selector {
        b = b.selector_name(name.clone(), ordinal);
    }
    b.build(&o.public()).unwrap().sign_without_work(o).unwrap()
}

/// Picks 1–3 distinct links among `recent` (none if it is empty).
fn pick_links(rng: &mut Rng, recent: &[RecordHash]) -> Vec<RecordHash> {
    let want = rng.range(1, 3) as usize;
    let mut out = Vec::new();
    for _ in 0..want * 3 {
        if out.len() == want.min(recent.len()) {
            break;
        }
        let h = recent[rng.range(0, recent.len() as u64 - 1) as usize];
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// The writer. A normal test that does nothing unless the parent set `LF_CRASH_WRITER_DIR`;
/// then it writes until it is killed (or its deadline passes).
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(ENV_DIR) else {
        return;
    };
    let acks = std::env::var_os(ENV_ACKS).expect("LF_CRASH_WRITER_ACKS set with the dir");
    let iteration: u64 = std::env::var(ENV_ITERATION)
        .expect("LF_CRASH_WRITER_ITERATION set with the dir")
        .parse()
        .unwrap();
    write_until_killed(Path::new(&dir), Path::new(&acks), iteration);
}

fn write_until_killed(dir: &Path, acks_path: &Path, iteration: u64) {
    let store = Store::open(dir, CONFIG).unwrap();
    let mut acks = OpenOptions::new()
        .create(true)
        .append(true)
        .open(acks_path)
        .unwrap();
    // One write per acknowledgement, after the put returned. A SIGKILL can still cut a
    // write of several pages short: the parent ignores an unterminated last line, and
    // cuts it off before the next writer appends (see `Acks::cut_torn_tail`).
    let mut ack = |records: &[&Record]| {
        let mut line = String::new();
        for r in records {
            line.push_str(&format!("{} {}\n", r.hash(), hex::encode(r.to_bytes())));
        }
        acks.write_all(line.as_bytes()).unwrap();
        acks.sync_data().unwrap();
    };
    let o = owner();
    let names: Vec<SelectorName> = (0..8)
        .map(|i| SelectorName::new(format!("crash name {i}").as_bytes()))
        .collect();
    let mut rng = Rng::new(DEFAULT_SEED ^ iteration.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut recent: Vec<RecordHash> = store.link_candidates(RECENT).unwrap();
    let mut n = 0u64;
    let started = Instant::now();
    let mut next = |rng: &mut Rng, links: &[RecordHash]| {
        n += 1;
        let mut value = format!("iteration {iteration} record {n} ").into_bytes();
        let pad = rng.range(0, 300) as usize;
        value.extend(rng.bytes(pad));
        let k = rng.range(0, 15) as usize;
        let selector = names.get(k).map(|name| (name, iteration * TS_STRIDE + n));
        build(&o, iteration * TS_STRIDE + n, links, selector, value)
    };
    while started.elapsed() < WRITER_DEADLINE {
        match rng.range(0, 9) {
            // A record put before the one it links to: it waits (pending) until that
            // one arrives, and stays unsynchronized for good if the kill comes between.
            0 => {
                let links = pick_links(&mut rng, &recent);
                let parent = next(&mut rng, &links);
                let child = next(&mut rng, &[parent.hash()]);
                assert_eq!(
                    store.put(&child).unwrap(),
                    PutOutcome::Added { synced: false }
                );
                ack(&[&child]);
                assert_eq!(
                    store.put(&parent).unwrap(),
                    PutOutcome::Added { synced: true }
                );
                ack(&[&parent]);
                remember(&mut recent, &parent);
                remember(&mut recent, &child);
            }
            // A batch: one fsync and one index transaction for several records.
            1 | 2 => {
                let mut batch: Vec<Record> = Vec::new();
                let mut local = recent.clone();
                for _ in 0..rng.range(2, 6) {
                    let links = pick_links(&mut rng, &local);
                    let r = next(&mut rng, &links);
                    remember(&mut local, &r);
                    batch.push(r);
                }
                let outcomes = store.put_many(&batch).unwrap();
                assert!(
                    outcomes
                        .iter()
                        .all(|o| *o == PutOutcome::Added { synced: true })
                );
                ack(&batch.iter().collect::<Vec<_>>());
                recent = local;
            }
            _ => {
                let links = pick_links(&mut rng, &recent);
                let r = next(&mut rng, &links);
                assert_eq!(store.put(&r).unwrap(), PutOutcome::Added { synced: true });
                ack(&[&r]);
                remember(&mut recent, &r);
            }
        }
    }
}

/// Keeps the last `RECENT` hashes put: what new records link to.
fn remember(recent: &mut Vec<RecordHash>, r: &Record) {
    recent.push(r.hash());
    if recent.len() > RECENT {
        recent.remove(0);
    }
}

/// The acknowledged records, read incrementally from the side file (complete lines
/// only: the parent reads while the writer may be appending).
struct Acks {
    path: PathBuf,
    read: usize,
    records: Vec<(RecordHash, Record)>,
}

impl Acks {
    /// Parses the lines appended since the last call; returns all records so far.
    fn refresh(&mut self) -> &[(RecordHash, Record)] {
        let data = std::fs::read(&self.path).unwrap_or_default();
        let new = &data[self.read.min(data.len())..];
        let complete = new.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in std::str::from_utf8(&new[..complete]).unwrap().lines() {
            let (h, b) = line.split_once(' ').expect("ack line is `hash bytes`");
            let r = Record::from_bytes(&hex::decode(b).unwrap()).unwrap();
            self.records.push((h.parse().unwrap(), r));
        }
        self.read += complete;
        &self.records
    }

    /// Cuts an unterminated last line a killed writer left (never acknowledged: its
    /// write did not return), so that the next writer's first line does not join it.
    fn cut_torn_tail(&self) {
        let data = std::fs::read(&self.path).unwrap_or_default();
        let keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep < data.len() {
            let f = OpenOptions::new().write(true).open(&self.path).unwrap();
            f.set_len(keep as u64).unwrap();
        }
    }

    /// Whether the writer has appended anything since the last `refresh`.
    fn grew(&self) -> bool {
        std::fs::metadata(&self.path).map_or(0, |m| m.len()) as usize > self.read
    }
}

/// Walks `records.lf` frame by frame; panics unless the file is exactly a sequence of
/// complete frames with good checksums (what recovery must leave behind).
fn complete_frames(dir: &Path) -> Vec<Record> {
    let data = std::fs::read(dir.join("records.lf")).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        assert!(data.len() - pos >= FRAME_HEADER, "header cut at {pos}");
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap());
        let bytes = data
            .get(pos + FRAME_HEADER..pos + FRAME_HEADER + len)
            .unwrap_or_else(|| panic!("frame at {pos} runs past the end"));
        assert_eq!(crc32fast::hash(bytes), crc, "bad checksum at {pos}");
        out.push(Record::from_bytes(bytes).unwrap());
        pos += FRAME_HEADER + len;
    }
    out
}

/// Frame bytes as `records.lf` stores them.
fn frame(r: &Record) -> Vec<u8> {
    let b = r.to_bytes();
    let mut f = Vec::with_capacity(b.len() + FRAME_HEADER);
    f.extend_from_slice(&(b.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(b).to_le_bytes());
    f.extend_from_slice(b);
    f
}

fn append_raw(dir: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.join("records.lf"))
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Everything the parent checks after a recovery; returns the number of records.
fn check_store(s: &Store, dir: &Path, acked: &[(RecordHash, Record)], check_weights: bool) -> u64 {
    let stats = s.stats().unwrap();
    // The index covers exactly the complete frames, and nothing else is left in the file.
    let frames = complete_frames(dir);
    let len = std::fs::metadata(dir.join("records.lf")).unwrap().len();
    assert_eq!(stats.records, frames.len() as u64, "records vs frames");
    assert_eq!(stats.bytes, len, "stats.bytes vs records.lf length");
    let hashes = s.all_hashes().unwrap();
    let stored: HashSet<RecordHash> = hashes.iter().copied().collect();
    assert_eq!(stored.len(), hashes.len(), "a record is indexed twice");
    let in_file: HashSet<RecordHash> = frames.iter().map(Record::hash).collect();
    assert_eq!(in_file.len(), frames.len(), "a record is framed twice");
    assert_eq!(
        stored, in_file,
        "index and records.lf hold different records"
    );
    // Every acknowledged record survived, byte for byte.
    for (h, r) in acked {
        assert_eq!(r.hash(), *h);
        let got = s
            .get(h)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged record {h} lost"));
        assert_eq!(&got, r, "acknowledged record {h} changed");
    }
    // Sync state is the graph's: synced iff every link is stored and synced (the graph
    // is acyclic, so this local rule pins the transitive one).
    let records: HashMap<RecordHash, Record> = frames.into_iter().map(|r| (r.hash(), r)).collect();
    let info: HashMap<RecordHash, lf_store::RecordInfo> = hashes
        .iter()
        .map(|h| (*h, s.info(h).unwrap().unwrap()))
        .collect();
    let mut missing = HashSet::new();
    let mut synced_count = 0u64;
    let mut linked: HashMap<RecordHash, u32> = HashMap::new();
    for (h, r) in &records {
        let all_links_synced = r
            .links()
            .iter()
            .all(|l| info.get(l).is_some_and(|i| i.synced));
        assert_eq!(info[h].synced, all_links_synced, "sync state of {h}");
        missing.extend(r.links().iter().filter(|l| !stored.contains(l)).copied());
        if info[h].synced {
            synced_count += 1;
            for l in r.links() {
                *linked.entry(*l).or_default() += 1;
            }
        }
    }
    assert_eq!(stats.synced, synced_count);
    // Wanted = linked to but not stored.
    let wanted: HashSet<RecordHash> = s.wanted(1 << 20).unwrap().into_iter().collect();
    assert_eq!(wanted, missing, "wanted hashes");
    assert_eq!(stats.wanted, missing.len() as u64);
    for (h, i) in &info {
        if i.synced {
            assert_eq!(
                i.linked_count,
                linked.get(h).copied().unwrap_or(0),
                "linked {h}"
            );
        }
    }
    if check_weights {
        let expected = reference_weights(&records, &info);
        for (h, i) in &info {
            if i.synced {
                assert_eq!(i.weight, expected[h], "weight of {h}");
            }
        }
    }
    stats.records
}

/// Weights as the README defines them, computed from scratch: every synchronized record
/// (score 1, no work) adds its score to itself and to each distinct ancestor at most
/// `WEIGHT_HORIZON` links away.
fn reference_weights(
    records: &HashMap<RecordHash, Record>,
    info: &HashMap<RecordHash, lf_store::RecordInfo>,
) -> HashMap<RecordHash, u64> {
    let mut w: HashMap<RecordHash, u64> = HashMap::new();
    for (h, i) in info {
        if !i.synced {
            continue;
        }
        *w.entry(*h).or_default() += 1;
        let mut seen = HashSet::from([*h]);
        let mut queue = VecDeque::from([(*h, 0u32)]);
        while let Some((x, depth)) = queue.pop_front() {
            if depth == WEIGHT_HORIZON {
                continue;
            }
            for p in records[&x].links() {
                if seen.insert(*p) {
                    *w.entry(*p).or_default() += 1;
                    queue.push_back((*p, depth + 1));
                }
            }
        }
        // Below the cap, the capped walk and this one agree whatever the visiting order.
        assert!(
            seen.len() < WEIGHT_VISIT_CAP,
            "test DAG too wide for the cap"
        );
    }
    w
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

#[test]
fn crash_kill9_loses_no_acknowledged_record() {
    let iterations = env_u64("LF_CRASH_ITERATIONS", DEFAULT_ITERATIONS);
    let seed = env_u64("LF_CRASH_SEED", DEFAULT_SEED);
    let root = tempfile::tempdir().unwrap();
    let dir: PathBuf = root.path().join("store");
    let acks_path = root.path().join("acks");
    let mut acks = Acks {
        path: acks_path.clone(),
        read: 0,
        records: Vec::new(),
    };
    let log = root.path().join("writer.log");
    let exe = std::env::current_exe().unwrap();
    let o = owner();
    let mut rng = Rng::new(seed);
    let (mut locked_checks, mut unindexed, mut torn) = (0, 0, 0);
    let mut records;
    let started = Instant::now();
    for i in 1..=iterations {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_writer_child", "--nocapture"])
            .env(ENV_DIR, &dir)
            .env(ENV_ACKS, &acks_path)
            .env(ENV_ITERATION, i.to_string())
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(root.path().join("writer.err")).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.range(20, 300)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "writer exited by itself ({status}) in iteration {i}:\n{}",
                std::fs::read_to_string(root.path().join("writer.err")).unwrap_or_default()
            );
        }
        // Once the writer has acknowledged something it holds the store: a second
        // opener is refused.
        if acks.grew() {
            assert!(matches!(
                Store::open(&dir, CONFIG),
                Err(StoreError::Locked(_))
            ));
            locked_checks += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        acks.cut_torn_tail();
        let acked = acks.refresh();

        let mut s = Store::open(&dir, CONFIG).unwrap();
        records = check_store(&s, &dir, acked, false);
        // Sometimes leave what a crash at another point leaves: a complete frame the
        // index has not seen (killed between fsync and commit), and/or a torn frame
        // (power lost mid-append). Recovery must index the first and cut the second.
        let mode = rng.range(0, 5);
        if mode <= 1 {
            let links = s.link_candidates(2).unwrap();
            let ts = i * TS_STRIDE + TS_STRIDE - 2;
            let whole = build(&o, ts, &links, None, format!("unindexed {i}").into_bytes());
            let cut = build(&o, ts, &links, None, format!("torn {i}").into_bytes());
            drop(s);
            if mode == 0 {
                append_raw(&dir, &frame(&whole));
                unindexed += 1;
            }
            let torn_frame = frame(&cut);
            let mut tail =
                torn_frame[..rng.range(1, torn_frame.len() as u64 - 1) as usize].to_vec();
            if rng.range(0, 1) == 0 {
                // Or all of it, with a flipped byte: a bad checksum.
                tail = torn_frame.clone();
                let k = rng.range(FRAME_HEADER as u64, tail.len() as u64 - 1) as usize;
                tail[k] ^= 0x55;
            }
            append_raw(&dir, &tail);
            torn += 1;
            s = Store::open(&dir, CONFIG).unwrap();
            if mode == 0 {
                assert_eq!(s.get(&whole.hash()).unwrap().as_ref(), Some(&whole));
                assert!(s.info(&whole.hash()).unwrap().unwrap().synced);
            }
            assert!(
                !s.contains(&cut.hash()).unwrap(),
                "a torn frame was indexed"
            );
            records = check_store(&s, &dir, acked, false);
        }
        // The recovered store takes new writes, linked to its current tips.
        let links = s.link_candidates(3).unwrap();
        assert!(!links.is_empty() || records == 0);
        let r = build(
            &o,
            i * TS_STRIDE + TS_STRIDE - 1,
            &links,
            None,
            b"after".to_vec(),
        );
        assert_eq!(s.put(&r).unwrap(), PutOutcome::Added { synced: true });
        drop(s);
    }
    // Last, weights rebuilt from the index equal the reference computation.
    let s = Store::open(&dir, CONFIG).unwrap();
    let acked = acks.refresh();
    records = check_store(&s, &dir, acked, true);
    eprintln!(
        "crash: {iterations} kills in {:.1?}, {} acknowledged, {records} stored, \
         {locked_checks} lock checks, {unindexed} unindexed frames, {torn} torn tails",
        started.elapsed(),
        acked.len()
    );
    assert!(!acked.is_empty(), "the writer never acknowledged a record");
    assert!(
        records as usize > acked.len(),
        "parent writes are stored too"
    );
}
