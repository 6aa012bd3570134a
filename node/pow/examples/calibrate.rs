//! Measures proof of work on this machine, for the crate docs and the calibration of
//! `DEFAULT_DIFFICULTY`:
//!
//! 1. Equi-X itself: time per challenge (compiled, on one thread and on every core;
//!    interpreted), solutions per challenge, programs HashX rejects.
//! 2. Verification with each HashX runtime, on one thread and on every core at once,
//!    then `lf_pow::verify`.
//! 3. Solve time (median, min, max over `runs` runs) for 64, 256 and 1024 billable
//!    bytes at `DEFAULT_DIFFICULTY`, on one thread and on every core, next to the mean
//!    the model predicts; and the difficulty that would make a 256-byte record take
//!    1.5 s on one core.
//!
//! One-thread figures are also given in CPU time of the measuring thread (from
//! `/proc/thread-self/schedstat`), which other processes on a shared machine disturb
//! much less than wall time; the model uses it when available.
//!
//! `cargo run --release -p lf-pow --example calibrate [runs] [challenges]`
//! (defaults 5 and 500; about two minutes on 2 cores).

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use equix::{EquiXBuilder, RuntimeOption, Solution, SolutionByteArray, SolverMemory};
use lf_pow::{
    DEFAULT_DIFFICULTY, SolveOptions, Work, cost, expected_challenges, required_effort, solve,
    verify,
};

/// Seconds for one 256-byte record on one core that `DEFAULT_DIFFICULTY` aims at.
const TARGET_256_SECONDS: f64 = 1.5;

/// Wall and CPU time of the current thread since it was started.
struct Timer {
    wall: Instant,
    cpu: Option<f64>,
}

impl Timer {
    fn start() -> Timer {
        Timer {
            wall: Instant::now(),
            cpu: thread_cpu_seconds(),
        }
    }

    /// (wall, CPU) seconds; CPU is NaN where the kernel does not say.
    fn stop(&self) -> (f64, f64) {
        let cpu = match (self.cpu, thread_cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        (self.wall.elapsed().as_secs_f64(), cpu)
    }
}

/// CPU time this thread has run, from the first field of its schedstat (ns; the kernel
/// updates it at least every scheduler tick, so it is good for spans of 0.1 s and up).
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let runs = args.next().flatten().unwrap_or(5).max(1);
    let challenges = args.next().flatten().unwrap_or(500).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // 1. Equi-X challenges.
    let mut builder = EquiXBuilder::new();
    builder.runtime(RuntimeOption::CompileOnly);
    let mut memory = SolverMemory::new();
    let mut per_count = [0u64; 9];
    let mut rejected = 0;
    let mut pairs: Vec<([u8; 32], SolutionByteArray)> = Vec::new();
    let t = Timer::start();
    for i in 0..challenges {
        let mut c = [0u8; 32];
        c[..8].copy_from_slice(&(i as u64).to_le_bytes());
        match builder.build(&c) {
            Err(_) => rejected += 1,
            Ok(equix) => {
                let solutions = equix.solve_with_memory(&mut memory);
                per_count[solutions.len()] += 1;
                pairs.extend(solutions.iter().map(|s| (c, s.to_bytes())));
            }
        }
    }
    let (wall, cpu) = t.stop();
    let n = challenges as f64;
    let per_challenge = if cpu.is_nan() { wall / n } else { cpu / n };
    let lambda = pairs.len() as f64 / (challenges - rejected) as f64;
    println!("equi-x, {challenges} challenges:");
    println!(
        "  compiled, 1 thread: {:.2} ms per challenge (cpu {:.2} ms)",
        wall * 1e3 / n,
        cpu * 1e3 / n
    );
    let t = Instant::now();
    std::thread::scope(|s| {
        for t in 0..cores {
            s.spawn(move || {
                let mut builder = EquiXBuilder::new();
                builder.runtime(RuntimeOption::CompileOnly);
                let mut memory = SolverMemory::new();
                for i in (t..challenges).step_by(cores) {
                    if let Ok(equix) = builder.build(&(i as u64).to_le_bytes()) {
                        equix.solve_with_memory(&mut memory);
                    }
                }
            });
        }
    });
    println!(
        "  compiled, {cores} threads: {:.2} ms per challenge per thread",
        t.elapsed().as_secs_f64() * 1e3 * cores as f64 / n
    );
    let mut interpreter = EquiXBuilder::new();
    interpreter.runtime(RuntimeOption::InterpretOnly);
    let t = Timer::start();
    let k = 3;
    for i in 0..k {
        if let Ok(equix) = interpreter.build(&[i as u8; 32]) {
            equix.solve_with_memory(&mut memory);
        }
    }
    let (wall, cpu) = t.stop();
    println!(
        "  interpreted, 1 thread: {:.0} ms per challenge (cpu {:.0} ms)",
        wall * 1e3 / k as f64,
        cpu * 1e3 / k as f64
    );
    println!("  {lambda:.3} solutions per challenge; challenges by count 0..=8: {per_count:?}");
    println!("  {rejected} programs rejected by hashx");

