//! LF peer-to-peer replication over libp2p: gossip announcements, record fetch by
//! hash, catch-up by set reconciliation over hash buckets, peer scoring and bans, and an
//! in-process multi-node test harness.
//!
//! The crate knows neither the store nor the daemon: it reaches records through
//! [`RecordSource`], which the daemon implements over `lf-store` (and the harness over
//! memory, or over `lf-store` in this crate's tests only). Transport: TCP → pnet
//! (pre-shared key derived from the network ID) → Noise → Yamux. QUIC stays off: it would
//! bypass the key.
//!
//! Protocols (versioned names in [`wire`]):
//! - gossipsub topic `lf/records/1`: [`wire::Announce`] messages carry hashes of new
//!   records. A receiver fetches what it lacks from the announcer, has it validated by
//!   [`RecordSource::accept`], and only then lets gossipsub relay the announcement.
//! - request-response `/lf/sync/1` (CBOR): fetch records by hash in batches, bucket
//!   digests and hash listings for reconciliation, storage-order listings (catch-up
//!   of a node far behind, and following each peer's new records: see `follow`), and
//!   peer exchange.
//! - Kademlia `/lf/kad/<network digest>/1` (see [`kad_protocol`]): routing table and
//!   random walks that find peers beyond the bootstrap peers; no records.
//!
//! Peers are also found on the LAN by mDNS when [`P2pConfig::mdns`] is on. Whatever
//! names an address (mDNS, Kademlia, peer exchange, identify) is a stranger: the
//! address passes the same checks, and the peer the same bans, caps and handshake.

#![forbid(unsafe_code)]

pub mod buckets;
mod discovery;
pub mod faults;
mod follow;
pub mod harness;
pub mod peers;
mod service;
mod sever;
pub mod sim;
mod sync;
pub mod transport;
pub mod wire;

use std::time::Duration;

pub use discovery::kad_protocol;
pub use lf_record::RecordHash;
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
pub use service::{P2pNode, PeerInfo};

/// What [`RecordSource::accept`] did with one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Verified and stored now; `links` are the hashes it links to (to fetch if missing).
    New {
        /// Linked hashes.
        links: Vec<RecordHash>,
    },
    /// Already stored.
    Duplicate,
}

/// Why [`RecordSource::accept`] refused one record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// Malformed or invalid: the sender is at fault (its score is lowered).
    #[error("invalid record: {0}")]
    Invalid(String),
    /// The node could not store it now (local failure; the sender is not blamed).
    #[error("cannot store record: {0}")]
    Unavailable(String),
}

/// The node's records as the P2P layer sees them. Every method may block (disk I/O,
/// signature checks): the P2P layer calls them from blocking threads.
///
/// Records stored other than through [`RecordSource::accept`] (local writes) must be
/// passed to [`P2pNode::announce`]: that also keeps the reconciliation digests current
/// (they are recomputed from scratch only every ten minutes or so).
pub trait RecordSource: Send + Sync + 'static {
    /// Whether the record is stored.
    fn has(&self, hash: &RecordHash) -> bool;
    /// The hashes of `hashes` that are not stored, in order. A source with a lock
    /// should take it once for all of them (a listing page asks about a thousand).
    fn absent(&self, hashes: Vec<RecordHash>) -> Vec<RecordHash> {
        hashes.into_iter().filter(|h| !self.has(h)).collect()
    }
    /// The stored record's bytes.
    fn get(&self, hash: &RecordHash) -> Option<Vec<u8>>;
    /// Verifies records received from a peer (every rule that makes a record valid) and
    /// stores the valid ones; one result per input, in order.
    fn accept(&self, records: &[Vec<u8>]) -> Vec<Result<Accepted, Rejected>>;
    /// Stored hashes `h` with `start <= h <= end`, ascending, at most `limit`.
    fn hashes_in(&self, start: &RecordHash, end: &RecordHash, limit: usize) -> Vec<RecordHash>;
    /// Hashes that stored records link to but that are not stored, at most `limit`.
    fn wanted(&self, limit: usize) -> Vec<RecordHash>;
    /// Stored hashes in the order they were stored, after position `after` (0: from
    /// the first), at most `limit`, with the position of the last one returned. A
    /// source without such an order returns nothing (`(vec![], after)`): its peers then
    /// catch up through bucket reconciliation alone.
    fn hashes_stored_after(&self, after: u64, limit: usize) -> (Vec<RecordHash>, u64) {
        let _ = limit;
        (Vec::new(), after)
    }
    /// The position (as in [`RecordSource::hashes_stored_after`]) of the last stored
    /// record, 0 when none is; `None` for a source without such an order. Peers follow
    /// this node's new records from there.
    fn stored_tail(&self) -> Option<u64> {
        None
    }
}

