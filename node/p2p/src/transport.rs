//! The libp2p stack: TCP → pnet (network key) → Noise → Yamux, and the behaviours
//! (connection limits, block list, identify, gossipsub, request-response).
//!
//! pnet sits on the raw socket, before multistream-select and Noise, so a node of
//! another network cannot even complete a handshake. pnet has no key confirmation: a
//! wrong key shows up as a failed or hung handshake, which is why the connection
//! timeout is short and failures log the key's fingerprint.

use std::time::Duration;

use libp2p::core::transport::upgrade::Version;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    StreamProtocol, Swarm, SwarmBuilder, Transport, allow_block_list, connection_limits, gossipsub,
    identify, noise, request_response, tcp, yamux,
};
use sha2::{Digest as _, Sha256};

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
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) gossip: gossipsub::Behaviour,
    pub(crate) sync: request_response::cbor::Behaviour<Request, Response>,
}

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// Builds the swarm (not yet listening).
pub(crate) fn build(config: &P2pConfig) -> Result<Swarm<Behaviour>, P2pError> {
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
        .max_transmit_size(wire::MAX_GOSSIP_BYTES)
        .heartbeat_interval(Duration::from_millis(700))
        .build()
        .map_err(|e| P2pError::Build(format!("gossipsub: {e}")))?;
    let sync_config = request_response::Config::default()
        .with_request_timeout(Duration::from_secs(30))
        .with_max_concurrent_streams(64);
    let codec = request_response::cbor::codec::Codec::<Request, Response>::default()
        .set_request_size_maximum(wire::MAX_REQUEST_BYTES)
        .set_response_size_maximum(wire::MAX_RESPONSE_BYTES);
    let swarm = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_other_transport(move |k| -> Result<_, BoxErr> {
            Ok(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .and_then(move |sock, _| PnetConfig::new(key).handshake(sock))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise::Config::new(k)?)
                    .multiplex(yamux::Config::default()),
            )
        })
        .map_err(|e| P2pError::Build(format!("transport: {e}")))?
        .with_behaviour(|k| -> Result<Behaviour, BoxErr> {
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                blocked: Default::default(),
                identify: identify::Behaviour::new(
                    identify::Config::new(wire::IDENTIFY_VERSION.into(), k.public())
                        .with_agent_version(format!("lf/{}", env!("CARGO_PKG_VERSION"))),
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
