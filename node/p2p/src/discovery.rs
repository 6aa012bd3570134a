//! Finding peers without addresses typed in: LAN discovery (libp2p's mDNS) and
//! Kademlia (libp2p's `kad`, used only for its routing table and `FIND_NODE` walks,
//! never for records).
//!
//! Both are wrapped so that what they learn is as hostile as any other address a
//! stranger names: the wrappers never hand an address to the swarm's dialer that
//! [`AddrPolicy`] refuses (a peer must not make this node dial into its operator's
//! internal network), mDNS hands nothing to the swarm at all (the service decides what
//! to remember and dial, see `service.rs`), and Kademlia may open connections only
//! while the node has fewer peers than its connection target.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol, mdns};
use sha2::{Digest as _, Sha256};

use crate::peers::AddrClass;
use crate::transport::ip_of;

/// Which addresses named by others (peer exchange, identify, Kademlia, mDNS) this node
/// remembers and dials: loopback, private and link-local addresses only when this
/// node's own addresses are in that kind of network (on a LAN they are, so LAN peers
/// are allowed), or when the operator allows them; never unspecified, multicast or
/// broadcast addresses.
#[derive(Clone, Debug, Default)]
pub(crate) struct AddrPolicy {
    /// Kinds of network this node's own addresses are in (every listen address, and
    /// the addresses peers observe).
    pub(crate) own_classes: HashSet<AddrClass>,
    /// `allow_private_peers`.
    pub(crate) allow_private: bool,
}

impl AddrPolicy {
    /// Whether `a` is a TCP address this policy lets the node dial.
    pub(crate) fn admits(&self, a: &Multiaddr) -> bool {
        if !dialable(a) {
            return false;
        }
        match ip_of(a).map(AddrClass::of) {
            None | Some(AddrClass::Public) => true,
            Some(AddrClass::Unusable) => false,
            Some(c) => self.allow_private || self.own_classes.contains(&c),
        }
    }

    /// Notes one of this node's own addresses.
    pub(crate) fn own(&mut self, a: &Multiaddr) {
        if let Some(ip) = ip_of(a) {
            self.own_classes.insert(AddrClass::of(ip));
        }
    }
}

/// Whether an address is worth dialing (TCP, not unspecified).
pub(crate) fn dialable(a: &Multiaddr) -> bool {
    let mut tcp = false;
    for p in a.iter() {
        match p {
            Protocol::Ip4(ip) if ip.is_unspecified() => return false,
            Protocol::Ip6(ip) if ip.is_unspecified() => return false,
            Protocol::Tcp(_) => tcp = true,
            _ => {}
        }
    }
    tcp
}

/// Domain-separation label of the Kademlia protocol name.
const KAD_LABEL: &[u8] = b"lf kademlia protocol v1";

/// The Kademlia protocol of a network: `/lf/kad/<16 hex digits>/1`, the digits from
/// `SHA-256(label ‖ network ID)`, so the routing tables of two networks never mix
/// (the pre-shared key already keeps their connections apart; this keeps a node that
/// somehow connected from answering for the wrong network) and the name reveals
/// nothing about the ID.
pub fn kad_protocol(network_id: &[u8; 32]) -> StreamProtocol {
    let mut h = Sha256::new();
    h.update(KAD_LABEL);
    h.update(network_id);
    let digest = h.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    StreamProtocol::try_from_owned(format!("/lf/kad/{hex}/1"))
        .expect("a protocol name starting with / is valid")
}

/// How long a Kademlia query may run.
const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest Kademlia message (a `FIND_NODE` answer of 20 peers is about 2 KiB).
const KAD_MAX_PACKET: usize = 16 * 1024;

