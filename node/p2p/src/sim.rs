//! A simulation toward internet scale, on top of the [`crate::harness`]: many real P2P
//! nodes in this process over loopback TCP, a random topology, message loss on every
//! node, and churn (nodes leave; each comes back after a while, either restarted with
//! its records or as a fresh node with a new identity and an empty store). It tracks
//! when every record arrived on every node and what each node sent, so a test can
//! assert that every record reaches every node and a bench can say what that costs
//! (`examples/sim_bench.rs`, `node/p2p/SCALING.md`).
//!
//! Nothing here is simulated but the network's faults: the nodes are [`P2pNode`]s with
//! their real protocols, over [`MemSource`] stores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lf_record::{Record, RecordHash};

use crate::faults::{NetFaults, TrafficCounts};
use crate::harness::{HarnessSource, MemSource, RecordMaker};
use crate::{Accepted, Keypair, P2pConfig, P2pError, P2pNode, RecordSource, Rejected};

/// Shape of a simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Nodes (all up at the start).
    pub nodes: usize,
    /// Each node dials this many random others at the start; then every node dials
    /// peers it learns of (peer exchange) until it has its target of 8; inbound
    /// connections come on top, so with 2 here every node has 8 or more peers (mean 11
    /// to 13 measured at 25 to 200 nodes).
    pub dials_per_node: usize,
    /// Share of messages every node loses (sync requests sent, announcements received).
    pub loss: f64,
    /// Share of the nodes that leave per minute (each leave is one churn event).
    pub churn_per_minute: f64,
    /// How long a node that left stays away.
    pub downtime: Duration,
    /// Reconciliation interval of every node ([`P2pConfig::sync_interval`]).
    pub sync_interval: Duration,
    /// Seed of the topology, churn and write choices.
    pub seed: u64,
}

impl SimConfig {
    /// `nodes` nodes, at least 8 peers each, 5% loss, 5% of the nodes leave per minute and
    /// come back after 20 s, production reconciliation interval.
    pub fn new(nodes: usize) -> SimConfig {
        SimConfig {
            nodes,
            dials_per_node: 2,
            loss: 0.05,
            churn_per_minute: 0.05,
            downtime: Duration::from_secs(20),
            sync_interval: Duration::from_secs(30),
            seed: 0x5eed,
        }
    }
}

/// A [`MemSource`] that notes when each record arrived.
pub struct TrackedSource {
    inner: Arc<MemSource>,
    arrived: Mutex<HashMap<RecordHash, Instant>>,
}

impl TrackedSource {
    fn new() -> Arc<TrackedSource> {
        Arc::new(TrackedSource {
            inner: MemSource::new(true),
            arrived: Mutex::new(HashMap::new()),
        })
    }

    fn note(&self, h: RecordHash) {
        self.arrived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(h)
            .or_insert_with(Instant::now);
    }

    /// When the record arrived (or was written here).
    pub fn arrival(&self, h: &RecordHash) -> Option<Instant> {
        self.arrived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(h)
            .copied()
    }
}

impl RecordSource for TrackedSource {
    fn has(&self, hash: &RecordHash) -> bool {
        self.inner.has(hash)
    }
    fn get(&self, hash: &RecordHash) -> Option<Vec<u8>> {
        self.inner.get(hash)
    }
    fn accept(&self, records: &[Vec<u8>]) -> Vec<Result<Accepted, Rejected>> {
        let out = self.inner.accept(records);
        for (b, r) in records.iter().zip(&out) {
            if let (Ok(Accepted::New { .. }), Ok(rec)) = (r, Record::from_bytes(b)) {
                self.note(rec.hash());
            }
        }
        out
    }
    fn hashes_in(&self, start: &RecordHash, end: &RecordHash, limit: usize) -> Vec<RecordHash> {
        self.inner.hashes_in(start, end, limit)
    }
    fn wanted(&self, limit: usize) -> Vec<RecordHash> {
        self.inner.wanted(limit)
    }
    fn hashes_stored_after(&self, after: u64, limit: usize) -> (Vec<RecordHash>, u64) {
        self.inner.hashes_stored_after(after, limit)
    }
    fn stored_tail(&self) -> Option<u64> {
        self.inner.stored_tail()
    }
}

