//! The lossy-network test: one body for every harness source, run over the in-memory
//! source by `cluster.rs` and over the real store by `cluster_store.rs`.

use std::time::{Duration, Instant};

use lf_p2p::RecordHash;
use lf_p2p::harness::{Cluster, HarnessSource, RecordMaker};

/// Three nodes in a chain over a network that drops 30% of their sync requests and
/// received gossip and delays the rest by 40 ms. Writes on every node, each linking to
/// the previous write (made on another node, so records often arrive before what they
/// link to), reach every node: `synced` says what convergence means for the source,
/// `check` then asserts what else must hold of it. A network that drops everything
/// lets nothing through; once the faults are cleared, everything arrives.
pub async fn converges_through_a_lossy_slow_network<S: HarnessSource>(
    c: Cluster<S>,
    seed: u8,
    synced: impl Fn(&Cluster<S>) -> bool,
    check: impl Fn(&Cluster<S>),
) {
    let t = Instant::now();
    c.connect_chain().await.unwrap();
    for i in 0..3 {
        c.set_drop(i, 0.3);
        c.set_delay(i, Duration::from_millis(40));
    }
    let mut makers: Vec<RecordMaker> = (0..3).map(|i| RecordMaker::new(seed + i)).collect();
    let mut last: Vec<RecordHash> = vec![];
    for round in 0..20 {
        for (i, m) in makers.iter_mut().enumerate() {
            let r = m.record(&format!("lossy{round}-{i}"), "v", &last);
            last = vec![r.hash()];
            c.write(i, &r);
        }
    }
    let lens = |c: &Cluster<S>| c.nodes.iter().map(|n| n.source.len()).collect::<Vec<_>>();
    assert!(
        c.wait(Duration::from_secs(40), || synced(&c)).await,
        "no convergence through the lossy network: {:?}",
        lens(&c)
    );
    assert_eq!(lens(&c), vec![60; 3]);
    check(&c);
    // The network really was lossy and slow.
    let dropped: u64 = c.nodes.iter().map(|n| n.faults.dropped()).sum();
    let delayed: u64 = c.nodes.iter().map(|n| n.faults.delayed()).sum();
    assert!(
        dropped > 0 && delayed > 0,
        "dropped {dropped}, delayed {delayed}"
    );
    eprintln!(
        "60 records through a lossy network in {:?} ({dropped} dropped, {delayed} delayed)",
        t.elapsed()
    );
    // Fully lossy: nothing gets through; cleared: everything does.
    for i in 0..3 {
        c.set_drop(i, 1.0);
    }
    let r = makers[0].record("after", "v", &last);
    c.write(0, &r);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !c.nodes[2].source.has(&r.hash()),
        "a record crossed a dead network"
    );
    c.clear_faults();
    assert!(c.wait(Duration::from_secs(20), || synced(&c)).await);
    assert!(c.nodes[2].source.has(&r.hash()));
    c.shutdown().await;
}