    // 2. Verification: Equi-X alone per runtime, then lf_pow::verify.
    println!(
        "verification of {} solutions, µs per verify per thread:",
        pairs.len()
    );
    for runtime in [
        RuntimeOption::InterpretOnly,
        RuntimeOption::CompileOnly,
        RuntimeOption::TryCompile,
    ] {
        let (wall, cpu) = verify_rate(&pairs, runtime, 1);
        let (all, _) = verify_rate(&pairs, runtime, cores);
        println!(
            "  {:<14} 1 thread {wall:6.1} (cpu {cpu:5.1}, {:6.0}/s)   {cores} threads {all:6.1} \
             ({:6.0}/s)",
            format!("{runtime:?}"),
            1e6 / wall,
            1e6 / all * cores as f64
        );
    }
    let cancel = AtomicBool::new(false);
    let opts = SolveOptions {
        threads: 1,
        start_nonce: 0,
    };
    let works: Vec<([u8; 32], Work)> = (0..32u8)
        .map(|i| {
            let w = solve(&[i; 32], 1, &opts, &cancel, &|_| {}).expect("effort 1");
            ([i; 32], w)
        })
        .collect();
    let rounds = 100;
    let t = Timer::start();
    for _ in 0..rounds {
        for (c, w) in &works {
            verify(c, w).expect("valid work");
        }
    }
    let (wall, cpu) = t.stop();
    let ops = (rounds * works.len()) as f64;
    println!(
        "  lf_pow::verify 1 thread {:6.1} (cpu {:5.1})",
        wall * 1e6 / ops,
        cpu * 1e6 / ops
    );

    // 3. Solve times at the default difficulty.
    let seconds_per_difficulty = per_challenge / lambda * cost(256) as f64 / 65536.0;
    println!(
        "solve at difficulty {DEFAULT_DIFFICULTY} (the model suggests {:.0} for a mean of \
         {TARGET_256_SECONDS} s per 256 bytes on one core), {runs} runs per row, seconds:",
        TARGET_256_SECONDS / seconds_per_difficulty
    );
    println!(
        "  {:>5} {:>6} {:>7} {:>10} {:>8} {:>8} {:>8} {:>10}",
        "bytes", "effort", "threads", "model mean", "median", "min", "max", "cpu median"
    );
    for bytes in [64usize, 256, 1024] {
        let effort = required_effort(bytes, DEFAULT_DIFFICULTY);
        for threads in [1, cores] {
            let (mut walls, mut cpus): (Vec<f64>, Vec<f64>) = (0..runs)
                .map(|r| {
                    let mut challenge = [0xc0; 32];
                    let seed = (bytes * 1000 + threads * 100 + r) as u64;
                    challenge[..8].copy_from_slice(&seed.to_le_bytes());
                    let opts = SolveOptions {
                        threads,
                        start_nonce: 0,
                    };
                    let t = Timer::start();
                    solve(&challenge, effort, &opts, &cancel, &|_| {}).expect("not cancelled");
                    t.stop()
                })
                .unzip();
            walls.sort_by(f64::total_cmp);
            cpus.sort_by(f64::total_cmp);
            let model = expected_challenges(effort) * per_challenge / threads as f64;
            let cpu = if threads == 1 {
                cpus[runs / 2]
            } else {
                f64::NAN
            };
            println!(
                "  {bytes:>5} {effort:>6} {threads:>7} {model:>10.2} {:>8.2} {:>8.2} {:>8.2} \
                 {cpu:>10.2}",
                walls[runs / 2],
                walls[0],
                walls[runs - 1]
            );
        }
    }
}

/// (wall, CPU) µs per Equi-X verification (program built with `runtime`) as seen by
/// each of `threads` threads verifying all `pairs` at once; CPU only for one thread.
fn verify_rate(
    pairs: &[([u8; 32], SolutionByteArray)],
    runtime: RuntimeOption,
    threads: usize,
) -> (f64, f64) {
    let rounds = 5;
    let work = || {
        let mut builder = EquiXBuilder::new();
        builder.runtime(runtime);
        for _ in 0..rounds {
            for (c, bytes) in pairs {
                let solution = Solution::try_from_bytes(bytes).expect("solver output");
                let equix = builder.build(c).expect("solved before");
                equix.verify(&solution).expect("solver output");
            }
        }
    };
    let t = Timer::start();
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| (0..threads).for_each(|_| drop(s.spawn(work))));
    }
    let (wall, cpu) = t.stop();
    let ops = (rounds * pairs.len()) as f64;
    let cpu = if threads == 1 { cpu } else { f64::NAN };
    (wall * 1e6 / ops, cpu * 1e6 / ops)
}