impl HarnessSource for TrackedSource {
    fn insert(&self, r: &Record) -> bool {
        let new = self.inner.insert(r);
        if new {
            self.note(r.hash());
        }
        new
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn hashes(&self) -> Vec<RecordHash> {
        self.inner.hashes()
    }
}

/// One node slot: a node that may be down, and its history.
pub struct SimNode {
    /// Its records (replaced by an empty one when a fresh node takes the slot).
    pub source: Arc<TrackedSource>,
    /// The running node; `None` while it is away.
    pub p2p: Option<P2pNode>,
    /// Its network: loss, and traffic counters (kept across restarts).
    pub faults: Arc<NetFaults>,
    /// Its identity number (a fresh node gets a new one).
    identity: u32,
    /// When the current incarnation (identity and store) came up: records written
    /// before are not waited for in [`Sim::convergence`] (its catch-up is measured
    /// apart, [`Sim::catch_up_times`]).
    since: Instant,
    /// Up intervals of the current store: (from, to; `None` = still up).
    up: Vec<(Instant, Option<Instant>)>,
}

impl SimNode {
    /// Whether it is running.
    pub fn is_up(&self) -> bool {
        self.p2p.is_some()
    }

    /// Whether it was up (with its current store) all through `[from, to]`.
    fn up_during(&self, from: Instant, to: Instant) -> bool {
        self.up
            .iter()
            .any(|&(a, b)| a <= from && b.is_none_or(|b| b >= to))
    }
}

/// What churn did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChurnCounts {
    /// Nodes that left.
    pub left: usize,
    /// Nodes that came back with their records and identity.
    pub restarted: usize,
    /// Nodes replaced by a fresh node (new identity, empty store).
    pub fresh: usize,
}

/// Convergence of the records written so far.
#[derive(Clone, Debug, Default)]
pub struct Convergence {
    /// Per record: from its write until every node that was up (with the same store)
    /// from the write to the record's arrival held it; `None` if some such node does
    /// not hold it yet.
    pub times: Vec<Option<Duration>>,
}

/// A running simulation.
pub struct Sim {
    config: SimConfig,
    network_id: [u8; 32],
    /// Node slots.
    pub nodes: Vec<SimNode>,
    rng: u64,
    next_identity: u32,
    /// Records written: hash, when, bytes.
    written: Vec<(RecordHash, Instant, usize)>,
    /// Slots that left, and when each comes back.
    away: Vec<(usize, Instant)>,
    /// When the next node leaves.
    next_leave: Option<Instant>,
    churn: ChurnCounts,
    maker: RecordMaker,
    /// Every rejoin: when, into which store, and the records written before it that
    /// the store lacked then.
    rejoins: Vec<(Instant, Arc<TrackedSource>, Vec<RecordHash>)>,
}

impl Sim {
    /// Starts `config.nodes` nodes, connects them at random and turns on the loss. Churn
    /// starts with the first [`Sim::step`].
    pub async fn start(config: SimConfig, network_id: [u8; 32]) -> Result<Sim, P2pError> {
        let mut sim = Sim {
            rng: config.seed | 1,
            network_id,
            nodes: Vec::with_capacity(config.nodes),
            next_identity: 1,
            written: Vec::new(),
            away: Vec::new(),
            next_leave: None,
            churn: ChurnCounts::default(),
            maker: RecordMaker::new(config.seed as u8),
            rejoins: Vec::new(),
            config,
        };
        for i in 0..sim.config.nodes {
            let faults = Arc::new(NetFaults::new(sim.config.seed ^ (i as u64 + 1)));
            let identity = sim.take_identity();
            let source = TrackedSource::new();
            let p2p = P2pNode::start(
                sim.node_config(identity, faults.clone(), vec![]),
                source.clone(),
            )
            .await?;
            let now = Instant::now();
            sim.nodes.push(SimNode {
                source,
                p2p: Some(p2p),
                faults,
                identity,
                since: now,
                up: vec![(now, None)],
            });
        }
        let n = sim.nodes.len();
        let mut dials = Vec::new();
        for i in 0..n {
            for _ in 0..sim.config.dials_per_node.min(n.saturating_sub(1)) {
                let mut j = sim.below(n);
                while j == i {
                    j = sim.below(n);
                }
                let addr = sim.nodes[j].p2p.as_ref().and_then(|p| p.addr());
                if let (Some(p), Some(a)) = (sim.nodes[i].p2p.clone(), addr) {
                    dials.push(async move { p.connect(a).await });
                }
            }
        }
        // All at once: one after the other, 400 handshakes took most of a minute. A
        // failed dial (a duplicate connection refused) is fine: the topology only
        // needs to be random and connected.
        let _ = libp2p::futures::future::join_all(dials).await;
        for node in &sim.nodes {
            node.faults.set_drop(sim.config.loss);
        }
        Ok(sim)
    }

