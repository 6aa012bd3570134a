//! The running P2P node: one tokio task owns the swarm and serves commands from the
//! [`P2pNode`] handle and from the tasks it spawns (record fetches, reconciliation,
//! serving requests). Work on records runs in those tasks and in blocking threads, so
//! the swarm task only moves messages.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lf_record::RecordHash;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::buckets::HashBuckets;
use crate::discovery::{KadDialRefused, LanEvent};
use crate::peers::{Banned, Ledger, Offence};
use crate::transport::{self, Behaviour, BehaviourEvent};
use crate::wire::{self, Request, Response};
use crate::{P2pConfig, P2pError, RecordSource, sync};

/// A connected peer, for status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its identity.
    pub peer: PeerId,
    /// Address of the first connection.
    pub addr: Multiaddr,
    /// Whether it dialed us.
    pub inbound: bool,
    /// Its score (0 = never misbehaved; banned at [`crate::peers::BAN_SCORE`]).
    pub score: i32,
}

pub(crate) enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, String>>),
    Announce(Vec<RecordHash>),
    Request(
        PeerId,
        Request,
        oneshot::Sender<Result<Response, request_response::OutboundFailure>>,
    ),
    Respond(ResponseChannel<Response>, Response),
    Validate(MessageId, PeerId, MessageAcceptance),
    /// An offence (charged already) banned the peer or its address: act on it.
    Banned(PeerId, Banned),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    KnownPeers(oneshot::Sender<Vec<Multiaddr>>),
    Learn(Vec<Multiaddr>),
    Block(PeerId, bool),
    SyncDone(PeerId),
    WantedDone,
    SyncNow,
    /// Another round with this peer at once (the last one stopped at its bound).
    SyncWith(PeerId),
    /// A pull of the peer's new records ended (see `follow`); the connection generation
    /// it was started for.
    Followed(PeerId, u64, crate::follow::Pulled),
    /// Peers as mDNS would report them (tests: the harness has no LAN).
    #[cfg(test)]
    LanFound(Vec<(PeerId, Multiaddr)>),
    Shutdown,
}

/// State shared by the swarm task, the tasks it spawns and the handle.
pub(crate) struct Shared {
    pub(crate) source: Arc<dyn RecordSource>,
    /// Injected network faults (tests).
    pub(crate) faults: Option<Arc<crate::faults::NetFaults>>,
    pub(crate) buckets: Mutex<HashBuckets>,
    pub(crate) refresh_lock: Mutex<()>,
    pub(crate) cmd: mpsc::UnboundedSender<Command>,
    /// Records received from peers and stored.
    pub(crate) received: AtomicU64,
    /// Bounds concurrent announcement fetches.
    pub(crate) fetch_slots: Semaphore,
    /// Announcement fetches per peer: a peer that announces and never answers holds
    /// only its own slots (until the request timeout), never the other peers'.
    pub(crate) peer_fetches: Mutex<HashMap<PeerId, Arc<PeerFetches>>>,
    /// Bounds concurrent request serving (each may hold a batch of records).
    pub(crate) serve_slots: Semaphore,
    /// One storage-order walk at a time (see `sync::reconcile`).
    pub(crate) walk_slot: Semaphore,
    /// Scores, bans and peer addresses; the address gate reads the same.
    pub(crate) ledger: Arc<Mutex<Ledger>>,
    /// Sockets of connections presumed dead (see `sever`).
    pub(crate) severed: Arc<crate::sever::Severed>,
}

/// One peer's announcement fetches: running ones (a semaphore) and waiting ones.
pub(crate) struct PeerFetches {
    pub(crate) running: Semaphore,
    pub(crate) queued: AtomicU64,
}

/// Announcement fetches from one peer at a time, and how many more may wait (beyond
/// that, announcements are ignored: reconciliation brings their records later).
pub(crate) const FETCHES_PER_PEER: usize = 2;
pub(crate) const QUEUED_PER_PEER: u64 = 64;

impl Shared {
    pub(crate) fn peer_fetches(&self, peer: PeerId) -> Arc<PeerFetches> {
        self.peer_fetches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer)
            .or_insert_with(|| {
                Arc::new(PeerFetches {
                    running: Semaphore::new(FETCHES_PER_PEER),
                    queued: AtomicU64::new(0),
                })
            })
            .clone()
    }

    pub(crate) fn send(&self, c: Command) {
        // Fails only once the swarm task has stopped; then nothing is left to do.
        let _ = self.cmd.send(c);
    }

    pub(crate) fn penalize(&self, peer: PeerId, o: Offence) {
        self.penalize_n(peer, o, 1);
    }

    /// `count` offences at once (invalid records are charged one by one). Charged
    /// here and now, so the ban of an address holds before the task that found the
    /// offence drops the connection; the swarm task then disconnects what is banned.
    pub(crate) fn penalize_n(&self, peer: PeerId, o: Offence, count: u32) {
        if count > 0 {
            let banned = self.charge(peer, o, count);
            if banned.peer || !banned.addrs.is_empty() {
                self.send(Command::Banned(peer, banned));
            }
        }
    }

    pub(crate) fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Charges `count` offences to the peer, its address and its network; returns
    /// what reached its threshold.
    fn charge(&self, peer: PeerId, o: Offence, count: u32) -> Banned {
        ::metrics::counter!("lf_p2p_offences_total", "offence" => o.name()).increment(count as u64);
        let (banned, score, until) = {
            let mut l = self.ledger();
            let banned = l.charge(peer, o, count, Instant::now());
            (banned, l.scores.score(&peer), l.scores.ban_duration())
        };
        if banned.peer {
            ::metrics::counter!("lf_p2p_bans_total", "scope" => "peer").increment(1);
            tracing::warn!(%peer, offence = ?o, count, ?until, "peer misbehaved: banned");
        } else {
            tracing::debug!(%peer, offence = ?o, count, score, "peer penalized");
        }
        for key in &banned.addrs {
            ::metrics::counter!("lf_p2p_bans_total", "scope" => key.scope()).increment(1);
            tracing::warn!(%peer, ?key, ?until, "peers from this address misbehaved: address banned");
        }
        banned
    }
}

