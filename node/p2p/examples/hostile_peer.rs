//! A hostile peer for the cluster tests (`tests/tests/cluster_p2p.rs`): it holds the
//! network key, so it gets through pnet, Noise and Yamux like any node, then misbehaves
//! in one way and reports whether the node it dialed threw it out.
//!
//! ```text
//! hostile_peer <network id, 64 hex digits> <node multiaddr> <attack> [seconds]
//! ```
//!
//! Attacks: `garbage-gossip` (an undecodable announcement), `garbage-request` (random
//! bytes on the sync protocol), `oversized-request` (a request over the size limit),
//! `forged` (announces records whose signatures are broken, then serves them),
//! `oversized-record` (serves a record over the format's size limit), `silent`
//! (announces records and never answers: must not stall the node).
//!
//! Prints `peer <id>` once connected, then `disconnected after <ms> ms` when the node
//! closes the connection, or `still connected` after `seconds` (default 15); exit code 0
//! either way (the test decides), 2 on usage or connection errors.

use std::io;
use std::time::{Duration, Instant};

use lf_p2p::transport::psk;
use lf_p2p::wire::{self, Request, Response};
use lf_record::{OwnerSecret, RecordBuilder, RecordHash, RecordType};
use libp2p::core::transport::upgrade::Version;
use libp2p::futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, StreamExt};
use libp2p::pnet::PnetConfig;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, StreamProtocol, SwarmBuilder, Transport, gossipsub, noise, request_response, tcp,
    yamux,
};

/// Request-response codec that moves raw bytes, so the hostile peer can send anything.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut v = Vec::new();
        io.take(16 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&res).await?;
        io.close().await
    }
}

#[derive(NetworkBehaviour)]
struct Hostile {
    gossip: gossipsub::Behaviour,
    sync: request_response::Behaviour<RawCodec>,
}

fn usage() -> ! {
    eprintln!("usage: hostile_peer <network id hex> <multiaddr> <attack> [seconds]");
    std::process::exit(2)
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), v).expect("encodable")
}

