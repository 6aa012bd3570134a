//! An in-process test harness: several P2P nodes (the real code, real TCP on
//! 127.0.0.1) in one process, with a controllable network (connect, partition by blocking
//! peers, heal, drop and delay messages) and convergence checks.
//!
//! Each node keeps its records in a [`HarnessSource`]: the in-memory [`MemSource`] by
//! default, or any other source through [`Cluster::start_with`] and
//! [`Cluster::add_node_with`]. `tests/cluster_store.rs` runs the cluster over the real
//! store (`lf-store`, a dev-dependency only: this library never depends on it).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lf_record::{Limits, OwnerSecret, Record, RecordBuilder, RecordHash, RecordType};

use crate::faults::NetFaults;
use crate::{Accepted, Keypair, Multiaddr, P2pConfig, P2pError, P2pNode, PeerId};
use crate::{RecordSource, Rejected};

/// A [`RecordSource`] the harness can drive: local writes and convergence checks.
pub trait HarnessSource: RecordSource {
    /// Stores a record written locally (no verification); true if new.
    fn insert(&self, r: &Record) -> bool;
    /// Number of records stored.
    fn len(&self) -> usize;
    /// Whether no record is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every stored hash, ascending.
    fn hashes(&self) -> Vec<RecordHash>;
}

/// Stored records: bytes and links, by hash.
type RecordMap = BTreeMap<RecordHash, (Vec<u8>, Vec<RecordHash>)>;

/// Records in memory, validated like a node would (parse; full verification when
/// `verify` is on). The stand-in for the node's store in tests.
pub struct MemSource {
    records: Mutex<RecordMap>,
    /// Hashes in the order they were stored (position = index + 1).
    order: Mutex<Vec<RecordHash>>,
    verify: bool,
}

