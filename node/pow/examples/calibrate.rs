//! Prints proof-of-work figures for the closing note and the calibration of
//! `DEFAULT_DIFFICULTY`: verify time, and the median and spread of solve times for
//! 64, 256 and 1024 billable bytes on one thread and on all threads.
//!
//! `cargo run --release -p lf-pow --example calibrate [runs]`

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use lf_pow::{DEFAULT_DIFFICULTY, SolveOptions, required_effort, solve, verify};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let cancel = AtomicBool::new(false);
    let one = SolveOptions {
        threads: 1,
        start_nonce: 0,
    };
    let w = solve(&[1; 32], 1, &one, &cancel, &|_| {}).unwrap();
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        verify(&[1; 32], &w).unwrap();
    }
    println!(
        "verify: {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("difficulty {DEFAULT_DIFFICULTY}, {runs} runs each, {cores} cores");
    println!(
        "{:>6} {:>7} {:>8} {:>22} {:>22}",
        "bytes", "effort", "threads", "median s", "min..max s"
    );
    for bytes in [64usize, 256, 1024] {
        let effort = required_effort(bytes, DEFAULT_DIFFICULTY);
        for threads in [1, cores] {
            let mut times = Vec::new();
            for r in 0..runs {
                let mut challenge = [0u8; 32];
                challenge[..8].copy_from_slice(&(r as u64 * 7919 + bytes as u64).to_le_bytes());
                let o = SolveOptions {
                    threads,
                    start_nonce: r as u64 * 1_000_000_007,
                };
                let t = Instant::now();
                solve(&challenge, effort, &o, &cancel, &|_| {}).unwrap();
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{bytes:>6} {effort:>7} {threads:>8} {:>22.2} {:>11.2}..{:<10.2}",
                times[times.len() / 2],
                times[0],
                times[times.len() - 1]
            );
        }
    }
}
