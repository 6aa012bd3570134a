//! In-process cluster tests over the real store: several real P2P nodes over loopback
//! TCP (see `lf_p2p::harness`), each over its own `lf_store::Store` (SQLite index +
//! `records.lf`) in a temporary directory, every arriving record fully verified before it
//! is stored. Convergence is checked on what the stores say: identical record sets, every
//! record fully synchronized, the same weights, and what a selector query returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lf_p2p::harness::{Cluster, HarnessSource, RecordMaker, test_config};
use lf_p2p::{Accepted, RecordHash, RecordSource, Rejected};
use lf_record::commentary::{Comment, encode_comments};
use lf_record::{Limits, Owner, OwnerSecret, Record, RecordBuilder, RecordType, SelectorName};
use lf_store::{KeyRange, PutOutcome, Query, Store, StoreConfig};

mod lossy;

const NET: [u8; 32] = [9; 32];

/// What the harness's `MemSource::new(true)` checks: no work required, the default
/// value size limit.
const LIMITS: Limits = Limits {
    max_value_size: 65_535,
    work_difficulty: 0,
};

fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A node's real store in a temporary home, as the P2P layer and the harness see it.
struct StoreSource {
    // Declared before `_home` so the store is closed before its directory is removed.
    store: Store,
    _home: tempfile::TempDir,
}

impl StoreSource {
    /// An empty store in a fresh temporary directory.
    fn open() -> Arc<StoreSource> {
        let home = tempfile::tempdir().expect("temporary home");
        let store =
            Store::open(home.path(), StoreConfig { max_time_drift: 60 }).expect("open store");
        Arc::new(StoreSource { store, _home: home })
    }

    /// Records in, fully synchronized and nothing wanted.
    fn fully_synced(&self) -> bool {
        self.store
            .stats()
            .is_ok_and(|s| s.wanted == 0 && s.synced == s.records)
    }
}

impl RecordSource for StoreSource {
    fn has(&self, hash: &RecordHash) -> bool {
        self.store.contains(hash).unwrap_or(false)
    }

    fn absent(&self, hashes: Vec<RecordHash>) -> Vec<RecordHash> {
        self.store.missing(&hashes).unwrap_or(hashes)
    }

    fn get(&self, hash: &RecordHash) -> Option<Vec<u8>> {
        self.store
            .get(hash)
            .ok()
            .flatten()
            .map(|r| r.to_bytes().to_vec())
    }

    /// Parse, skip what is stored, verify the rest fully (signature, selector claims,
    /// work, limits), then store the valid ones in one `put_many`.
    fn accept(&self, records: &[Vec<u8>]) -> Vec<Result<Accepted, Rejected>> {
        let mut results: Vec<Option<Result<Accepted, Rejected>>> = vec![None; records.len()];
        let mut valid: Vec<(usize, Record)> = Vec::new();
        for (i, b) in records.iter().enumerate() {
            let r = match Record::from_bytes(b) {
                Ok(r) => r,
                Err(e) => {
                    results[i] = Some(Err(Rejected::Invalid(e.to_string())));
                    continue;
                }
            };
            match self.store.contains(&r.hash()) {
                Ok(true) => results[i] = Some(Ok(Accepted::Duplicate)),
                Ok(false) => match r.verify(&LIMITS) {
                    Ok(()) => valid.push((i, r)),
                    Err(e) => results[i] = Some(Err(Rejected::Invalid(e.to_string()))),
                },
                Err(e) => results[i] = Some(Err(Rejected::Unavailable(e.to_string()))),
            }
        }
        if !valid.is_empty() {
            let batch: Vec<Record> = valid.iter().map(|(_, r)| r.clone()).collect();
            match self.store.put_many(&batch) {
                Ok(outcomes) => {
                    for ((i, r), o) in valid.iter().zip(outcomes) {
                        results[*i] = Some(Ok(match o {
                            PutOutcome::Added { .. } => Accepted::New {
                                links: r.links().to_vec(),
                            },
                            PutOutcome::Duplicate => Accepted::Duplicate,
                        }));
                    }
                }
                Err(e) => {
                    for (i, _) in &valid {
                        results[*i] = Some(Err(Rejected::Unavailable(e.to_string())));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Rejected::Unavailable("not processed".into()))))
            .collect()
    }

    fn hashes_in(&self, start: &RecordHash, end: &RecordHash, limit: usize) -> Vec<RecordHash> {
        self.store
            .hashes_in_range(start, end, limit)
            .unwrap_or_default()
    }

    fn wanted(&self, limit: usize) -> Vec<RecordHash> {
        self.store.wanted(limit).unwrap_or_default()
    }

    // As the node's source does: a node far behind pulls in storage order.
    fn hashes_stored_after(&self, after: u64, limit: usize) -> (Vec<RecordHash>, u64) {
        self.store
            .hashes_after_seq(after, limit)
            .unwrap_or((vec![], after))
    }

    fn stored_tail(&self) -> Option<u64> {
        self.store.last_seq().ok()
    }
}

impl HarnessSource for StoreSource {
    fn insert(&self, r: &Record) -> bool {
        matches!(self.store.put(r), Ok(PutOutcome::Added { .. }))
    }

