//! The daemon side of P2P replication: the node's P2P identity (`p2p-identity.key`),
//! the peers it remembers (`peers.json`), the [`RecordSource`] over the node's store
//! (batches from peers go through `peer_batch`: verified on every core, one fsync per
//! batch), and starting and stopping the `lf-p2p` node on the daemon's runtime.

pub mod peer_batch;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use lf_p2p::{Accepted, Keypair, Multiaddr, P2pConfig, P2pNode, RecordSource, Rejected};
use lf_record::RecordHash;

use crate::common::home;
use crate::common::workers::{State, Workers};
use crate::node::Node;

/// File holding the node's libp2p key (protobuf encoding, mode 0600).
pub(crate) const IDENTITY_FILE: &str = "p2p-identity.key";
/// File remembering peers' addresses across restarts.
const PEERS_FILE: &str = "peers.json";
/// How often `peers.json` is rewritten.
const SAVE_PEERS_EVERY: Duration = Duration::from_secs(60);

/// Loads the node's P2P identity or creates it.
pub fn identity(home: &Path) -> anyhow::Result<Keypair> {
    let path = home.join(IDENTITY_FILE);
    match std::fs::read(&path) {
        Ok(b) => Keypair::from_protobuf_encoding(&b)
            .with_context(|| format!("{} is not a libp2p key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            crate::common::random::fill(&mut seed);
            let k = Keypair::ed25519_from_bytes(seed).context("cannot make a P2P key")?;
            let bytes = k
                .to_protobuf_encoding()
                .context("cannot encode the P2P key")?;
            home::write_private(&path, &bytes)?;
            Ok(k)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `peers.json`: the addresses (with `/p2p/<id>`) of peers seen.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct PeersFile {
    peers: Vec<String>,
}

fn load_peers(home: &Path) -> Vec<Multiaddr> {
    let path = home.join(PEERS_FILE);
    let Ok(b) = std::fs::read(&path) else {
        return vec![];
    };
    match serde_json::from_slice::<PeersFile>(&b) {
        Ok(f) => f.peers.iter().filter_map(|s| s.parse().ok()).collect(),
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", path.display());
            vec![]
        }
    }
}

fn save_peers(home: &Path, peers: &[Multiaddr]) {
    if peers.is_empty() {
        return;
    }
    let f = PeersFile {
        peers: peers.iter().map(|a| a.to_string()).collect(),
    };
    let path = home.join(PEERS_FILE);
    let r = serde_json::to_vec_pretty(&f)
        .map_err(anyhow::Error::from)
        .and_then(|b| home::write_private(&path, &b));
    if let Err(e) = r {
        tracing::warn!("cannot save {}: {e:#}", path.display());
    }
}

/// Parses a peer address given by an operator or a genesis record.
pub fn parse_peer(s: &str) -> anyhow::Result<Multiaddr> {
    s.trim()
        .parse::<Multiaddr>()
        .with_context(|| format!("{s:?} is not a multiaddr (e.g. /ip4/192.0.2.1/tcp/9908)"))
}

/// The node's records as the P2P layer sees them.
struct NodeSource {
    // Weak: the node owns the P2P handle, which owns this.
    node: Weak<Node>,
    /// Where batches from peers are stored, one at a time.
    lane: Arc<crate::replication::peer_batch::StoreLane>,
}

fn unavailable<T>() -> Result<T, Rejected> {
    Err(Rejected::Unavailable("the node is stopping".into()))
}

impl RecordSource for NodeSource {
    fn has(&self, hash: &RecordHash) -> bool {
        self.node
            .upgrade()
            .is_some_and(|n| n.store().contains(hash).unwrap_or(false))
    }

    fn absent(&self, hashes: Vec<RecordHash>) -> Vec<RecordHash> {
        let Some(n) = self.node.upgrade() else {
            return vec![];
        };
        match n.store().missing(&hashes) {
            Ok(m) => m,
            Err(e) => {
                // Fetching a stored record again is harmless: the store reports it.
                tracing::warn!("cannot look up records: {e}");
                hashes
            }
        }
    }

    fn get(&self, hash: &RecordHash) -> Option<Vec<u8>> {
        let n = self.node.upgrade()?;
        n.store()
            .get(hash)
            .ok()
            .flatten()
            .map(|r| r.to_bytes().to_vec())
    }

    fn accept(&self, records: &[Vec<u8>]) -> Vec<Result<Accepted, Rejected>> {
        match self.node.upgrade() {
            Some(node) => crate::replication::peer_batch::accept(&node, &self.lane, records),
            None => records.iter().map(|_| unavailable()).collect(),
        }
    }

    fn hashes_in(&self, start: &RecordHash, end: &RecordHash, limit: usize) -> Vec<RecordHash> {
        let Some(n) = self.node.upgrade() else {
            return vec![];
        };
        n.store()
            .hashes_in_range(start, end, limit)
            .unwrap_or_else(|e| {
                tracing::error!("cannot list hashes: {e}");
                vec![]
            })
    }

    fn wanted(&self, limit: usize) -> Vec<RecordHash> {
        let Some(n) = self.node.upgrade() else {
            return vec![];
        };
        n.store().wanted(limit).unwrap_or_default()
    }

    fn hashes_stored_after(&self, after: u64, limit: usize) -> (Vec<RecordHash>, u64) {
        let Some(n) = self.node.upgrade() else {
            return (vec![], after);
        };
        n.store()
            .hashes_after_seq(after, limit)
            .unwrap_or_else(|e| {
                tracing::error!("cannot list hashes: {e}");
                (vec![], after)
            })
    }

    fn stored_tail(&self) -> Option<u64> {
        let n = self.node.upgrade()?;
        n.store()
            .last_seq()
            .map_err(|e| tracing::error!("cannot read the store's last position: {e}"))
            .ok()
    }
}

/// The running replication: stop it with [`Replication::stop`].
pub struct Replication {
    p2p: P2pNode,
    home: PathBuf,
    workers: Workers,
}

/// The worker that saves `peers.json` every [`SAVE_PEERS_EVERY`].
const PEERS_SAVER: &str = "peers-saver";

/// What `lf node-start` says about P2P.
pub struct P2pOptions {
    /// Home directory (`p2p-identity.key`, `peers.json`).
    pub home: PathBuf,
    /// `-p2p`: the port.
    pub port: u16,
    /// `-p2p-bind`: the address.
    pub bind: IpAddr,
    /// Peers to dial (multiaddrs from `-peer`).
    pub peers: Vec<String>,
    /// Connection limits: (inbound, outbound).
    pub max_connections: (u32, u32),
    /// `-allow-private-peers`: peer exchange may dial private and loopback addresses.
    pub allow_private_peers: bool,
    /// `-mdns` (`Some(true)`), `-no-mdns` (`Some(false)`), or neither.
    pub mdns: Option<bool>,
}

/// Whether the node looks for peers on its LAN (mDNS): as the operator said
/// (`-mdns`, `-no-mdns`), else on a private network unless its genesis says
/// `mdns: false`. A private network is any network but the embedded default one (made
/// with `lf makegenesis`, its `genesis.lf` in the home): the default network is public,
/// its nodes are on the internet, and announcing them on every LAN they sit on would
/// tell the LAN about them for nothing.
pub fn lan_discovery(flag: Option<bool>, config: &lf_record::NetworkConfig, private: bool) -> bool {
    flag.unwrap_or(private && config.mdns)
}

/// Whether `config` is a private network (see [`lan_discovery`]).
fn is_private(config: &lf_record::NetworkConfig) -> bool {
    crate::common::network::default_network().map_or(true, |(d, _)| d.id != config.id)
}

/// Starts P2P on the current runtime: listens on `-p2p-bind`:`-p2p`, dials the genesis
/// bootstrap peers, the `-peer` flags and `peers.json`, and hooks local writes.
pub async fn start(
    node: Arc<Node>,
    opts: &P2pOptions,
    workers: &Workers,
) -> anyhow::Result<Replication> {
    let keypair = identity(&opts.home)?;
    let mut config = P2pConfig::new(node.config().id.0, keypair);
    let ip = match opts.bind {
        IpAddr::V4(a) => format!("/ip4/{a}"),
        IpAddr::V6(a) => format!("/ip6/{a}"),
    };
    (config.max_inbound, config.max_outbound) = opts.max_connections;
    config.allow_private_peers = opts.allow_private_peers;
    config.mdns = lan_discovery(opts.mdns, &node.config(), is_private(&node.config()));
    config.listen = vec![parse_peer(&format!("{ip}/tcp/{}", opts.port))?];
    let mut bootstrap = Vec::new();
    for p in &node.config().bootstrap_peers {
        match parse_peer(p) {
            Ok(a) => bootstrap.push(a),
            Err(e) => tracing::warn!("genesis bootstrap peer ignored: {e:#}"),
        }
    }
    for p in &opts.peers {
        bootstrap.push(parse_peer(p)?);
    }
    bootstrap.extend(load_peers(&opts.home));
    // The same address may come from the genesis, -peer and peers.json at once.
    let mut seen = std::collections::HashSet::new();
    bootstrap.retain(|a| seen.insert(a.clone()));
    config.bootstrap = bootstrap;
    let source = Arc::new(NodeSource {
        node: Arc::downgrade(&node),
        lane: Arc::default(),
    });
    let p2p = P2pNode::start(config, source)
        .await
        .context("cannot start P2P")?;
    {
        let p2p = p2p.clone();
        let home = opts.home.clone();
        workers.spawn_task(
            &tokio::runtime::Handle::current(),
            PEERS_SAVER,
            |ctx| async move {
                loop {
                    tokio::select! {
                        _ = ctx.stopped() => return Ok(()),
                        _ = tokio::time::sleep(SAVE_PEERS_EVERY) => {}
                    }
                    ctx.set_state(State::Busy);
                    let peers = p2p.known_peers().await;
                    let h = home.clone();
                    let _ = tokio::task::spawn_blocking(move || save_peers(&h, &peers)).await;
                    ctx.set_state(State::Idle);
                }
            },
        );
    }
    Ok(Replication {
        p2p,
        home: opts.home.clone(),
        workers: workers.clone(),
    })
}

impl Replication {
    /// The running P2P node (status, `/connect`).
    pub fn p2p(&self) -> &P2pNode {
        &self.p2p
    }

    /// Saves `peers.json` and stops the P2P node.
    pub async fn stop(self) {
        tracing::info!("shutting down: stopping P2P");
        let workers = self.workers.clone();
        let _ = tokio::task::spawn_blocking(move || {
            workers.stop(&[PEERS_SAVER], std::time::Duration::from_secs(5))
        })
        .await;
        let peers = self.p2p.known_peers().await;
        save_peers(&self.home, &peers);
        self.p2p.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_stable_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let a = identity(d.path()).unwrap();
        let b = identity(d.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        let mode = std::fs::metadata(d.path().join(IDENTITY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn lan_discovery_is_on_for_private_networks_unless_turned_off() {
        let (default, _) = crate::common::network::default_network().unwrap();
        assert!(!is_private(&default));
        assert!(
            !lan_discovery(None, &default, false),
            "not on the public network"
        );
        assert!(lan_discovery(Some(true), &default, false), "-mdns");
        let mut private = default.clone();
        private.id = lf_record::NetworkId([7; 32]);
        assert!(is_private(&private));
        assert!(lan_discovery(None, &private, true), "on by default");
        assert!(!lan_discovery(Some(false), &private, true), "-no-mdns");
        private.mdns = false;
        assert!(!lan_discovery(None, &private, true), "genesis mdns: false");
        assert!(lan_discovery(Some(true), &private, true), "-mdns wins");
    }

    #[test]
    fn peers_file_round_trips() {
        let d = tempfile::tempdir().unwrap();
        assert!(load_peers(d.path()).is_empty());
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/9908".parse().unwrap();
        save_peers(d.path(), std::slice::from_ref(&a));
        assert_eq!(load_peers(d.path()), vec![a]);
        assert!(parse_peer("not an address").is_err());
    }
}