/// The Kademlia behaviour of a node of `network_id`, with an empty record store that
/// stays empty (LF replicates records by its own protocol): inbound `PUT_VALUE` and
/// `ADD_PROVIDER` are handed to the service, which drops them, and the store's
/// capacity is zero besides. The routing table is bounded by its k-buckets (at most
/// 20 peers per bucket, 256 buckets). `server`: answer other nodes' queries (a node
/// that cannot be dialled only asks).
pub(crate) fn kad_behaviour(
    network_id: &[u8; 32],
    local: PeerId,
    server: bool,
) -> kad::Behaviour<MemoryStore> {
    let mut c = kad::Config::new(kad_protocol(network_id));
    c.set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_replication_interval(None)
        .set_publication_interval(None)
        .set_provider_publication_interval(None)
        .set_caching(kad::Caching::Disabled)
        // Walks are the service's, at its bounded rate.
        .set_periodic_bootstrap_interval(None)
        .set_query_timeout(KAD_QUERY_TIMEOUT)
        .set_max_packet_size(KAD_MAX_PACKET)
        .set_kbucket_size(NonZeroUsize::new(20).expect("20 > 0"));
    let store = MemoryStore::with_config(
        local,
        kad::store::MemoryStoreConfig {
            max_records: 0,
            max_value_bytes: 0,
            max_providers_per_key: 0,
            max_provided_keys: 0,
        },
    );
    let mut k = kad::Behaviour::with_config(local, store, c);
    // Kademlia starts as a client until an external address is confirmed, which
    // never happens on a LAN without AutoNAT: a node that takes inbound connections
    // serves queries from the start.
    k.set_mode(Some(if server {
        kad::Mode::Server
    } else {
        kad::Mode::Client
    }));
    k
}

/// Why [`GatedKad`] refused one of Kademlia's dials.
#[derive(Debug, thiserror::Error)]
#[error("Kademlia dials only while the node is below its connection target")]
pub(crate) struct KadDialRefused;

/// Kademlia, with its dials gated: it may dial only while fewer than `target` peers
/// are connected, and only addresses [`AddrPolicy`] admits (the addresses come from
/// other peers' answers).
pub(crate) struct GatedKad {
    pub(crate) inner: kad::Behaviour<MemoryStore>,
    pub(crate) policy: AddrPolicy,
    target: usize,
    connected: HashSet<PeerId>,
}

impl GatedKad {
    pub(crate) fn new(
        inner: kad::Behaviour<MemoryStore>,
        policy: AddrPolicy,
        target: usize,
    ) -> Self {
        GatedKad {
            inner,
            policy,
            target,
            connected: HashSet::new(),
        }
    }

    /// Peers in the routing table.
    pub(crate) fn routing_table_len(&mut self) -> usize {
        self.inner.kbuckets().map(|b| b.num_entries()).sum()
    }
}

impl NetworkBehaviour for GatedKad {
    type ConnectionHandler = THandler<kad::Behaviour<MemoryStore>>;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        // The service dials explicit addresses without a peer ID; a dial by peer ID
        // alone is Kademlia's (a query, or a liveness check of a routing table entry).
        if let Some(peer) = maybe_peer
            && addresses.is_empty()
            && !self.connected.contains(&peer)
            && self.connected.len() >= self.target
        {
            ::metrics::counter!("lf_p2p_kad_dials_refused_total").increment(1);
            return Err(ConnectionDenied::new(KadDialRefused));
        }
        let mut addrs = self
            .inner
            .handle_pending_outbound_connection(id, maybe_peer, addresses, role)?;
        addrs.retain(|a| self.policy.admits(a));
        Ok(addrs)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::ConnectionEstablished(e) if e.other_established == 0 => {
                self.connected.insert(e.peer_id);
            }
            FromSwarm::ConnectionClosed(e) if e.remaining_established == 0 => {
                self.connected.remove(&e.peer_id);
            }
            _ => {}
        }
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<kad::Event, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

/// What LAN discovery found.
#[derive(Debug)]
pub(crate) enum LanEvent {
    /// Peers announced on the LAN, each with an address (already rewritten by mDNS to
    /// the address the announcement came from).
    Discovered(Vec<(PeerId, Multiaddr)>),
}