/// A running P2P node (a cheap, cloneable handle). Stop it with [`P2pNode::shutdown`].
#[derive(Clone)]
pub struct P2pNode {
    shared: Arc<Shared>,
    peer_id: PeerId,
    listen: Vec<Multiaddr>,
    lan_discovery: bool,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl P2pNode {
    /// Builds the stack, binds the listen addresses, dials the bootstrap peers and starts
    /// the swarm task on the current tokio runtime.
    pub async fn start(
        config: P2pConfig,
        source: Arc<dyn RecordSource>,
    ) -> Result<P2pNode, P2pError> {
        let ledger = Arc::new(Mutex::new(Ledger::new(config.ban_duration)));
        let severed = Arc::new(crate::sever::Severed::default());
        let mut swarm = transport::build(&config, ledger.clone(), severed.clone())?;
        let peer_id = *swarm.local_peer_id();
        let topic = gossipsub::IdentTopic::new(wire::TOPIC);
        swarm
            .behaviour_mut()
            .gossip
            .subscribe(&topic)
            .map_err(|e| P2pError::Build(format!("gossipsub subscribe: {e}")))?;
        let mut listeners = HashSet::new();
        for a in &config.listen {
            let id = swarm.listen_on(a.clone()).map_err(|e| P2pError::Listen {
                addr: a.clone(),
                reason: e.to_string(),
            })?;
            listeners.insert(id);
        }
        // Wait for the bound addresses (port 0 resolves here) or a bind error.
        let mut listen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !listeners.is_empty() {
            let ev = tokio::time::timeout_at(deadline, swarm.select_next_some()).await;
            match ev {
                Ok(SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                }) => {
                    listeners.remove(&listener_id);
                    listen.push(address);
                }
                Ok(SwarmEvent::ListenerClosed { reason: Err(e), .. })
                | Ok(SwarmEvent::ListenerError { error: e, .. }) => {
                    return Err(P2pError::Listen {
                        addr: config.listen[0].clone(),
                        reason: e.to_string(),
                    });
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let fingerprint = transport::psk_fingerprint(&config.network_id);
        tracing::info!(%peer_id, psk_fingerprint = %fingerprint, addrs = ?listen, "P2P listening");
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            source,
            faults: config.faults.clone(),
            buckets: Mutex::new(HashBuckets::new()),
            refresh_lock: Mutex::new(()),
            cmd: tx,
            received: AtomicU64::new(0),
            fetch_slots: Semaphore::new(16),
            peer_fetches: Mutex::new(HashMap::new()),
            serve_slots: Semaphore::new(8),
            walk_slot: Semaphore::new(1),
            ledger,
            severed,
        });
        // Compute the bucket digests in the background (a full scan of the hashes).
        {
            let s = shared.clone();
            tokio::task::spawn_blocking(move || sync::refresh_blocking(&s));
        }
        let service = Service {
            swarm,
            shared: shared.clone(),
            rx,
            topic,
            pending: HashMap::new(),
            dials: HashMap::new(),
            dial_addr: HashMap::new(),
            connected: HashMap::new(),
            known: HashMap::new(),
            addr_peer: HashMap::new(),
            last_dial: HashMap::new(),
            announce: Vec::new(),
            flush_at: None,
            syncing: HashSet::new(),
            resync: HashSet::new(),
            follow: HashMap::new(),
            generation: 0,
            heard: HashMap::new(),
            lost: HashMap::new(),
            wanted_busy: false,
            next_sync: 0,
            ticks: 0,
            fingerprint,
            kad_protocol: crate::discovery::kad_protocol(&config.network_id),
            walk: None,
            walks: 0,
            next_walk: Instant::now(),
            mdns_peers: HashSet::new(),
            mdns_dialed_at: None,
            config,
        };
        let lan_discovery = service.swarm.behaviour().lan.is_active();
        ::metrics::gauge!("lf_p2p_mdns_active").set(if lan_discovery { 1.0 } else { 0.0 });
        if lan_discovery {
            tracing::info!("LAN discovery (mDNS) on");
        }
        let task = tokio::spawn(service.run());
        let node = P2pNode {
            shared,
            peer_id,
            listen,
            lan_discovery,
            task: Arc::new(Mutex::new(Some(task))),
        };
        Ok(node)
    }

    /// This node's peer ID.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Whether LAN discovery (mDNS) runs.
    pub fn lan_discovery(&self) -> bool {
        self.lan_discovery
    }

    /// Bound listen addresses.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen
    }

    /// A dialable address of this node (first listen address with `/p2p/<id>`).
    pub fn addr(&self) -> Option<Multiaddr> {
        self.listen
            .first()
            .map(|a| a.clone().with(Protocol::P2p(self.peer_id)))
    }

    /// Dials `addr` and waits until the connection is up (or failed).
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, String> {
        let (tx, rx) = oneshot::channel();
        self.shared.send(Command::Dial(addr, tx));
        rx.await
            .map_err(|_| "the P2P node has stopped".to_string())?
    }

    /// Tells peers about records stored locally (not received from peers): call after
    /// each local write. Never blocks.
    pub fn announce(&self, hashes: Vec<RecordHash>) {
        self.shared.send(Command::Announce(hashes));
    }

