//! The libp2p stack: TCP → pnet (network key) → Noise → Yamux, and the behaviours
//! (connection limits, address bans, block list, identify, gossipsub,
//! request-response, Kademlia and LAN discovery: see `discovery`).
//!
//! pnet sits on the raw socket, before multistream-select and Noise, so a node of
//! another network cannot even complete a handshake. pnet has no key confirmation: a
//! wrong key shows up as a failed or hung handshake, which is why the connection
//! timeout is short and failures log the key's fingerprint.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::core::transport::upgrade::Version;
use libp2p::futures;
use libp2p::multiaddr::Protocol;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, Transport, allow_block_list,
    connection_limits, gossipsub, identify, noise, request_response, tcp, yamux,
};
use sha2::{Digest as _, Sha256};

use crate::discovery::{AddrPolicy, GatedKad, LanDiscovery, kad_behaviour};
use crate::faults::Counted;
use crate::peers::Ledger;
use crate::sever::{Severable, Severed};
use crate::wire::{self, Request, Response};
use crate::{P2pConfig, P2pError};

/// Domain-separation label of the pre-shared key derivation.
const PSK_LABEL: &[u8] = b"lf p2p pre-shared key v1";

/// The pnet key of a network: `SHA-256(label ‖ network ID)`.
pub fn psk(network_id: &[u8; 32]) -> PreSharedKey {
    let mut h = Sha256::new();
    h.update(PSK_LABEL);
    h.update(network_id);
    PreSharedKey::new(h.finalize().into())
}

/// A printable fingerprint of a network's key (safe to log; not the key).
pub fn psk_fingerprint(network_id: &[u8; 32]) -> String {
    psk(network_id).fingerprint().to_string()
}

/// The node's behaviours.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) gate: AddrGate,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) gossip: gossipsub::Behaviour,
    pub(crate) sync: request_response::Behaviour<SyncCodec>,
    pub(crate) kad: GatedKad,
    pub(crate) lan: LanDiscovery,
}

/// The IP address a multiaddr starts with, if any.
/// The IP address and TCP port of `a`, if it has both.
pub(crate) fn socket_of(a: &Multiaddr) -> Option<std::net::SocketAddr> {
    let port = a.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    })?;
    Some(std::net::SocketAddr::new(ip_of(a)?, port))
}