/// LAN discovery: libp2p's mDNS when enabled, nothing otherwise. Unlike the bare
/// behaviour it hands no address to the swarm (neither as a peer's external address
/// nor for dials by peer ID): discoveries reach the service as events, which applies
/// the same checks as to any address a stranger names.
pub(crate) struct LanDiscovery {
    inner: Option<mdns::tokio::Behaviour>,
}

/// mDNS settings: answers live 6 minutes; a node asks again every minute (and at
/// once at start and on every new interface), so a node that joins late is found
/// within about a minute even if its first query was lost.
fn mdns_config() -> mdns::Config {
    mdns::Config {
        ttl: Duration::from_secs(360),
        query_interval: Duration::from_secs(60),
        enable_ipv6: false,
    }
}

impl LanDiscovery {
    /// Active (mDNS on every non-loopback IPv4 interface) or not.
    pub(crate) fn new(enabled: bool, local: PeerId) -> std::io::Result<LanDiscovery> {
        let inner = if enabled {
            Some(mdns::tokio::Behaviour::new(mdns_config(), local)?)
        } else {
            None
        };
        Ok(LanDiscovery { inner })
    }

    /// Whether mDNS runs.
    pub(crate) fn is_active(&self) -> bool {
        self.inner.is_some()
    }
}

impl NetworkBehaviour for LanDiscovery {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = LanEvent;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(vec![])
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // mDNS learns the listen addresses it announces from these.
        if let Some(m) = &mut self.inner {
            m.on_swarm_event(event);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<LanEvent, THandlerInEvent<Self>>> {
        let Some(m) = &mut self.inner else {
            return Poll::Pending;
        };
        loop {
            match m.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(mdns::Event::Discovered(found))) => {
                    return Poll::Ready(ToSwarm::GenerateEvent(LanEvent::Discovered(found)));
                }
                // Expiry changes nothing here: a peer stays in the peer book until it
                // proves unreachable, as peers learned any other way do.
                Poll::Ready(ToSwarm::GenerateEvent(mdns::Event::Expired(_))) => {}
                // The bare behaviour reports every discovery as the peer's external
                // address, which other behaviours would use unchecked: dropped.
                Poll::Ready(_) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kad_protocol_is_per_network_and_hides_the_id() {
        let a = kad_protocol(&[1; 32]);
        assert_eq!(a, kad_protocol(&[1; 32]));
        assert_ne!(a, kad_protocol(&[2; 32]));
        assert!(a.as_ref().starts_with("/lf/kad/"), "{a}");
        assert!(!a.as_ref().contains("0101"), "{a}");
    }

    #[test]
    fn policy_admits_lan_addresses_only_on_a_lan() {
        let lan: Multiaddr = "/ip4/192.168.1.20/tcp/9908".parse().unwrap();
        let public: Multiaddr = "/ip4/192.0.2.1/tcp/9908".parse().unwrap();
        let mut p = AddrPolicy::default();
        assert!(p.admits(&public));
        assert!(
            !p.admits(&lan),
            "a public node must not dial into private networks"
        );
        p.own(&"/ip4/10.1.2.3/tcp/9908".parse().unwrap());
        assert!(p.admits(&lan), "a node on a LAN dials LAN peers");
        assert!(!p.admits(&"/ip4/127.0.0.1/tcp/9908".parse().unwrap()));
        assert!(!p.admits(&"/ip4/224.0.0.251/tcp/9908".parse().unwrap()));
        assert!(!p.admits(&"/ip4/0.0.0.0/tcp/9908".parse().unwrap()));
        assert!(!p.admits(&"/ip4/192.0.2.1/udp/9908".parse().unwrap()));
        let open = AddrPolicy {
            allow_private: true,
            ..Default::default()
        };
        assert!(open.admits(&"/ip4/127.0.0.1/tcp/9908".parse().unwrap()));
    }

    #[test]
    fn lan_discovery_off_is_inert() {
        let d = LanDiscovery::new(false, PeerId::random()).unwrap();
        assert!(!d.is_active());
    }
}