impl MemSource {
    /// An empty source; `verify` checks signatures, claims and work on arrival.
    pub fn new(verify: bool) -> Arc<MemSource> {
        Arc::new(MemSource {
            records: Mutex::new(BTreeMap::new()),
            order: Mutex::new(Vec::new()),
            verify,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordMap> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a record written locally; true if new.
    pub fn insert(&self, r: &Record) -> bool {
        let mut m = self.lock();
        let new = m
            .insert(r.hash(), (r.to_bytes().to_vec(), r.links().to_vec()))
            .is_none();
        if new {
            self.order
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(r.hash());
        }
        new
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every hash, ascending.
    pub fn hashes(&self) -> Vec<RecordHash> {
        self.lock().keys().copied().collect()
    }
}

impl RecordSource for MemSource {
    fn has(&self, hash: &RecordHash) -> bool {
        self.lock().contains_key(hash)
    }

    fn get(&self, hash: &RecordHash) -> Option<Vec<u8>> {
        self.lock().get(hash).map(|(b, _)| b.clone())
    }

    fn accept(&self, records: &[Vec<u8>]) -> Vec<Result<Accepted, Rejected>> {
        records
            .iter()
            .map(|b| {
                let r = Record::from_bytes(b).map_err(|e| Rejected::Invalid(e.to_string()))?;
                if self.verify {
                    let limits = Limits {
                        max_value_size: 65_535,
                        work_difficulty: 0,
                    };
                    r.verify(&limits)
                        .map_err(|e| Rejected::Invalid(e.to_string()))?;
                }
                if self.insert(&r) {
                    Ok(Accepted::New {
                        links: r.links().to_vec(),
                    })
                } else {
                    Ok(Accepted::Duplicate)
                }
            })
            .collect()
    }

    fn hashes_in(&self, start: &RecordHash, end: &RecordHash, limit: usize) -> Vec<RecordHash> {
        if start > end {
            return vec![];
        }
        self.lock()
            .range(*start..=*end)
            .take(limit)
            .map(|(h, _)| *h)
            .collect()
    }

    fn wanted(&self, limit: usize) -> Vec<RecordHash> {
        let m = self.lock();
        let mut out = HashSet::new();
        for (_, links) in m.values() {
            for l in links {
                if !m.contains_key(l) {
                    out.insert(*l);
                }
            }
        }
        out.into_iter().take(limit).collect()
    }

    fn hashes_stored_after(&self, after: u64, limit: usize) -> (Vec<RecordHash>, u64) {
        let order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let from = (after as usize).min(order.len());
        let page: Vec<RecordHash> = order[from..].iter().take(limit).copied().collect();
        let next = if page.is_empty() {
            after
        } else {
            (from + page.len()) as u64
        };
        (page, next)
    }

    fn stored_tail(&self) -> Option<u64> {
        Some(self.order.lock().unwrap_or_else(|p| p.into_inner()).len() as u64)
    }
}

impl HarnessSource for MemSource {
    fn insert(&self, r: &Record) -> bool {
        MemSource::insert(self, r)
    }

    fn len(&self) -> usize {
        MemSource::len(self)
    }

    fn hashes(&self) -> Vec<RecordHash> {
        MemSource::hashes(self)
    }
}

/// Makes test records: a fixed owner, increasing timestamps, no proof of work.
pub struct RecordMaker {
    owner: OwnerSecret,
    next_ts: u64,
}

impl RecordMaker {
    /// An owner derived from `seed`.
    pub fn new(seed: u8) -> RecordMaker {
        let mut n = 0u8;
        let owner = OwnerSecret::generate(|b| {
            n = n.wrapping_add(1);
            b.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = seed ^ n ^ (i as u8).wrapping_mul(31));
        });
        RecordMaker {
            owner,
            next_ts: 1_700_000_000,
        }
    }

    /// A datum under selector `name` with `value`, linking to `links`.
    pub fn record(&mut self, name: &str, value: &str, links: &[RecordHash]) -> Record {
        self.next_ts += 1;
        let mut links = links.to_vec();
        links.sort();
        links.dedup();
        RecordBuilder::new(RecordType::Datum, self.next_ts)
            .value(value.as_bytes().to_vec())
            .links(links)
            .selector(name.as_bytes(), 0)
            .build(&self.owner.public())
            .and_then(|u| u.sign_without_work(&self.owner))
            .expect("test record")
    }
}

/// One node of a [`Cluster`].
pub struct ClusterNode<S = MemSource> {
    /// Its records.
    pub source: Arc<S>,
    /// Its P2P node.
    pub p2p: P2pNode,
    /// Its injected network faults (none until set).
    pub faults: Arc<NetFaults>,
}

/// Several P2P nodes in this process, each over a source of type `S`.
pub struct Cluster<S = MemSource> {
    /// The nodes, in start order.
    pub nodes: Vec<ClusterNode<S>>,
}

/// The harness's node settings: loopback, fast reconciliation, deterministic identity.
pub fn test_config(network_id: [u8; 32], seed: u8) -> P2pConfig {
    let mut key = [seed; 32];
    key[0] = 0x4c;
    let keypair = Keypair::ed25519_from_bytes(key).expect("32-byte ed25519 seed");
    let mut c = P2pConfig::new(network_id, keypair);
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    c.sync_interval = Duration::from_millis(500);
    c.ban_duration = Duration::from_secs(60);
    c.connection_timeout = Duration::from_secs(3);
    c
}

impl Cluster<MemSource> {
    /// Starts `n` unconnected nodes of network `network_id`, each over a [`MemSource`]
    /// (verification on).
    pub async fn start(n: usize, network_id: [u8; 32]) -> Result<Cluster, P2pError> {
        Cluster::start_with(n, network_id, |_| MemSource::new(true)).await
    }

    /// Starts one more node with `config` over an empty [`MemSource`]; returns its index.
    pub async fn add_node(&mut self, config: P2pConfig) -> Result<usize, P2pError> {
        self.add_node_with(config, MemSource::new(true)).await
    }
}

impl<S: HarnessSource> Cluster<S> {
    /// Starts `n` unconnected nodes of network `network_id`, node `i` over
    /// `make_source(i)`.
    pub async fn start_with(
        n: usize,
        network_id: [u8; 32],
        mut make_source: impl FnMut(usize) -> Arc<S>,
    ) -> Result<Cluster<S>, P2pError> {
        let mut c = Cluster { nodes: Vec::new() };
        for i in 0..n {
            c.add_node_with(test_config(network_id, i as u8 + 1), make_source(i))
                .await?;
        }
        Ok(c)
    }

    /// Starts one more node over `source` (which may already hold records).
    pub async fn add_node_with(
        &mut self,
        config: P2pConfig,
        source: Arc<S>,
    ) -> Result<usize, P2pError> {
        let mut config = config;
        let seed = self.nodes.len() as u64 + 1;
        let faults = config
            .faults
            .get_or_insert_with(|| Arc::new(NetFaults::new(seed)))
            .clone();
        let p2p = P2pNode::start(config, source.clone()).await?;
        self.nodes.push(ClusterNode {
            source,
            p2p,
            faults,
        });
        Ok(self.nodes.len() - 1)
    }

    /// Dialable address of node `i`.
    pub fn addr(&self, i: usize) -> Multiaddr {
        self.nodes[i].p2p.addr().expect("listening")
    }

    /// Peer ID of node `i`.
    pub fn peer_id(&self, i: usize) -> PeerId {
        self.nodes[i].p2p.peer_id()
    }

    /// Node `a` dials node `b`. A dial refused because the two are connected already
    /// counts as done: after a heal the nodes redial lost peers by themselves, and a
    /// test's own dial can land after theirs (the per-peer connection limit).
    pub async fn connect(&self, a: usize, b: usize) -> Result<PeerId, String> {
        let dialed = self.nodes[a].p2p.connect(self.addr(b)).await;
        if dialed.is_err() {
            let b_id = self.peer_id(b);
            if self.nodes[a]
                .p2p
                .peers()
                .await
                .iter()
                .any(|p| p.peer == b_id)
            {
                return Ok(b_id);
            }
        }
        dialed
    }

    /// Connects node `i` to node `i + 1` for every `i`.
    pub async fn connect_chain(&self) -> Result<(), String> {
        for i in 0..self.nodes.len().saturating_sub(1) {
            self.connect(i, i + 1).await?;
        }
        Ok(())
    }

    /// A local write on node `i`: store, then announce.
    pub fn write(&self, i: usize, r: &Record) {
        if self.nodes[i].source.insert(r) {
            self.nodes[i].p2p.announce(vec![r.hash()]);
        }
    }

    /// Cuts the nodes in `side` off from the others (both directions).
    pub fn partition(&self, side: &[usize]) {
        self.set_cut(side, true);
    }

    /// Undoes [`Cluster::partition`] for `side`.
    pub fn heal(&self, side: &[usize]) {
        self.set_cut(side, false);
    }

    fn set_cut(&self, side: &[usize], blocked: bool) {
        for a in 0..self.nodes.len() {
            for b in 0..self.nodes.len() {
                if side.contains(&a) != side.contains(&b) {
                    self.nodes[a].p2p.set_blocked(self.peer_id(b), blocked);
                }
            }
        }
    }

    /// Node `i` loses this share (0.0 to 1.0) of the sync requests it sends and of the
    /// announcements it receives.
    pub fn set_drop(&self, i: usize, share: f64) {
        self.nodes[i].faults.set_drop(share);
    }

    /// Node `i` loses this share (0.0 to 1.0) of the announcements it receives (its
    /// requests still get through).
    pub fn set_gossip_drop(&self, i: usize, share: f64) {
        self.nodes[i].faults.set_gossip_drop(share);
    }

    /// Node `i`'s sync requests and received announcements are delayed by `d`.
    pub fn set_delay(&self, i: usize, d: Duration) {
        self.nodes[i].faults.set_delay(d);
    }

    /// Every node's network back to perfect.
    pub fn clear_faults(&self) {
        self.nodes.iter().for_each(|n| n.faults.clear());
    }

    /// Whether every node holds the same records.
    pub fn converged(&self) -> bool {
        let first = self.nodes[0].source.hashes();
        self.nodes[1..]
            .iter()
            .all(|n| n.source.len() == first.len() && n.source.hashes() == first)
    }

    /// Waits until [`Cluster::converged`] or `timeout`.
    pub async fn wait_converged(&self, timeout: Duration) -> bool {
        self.wait(timeout, || self.converged()).await
    }

    /// Polls `f` every 20 ms until true or `timeout`.
    pub async fn wait(&self, timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if f() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for n in &self.nodes {
            n.p2p.shutdown().await;
        }
    }
}