/// Settings of a P2P node.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// The network ID: the pre-shared key is derived from it.
    pub network_id: [u8; 32],
    /// The node's libp2p identity.
    pub keypair: Keypair,
    /// Addresses to listen on (e.g. `/ip4/0.0.0.0/tcp/9908`).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and to redial while below `target_peers`.
    pub bootstrap: Vec<Multiaddr>,
    /// Established inbound connections allowed.
    pub max_inbound: u32,
    /// Established outbound connections allowed.
    pub max_outbound: u32,
    /// Below this many connected peers the node dials known peers.
    pub target_peers: usize,
    /// How often to reconcile with one peer.
    pub sync_interval: Duration,
    /// How often each connected peer is asked for the records it stored since the last
    /// time (delivery that does not depend on gossip announcements).
    pub follow_interval: Duration,
    /// A peer that answers nothing for this long is disconnected (and redialed): a cut
    /// link is noticed in this time.
    pub dead_after: Duration,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Dial and handshake timeout (a wrong network's key can make handshakes hang).
    pub connection_timeout: Duration,
    /// Let peer exchange dial loopback, private and link-local addresses even when
    /// none of this node's own addresses is in such a network.
    pub allow_private_peers: bool,
    /// Find peers on the local network with mDNS (multicast on every non-loopback
    /// IPv4 interface). Off by default: the daemon turns it on for private networks.
    pub mdns: bool,
    /// Most peers found by mDNS remembered at once (the rest wait for a slot).
    pub mdns_max_peers: usize,
    /// How often a Kademlia random walk looks for peers while the node has fewer
    /// than `target_peers` (one walk at a time).
    pub kad_walk_interval: Duration,
    /// Ask connected peers for the peers they know (peer exchange). Off leaves
    /// finding peers to Kademlia and mDNS (tests use it to show Kademlia alone works).
    pub peer_exchange: bool,
    /// Injected drops and delays (tests only; `None` in production).
    pub faults: Option<std::sync::Arc<faults::NetFaults>>,
}

impl P2pConfig {
    /// Defaults for a node of network `network_id` with identity `keypair`.
    pub fn new(network_id: [u8; 32], keypair: Keypair) -> P2pConfig {
        P2pConfig {
            network_id,
            keypair,
            listen: vec![],
            bootstrap: vec![],
            max_inbound: 64,
            max_outbound: 16,
            target_peers: 8,
            sync_interval: Duration::from_secs(30),
            follow_interval: Duration::from_millis(500),
            dead_after: Duration::from_secs(5),
            ban_duration: Duration::from_secs(600),
            connection_timeout: Duration::from_secs(5),
            allow_private_peers: false,
            mdns: false,
            mdns_max_peers: 32,
            kad_walk_interval: Duration::from_secs(30),
            peer_exchange: true,
            faults: None,
        }
    }
}

/// Errors starting the P2P node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P2pError {
    /// The transport or behaviour could not be built.
    #[error("cannot build the P2P stack: {0}")]
    Build(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The node has stopped.
    #[error("the P2P node has stopped")]
    Stopped,
}