    /// Connected peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        let (tx, rx) = oneshot::channel();
        self.shared.send(Command::Peers(tx));
        rx.await.unwrap_or_default()
    }

    /// Addresses of peers worth redialing after a restart (for `peers.json`).
    pub async fn known_peers(&self) -> Vec<Multiaddr> {
        let (tx, rx) = oneshot::channel();
        self.shared.send(Command::KnownPeers(tx));
        rx.await.unwrap_or_default()
    }

    /// Blocks (disconnects and refuses) or unblocks a peer: for tests that cut the
    /// network, and for operators.
    pub fn set_blocked(&self, peer: PeerId, blocked: bool) {
        self.shared.send(Command::Block(peer, blocked));
    }

    /// Starts a reconciliation round with the next peer now.
    pub fn sync_now(&self) {
        self.shared.send(Command::SyncNow);
    }

    /// Records received from peers and stored since start.
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// Stops the swarm (closing every connection) and waits for it.
    pub async fn shutdown(&self) {
        self.shared.send(Command::Shutdown);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

struct Service {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Command>,
    config: P2pConfig,
    topic: gossipsub::IdentTopic,
    pending: HashMap<
        OutboundRequestId,
        oneshot::Sender<Result<Response, request_response::OutboundFailure>>,
    >,
    dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, String>>>,
    dial_addr: HashMap<ConnectionId, Multiaddr>,
    connected: HashMap<PeerId, (Multiaddr, bool)>,
    /// Listen addresses peers told us about (identify, peer exchange, successful dials).
    known: HashMap<PeerId, Vec<Multiaddr>>,
    /// Which peer an address turned out to be (bootstrap addresses carry no peer ID).
    addr_peer: HashMap<Multiaddr, Option<PeerId>>,
    last_dial: HashMap<Multiaddr, Instant>,
    announce: Vec<RecordHash>,
    flush_at: Option<tokio::time::Instant>,
    syncing: HashSet<PeerId>,
    /// Peers that (re)connected while a round with them was still running: another
    /// round follows it at once (the running one may have met the dead connection).
    resync: HashSet<PeerId>,
    /// Following each connected peer's new records (see `follow`).
    follow: HashMap<PeerId, Follow>,
    /// Counter telling connections to the same peer apart.
    generation: u64,
    /// When each connected peer was last heard from (any message).
    heard: HashMap<PeerId, Instant>,
    /// Peers whose connection ended, and when: redialed quickly for a while.
    lost: HashMap<PeerId, Instant>,
    wanted_busy: bool,
    next_sync: usize,
    ticks: u64,
    fingerprint: String,
    /// This network's Kademlia protocol (peers listing it join the routing table).
    kad_protocol: libp2p::StreamProtocol,
    /// The Kademlia walk running, if any (one at a time).
    walk: Option<kad::QueryId>,
    /// Walks started so far (the first looks up this node's own ID).
    walks: u64,
    /// When the next walk may start.
    next_walk: Instant,
    /// Peers found by mDNS and remembered (at most `mdns_max_peers`).
    mdns_peers: HashSet<PeerId>,
    /// When peers found by mDNS were last dialed (at most once a second).
    mdns_dialed_at: Option<Instant>,
}

/// The follower of one connected peer.
struct Follow {
    /// The peer's storage position seen last (`None`: not learned yet).
    pos: Option<u64>,
    /// A pull is running.
    busy: bool,
    /// Which connection this follows.
    generation: u64,
    /// Found silent and disconnected (the close is on its way).
    dead: bool,
}

/// How often lost peers are redialed (for [`LOST_REDIAL_FOR`] after the loss), and
/// how long a redial waits at least otherwise.
const LOST_REDIAL_EVERY: Duration = Duration::from_secs(1);
const LOST_REDIAL_FOR: Duration = Duration::from_secs(600);
/// Most lost peers remembered for quick redials.
const MAX_LOST: usize = 256;
/// Dials at once to the address of a peer lost lately (one a second, each waiting at
/// most the connection timeout).
const MAX_LOST_DIALS: usize = 5;

/// Announcements kept while no peer is subscribed yet (reconciliation covers the rest).
const MAX_QUEUED_ANNOUNCEMENTS: usize = 8192;
/// Most peers whose addresses are remembered (for redials, peer exchange answers and
/// `peers.json`). Addresses learned by peer exchange fill it only up to this; a peer
/// that connects takes the place of one that is not connected.
const MAX_KNOWN_PEERS: usize = 256;
/// Most addresses remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 8;
/// How long announcements wait when every peer's gossip queue is full.
const FULL_QUEUE_RETRY: Duration = Duration::from_millis(200);
/// How long announcements of local writes wait to be batched.
const ANNOUNCE_DELAY: Duration = Duration::from_millis(2);

impl Service {
    async fn run(mut self) {
        let start = tokio::time::Instant::now();
        let mut sync_tick =
            tokio::time::interval_at(start + self.config.sync_interval, self.config.sync_interval);
        let maint_every = self.config.sync_interval.min(Duration::from_secs(5));
        let mut maint = tokio::time::interval_at(start + Duration::from_millis(200), maint_every);
        let mut follow_tick = tokio::time::interval(self.config.follow_interval);
        follow_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut redial_tick = tokio::time::interval(LOST_REDIAL_EVERY);
        redial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for a in self.config.bootstrap.clone() {
            self.dial(a, None);
        }
        loop {
            let flush_at = self.flush_at;
            let flush = async move {
                match flush_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                cmd = self.rx.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => self.on_command(c),
                },
                _ = sync_tick.tick() => self.start_sync(None),
                _ = maint.tick() => self.maintain(),
                _ = follow_tick.tick() => self.follow_all(),
                _ = redial_tick.tick() => if !self.lost.is_empty() { self.dial_more() },
                _ = flush => self.flush_announcements(),
            }
        }
        tracing::info!(peers = self.connected.len(), "P2P stopping");
        // Dropping the swarm closes every connection.
        for (_, tx) in self.pending.drain() {
            let _ = tx.send(Err(request_response::OutboundFailure::ConnectionClosed));
        }
    }

    fn dial(&mut self, addr: Multiaddr, reply: Option<oneshot::Sender<Result<PeerId, String>>>) {
        if let Some(Protocol::P2p(p)) = addr.iter().last()
            && (self.shared.ledger().scores.is_banned(&p) || p == *self.swarm.local_peer_id())
        {
            if let Some(r) = reply {
                let _ = r.send(Err(format!("peer {p} is banned or is this node")));
            }
            return;
        }
        if let Some(ip) = transport::ip_of(&addr)
            && self.shared.ledger().scores.is_addr_banned(ip)
        {
            if let Some(r) = reply {
                let _ = r.send(Err(format!("address {ip} is banned for a while")));
            }
            return;
        }
        self.last_dial.insert(addr.clone(), Instant::now());
        // A port of its own for every dial: with the listen port reused as source
        // port, two nodes redialing each other at once (both lost the link, both
        // redial every second) send SYNs with the same address pair, TCP merges them
        // into one connection that both sides try to initiate on, and every
        // handshake fails; in the bed a heal took 8 s instead of 1.
        let opts = DialOpts::unknown_peer_id()
            .address(addr.clone())
            .allocate_new_port()
            .build();
        let id = opts.connection_id();
        tracing::debug!(%addr, "dialing");
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dial_addr.insert(id, addr);
                if let Some(r) = reply {
                    self.dials.insert(id, r);
                }
            }
            Err(e) => {
                tracing::debug!(%addr, "cannot dial: {e}");
                if let Some(r) = reply {
                    let _ = r.send(Err(format!("cannot dial {addr}: {e}")));
                }
            }
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        if let SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
            propagation_source,
            ..
        })) = &ev
        {
            self.heard_from(*propagation_source);
        }
        match ev {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if let Some(r) = self.dials.remove(&connection_id) {
                    let _ = r.send(Ok(peer_id));
                }
                if let Some(a) = self.dial_addr.remove(&connection_id) {
                    self.addr_peer.insert(a.clone(), Some(peer_id));
                    self.make_room(&peer_id);
                    let known = self.known.entry(peer_id).or_default();
                    let plain = strip_p2p(&a);
                    if !known.contains(&plain) {
                        known.push(plain);
                    }
                }
                // The first connection, or a new one while an old one presumed dead is
                // still closing (see `follow_all`).
                if num_established.get() == 1 || !self.connected.contains_key(&peer_id) {
                    let addr = endpoint.get_remote_address().clone();
                    if let Some(ip) = transport::ip_of(&addr) {
                        let connected = &self.connected;
                        self.shared
                            .ledger()
                            .connected_from(peer_id, ip, |p| connected.contains_key(p));
                    }
                    tracing::info!(peer = %peer_id, %addr, inbound = endpoint.is_listener(), "peer connected");
                    self.connected
                        .insert(peer_id, (addr, endpoint.is_listener()));
                    self.lost.remove(&peer_id);
                    self.heard.insert(peer_id, Instant::now());
                    self.generation += 1;
                    self.follow.insert(
                        peer_id,
                        Follow {
                            pos: None,
                            busy: false,
                            generation: self.generation,
                            dead: false,
                        },
                    );
                    self.start_pull(peer_id);
                    self.start_sync(Some(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } if self.connected.contains_key(&peer_id) => {
                self.lose(peer_id);
                tracing::info!(peer = %peer_id, cause = ?cause.map(|c| c.to_string()), "peer disconnected");
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let addr = self.dial_addr.remove(&connection_id);
                if let libp2p::swarm::DialError::LocalPeerId { .. } = error
                    && let Some(a) = &addr
                {
                    // Our own address (e.g. in the genesis bootstrap list): never again.
                    self.addr_peer
                        .insert(a.clone(), Some(*self.swarm.local_peer_id()));
                }
                let msg = match &error {
                    // This node's own outbound limit (or its block list): not the peer's
                    // fault, and nothing to do with the network key.
                    libp2p::swarm::DialError::Denied { cause } => {
                        format!("refused here: {} (see -max-outbound)", denied(cause))
                    }
                    _ => format!(
                        "{error} (if the peer runs another network, the handshake fails: \
                         this node's network key fingerprint is {})",
                        self.fingerprint
                    ),
                };
                if let Some(r) = self.dials.remove(&connection_id) {
                    tracing::warn!(peer = ?peer_id, addr = ?addr, "cannot connect: {msg}");
                    let _ = r.send(Err(msg));
                } else if let libp2p::swarm::DialError::Denied { cause } = &error
                    && cause.downcast_ref::<KadDialRefused>().is_none()
                {
                    tracing::info!(peer = ?peer_id, addr = ?addr, "not connecting: {msg}");
                } else {
                    tracing::debug!(peer = ?peer_id, addr = ?addr, "cannot connect: {msg}");
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => match &error {
                libp2p::swarm::ListenError::Denied { cause } => tracing::info!(
                    from = %send_back_addr,
                    "inbound connection refused: {} (see -max-inbound)",
                    denied(cause)
                ),
                _ => tracing::info!(
                    from = %send_back_addr,
                    "inbound connection failed: {error} (a peer of another network fails \
                     here; this node's network key fingerprint is {})",
                    self.fingerprint
                ),
            },
            SwarmEvent::NewListenAddr { address, .. } => {
                // Listening on 0.0.0.0 reports every interface's address: a node on a
                // LAN learns here that it is on one.
                tracing::debug!(%address, "P2P listen address");
                self.swarm.behaviour_mut().kad.policy.own(&address);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocol_version != wire::IDENTIFY_VERSION {
                    tracing::info!(peer = %peer_id, version = %info.protocol_version, "peer speaks another protocol version; disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.swarm
                    .behaviour_mut()
                    .kad
                    .policy
                    .own(&info.observed_addr);
                let addrs: Vec<Multiaddr> = info
                    .listen_addrs
                    .into_iter()
                    .filter(|a| self.exchangeable(a))
                    .take(MAX_ADDRS_PER_PEER)
                    .collect();
                if !addrs.is_empty() {
                    // Into the routing table only if it speaks this network's
                    // Kademlia (it then answers walks).
                    if info.protocols.contains(&self.kad_protocol) {
                        let kad = &mut self.swarm.behaviour_mut().kad.inner;
                        for a in &addrs {
                            kad.add_address(&peer_id, a.clone());
                        }
                    }
                    self.make_room(&peer_id);
                    self.known.insert(peer_id, addrs);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Lan(LanEvent::Discovered(found))) => {
                self.on_lan(found)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message: _,
            })) if self
                .shared
                .faults
                .as_ref()
                .is_some_and(|f| f.should_drop_gossip()) =>
            {
                // A lost announcement (fault injection).
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Ignore,
                    );
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => match wire::decode_announce(&message.data) {
                Ok(hashes) => {
                    let shared = self.shared.clone();
                    tokio::spawn(sync::on_announce(
                        shared,
                        propagation_source,
                        message_id,
                        hashes,
                    ));
                }
                Err(e) => {
                    tracing::debug!(peer = %propagation_source, "bad announcement: {e}");
                    self.swarm
                        .behaviour_mut()
                        .gossip
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Reject,
                        );
                    self.penalize(propagation_source, Offence::Garbage);
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Subscribed {
                ..
            })) if !self.announce.is_empty() => {
                self.flush_at = Some(tokio::time::Instant::now());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync(ev),
            _ => {}
        }
    }

    fn on_sync(&mut self, ev: request_response::Event<transport::Inbound, Response>) {
        if let request_response::Event::Message { peer, .. } = &ev {
            self.heard_from(*peer);
        }
        match ev {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if self.shared.ledger().scores.is_banned(&peer) {
                    return;
                }
                let request = match request {
                    Ok(r) => r,
                    Err(why) => {
                        tracing::debug!(%peer, "bad request: {why}");
                        self.penalize(peer, Offence::Garbage);
                        let refused = Response::Refused(why);
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_response(channel, refused);
                        return;
                    }
                };
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    let resp = sync::serve(&shared, peer, request).await;
                    shared.send(Command::Respond(channel, resp));
                });
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tx) = self.pending.remove(&request_id) {
                    let _ = tx.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                match &error {
                    request_response::OutboundFailure::Io(e) => self.penalize(peer, io_offence(e)),
                    request_response::OutboundFailure::Timeout => {
                        self.penalize(peer, Offence::Unresponsive)
                    }
                    _ => {}
                }
                if let Some(tx) = self.pending.remove(&request_id) {
                    let _ = tx.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                if let request_response::InboundFailure::Io(e) = &error {
                    self.penalize(peer, io_offence(e));
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Dial(addr, reply) => self.dial(addr, Some(reply)),
            Command::Announce(hashes) => {
                {
                    let mut b = self
                        .shared
                        .buckets
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    hashes.iter().for_each(|h| b.mark(h));
                }
                self.announce.extend(hashes);
                if self.flush_at.is_none() {
                    self.flush_at = Some(tokio::time::Instant::now() + ANNOUNCE_DELAY);
                }
            }
            Command::Request(peer, req, reply) => {
                if !self.connected.contains_key(&peer) {
                    let _ = reply.send(Err(request_response::OutboundFailure::DialFailure));
                    return;
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, Ok(req));
                self.pending.insert(id, reply);
            }
            Command::Respond(channel, resp) => {
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
            }
            Command::Validate(id, peer, acceptance) => {
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&id, &peer, acceptance);
            }
            Command::Banned(peer, banned) => self.enforce(peer, banned),
            Command::Peers(reply) => {
                let mut v: Vec<PeerInfo> = self
                    .connected
                    .iter()
                    .map(|(p, (a, inbound))| PeerInfo {
                        peer: *p,
                        addr: a.clone(),
                        inbound: *inbound,
                        score: self.shared.ledger().scores.score(p),
                    })
                    .collect();
                v.sort_by_key(|p| p.peer.to_bytes());
                let _ = reply.send(v);
            }
            Command::KnownPeers(reply) => {
                let _ = reply.send(self.known_addrs());
            }
            Command::Learn(addrs) => {
                if self.config.peer_exchange {
                    self.learn(addrs.into_iter().take(wire::MAX_PEERS));
                }
            }
            Command::Block(peer, on) => {
                let b = &mut self.swarm.behaviour_mut().blocked;
                if on {
                    b.block_peer(peer);
                } else {
                    b.unblock_peer(peer);
                }
            }
            Command::SyncDone(peer) => {
                self.syncing.remove(&peer);
                if self.resync.remove(&peer) && self.connected.contains_key(&peer) {
                    self.start_sync(Some(peer));
                }
            }
            Command::Followed(peer, generation, pulled) => self.followed(peer, generation, pulled),
            Command::WantedDone => self.wanted_busy = false,
            Command::SyncNow => self.start_sync(None),
            Command::SyncWith(peer) if self.connected.contains_key(&peer) => {
                self.start_sync(Some(peer))
            }
            Command::SyncWith(_) => {}
            #[cfg(test)]
            Command::LanFound(found) => self.on_lan(found),
            Command::Shutdown => {}
        }
    }

    fn penalize(&mut self, peer: PeerId, o: Offence) {
        self.penalize_n(peer, o, 1);
    }

    /// Charges `count` offences to the peer, its address and its network; bans (and
    /// disconnects) whatever reaches its threshold.
    fn penalize_n(&mut self, peer: PeerId, o: Offence, count: u32) {
        let banned = self.shared.charge(peer, o, count);
        self.enforce(peer, banned);
    }

    /// Acts on bans already in the ledger: the peer is blocked and forgotten, and
    /// every peer connected from a banned address goes, whatever its identity.
    fn enforce(&mut self, peer: PeerId, banned: Banned) {
        if banned.peer {
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            self.known.remove(&peer);
        }
        if !banned.addrs.is_empty() {
            let from_there: Vec<PeerId> = self
                .connected
                .iter()
                .filter(|(_, (a, _))| !self.swarm.behaviour().gate.allows(a))
                .map(|(p, _)| *p)
                .collect();
            for p in from_there {
                let _ = self.swarm.disconnect_peer_id(p);
            }
            let gate = &self.swarm.behaviour().gate;
            self.known
                .retain(|_, addrs| addrs.iter().all(|a| gate.allows(a)));
        }
    }

    /// Whether an address a peer gave (identify, peer exchange, Kademlia, mDNS) is
    /// worth remembering and dialing: not banned, and admitted by the address policy
    /// (`discovery::AddrPolicy`: TCP, and not in a loopback, private or link-local
    /// network unless this node's own addresses are in that kind of network, or
    /// `allow_private_peers` is set): a peer must not make this node dial into its
    /// operator's internal network.
    fn exchangeable(&self, a: &Multiaddr) -> bool {
        let b = self.swarm.behaviour();
        let ok = b.gate.allows(a) && b.kad.policy.admits(a);
        if !ok {
            ::metrics::counter!("lf_p2p_peer_addrs_skipped_total").increment(1);
        }
        ok
    }

    /// Remembers the addresses (each with `/p2p/<id>`) that pass [`Self::exchangeable`],
    /// while the peer book has room; the number of peers it did not know.
    fn learn(&mut self, addrs: impl Iterator<Item = Multiaddr>) -> usize {
        let mut new = 0;
        for a in addrs {
            if let Some(Protocol::P2p(p)) = a.iter().last()
                && p != *self.swarm.local_peer_id()
                && !self.shared.ledger().scores.is_banned(&p)
                && self.exchangeable(&a)
                && (self.known.len() < MAX_KNOWN_PEERS || self.known.contains_key(&p))
            {
                let e = self.known.entry(p).or_default();
                if e.is_empty() {
                    new += 1;
                }
                let plain = strip_p2p(&a);
                if e.len() < MAX_ADDRS_PER_PEER && !e.contains(&plain) {
                    e.push(plain);
                }
            }
        }
        new
    }

    fn on_kad(&mut self, ev: kad::Event) {
        match ev {
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(r),
                step,
                ..
            } => {
                let (peers, outcome) = match r {
                    Ok(ok) => (ok.peers, "ok"),
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => (peers, "timeout"),
                };
                let found = peers.len();
                let addrs: Vec<Multiaddr> = peers
                    .into_iter()
                    .flat_map(|p| {
                        p.addrs
                            .into_iter()
                            .take(MAX_ADDRS_PER_PEER)
                            .map(move |a| strip_p2p(&a).with(Protocol::P2p(p.peer_id)))
                    })
                    .collect();
                let new = self.learn(addrs.into_iter());
                ::metrics::counter!("lf_p2p_kad_peers_found_total").increment(found as u64);
                ::metrics::counter!("lf_p2p_kad_peers_learned_total").increment(new as u64);
                if step.last && self.walk == Some(id) {
                    self.walk = None;
                    ::metrics::counter!("lf_p2p_kad_walks_total", "result" => outcome).increment(1);
                    tracing::debug!(found, new, outcome, "Kademlia walk ended");
                    if new > 0 {
                        self.dial_more();
                    }
                }
            }
            kad::Event::RoutingUpdated {
                peer, is_new_peer, ..
            } if is_new_peer => {
                tracing::debug!(%peer, "peer in the Kademlia routing table");
                // The first peer (a bootstrap peer, usually): walk at once.
                if self.walks == 0 {
                    self.start_walk();
                }
            }
            // Records are not LF's business over Kademlia: inbound PUT_VALUE and
            // ADD_PROVIDER (filtered, never stored) end here.
            _ => {}
        }
    }

    /// Starts a Kademlia walk unless one runs or the node is at its connection
    /// target: the first looks up this node's own ID (its neighbourhood), the next
    /// ones random IDs (anywhere in the network). Peers it finds go into the peer
    /// book; Kademlia itself dials only below the target (`discovery::GatedKad`).
    fn start_walk(&mut self) {
        if self.walk.is_some() || self.connected.len() >= self.config.target_peers {
            return;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        if kad.routing_table_len() == 0 {
            return;
        }
        let target = if self.walks == 0 {
            *self.swarm.local_peer_id()
        } else {
            PeerId::random()
        };
        self.walk = Some(
            self.swarm
                .behaviour_mut()
                .kad
                .inner
                .get_closest_peers(target),
        );
        self.walks += 1;
        self.next_walk = Instant::now() + self.config.kad_walk_interval;
    }

    /// Peers announced on the LAN: remembered (at most `mdns_max_peers` of them)
    /// when their address passes the same checks as any other, then dialed like
    /// any known peer (up to the connection target).
    fn on_lan(&mut self, found: Vec<(PeerId, Multiaddr)>) {
        let mut new = 0;
        for (peer, addr) in found {
            if peer == *self.swarm.local_peer_id() || self.shared.ledger().scores.is_banned(&peer) {
                continue;
            }
            if !self.mdns_peers.contains(&peer) {
                if self.mdns_peers.len() >= self.config.mdns_max_peers {
                    ::metrics::counter!("lf_p2p_mdns_peers_ignored_total").increment(1);
                    continue;
                }
                if !self.exchangeable(&addr) {
                    continue;
                }
            }
            let a = strip_p2p(&addr).with(Protocol::P2p(peer));
            self.learn(std::iter::once(a));
            if self.known.contains_key(&peer) && self.mdns_peers.insert(peer) {
                new += 1;
                tracing::info!(%peer, %addr, "peer found on the LAN (mDNS)");
            }
        }
        ::metrics::counter!("lf_p2p_mdns_peers_found_total").increment(new as u64);
        let now = Instant::now();
        if new > 0
            && self
                .mdns_dialed_at
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.mdns_dialed_at = Some(now);
            self.dial_more();
        }
    }

    /// Makes room in `known` for `peer`, which connected: when full, forgets a peer that
    /// is not connected (there are fewer connections than [`MAX_KNOWN_PEERS`]).
    fn make_room(&mut self, peer: &PeerId) {
        if self.known.len() < MAX_KNOWN_PEERS || self.known.contains_key(peer) {
            return;
        }
        let idle = self
            .known
            .keys()
            .find(|p| !self.connected.contains_key(p))
            .copied();
        if let Some(p) = idle {
            self.known.remove(&p);
        }
    }

    fn known_addrs(&self) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        for (p, addrs) in &self.known {
            if self.shared.ledger().scores.is_banned(p) {
                continue;
            }
            for a in addrs {
                out.push(a.clone().with(Protocol::P2p(*p)));
            }
        }
        out.sort_by_key(|a| a.to_string());
        out
    }

    fn flush_announcements(&mut self) {
        self.flush_at = None;
        while !self.announce.is_empty() {
            let n = self.announce.len().min(wire::MAX_ANNOUNCE);
            let data = wire::encode_announce(&self.announce[..n]);
            match self
                .swarm
                .behaviour_mut()
                .gossip
                .publish(self.topic.clone(), data)
            {
                Ok(_) => {
                    self.announce.drain(..n);
                }
                Err(e @ gossipsub::PublishError::NoPeersSubscribedToTopic)
                | Err(e @ gossipsub::PublishError::AllQueuesFull(_)) => {
                    // Retried when a peer subscribes, or (full queues) after a while;
                    // the peers' followers bring anything dropped.
                    if matches!(e, gossipsub::PublishError::AllQueuesFull(_)) {
                        self.flush_at = Some(tokio::time::Instant::now() + FULL_QUEUE_RETRY);
                    }
                    if self.announce.len() > MAX_QUEUED_ANNOUNCEMENTS {
                        let excess = self.announce.len() - MAX_QUEUED_ANNOUNCEMENTS;
                        self.announce.drain(..excess);
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!("announcement not published: {e}");
                    self.announce.drain(..n);
                }
            }
        }
    }

    fn start_sync(&mut self, target: Option<PeerId>) {
        let peer = match target {
            Some(p) => Some(p),
            None => {
                let mut peers: Vec<PeerId> = self.connected.keys().copied().collect();
                peers.sort_by_key(|p| p.to_bytes());
                if peers.is_empty() {
                    None
                } else {
                    self.next_sync = self.next_sync.wrapping_add(1);
                    Some(peers[self.next_sync % peers.len()])
                }
            }
        };
        let Some(peer) = peer else { return };
        if self.shared.ledger().scores.is_banned(&peer) {
            return;
        }
        if !self.syncing.insert(peer) {
            if target.is_some() {
                self.resync.insert(peer);
            }
            return;
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let more = sync::reconcile(&shared, peer).await;
            shared.send(Command::SyncDone(peer));
            if more {
                shared.send(Command::SyncWith(peer));
            }
        });
    }

    fn maintain(&mut self) {
        self.ticks += 1;
        let now = Instant::now();
        let (peers, addrs) = self.shared.ledger().scores.expire(now);
        for p in peers {
            tracing::info!(peer = %p, "ban lifted");
            self.swarm.behaviour_mut().blocked.unblock_peer(p);
        }
        for key in addrs {
            tracing::info!(?key, "address ban lifted");
        }
        // Recompute every digest now and then, in case an update was missed.
        if self.ticks.is_multiple_of(120) {
            self.shared
                .buckets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .mark_all();
        }
        self.dial_more();
        // Forget mDNS peers that left the peer book (its bound, or bans), so that the
        // slots they held serve new ones.
        let known = &self.known;
        self.mdns_peers.retain(|p| known.contains_key(p));
        if now >= self.next_walk {
            self.start_walk();
        }
        let table = self.swarm.behaviour_mut().kad.routing_table_len();
        ::metrics::gauge!("lf_p2p_kad_routing_table_peers").set(table as f64);
        ::metrics::gauge!("lf_p2p_known_peers").set(self.known.len() as f64);
        // Missing links are fetched by reconciliation too: not both at once.
        if !self.wanted_busy && self.syncing.is_empty() && !self.connected.is_empty() {
            let mut peers: Vec<PeerId> = self.connected.keys().copied().collect();
            peers.sort_by_key(|p| p.to_bytes());
            let peer = peers[(self.ticks as usize) % peers.len()];
            self.wanted_busy = true;
            let shared = self.shared.clone();
            tokio::spawn(async move {
                sync::fetch_wanted(&shared, peer).await;
                shared.send(Command::WantedDone);
            });
        }
    }

    /// Dials known peers while below both the target and the outbound limit (a dial
    /// past the limit would only be refused here). An address is redialed after
    /// 30 s (or four sync intervals), a peer whose connection was lost in the last
    /// ten minutes every second: a partition heals within a second of the link.
    fn dial_more(&mut self) {
        let now = Instant::now();
        self.lost
            .retain(|_, t| now.duration_since(*t) < LOST_REDIAL_FOR);
        let outbound = self.connected.values().filter(|(_, inb)| !inb).count();
        if self.connected.len() < self.config.target_peers
            && outbound < self.config.max_outbound as usize
        {
            let mut candidates: Vec<Multiaddr> = self.config.bootstrap.clone();
            candidates.extend(self.known_addrs());
            let redial = Duration::from_secs(30).min(self.config.sync_interval * 4);
            let mut dialed = 0;
            for a in candidates {
                if dialed >= 3 {
                    break;
                }
                let peer = match a.iter().last() {
                    Some(Protocol::P2p(p)) => Some(p),
                    _ => self.addr_peer.get(&a).copied().flatten(),
                };
                if let Some(p) = peer
                    && (self.connected.contains_key(&p)
                        || self.shared.ledger().scores.is_banned(&p)
                        || p == *self.swarm.local_peer_id())
                {
                    continue;
                }
                if !self.swarm.behaviour().gate.allows(&a) {
                    continue;
                }
                // One dial at a time per address (a dial into a cut link hangs until
                // the connection timeout), except to a peer lost lately: a dial into
                // a cut link waits on SYN retransmissions (1, 2, 4 s apart), so once
                // the link heals it may complete only seconds later; a new dial every
                // second sends a fresh SYN, and the peer is back within about a
                // second of the heal.
                let lost = peer.is_some_and(|p| self.lost.contains_key(&p));
                let pending = self.dial_addr.values().filter(|d| **d == a).count();
                let most = if lost { MAX_LOST_DIALS } else { 1 };
                if pending >= most {
                    continue;
                }
                let wait = if lost { LOST_REDIAL_EVERY } else { redial };
                if self
                    .last_dial
                    .get(&a)
                    .is_some_and(|t| now.duration_since(*t) < wait)
                {
                    continue;
                }
                self.dial(a, None);
                dialed += 1;
            }
        }
    }

    /// Notes that `peer` is alive (it sent something).
    fn heard_from(&mut self, peer: PeerId) {
        if let Some(t) = self.heard.get_mut(&peer) {
            *t = Instant::now();
        }
    }

    /// Disconnects peers that owe an answer and were silent for `dead_after`, and
    /// starts a pull from every connected peer that has none running. A live peer
    /// answers the pulls (one every `follow_interval`), so silence that long means the
    /// link is gone, whatever TCP still believes.
    fn follow_all(&mut self) {
        let dead_after = self.config.dead_after;
        let dead: Vec<(PeerId, Duration)> = self
            .follow
            .iter_mut()
            .filter_map(|(p, f)| {
                let silent = self.heard.get(p).map(|t| t.elapsed())?;
                (f.busy && !f.dead && silent >= dead_after).then(|| {
                    f.dead = true;
                    (*p, silent)
                })
            })
            .collect();
        for (peer, silent) in dead {
            ::metrics::counter!("lf_p2p_dead_connections_total").increment(1);
            tracing::info!(%peer, silent_ms = silent.as_millis() as u64, "peer silent: connection presumed dead, disconnecting");
            // Severed and lost now, not when the connection has closed: a graceful
            // close flushes what waits in the socket first, which on a cut link with
            // a full send buffer takes until TCP's next retransmission after the heal
            // (20 s and more). Redials start at once, and a new connection is taken as
            // the peer's even if the old one is still closing.
            if let Some(remote) = self
                .connected
                .get(&peer)
                .and_then(|(a, _)| transport::socket_of(a))
            {
                self.shared.severed.sever(remote);
            }
            self.lose(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let peers: Vec<PeerId> = self.follow.keys().copied().collect();
        for p in peers {
            self.start_pull(p);
        }
    }

    /// Forgets `peer`'s connection (fetch slots, following, liveness) and remembers
    /// the peer as lost, so it is redialed every second for a while.
    fn lose(&mut self, peer: PeerId) {
        self.connected.remove(&peer);
        self.shared
            .peer_fetches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&peer);
        self.follow.remove(&peer);
        self.heard.remove(&peer);
        if self.lost.len() >= MAX_LOST {
            let now = Instant::now();
            self.lost
                .retain(|_, t| now.duration_since(*t) < LOST_REDIAL_FOR);
        }
        if self.lost.len() < MAX_LOST && !self.shared.ledger().scores.is_banned(&peer) {
            self.lost.insert(peer, Instant::now());
        }
    }

    fn start_pull(&mut self, peer: PeerId) {
        if self.shared.ledger().scores.is_banned(&peer) {
            return;
        }
        let Some(f) = self.follow.get_mut(&peer) else {
            return;
        };
        if f.busy {
            return;
        }
        f.busy = true;
        let (pos, generation) = (f.pos, f.generation);
        let shared = self.shared.clone();
        let patience = self.config.dead_after;
        tokio::spawn(async move {
            let pulled = crate::follow::pull(&shared, peer, pos, patience).await;
            shared.send(Command::Followed(peer, generation, pulled));
        });
    }

    /// A pull ended: keep the position.
    fn followed(&mut self, peer: PeerId, generation: u64, pulled: crate::follow::Pulled) {
        let Some(f) = self.follow.get_mut(&peer) else {
            return;
        };
        if f.generation != generation {
            return;
        }
        f.busy = false;
        if pulled.pos.is_some() {
            f.pos = pulled.pos;
        }
        if pulled.recovered > 0 {
            ::metrics::counter!("lf_p2p_followed_records_total").increment(pulled.recovered as u64);
            tracing::debug!(%peer, records = pulled.recovered, "records fetched by following the peer (not announced here yet)");
        }
    }
}

/// How bad an I/O failure on a request stream is: undecodable or oversized messages
/// are the peer's doing; others (resets) may not be.
fn io_offence(e: &std::io::Error) -> Offence {
    use std::io::ErrorKind::*;
    match e.kind() {
        InvalidData | Unsupported | UnexpectedEof => Offence::Garbage,
        // The CBOR codec reports serde's decode errors (unknown variant, wrong type) as
        // `Other` carrying a message; a failed read carries the `io::Error` itself.
        Other
            if e.get_ref()
                .is_some_and(|inner| !inner.is::<std::io::Error>()) =>
        {
            Offence::Garbage
        }
        _ => Offence::Unresponsive,
    }
}

fn strip_p2p(a: &Multiaddr) -> Multiaddr {
    a.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// Why this node's behaviours denied a connection (libp2p's `ConnectionDenied` only
/// says "connection denied").
fn denied(cause: &libp2p::swarm::ConnectionDenied) -> String {
    if let Some(e) = cause.downcast_ref::<libp2p::connection_limits::Exceeded>() {
        e.to_string()
    } else if let Some(e) = cause.downcast_ref::<KadDialRefused>() {
        e.to_string()
    } else if cause
        .downcast_ref::<libp2p::allow_block_list::Blocked>()
        .is_some()
        || cause.downcast_ref::<transport::AddrBanned>().is_some()
    {
        "the peer is banned for a while (it sent invalid data)".into()
    } else {
        cause.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::{Cluster, test_config};

    /// A peer ID that is no node of the cluster.
    fn stranger(i: u32) -> PeerId {
        let mut seed = [0xa5; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        libp2p::identity::Keypair::ed25519_from_bytes(seed)
            .unwrap()
            .public()
            .to_peer_id()
    }

    /// Peers announced on the LAN are remembered at most `mdns_max_peers` at a time (a
    /// host flooding announcements of made-up peers fills no more), and only at
    /// addresses the policy admits (a private address while the node has none).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lan_peers_are_capped_and_checked() {
        let mut c = Cluster::start(0, [8; 32]).await.unwrap();
        let mut cfg = test_config([8; 32], 1);
        cfg.mdns_max_peers = 4;
        c.add_node(cfg).await.unwrap();
        let node = &c.nodes[0].p2p;
        let private: Multiaddr = "/ip4/10.0.0.5/tcp/1".parse().unwrap();
        node.shared
            .send(Command::LanFound(vec![(stranger(0), private.clone())]));
        // Port 1 on loopback: every dial fails at once.
        let flood = (1..=50)
            .map(|i| (stranger(i), "/ip4/127.0.0.1/tcp/1".parse().unwrap()))
            .collect();
        node.shared.send(Command::LanFound(flood));
        let known = node.known_peers().await;
        assert_eq!(known.len(), 4, "{known:?}");
        assert!(
            known.iter().all(|a| !a.to_string().contains("10.0.0.5")),
            "{known:?}"
        );
        c.shutdown().await;
    }

    /// Peer exchange cannot grow the remembered peers without bound (a peer may answer
    /// with fresh made-up peers every round), and a peer that connects is still
    /// remembered once the list is full.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn remembered_peers_are_bounded() {
        let mut c = Cluster::start(1, [7; 32]).await.unwrap();
        let rounds = (MAX_KNOWN_PEERS / wire::MAX_PEERS + 4) as u32;
        for r in 0..rounds {
            let addrs: Vec<Multiaddr> = (0..wire::MAX_PEERS as u32)
                .map(|i| {
                    // Port 1 on loopback: every redial fails at once.
                    format!("/ip4/127.0.0.1/tcp/1/p2p/{}", stranger(r * 1000 + i))
                        .parse()
                        .unwrap()
                })
                .collect();
            c.nodes[0].p2p.shared.send(Command::Learn(addrs));
        }
        let known = c.nodes[0].p2p.known_peers().await;
        assert_eq!(known.len(), MAX_KNOWN_PEERS);
        // A real peer connects: it is remembered, the list stays bounded.
        let b = c.add_node(test_config([7; 32], 2)).await.unwrap();
        c.connect(b, 0).await.unwrap();
        let id = c.peer_id(b);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let known = c.nodes[0].p2p.known_peers().await;
            assert!(known.len() <= MAX_KNOWN_PEERS, "{} remembered", known.len());
            if known
                .iter()
                .any(|a| a.iter().last() == Some(Protocol::P2p(id)))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the connected peer was not remembered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c.shutdown().await;
    }
}