    fn take_identity(&mut self) -> u32 {
        let id = self.next_identity;
        self.next_identity += 1;
        id
    }

    /// A node's settings: loopback, production intervals but the simulation's
    /// reconciliation interval, identity from `identity`.
    fn node_config(
        &self,
        identity: u32,
        faults: Arc<NetFaults>,
        bootstrap: Vec<crate::Multiaddr>,
    ) -> P2pConfig {
        let mut key = [0u8; 32];
        key[0] = 0x53;
        key[1..5].copy_from_slice(&identity.to_le_bytes());
        key[5..13].copy_from_slice(&self.config.seed.to_le_bytes());
        let keypair = Keypair::ed25519_from_bytes(key).expect("32-byte ed25519 seed");
        let mut c = P2pConfig::new(self.network_id, keypair);
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
        c.bootstrap = bootstrap;
        c.sync_interval = self.config.sync_interval;
        c.ban_duration = Duration::from_secs(60);
        c.connection_timeout = Duration::from_secs(3);
        c.faults = Some(faults);
        c
    }

    /// xorshift64: the simulation's choices, repeatable from the seed.
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x % n.max(1) as u64) as usize
    }

    /// A random node that is up (there is always one: churn never takes the last).
    fn random_up(&mut self) -> usize {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_up())
            .collect();
        up[self.below(up.len())]
    }

    /// Writes a new record (about 300 bytes) on a random node that is up and announces
    /// it; returns its hash.
    pub fn write(&mut self) -> RecordHash {
        let i = self.random_up();
        let n = self.written.len();
        let value = format!("value {n} {}", "x".repeat(64));
        let r = self.maker.record(&format!("sim{n}"), &value, &[]);
        let h = r.hash();
        if self.nodes[i].source.insert(&r)
            && let Some(p) = &self.nodes[i].p2p
        {
            p.announce(vec![h]);
        }
        self.written.push((h, Instant::now(), r.to_bytes().len()));
        h
    }

    /// Runs churn that is due: a node leaves when its time comes (5% of the nodes per
    /// minute: one every `60 s / (0.05 n)`), and nodes whose downtime is over come
    /// back, alternately restarted and fresh. Call it often (every 100 ms or so).
    pub async fn step(&mut self) -> Result<(), P2pError> {
        let now = Instant::now();
        let every = self.leave_every();
        if let Some(every) = every {
            let next = *self.next_leave.get_or_insert(now + every);
            let up = self.nodes.iter().filter(|n| n.is_up()).count();
            if now >= next && up > 2 {
                let i = self.random_up();
                self.leave(i).await;
                self.away.push((i, now + self.config.downtime));
                self.next_leave = Some(next + every);
            }
        }
        let due: Vec<usize> = self
            .away
            .iter()
            .filter(|(_, t)| *t <= now)
            .map(|(i, _)| *i)
            .collect();
        self.away.retain(|(_, t)| *t > now);
        for i in due {
            let fresh = (self.churn.restarted + self.churn.fresh) % 2 == 1;
            self.rejoin(i, fresh).await?;
        }
        Ok(())
    }

    fn leave_every(&self) -> Option<Duration> {
        let per_minute = self.config.churn_per_minute * self.nodes.len() as f64;
        (per_minute > 0.0).then(|| Duration::from_secs_f64(60.0 / per_minute))
    }

    /// Stops node `i` (it closes its connections, as a process that exits would).
    pub async fn leave(&mut self, i: usize) {
        if let Some(p) = self.nodes[i].p2p.take() {
            p.shutdown().await;
            let now = Instant::now();
            if let Some(last) = self.nodes[i].up.last_mut() {
                last.1 = Some(now);
            }
            self.churn.left += 1;
        }
    }

    /// Brings node `i` back: with its records and identity, or (`fresh`) as a new node
    /// with an empty store. It dials four random nodes that are up.
    pub async fn rejoin(&mut self, i: usize, fresh: bool) -> Result<(), P2pError> {
        if self.nodes[i].is_up() {
            return Ok(());
        }
        let mut bootstrap = Vec::new();
        for _ in 0..4 {
            let j = self.random_up();
            if let Some(a) = self.nodes[j].p2p.as_ref().and_then(|p| p.addr())
                && !bootstrap.contains(&a)
            {
                bootstrap.push(a);
            }
        }
        let now = Instant::now();
        if fresh {
            let identity = self.take_identity();
            let node = &mut self.nodes[i];
            node.identity = identity;
            node.source = TrackedSource::new();
            node.since = now;
            node.up.clear();
            self.churn.fresh += 1;
        } else {
            self.churn.restarted += 1;
        }
        let node = &self.nodes[i];
        let config = self.node_config(node.identity, node.faults.clone(), bootstrap);
        let p2p = P2pNode::start(config, node.source.clone()).await?;
        let node = &mut self.nodes[i];
        node.p2p = Some(p2p);
        let now = Instant::now();
        node.up.push((now, None));
        let lacking = self
            .written
            .iter()
            .map(|w| w.0)
            .filter(|h| !node.source.has(h))
            .collect();
        self.rejoins.push((now, node.source.clone(), lacking));
        Ok(())
    }

    /// Per rejoin: how long until the node held every record written before it came
    /// back (`None`: not yet; zero when it lacked nothing).
    pub fn catch_up_times(&self) -> Vec<Option<Duration>> {
        self.rejoins
            .iter()
            .map(|(at, source, lacking)| {
                let mut worst = Duration::ZERO;
                for h in lacking {
                    worst = worst.max(source.arrival(h)?.saturating_duration_since(*at));
                }
                Some(worst)
            })
            .collect()
    }

    /// Starts churn again at `per_minute` (a share of the nodes).
    pub fn start_churn(&mut self, per_minute: f64) {
        self.config.churn_per_minute = per_minute;
        self.next_leave = None;
    }

    /// Brings every node that is away back now (restarted with its records).
    pub async fn rejoin_all(&mut self) -> Result<(), P2pError> {
        let away: Vec<usize> = self.away.drain(..).map(|(i, _)| i).collect();
        for i in away {
            let fresh = (self.churn.restarted + self.churn.fresh) % 2 == 1;
            self.rejoin(i, fresh).await?;
        }
        Ok(())
    }

    /// Stops churn (nodes already away still come back with [`Sim::step`]).
    pub fn stop_churn(&mut self) {
        self.config.churn_per_minute = 0.0;
        self.next_leave = None;
    }

    /// What churn did so far.
    pub fn churn(&self) -> ChurnCounts {
        self.churn
    }

    /// Records written so far: (hash, when, size in bytes).
    pub fn written(&self) -> &[(RecordHash, Instant, usize)] {
        &self.written
    }

    /// Nodes that are up and lack some record written so far, with how many they lack.
    pub fn missing(&self) -> Vec<(usize, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_up())
            .filter_map(|(i, n)| {
                let lack = self
                    .written
                    .iter()
                    .filter(|(h, _, _)| !n.source.has(h))
                    .count();
                (lack > 0).then_some((i, lack))
            })
            .collect()
    }

    /// Whether every node is up and holds every record written.
    pub fn all_delivered(&self) -> bool {
        self.nodes.iter().all(|n| n.is_up()) && self.missing().is_empty()
    }

    /// Waits (polling every 100 ms, running churn) until [`Sim::all_delivered`] or
    /// `timeout`.
    pub async fn wait_delivered(&mut self, timeout: Duration) -> Result<bool, P2pError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.all_delivered() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            self.step().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Per record: how long until every node that was up (with its current store) from
    /// the write until the record's arrival held it. Nodes that left or came back in
    /// between are not waited for here (their catch-up is what [`Sim::all_delivered`]
    /// checks).
    pub fn convergence(&self) -> Convergence {
        let times = self
            .written
            .iter()
            .map(|&(h, at, _)| {
                let mut worst = Duration::ZERO;
                for n in &self.nodes {
                    if n.since > at {
                        continue;
                    }
                    match n.source.arrival(&h) {
                        Some(t) if n.up_during(at, t) => {
                            worst = worst.max(t.saturating_duration_since(at));
                        }
                        Some(_) => {}
                        None if n.is_up() && n.up_during(at, Instant::now()) => return None,
                        None => {}
                    }
                }
                Some(worst)
            })
            .collect();
        Convergence { times }
    }

    /// Every slot's traffic so far, summed.
    pub fn traffic(&self) -> TrafficCounts {
        self.nodes
            .iter()
            .map(|n| n.faults.traffic())
            .fold(TrafficCounts::default(), |a, b| a + b)
    }

    /// Messages dropped by the simulated loss so far, all nodes.
    pub fn dropped(&self) -> u64 {
        self.nodes.iter().map(|n| n.faults.dropped()).sum()
    }

    /// Connected peers of every node that is up.
    pub async fn degrees(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for n in &self.nodes {
            if let Some(p) = &n.p2p {
                out.push(p.peers().await.len());
            }
        }
        out
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.leave(i).await;
        }
    }
}