pub(crate) fn ip_of(a: &Multiaddr) -> Option<IpAddr> {
    a.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// Refuses connections from and to banned addresses and networks. An inbound
/// connection is refused before its handshake (no pnet, no Noise), so a banned
/// address costs an accept and a close, whatever identity it would have shown. The
/// bans are read from the ledger that offences are charged to when they are found,
/// so a ban holds from that moment, not from when the swarm task hears of it.
pub(crate) struct AddrGate {
    ledger: Arc<Mutex<Ledger>>,
}

/// Why [`AddrGate`] refused a connection.
#[derive(Debug, thiserror::Error)]
#[error("the address is banned for a while (peers from it sent invalid data)")]
pub(crate) struct AddrBanned;

impl AddrGate {
    /// Whether `a` is not banned. Never call with the ledger locked.
    pub(crate) fn allows(&self, a: &Multiaddr) -> bool {
        ip_of(a).is_none_or(|ip| {
            !self
                .ledger
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .scores
                .is_addr_banned(ip)
        })
    }

    fn enforce(&self, a: &Multiaddr) -> Result<(), ConnectionDenied> {
        if self.allows(a) {
            Ok(())
        } else {
            Err(ConnectionDenied::new(AddrBanned))
        }
    }
}

impl NetworkBehaviour for AddrGate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.enforce(remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.enforce(remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.enforce(addr)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// A request as read from a peer: decoded, or why it could not be.
pub(crate) type Inbound = Result<Request, String>;

/// CBOR codec of [`wire::SYNC_PROTOCOL`]. libp2p's own CBOR codec fails the stream on an
/// undecodable or oversized request, and request-response then drops it without telling
/// the behaviour, so a peer could send garbage forever unpunished. This one hands the
/// failure up as an `Err` request, and the service penalizes the sender.
#[derive(Clone, Default)]
pub(crate) struct SyncCodec {
    /// Where written requests and responses are counted (test networks only).
    faults: Option<std::sync::Arc<crate::faults::NetFaults>>,
}

async fn read_capped<T>(io: &mut T, max: u64) -> std::io::Result<Result<Vec<u8>, String>>
where
    T: futures::AsyncRead + Unpin + Send,
{
    use futures::AsyncReadExt as _;
    let mut v = Vec::new();
    io.take(max + 1).read_to_end(&mut v).await?;
    if v.len() as u64 > max {
        return Ok(Err(format!("message over {max} bytes")));
    }
    Ok(Ok(v))
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Inbound;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Inbound>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Ok(read_capped(io, wire::MAX_REQUEST_BYTES)
            .await?
            .and_then(|b| {
                cbor4ii::serde::from_slice(&b).map_err(|e| format!("undecodable request: {e}"))
            }))
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Response>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let b = read_capped(io, wire::MAX_RESPONSE_BYTES)
            .await?
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        cbor4ii::serde::from_slice(&b)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Inbound,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        use futures::AsyncWriteExt as _;
        let req = req.map_err(std::io::Error::other)?;
        let b = cbor4ii::serde::to_vec(Vec::new(), &req).map_err(std::io::Error::other)?;
        if let Some(f) = &self.faults {
            f.count_request();
        }
        io.write_all(&b).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        use futures::AsyncWriteExt as _;
        let b = cbor4ii::serde::to_vec(Vec::new(), &res).map_err(std::io::Error::other)?;
        if let Some(f) = &self.faults {
            f.count_response();
        }
        io.write_all(&b).await
    }
}

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// Largest gossipsub frame (an announcement, or control messages).
const GOSSIP_FRAME_BYTES: usize = 64 * 1024;
/// Most message IDs in one IHAVE (about 80 bytes each with signed messages).
const MAX_IHAVE: usize = 256;

/// Builds the swarm (not yet listening).
pub(crate) fn build(
    config: &P2pConfig,
    ledger: Arc<Mutex<Ledger>>,
    severed: Arc<Severed>,
) -> Result<Swarm<Behaviour>, P2pError> {
    let key = psk(&config.network_id);
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established_incoming(Some(config.max_inbound))
        .with_max_established_outgoing(Some(config.max_outbound))
        .with_max_pending_incoming(Some(config.max_inbound.max(4)))
        .with_max_pending_outgoing(Some(config.max_outbound.max(4)))
        .with_max_established_per_peer(Some(2));
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Strict)
        // The frame limit covers control messages too: an IHAVE listing more message
        // IDs than fit is unreadable to the receiver, which then closes the stream,
        // and a connection's gossip stream is reopened only a few times before
        // gossipsub disables it for the connection's life. So frames get room for the
        // largest control message, announcements are checked against their own limit
        // on decode (`wire::decode_announce`), and IHAVE lists are kept short.
        .max_transmit_size(GOSSIP_FRAME_BYTES)
        .max_control_messages_sent(MAX_IHAVE)
        .heartbeat_interval(Duration::from_millis(700))
        .build()
        .map_err(|e| P2pError::Build(format!("gossipsub: {e}")))?;
    let sync_config = request_response::Config::default()
        .with_request_timeout(Duration::from_secs(30))
        .with_max_concurrent_streams(64);
    let codec = SyncCodec {
        faults: config.faults.clone(),
    };
    let counters = config.faults.clone();
    let network_id = config.network_id;
    let mut policy = AddrPolicy {
        allow_private: config.allow_private_peers,
        ..Default::default()
    };
    config.listen.iter().for_each(|a| policy.own(a));
    let (target, server, mdns) = (config.target_peers, config.max_inbound > 0, config.mdns);
    let swarm = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_other_transport(move |k| -> Result<_, BoxErr> {
            Ok(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    // Counted below pnet: the bytes a real network would carry.
                    .and_then(move |sock: tcp::tokio::TcpStream, _| {
                        let remote = sock.0.peer_addr().ok();
                        let sock = Severable::new(sock, remote, severed.clone());
                        PnetConfig::new(key).handshake(Counted::new(sock, counters.clone()))
                    })
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise::Config::new(k)?)
                    .multiplex(yamux::Config::default()),
            )
        })
        .map_err(|e| P2pError::Build(format!("transport: {e}")))?
        .with_behaviour(|k| -> Result<Behaviour, BoxErr> {
            Ok(Behaviour {
                gate: AddrGate { ledger },
                limits: connection_limits::Behaviour::new(limits),
                blocked: Default::default(),
                identify: identify::Behaviour::new(
                    identify::Config::new(wire::IDENTIFY_VERSION.into(), k.public())
                        .with_agent_version(format!("lf/{}", env!("CARGO_PKG_VERSION")))
                        // Its cache would hand peers' self-reported addresses,
                        // unchecked, to dials by peer ID (Kademlia's).
                        .with_cache_size(0),
                ),
                gossip: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(k.clone()),
                    gossip_config,
                )?,
                sync: request_response::Behaviour::with_codec(
                    codec,
                    [(
                        StreamProtocol::new(wire::SYNC_PROTOCOL),
                        request_response::ProtocolSupport::Full,
                    )],
                    sync_config,
                ),
                kad: GatedKad::new(
                    kad_behaviour(&network_id, k.public().to_peer_id(), server),
                    policy,
                    target,
                ),
                lan: LanDiscovery::new(mdns, k.public().to_peer_id())?,
            })
        })
        .map_err(|e| P2pError::Build(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .with_connection_timeout(config.connection_timeout)
        .build();
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_is_domain_separated_and_per_network() {
        let a = psk_fingerprint(&[1; 32]);
        assert_eq!(a, psk_fingerprint(&[1; 32]));
        assert_ne!(a, psk_fingerprint(&[2; 32]));
        // Not the raw ID used as the key.
        assert_ne!(a, PreSharedKey::new([1; 32]).fingerprint().to_string());
    }
}