    fn len(&self) -> usize {
        self.store.stats().map_or(0, |s| s.records as usize)
    }

    fn hashes(&self) -> Vec<RecordHash> {
        let mut h = self.store.all_hashes().unwrap_or_default();
        h.sort();
        h
    }
}

async fn start(n: usize) -> Cluster<StoreSource> {
    Cluster::start_with(n, NET, |_| StoreSource::open())
        .await
        .expect("start cluster")
}

/// Every node holds the same records and every store has them all fully synchronized.
fn synced(c: &Cluster<StoreSource>) -> bool {
    c.converged() && c.nodes.iter().all(|n| n.source.fully_synced())
}

fn counts(c: &Cluster<StoreSource>) -> Vec<(usize, u64)> {
    c.nodes
        .iter()
        .map(|n| {
            let s = n.source.store.stats().unwrap_or_default();
            (n.source.len(), s.wanted)
        })
        .collect()
}

/// The weight of every record, as node `i`'s store computes it, by hash.
fn weights(c: &Cluster<StoreSource>, i: usize) -> Vec<(RecordHash, u64)> {
    let s = &c.nodes[i].source;
    s.hashes()
        .into_iter()
        .map(|h| (h, s.store.info(&h).unwrap().unwrap().weight))
        .collect()
}

/// The query for ordinal 0 of selector `name`.
fn selector_query(name: &str, oracles: &[Owner]) -> Query {
    let (start, end) = SelectorName::new(name.as_bytes()).key_range(0, 0);
    Query {
        ranges: vec![KeyRange { start, end }],
        oracles: oracles.to_vec(),
        ..Query::default()
    }
}

/// Node `i`'s answer to a selector query: its one result set as (owner, hash, weight,
/// trust), best first.
fn ranking(
    c: &Cluster<StoreSource>,
    i: usize,
    name: &str,
    oracles: &[Owner],
) -> Vec<(Owner, RecordHash, u64, f64)> {
    let sets = c.nodes[i]
        .source
        .store
        .query(&selector_query(name, oracles))
        .unwrap();
    assert_eq!(sets.len(), 1, "node {i}: one result set for one selector");
    sets[0]
        .iter()
        .map(|r| (r.record.owner(), r.record.hash(), r.weight, r.trust))
        .collect()
}

/// Whether every node of `side` is connected to no node outside it (blocking closes
/// connections asynchronously).
fn cut_off(c: &Cluster<StoreSource>, side: &[usize]) -> bool {
    let h = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        h.block_on(async {
            for a in 0..c.nodes.len() {
                let peers = c.nodes[a].p2p.peers().await;
                for b in 0..c.nodes.len() {
                    if side.contains(&a) != side.contains(&b)
                        && peers.iter().any(|p| p.peer == c.peer_id(b))
                    {
                        return false;
                    }
                }
            }
            true
        })
    })
}

/// An oracle's commentary calling `suspects` impostors.
fn commentary(o: &OwnerSecret, ts: u64, links: &[RecordHash], suspects: &[RecordHash]) -> Record {
    let comments: Vec<Comment> = suspects.iter().map(|h| Comment::collision(*h)).collect();
    RecordBuilder::new(RecordType::Commentary, ts)
        .value(encode_comments(&comments))
        .links(links.to_vec())
        .build(&o.public())
        .and_then(|u| u.sign_without_work(o))
        .expect("commentary record")
}