/// A record whose signature is broken (its hash is that of the broken bytes).
fn forged(i: u64) -> (RecordHash, Vec<u8>) {
    let mut n = i as u8;
    let owner = OwnerSecret::generate(|b| {
        n = n.wrapping_add(17);
        b.iter_mut()
            .enumerate()
            .for_each(|(j, x)| *x = n ^ (j as u8).wrapping_mul(13) ^ 0x5a);
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let r = RecordBuilder::new(RecordType::Datum, now)
        .value(format!("forged {i}").into_bytes())
        .links(vec![RecordHash([1; 32]), RecordHash([2; 32])])
        .selector(format!("forged{i}").as_bytes(), 0)
        .build(&owner.public())
        .and_then(|u| u.sign_without_work(&owner))
        .expect("record");
    let mut b = r.to_bytes().to_vec();
    let len = b.len();
    b[len - 10] ^= 0x55;
    (RecordHash(sha2_digest(&b)), b)
}

fn sha2_digest(b: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).into()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        usage();
    }
    let mut id = [0u8; 32];
    if args[1].len() != 64 {
        usage();
    }
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&args[1][2 * i..2 * i + 2], 16).unwrap_or_else(|_| usage());
    }
    let target: Multiaddr = args[2].parse().unwrap_or_else(|_| usage());
    let attack = args[3].clone();
    let wait = Duration::from_secs(args.get(4).and_then(|s| s.parse().ok()).unwrap_or(15));

    let key = psk(&id);
    type BoxErr = Box<dyn std::error::Error + Send + Sync>;
    let mut swarm = SwarmBuilder::with_new_identity()
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
        .expect("transport")
        .with_behaviour(|k| -> Result<Hostile, BoxErr> {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Permissive)
                .max_transmit_size(1 << 20)
                .build()?;
            Ok(Hostile {
                gossip: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(k.clone()),
                    config,
                )?,
                sync: request_response::Behaviour::with_codec(
                    RawCodec,
                    [(
                        StreamProtocol::new(wire::SYNC_PROTOCOL),
                        request_response::ProtocolSupport::Full,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(60)),
                ),
            })
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    let topic = gossipsub::IdentTopic::new(wire::TOPIC);
    swarm
        .behaviour_mut()
        .gossip
        .subscribe(&topic)
        .expect("subscribe");
    swarm.dial(target).expect("dial");

    let records: Vec<(RecordHash, Vec<u8>)> = (0..4).map(forged).collect();
    let mut connected_at: Option<Instant> = None;
    let mut attacked = false;
    // The silent peer keeps every request open (a dropped channel closes the stream).
    let mut held = Vec::new();
    let deadline = tokio::time::Instant::now() + wait + Duration::from_secs(10);
    loop {
        let ev = match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(ev) => ev,
            Err(_) => {
                if connected_at.is_some() {
                    println!("still connected");
                    return;
                }
                eprintln!("never connected");
                std::process::exit(2);
            }
        };
        if let Some(t) = connected_at
            && t.elapsed() > wait
        {
            println!("still connected");
            return;
        }
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                connected_at = Some(Instant::now());
                println!("peer {}", swarm.local_peer_id());
                let s = &mut swarm.behaviour_mut().sync;
                match attack.as_str() {
                    "garbage-request" => {
                        s.send_request(&peer_id, b"\xff\xfe garbage, not CBOR".to_vec());
                        attacked = true;
                    }
                    "oversized-request" => {
                        let big = vec![0x41u8; wire::MAX_REQUEST_BYTES as usize * 2];
                        s.send_request(&peer_id, big);
                        attacked = true;
                    }
                    _ => {}
                }
            }
            SwarmEvent::Behaviour(HostileEvent::Gossip(gossipsub::Event::Subscribed {
                ..
            })) if !attacked => {
                attacked = true;
                let g = &mut swarm.behaviour_mut().gossip;
                let r = match attack.as_str() {
                    "garbage-gossip" => g.publish(topic.clone(), b"\x9f\xff garbage".to_vec()),
                    "forged" | "silent" => {
                        let hashes: Vec<RecordHash> = records.iter().map(|r| r.0).collect();
                        // One announcement per record: each is judged on its own.
                        let mut last = Ok(gossipsub::MessageId::new(b""));
                        for h in &hashes {
                            last = g.publish(topic.clone(), wire::encode_announce(&[*h]));
                        }
                        last
                    }
                    "oversized-record" => {
                        g.publish(topic.clone(), wire::encode_announce(&[RecordHash([9; 32])]))
                    }
                    _ => Ok(gossipsub::MessageId::new(b"")),
                };
                if let Err(e) = r {
                    eprintln!("publish failed: {e}");
                }
            }
            SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        channel, request, ..
                    },
                ..
            })) => {
                let resp = match (
                    attack.as_str(),
                    cbor4ii::serde::from_slice::<Request>(&request),
                ) {
                    ("silent", _) => {
                        held.push(channel);
                        continue;
                    }
                    ("forged", Ok(Request::Get(list))) => {
                        let want = list.decode(wire::MAX_GET).unwrap_or_default();
                        let recs = records
                            .iter()
                            .filter(|r| want.contains(&r.0))
                            .map(|r| serde_bytes::ByteBuf::from(r.1.clone()))
                            .collect();
                        cbor(&Response::Records(recs))
                    }
                    ("oversized-record", Ok(Request::Get(_))) => {
                        cbor(&Response::Records(vec![serde_bytes::ByteBuf::from(
                            vec![7u8; wire::MAX_RECORD_SIZE + 100],
                        )]))
                    }
                    (_, Ok(Request::Digests { count, group, .. })) => {
                        // Claim nothing: digests of empty buckets.
                        let n = (count as usize).div_ceil(group.max(1) as usize);
                        cbor(&Response::Digests(vec![0u8; 36 * n]))
                    }
                    (_, Ok(Request::Peers)) => cbor(&Response::Peers(vec![])),
                    _ => cbor(&Response::Hashes(wire::HashList::default())),
                };
                let _ = swarm.behaviour_mut().sync.send_response(channel, resp);
            }
            SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            } => {
                if let Some(t) = connected_at {
                    println!("disconnected after {} ms", t.elapsed().as_millis());
                    return;
                }
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                eprintln!("cannot connect: {error}");
                std::process::exit(2);
            }
            _ => {}
        }
    }
}
