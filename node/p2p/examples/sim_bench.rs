//! Client side of `contrib/bench/sim.sh`: the simulation toward internet scale
//! (`lf_p2p::sim`) at one size, in a process of its own (so its RSS is the size's).
//!
//! ```text
//! sim_bench NODES [WRITE_SECONDS]
//! ```
//!
//! NODES real P2P nodes over loopback TCP in this process (2 tokio workers), each
//! dialing 2 random others, then peers it learns of up to its target of 8 (inbound
//! connections come on top: mean degree 11 to 13), 5% loss on every node, production intervals (reconciliation every 30 s,
//! following every 500 ms). Phases:
//!
//! 1. start and connect; 10 s to settle. Memory per node = (RSS now − RSS before the
//!    first node) / NODES.
//! 2. idle, 20 s: traffic per node per second with no new records (the baseline:
//!    gossipsub heartbeats, follow polls, reconciliation).
//! 3. writes, WRITE_SECONDS (default 60), two records (~360 bytes) per second on random
//!    nodes. Per record per node: (traffic in this phase − the idle baseline for as
//!    long) / records / nodes, in bytes, socket writes and sync messages, and bytes
//!    over the record's own size. No churn in phases 2 and 3: a node's restart moves
//!    more bytes than dozens of records, and would be counted as theirs.
//! 4. churn, 90 s: 5% of the nodes leave per minute (each away 20 s, back alternately
//!    restarted with its records and fresh with a new identity and an empty store),
//!    one record per second.
//! 5. churn stops, nodes away come back; time until every node holds every record.
//!
//! Convergence of a record: from its write until every node that was up (with the
//! same store) from the write until the record arrived holds it, over the records of
//! phases 3 and 4. Catch-up: from a node's return until it holds every record written
//! before. Prints one line of `key=value` figures on stdout (for sim.sh) after a
//! readable report on stderr.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lf_p2p::faults::TrafficCounts;
use lf_p2p::sim::{Sim, SimConfig};