/// A chain of `n` records by `m` under selectors `{name}{i}`, the first linking to
/// `first_link`.
fn chain(m: &mut RecordMaker, name: &str, n: usize, first_link: &[RecordHash]) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for i in 0..n {
        let links = out
            .last()
            .map(|r| vec![r.hash()])
            .unwrap_or_else(|| first_link.to_vec());
        out.push(m.record(&format!("{name}{i}"), &format!("value {i}"), &links));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_partition_with_collision_heals() {
    init_log();
    let t = Instant::now();
    let c = start(3).await;
    c.connect(0, 1).await.unwrap();
    c.connect(1, 2).await.unwrap();
    c.connect(0, 2).await.unwrap();
    let (mut alice, mut mallory) = (RecordMaker::new(31), RecordMaker::new(32));
    let base = alice.record("base", "0", &[]);
    c.write(0, &base);
    assert!(c.wait(Duration::from_secs(10), || synced(&c)).await);

    c.partition(&[2]);
    assert!(c.wait(Duration::from_secs(10), || cut_off(&c, &[2])).await);
    // Both sides write, and both claim selector "contested": Alice on nodes 0–1,
    // Mallory (another owner) on node 2.
    let left = alice.record("contested", "alice", &[base.hash()]);
    c.write(0, &left);
    let majority = chain(&mut alice, "left", 5, &[left.hash()]);
    for (k, r) in majority.iter().enumerate() {
        c.write(k % 2, r);
    }
    let right = mallory.record("contested", "mallory", &[base.hash()]);
    c.write(2, &right);
    let minority = chain(&mut mallory, "right", 5, &[right.hash()]);
    for r in &minority {
        c.write(2, r);
    }
    // Each side converges on its own writes and the partition holds: node 1 got every
    // write of its side, node 2 none of them (and the reverse).
    assert!(
        c.wait(Duration::from_secs(10), || {
            c.nodes[0].source.hashes() == c.nodes[1].source.hashes()
                && c.nodes[0].source.len() == 7
                && c.nodes[1].source.fully_synced()
        })
        .await,
        "majority side: {:?}",
        counts(&c)
    );
    assert_eq!(
        c.nodes[2].source.len(),
        7,
        "minority side: {:?}",
        counts(&c)
    );
    assert!(!c.nodes[2].source.has(&left.hash()));
    assert!(!c.nodes[0].source.has(&right.hash()));
    assert!(!c.nodes[1].source.has(&right.hash()));
    // Meanwhile each side's store answers the selector with its own claim.
    assert_eq!(ranking(&c, 0, "contested", &[])[0].1, left.hash());
    assert_eq!(ranking(&c, 2, "contested", &[])[0].1, right.hash());

    c.heal(&[2]);
    c.connect(2, 0).await.unwrap();
    c.connect(2, 1).await.unwrap();
    assert!(
        c.wait(Duration::from_secs(15), || synced(&c)).await,
        "no convergence after healing: {:?}",
        counts(&c)
    );
    assert_eq!(c.nodes[0].source.len(), 13);
    // Same records, so the same weights on every node, whatever the arrival order.
    let w0 = weights(&c, 0);
    for i in 1..3 {
        assert_eq!(weights(&c, i), w0, "node {i} weighs records differently");
    }

    // Every node holds both claims and ranks the same candidates with the same weights.
    let candidates = |i: usize| {
        let mut v: Vec<(Owner, RecordHash, u64)> = ranking(&c, i, "contested", &[])
            .into_iter()
            .map(|(o, h, w, _)| (o, h, w))
            .collect();
        v.sort_by_key(|e| e.1);
        v
    };
    assert_eq!(candidates(0).len(), 2);
    assert_eq!(candidates(1), candidates(0));
    assert_eq!(candidates(2), candidates(0));
    // Local reputation (§9.4) is node-local: the first claim a node stored wins there,
    // so without oracles the two sides of the former partition keep different winners.
    for (i, winner, loser) in [(0, &left, &right), (1, &left, &right), (2, &right, &left)] {
        let r = ranking(&c, i, "contested", &[]);
        assert_eq!((r[0].1, r[0].3), (winner.hash(), 1.0), "node {i}: {r:?}");
        assert_eq!((r[1].1, r[1].3), (loser.hash(), 0.0), "node {i}: {r:?}");
    }

    // Two oracles on the majority side flag what their stores see as the impostor;
    // their commentary replicates, and with it every node returns the same winner.
    let oracles = [
        OwnerSecret::from_scalar_bytes(&[41; 48]).unwrap(),
        OwnerSecret::from_scalar_bytes(&[42; 48]).unwrap(),
    ];
    let oracle_keys: Vec<Owner> = oracles.iter().map(|o| o.public()).collect();
    assert_eq!(
        c.nodes[2]
            .source
            .store
            .collision_suspects(&oracle_keys[0], 10)
            .unwrap(),
        vec![left.hash()],
        "node 2 sees Alice's claim as the collision"
    );
    for (i, o) in oracles.iter().enumerate() {
        let suspects = c.nodes[i]
            .source
            .store
            .collision_suspects(&o.public(), 10)
            .unwrap();
        assert_eq!(suspects, vec![right.hash()], "node {i}");
        c.write(i, &commentary(o, 1_700_000_100, &[base.hash()], &suspects));
    }
    assert!(
        c.wait(Duration::from_secs(15), || synced(&c)).await,
        "commentary did not replicate: {:?}",
        counts(&c)
    );
    assert_eq!(c.nodes[2].source.len(), 15);
    let agreed = ranking(&c, 0, "contested", &oracle_keys);
    assert_eq!(agreed[0].1, left.hash());
    for i in 0..3 {
        let r = ranking(&c, i, "contested", &oracle_keys);
        assert_eq!(r[0].1, left.hash(), "node {i}: {r:?}");
        assert!(r[0].3 > r[1].3, "node {i}: {r:?}");
    }
    eprintln!("partition, collision and heal in {:?}", t.elapsed());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_converges_through_a_lossy_slow_network() {
    init_log();
    let c = start(3).await;
    let check = |c: &Cluster<StoreSource>| {
        for n in &c.nodes {
            let s = n.source.store.stats().unwrap();
            assert_eq!((s.records, s.synced, s.wanted), (60, 60, 0));
        }
        let w0 = weights(c, 0);
        assert_eq!(weights(c, 1), w0);
        assert_eq!(weights(c, 2), w0);
    };
    lossy::converges_through_a_lossy_slow_network(c, 50, synced, check).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_late_node_catches_up_by_reconciliation() {
    init_log();
    let t = Instant::now();
    // Node 0 holds 300 records before it runs: only reconciliation can carry them.
    let mut m = RecordMaker::new(60);
    let old = chain(&mut m, "old", 300, &[]);
    let first = StoreSource::open();
    first.store.put_many(&old).unwrap();
    let mut c: Cluster<StoreSource> = Cluster::start_with(0, NET, |_| StoreSource::open())
        .await
        .unwrap();
    c.add_node_with(test_config(NET, 1), first).await.unwrap();
    c.add_node_with(test_config(NET, 2), StoreSource::open())
        .await
        .unwrap();
    c.add_node_with(test_config(NET, 3), StoreSource::open())
        .await
        .unwrap();
    c.connect_chain().await.unwrap();
    // And live writes on the other two.
    let mut other = RecordMaker::new(61);
    let tip = old.last().unwrap().hash();
    for (k, r) in chain(&mut other, "live", 10, &[tip]).iter().enumerate() {
        c.write(1 + k % 2, r);
    }
    assert!(
        c.wait(Duration::from_secs(20), || synced(&c)).await,
        "the first three did not converge: {:?}",
        counts(&c)
    );
    eprintln!("three nodes converged on 310 records in {:?}", t.elapsed());

    // A fresh node joins late, knowing only node 2.
    let t = Instant::now();
    let late = c
        .add_node_with(test_config(NET, 4), StoreSource::open())
        .await
        .unwrap();
    assert!(c.nodes[late].source.is_empty());
    c.connect(late, 2).await.unwrap();
    assert!(
        c.wait(Duration::from_secs(20), || synced(&c)).await,
        "the late node did not catch up: {:?}",
        counts(&c)
    );
    let s = c.nodes[late].source.store.stats().unwrap();
    assert_eq!((s.records, s.synced, s.wanted), (310, 310, 0));
    assert_eq!(weights(&c, late), weights(&c, 0));
    eprintln!("the late node caught up 310 records in {:?}", t.elapsed());
    c.shutdown().await;
}

/// The source under the other tests verifies before it stores: a forged copy (hash of
/// its own bytes, damaged signature) is refused and nothing of it reaches the store.
#[test]
fn cluster_store_source_verifies_before_storing() {
    let s = StoreSource::open();
    let mut m = RecordMaker::new(70);
    let good = m.record("k", "v", &[]);
    let mut forged = m.record("k2", "v", &[]).to_bytes().to_vec();
    let n = forged.len();
    forged[n - 10] ^= 0x55;
    let forged_hash = Record::from_bytes(&forged).unwrap().hash();
    let child = m.record("k3", "v", &[good.hash()]);
    let out = s.accept(&[
        child.to_bytes().to_vec(),
        forged,
        b"garbage".to_vec(),
        good.to_bytes().to_vec(),
        good.to_bytes().to_vec(),
    ]);
    assert_eq!(
        out[0],
        Ok(Accepted::New {
            links: vec![good.hash()]
        })
    );
    assert!(matches!(out[1], Err(Rejected::Invalid(_))), "{:?}", out[1]);
    assert!(matches!(out[2], Err(Rejected::Invalid(_))), "{:?}", out[2]);
    assert_eq!(out[3], Ok(Accepted::New { links: vec![] }));
    assert_eq!(out[4], Ok(Accepted::Duplicate));
    assert!(!s.has(&forged_hash));
    assert_eq!(s.hashes().len(), 2);
    assert!(s.fully_synced());
    assert_eq!(
        s.accept(&[good.to_bytes().to_vec()]),
        vec![Ok(Accepted::Duplicate)]
    );
}
