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
//! (announces records and never answers: must not stall the node), `limbo` (on an
//! `auth_required` network: announces and serves, every [`FLOOD_EVERY`], a batch of
//! [`FLOOD_BATCH`] validly signed records of fresh uncertified owners, which can only
//! wait in the node's limbo for certificates that never come).
//!
//! Prints `peer <id>` once connected, then `disconnected after <ms> ms` when the node
//! closes the connection, or `still connected` after `seconds` (default 15); the limbo
//! flood also prints `flooded <records> served <records>` at the end. Exit code 0
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

/// Records announced per batch of the limbo flood.
const FLOOD_BATCH: usize = 128;
/// Pause between two batches of the limbo flood.
const FLOOD_EVERY: Duration = Duration::from_millis(100);
/// Records of the limbo flood kept to be served (the oldest are forgotten).
const FLOOD_KEPT: usize = 16_384;

/// A batch of the limbo flood, records `first..first + FLOOD_BATCH`: validly signed,
/// unpaid, without selectors (each would cost a key derivation and a signature more),
/// a fresh owner per 16 records (drawn from the process id, the time and the
/// index, so that runs differ). Made on a thread of its own, so that signing never
/// keeps the swarm from answering (a peer that does not answer is cut as dead).
fn flood_batch(first: u64) -> Vec<(RecordHash, Vec<u8>)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut owner: Option<OwnerSecret> = None;
    (first..first + FLOOD_BATCH as u64)
        .map(|i| {
            if i % 16 == 0 || owner.is_none() {
                let mut n = 0u64;
                owner = Some(OwnerSecret::generate(|b| {
                    n += 1;
                    let seed = format!("{} {} {i} {n}", std::process::id(), now.as_nanos());
                    let first = sha2_digest(seed.as_bytes());
                    b[..32].copy_from_slice(&first);
                    b[32..].copy_from_slice(&sha2_digest(&first)[..16]);
                }));
            }
            let owner = owner.as_ref().expect("owner");
            let r = RecordBuilder::new(RecordType::Datum, now.as_secs())
                .value(format!("limbo flood {i}").into_bytes())
                .links(vec![RecordHash([1; 32]), RecordHash([2; 32])])
                .build(&owner.public())
                .and_then(|u| u.sign_without_work(owner))
                .expect("record");
            let b = r.to_bytes().to_vec();
            (RecordHash(sha2_digest(&b)), b)
        })
        .collect()
}

/// The limbo flood's records made so far, the latest [`FLOOD_KEPT`] kept to be served.
#[derive(Default)]
struct Flood {
    made: u64,
    served: u64,
    records: std::collections::HashMap<RecordHash, Vec<u8>>,
    order: std::collections::VecDeque<RecordHash>,
}

impl Flood {
    /// Takes a batch in; returns its hashes.
    fn add(&mut self, batch: Vec<(RecordHash, Vec<u8>)>) -> Vec<RecordHash> {
        let mut hashes = Vec::with_capacity(batch.len());
        for (h, b) in batch {
            self.made += 1;
            self.records.insert(h, b);
            self.order.push_back(h);
            hashes.push(h);
        }
        while self.order.len() > FLOOD_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.records.remove(&old);
            }
        }
        hashes
    }

    /// A page of the flood in "storage order" (record `i` at position `i + 1`), as a
    /// node that follows this peer asks for it.
    fn stored(&self, after: u64, limit: u16) -> Response {
        let made = self.made;
        if after == u64::MAX {
            return Response::Stored {
                hashes: wire::HashList::default(),
                next: made,
            };
        }
        let base = made - self.order.len() as u64;
        let from = after.max(base);
        let page: Vec<RecordHash> = self
            .order
            .iter()
            .skip((from - base) as usize)
            .take(usize::from(limit).min(wire::MAX_HASH_PAGE))
            .copied()
            .collect();
        Response::Stored {
            hashes: wire::HashList::new(&page),
            next: if page.is_empty() {
                after
            } else {
                from + page.len() as u64
            },
        }
    }

    fn serve(&mut self, want: &[RecordHash]) -> Vec<serde_bytes::ByteBuf> {
        let out: Vec<_> = want
            .iter()
            .filter_map(|h| self.records.get(h))
            .map(|b| serde_bytes::ByteBuf::from(b.clone()))
            .collect();
        self.served += out.len() as u64;
        out
    }
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
    let mut flood = Flood::default();
    let flooding = attack == "limbo";
    let (batches_tx, mut batches) = tokio::sync::mpsc::channel(2);
    if flooding {
        std::thread::spawn(move || {
            let mut first = 0;
            while batches_tx.blocking_send(flood_batch(first)).is_ok() {
                first += FLOOD_BATCH as u64;
                std::thread::sleep(FLOOD_EVERY);
            }
        });
    }
    let deadline = tokio::time::Instant::now() + wait + Duration::from_secs(10);
    let report = |flood: &Flood| {
        if flooding {
            println!("flooded {} served {}", flood.made, flood.served);
        }
    };
    loop {
        let next = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                ev = swarm.select_next_some() => Ok(ev),
                Some(batch) = batches.recv(), if flooding && attacked => Err(batch),
            }
        });
        let ev = match next.await {
            Ok(Ok(ev)) => ev,
            Ok(Err(batch)) => {
                let hashes = flood.add(batch);
                let g = &mut swarm.behaviour_mut().gossip;
                if let Err(e) = g.publish(topic.clone(), wire::encode_announce(&hashes)) {
                    eprintln!("publish failed: {e}");
                }
                continue;
            }
            Err(_) => {
                if connected_at.is_some() {
                    report(&flood);
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
            report(&flood);
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
                    ("limbo", Ok(Request::Get(list))) => {
                        let want = list.decode(wire::MAX_GET).unwrap_or_default();
                        cbor(&Response::Records(flood.serve(&want)))
                    }
                    ("limbo", Ok(Request::Stored { after, limit })) => {
                        cbor(&flood.stored(after, limit))
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
                    report(&flood);
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
