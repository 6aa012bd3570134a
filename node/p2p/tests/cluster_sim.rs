//! The simulation toward internet scale (issue 19) at a size CI can afford: 25 real
//! nodes, random topology (each node has 8 peers or more), 5% loss on every node, and churn while
//! records are written: nodes leave and come back, restarted with their records or as
//! fresh nodes with an empty store. Every record must reach every node, the ones that
//! came back included. `examples/sim_bench.rs` runs the same at 25 to 200 nodes and
//! prints what it costs.

use std::time::Duration;

use lf_p2p::sim::{Sim, SimConfig};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sim_every_record_reaches_every_node_under_loss_and_churn() {
    init_log();
    let mut config = SimConfig::new(25);
    // A short churn window: one node leaves every 6 s (10 times the 5% per minute of
    // the bench, so a 40 s window sees several) and is away 10 s.
    config.churn_per_minute = 0.4;
    config.downtime = Duration::from_secs(10);
    let mut sim = Sim::start(config, NET).await.unwrap();
    // Each node dialed 2 at random; peer exchange fills up to the target of 8.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let degrees = sim.degrees().await;
    let mean = degrees.iter().sum::<usize>() as f64 / degrees.len() as f64;
    assert!(
        degrees.iter().all(|&d| d > 0) && mean >= 4.0,
        "the random topology is too sparse: {degrees:?}"
    );

    // 40 s of writes on random live nodes, one every 500 ms, while nodes come and go.
    for _ in 0..80 {
        sim.write();
        sim.step().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sim.stop_churn();
    let churn = sim.churn();
    assert!(
        churn.restarted >= 1 && churn.fresh >= 1,
        "the window saw too little churn to test anything: {churn:?}"
    );
    assert!(sim.dropped() > 0, "no message was lost: loss was not on");

    // Nodes still away come back when their downtime is over; then every node, the
    // restarted and fresh ones included, must hold every record.
    let delivered = sim.wait_delivered(Duration::from_secs(150)).await.unwrap();
    assert!(
        delivered,
        "after 150 s some nodes still lack records (node, how many): {:?}; churn {:?}",
        sim.missing(),
        sim.churn()
    );
    // Every record also reached every node that stayed up while it spread.
    let conv = sim.convergence();
    assert!(conv.times.iter().all(|t| t.is_some()));
    sim.shutdown().await;
}
