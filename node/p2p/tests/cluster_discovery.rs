//! Discovery without addresses typed in (issue 19), in process: Kademlia finds peers
//! beyond the bootstrap peers. Peer exchange is off here, and identify only tells a
//! node its neighbours' own addresses, so every peer found beyond the neighbours was
//! found by Kademlia's walks. (mDNS needs a LAN: `tests/tests/cluster_discovery.rs`
//! runs it in network namespaces.)

use std::time::{Duration, Instant};

use lf_p2p::harness::{Cluster, RecordMaker, test_config};

const NET: [u8; 32] = [19; 32];

fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

fn config(seed: u8) -> lf_p2p::P2pConfig {
    let mut c = test_config(NET, seed);
    c.peer_exchange = false;
    c.kad_walk_interval = Duration::from_secs(1);
    c
}

async fn peer_counts(c: &Cluster) -> Vec<usize> {
    let mut v = Vec::new();
    for n in &c.nodes {
        v.push(n.p2p.peers().await.len());
    }
    v
}

/// A chain of 6 nodes where node i knows only node i+1: every node ends up connected
/// to more peers than its neighbours, and a record written at one end reaches the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_kademlia_finds_peers_beyond_the_chain() {
    init_log();
    const N: usize = 6;
    // Started from the far end, so that each node's one bootstrap peer is running.
    let mut c = Cluster::start(0, NET).await.unwrap();
    for i in (0..N).rev() {
        let mut cfg = config(i as u8 + 1);
        if i + 1 < N {
            // Node i+1 was started just before: index N - 2 - i.
            cfg.bootstrap = vec![c.addr(N - 2 - i)];
        }
        c.add_node(cfg).await.unwrap();
    }
    // Cluster index j holds chain node N - 1 - j; chain ends have one neighbour.
    let neighbours = |j: usize| if j == 0 || j == N - 1 { 1 } else { 2 };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = peer_counts(&c).await;
        if (0..N).all(|j| counts[j] > neighbours(j)) {
            eprintln!("peers per node: {counts:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Kademlia found no peers beyond the chain within 60 s: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut m = RecordMaker::new(3);
    let r = m.record("end-to-end", "v", &[]);
    c.write(0, &r);
    assert!(
        c.wait_converged(Duration::from_secs(30)).await,
        "a record did not reach every node"
    );
    c.shutdown().await;
}

/// LAN discovery is off unless configured (the daemon turns it on), and the harness
/// never multicasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lan_discovery_is_off_unless_configured() {
    let c = Cluster::start(1, NET).await.unwrap();
    assert!(!c.nodes[0].p2p.lan_discovery());
    c.shutdown().await;
}