const NET: [u8; 32] = [0x19; 32];

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds this process used (user + system), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs churn while waiting `d`.
async fn run_for(sim: &mut Sim, d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        sim.step().await.map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn run(nodes: usize, write_secs: u64) -> Result<(), String> {
    // How late 100 ms timers fire: the runtime's own view of CPU saturation.
    let lag_max_us = Arc::new(AtomicU64::new(0));
    {
        let lag = lag_max_us.clone();
        tokio::spawn(async move {
            loop {
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(100)).await;
                let late = t.elapsed().saturating_sub(Duration::from_millis(100));
                lag.fetch_max(late.as_micros() as u64, Ordering::Relaxed);
            }
        });
    }
    let rss0 = status_kib("VmRSS:");
    let t0 = Instant::now();
    let mut config = SimConfig::new(nodes);
    config.churn_per_minute = 0.0;
    let mut sim = Sim::start(config, NET).await.map_err(|e| e.to_string())?;
    let started_in = t0.elapsed();
    run_for(&mut sim, Duration::from_secs(10)).await?;
    let degrees = sim.degrees().await;
    let degree = degrees.iter().sum::<usize>() as f64 / degrees.len().max(1) as f64;
    let rss1 = status_kib("VmRSS:");
    let mem_per_node_kib = rss1.saturating_sub(rss0) as f64 / nodes as f64;

    let idle_secs = 20.0;
    let (tr0, cpu0) = (sim.traffic(), cpu_seconds());
    lag_max_us.store(0, Ordering::Relaxed);
    run_for(&mut sim, Duration::from_secs_f64(idle_secs)).await?;
    let (idle, cpu1) = (sim.traffic() - tr0, cpu_seconds());
    let idle_lag_ms = lag_max_us.load(Ordering::Relaxed) as f64 / 1000.0;
    let idle_cpu = (cpu1 - cpu0) / idle_secs;

    let tr1 = sim.traffic();
    let cpu2 = cpu_seconds();
    let t_write = Instant::now();
    lag_max_us.store(0, Ordering::Relaxed);
    for _ in 0..write_secs * 2 {
        sim.write();
        run_for(&mut sim, Duration::from_millis(500)).await?;
    }
    let write_secs_f = t_write.elapsed().as_secs_f64();
    let writes = sim.traffic() - tr1;
    let measured_records = sim.written().len() as f64;
    let write_cpu = (cpu_seconds() - cpu2) / write_secs_f;
    let write_lag_ms = lag_max_us.load(Ordering::Relaxed) as f64 / 1000.0;

    sim.start_churn(0.05);
    for _ in 0..90 {
        sim.write();
        run_for(&mut sim, Duration::from_secs(1)).await?;
    }

    sim.stop_churn();
    let t_heal = Instant::now();
    let delivered = sim
        .wait_delivered(Duration::from_secs(300))
        .await
        .map_err(|e| e.to_string())?;
    let all_in = t_heal.elapsed();
    let rss2 = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");

    let records = sim.written().len() as f64;
    let record_bytes = sim.written().iter().map(|w| w.2).sum::<usize>() as f64 / records;
    let conv = sim.convergence();
    let mut times: Vec<f64> = conv
        .times
        .iter()
        .flatten()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    let unconverged = conv.times.iter().filter(|t| t.is_none()).count();
    let churn = sim.churn();
    let dropped = sim.dropped();
    let mut catch_up: Vec<f64> = sim
        .catch_up_times()
        .iter()
        .flatten()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    catch_up.sort_by(f64::total_cmp);

    // Per record per node: the write phase's traffic over the idle baseline.
    let scale = write_secs_f / idle_secs;
    let extra = |w: u64, i: u64| (w as f64 - i as f64 * scale) / measured_records / nodes as f64;
    let per = |f: fn(&TrafficCounts) -> u64| extra(f(&writes), f(&idle));
    let bytes_rec = per(|t| t.bytes_sent);
    let sock_writes_rec = per(|t| t.writes);
    let msgs_rec = per(|t| t.requests_sent + t.responses_sent);
    let idle_bps = idle.bytes_sent as f64 / idle_secs / nodes as f64;
    let idle_msgs = (idle.requests_sent + idle.responses_sent) as f64 / idle_secs / nodes as f64;

    eprintln!(
        "{nodes} nodes (started and connected in {started_in:.1?}), mean degree {degree:.1}, \
         {} records of {record_bytes:.0} B, churn {churn:?}, {dropped} messages lost",
        records
    );
    eprintln!(
        "convergence ms p50 {:.0} p95 {:.0} max {:.0} ({unconverged} not converged); \
         every node holds every record {:.1?} after churn stopped ({}); catch-up after \
         a return ms p50 {:.0} max {:.0} ({} returns)",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        percentile(&times, 1.0),
        all_in,
        if delivered { "yes" } else { "NO" },
        percentile(&catch_up, 0.5),
        percentile(&catch_up, 1.0),
        catch_up.len()
    );
    eprintln!(
        "per record per node: {bytes_rec:.0} B sent ({:.1}x the record), {sock_writes_rec:.1} \
         socket writes, {msgs_rec:.2} sync messages; idle per node: {idle_bps:.0} B/s, \
         {idle_msgs:.1} sync messages/s",
        bytes_rec / record_bytes
    );
    eprintln!(
        "memory per node {:.0} KiB (RSS {} -> {} -> {} KiB, peak {} KiB); CPU {:.2} cores idle, \
         {:.2} writing; timer lag max {idle_lag_ms:.0} / {write_lag_ms:.0} ms",
        mem_per_node_kib, rss0, rss1, rss2, hwm, idle_cpu, write_cpu
    );
    println!(
        "nodes={nodes} degree={degree:.1} records={records} record_bytes={record_bytes:.0} \
         conv_p50_ms={:.0} conv_p95_ms={:.0} conv_max_ms={:.0} unconverged={unconverged} \
         delivered={delivered} all_in_s={:.1} bytes_per_rec_node={bytes_rec:.0} \
         overhead_x={:.1} writes_per_rec_node={sock_writes_rec:.1} \
         msgs_per_rec_node={msgs_rec:.2} idle_bps_node={idle_bps:.0} \
         idle_msgs_node={idle_msgs:.1} mem_kib_node={mem_per_node_kib:.0} \
         rss_end_mib={:.0} cpu_idle={idle_cpu:.2} cpu_write={write_cpu:.2} \
         lag_ms={write_lag_ms:.0} left={} restarted={} fresh={} catchup_p50_ms={:.0} \
         catchup_max_ms={:.0}",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        percentile(&times, 1.0),
        all_in.as_secs_f64(),
        bytes_rec / record_bytes,
        rss2 as f64 / 1024.0,
        churn.left,
        churn.restarted,
        churn.fresh,
        percentile(&catch_up, 0.5),
        percentile(&catch_up, 1.0)
    );
    let missing = sim.missing();
    sim.shutdown().await;
    if delivered {
        Ok(())
    } else {
        Err(format!(
            "not every record reached every node (node, records lacking): {missing:?}"
        ))
    }
}

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(nodes) = args.first().and_then(|a| a.parse::<usize>().ok()) else {
        eprintln!("usage: sim_bench NODES [WRITE_SECONDS]");
        return ExitCode::from(2);
    };
    let write_secs = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(60);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sim_bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(nodes, write_secs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sim_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
