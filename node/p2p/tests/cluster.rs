//! In-process cluster tests: several real P2P nodes over loopback TCP, each over an
//! in-memory record source (see `lf_p2p::harness`).

use std::sync::Arc;
use std::time::Duration;

use lf_p2p::harness::{Cluster, MemSource, RecordMaker, test_config};
use lf_p2p::{Accepted, P2pNode, RecordHash, RecordSource, Rejected};

mod lossy;

const NET: [u8; 32] = [7; 32];

fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A chain of `n` records, each linking to the previous one.
fn chain(m: &mut RecordMaker, name: &str, n: usize) -> Vec<lf_record::Record> {
    let mut out: Vec<lf_record::Record> = Vec::new();
    for i in 0..n {
        let links: Vec<RecordHash> = out.last().map(|r| vec![r.hash()]).unwrap_or_default();
        out.push(m.record(&format!("{name}{i}"), &format!("value {i}"), &links));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_three_nodes_converge_by_gossip() {
    init_log();
    let c = Cluster::start(3, NET).await.unwrap();
    c.connect_chain().await.unwrap();
    let mut m = RecordMaker::new(1);
    let rs = chain(&mut m, "a", 20);
    for r in &rs {
        c.write(0, r);
    }
    let r2 = m.record("from-node-3", "x", &[rs[19].hash()]);
    c.write(2, &r2);
    assert!(c.wait_converged(Duration::from_secs(20)).await);
    assert_eq!(c.nodes[1].source.len(), 21);
    // Peers see each other.
    assert_eq!(c.nodes[1].p2p.peers().await.len(), 2);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_fresh_node_catches_up_by_reconciliation() {
    init_log();
    let mut c = Cluster::start(0, NET).await.unwrap();
    let mut m = RecordMaker::new(2);
    // Written before the node runs: only reconciliation can carry them.
    let full = MemSource::new(true);
    for r in chain(&mut m, "b", 400) {
        full.insert(&r);
    }
    c.add_node_with(test_config(NET, 1), full).await.unwrap();
    let t = std::time::Instant::now();
    c.add_node(test_config(NET, 9)).await.unwrap();
    c.connect(1, 0).await.unwrap();
    assert!(c.wait_converged(Duration::from_secs(30)).await);
    eprintln!("400 records caught up in {:?}", t.elapsed());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_partition_heals() {
    init_log();
    let c = Cluster::start(3, NET).await.unwrap();
    c.connect(0, 1).await.unwrap();
    c.connect(1, 2).await.unwrap();
    c.connect(0, 2).await.unwrap();
    let mut m = RecordMaker::new(3);
    let base = m.record("base", "0", &[]);
    c.write(0, &base);
    assert!(c.wait_converged(Duration::from_secs(10)).await);
    c.partition(&[2]);
    assert!(
        c.wait(Duration::from_secs(10), || { futures_peers_blocked(&c) })
            .await
    );
    // Writes on both sides, including the same selector from different owners.
    let mut other = RecordMaker::new(4);
    let left = m.record("contested", "left", &[base.hash()]);
    let right = other.record("contested", "right", &[base.hash()]);
    c.write(0, &left);
    c.write(2, &right);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!c.nodes[2].source.has(&left.hash()));
    assert!(!c.nodes[0].source.has(&right.hash()));
    c.heal(&[2]);
    c.connect(2, 0).await.unwrap();
    assert!(c.wait_converged(Duration::from_secs(20)).await);
    assert_eq!(c.nodes[1].source.len(), 3);
    c.shutdown().await;
}

fn futures_peers_blocked(c: &Cluster) -> bool {
    // Blocking closes the connections asynchronously; the writes below must not leak
    // through a connection that is still closing.
    let h = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        h.block_on(async {
            let p2 = c.peer_id(2);
            let n0 = c.nodes[0].p2p.peers().await;
            let n2 = c.nodes[2].p2p.peers().await;
            !n0.iter().any(|p| p.peer == p2) && n2.is_empty()
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_other_network_cannot_connect() {
    init_log();
    let mut c = Cluster::start(1, NET).await.unwrap();
    let mut cfg = test_config([8; 32], 5);
    cfg.connection_timeout = Duration::from_secs(2);
    let i = c.add_node(cfg).await.unwrap();
    let t = std::time::Instant::now();
    let r = c.connect(i, 0).await;
    assert!(r.is_err(), "connected across networks");
    assert!(t.elapsed() < Duration::from_secs(10));
    let msg = r.unwrap_err();
    assert!(msg.contains("another network"), "{msg}");
    assert!(c.nodes[0].p2p.peers().await.is_empty());
    c.shutdown().await;
}

/// Serves forged copies of records: parseable, correctly hashed, badly signed.
struct ForgingSource {
    inner: Arc<MemSource>,
}

impl RecordSource for ForgingSource {
    fn has(&self, h: &RecordHash) -> bool {
        self.inner.has(h)
    }
    fn get(&self, h: &RecordHash) -> Option<Vec<u8>> {
        self.inner.get(h)
    }
    fn accept(&self, records: &[Vec<u8>]) -> Vec<Result<Accepted, Rejected>> {
        self.inner.accept(records)
    }
    fn hashes_in(&self, s: &RecordHash, e: &RecordHash, limit: usize) -> Vec<RecordHash> {
        self.inner.hashes_in(s, e, limit)
    }
    fn wanted(&self, limit: usize) -> Vec<RecordHash> {
        self.inner.wanted(limit)
    }
}

/// A record with its signature damaged; its hash is that of the damaged bytes.
fn forged(m: &mut RecordMaker, name: &str) -> (RecordHash, Vec<u8>) {
    let r = m.record(name, "forged", &[]);
    let mut b = r.to_bytes().to_vec();
    let n = b.len();
    b[n - 10] ^= 0x55;
    let h = lf_record::Record::from_bytes(&b).unwrap().hash();
    (h, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_forging_peer_is_banned_and_others_keep_working() {
    init_log();
    let c = Cluster::start(2, NET).await.unwrap();
    c.connect(0, 1).await.unwrap();
    // The evil node stores forged records without checking them.
    let evil_store = MemSource::new(false);
    let evil = P2pNode::start(
        test_config(NET, 66),
        Arc::new(ForgingSource {
            inner: evil_store.clone(),
        }),
    )
    .await
    .unwrap();
    evil.connect(c.addr(0)).await.unwrap();
    let mut m = RecordMaker::new(6);
    for i in 0..3 {
        let (h, b) = forged(&mut m, &format!("evil{i}"));
        evil_store.accept(&[b]);
        evil.announce(vec![h]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let evil_id = evil.peer_id();
    assert!(
        c.wait(Duration::from_secs(15), || {
            let h = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| {
                h.block_on(async {
                    !c.nodes[0]
                        .p2p
                        .peers()
                        .await
                        .iter()
                        .any(|p| p.peer == evil_id)
                })
            })
        })
        .await,
        "the forging peer is still connected"
    );
    assert_eq!(c.nodes[0].source.len(), 0, "a forged record was stored");
    // A banned peer that redials is dropped again.
    let _ = evil.connect(c.addr(0)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !c.nodes[0]
            .p2p
            .peers()
            .await
            .iter()
            .any(|p| p.peer == evil_id)
    );
    // The honest nodes keep replicating.
    let good = m.record("good", "1", &[]);
    c.write(0, &good);
    assert!(c.wait_converged(Duration::from_secs(10)).await);
    assert!(c.nodes[1].source.has(&good.hash()));
    evil.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_converges_through_a_lossy_slow_network() {
    init_log();
    let c = Cluster::start(3, NET).await.unwrap();
    lossy::converges_through_a_lossy_slow_network(c, 20, |c| c.converged(), |_| {}).await;
}
