//! Criterion benches of proof of work: `verify` (which fixes the HashX runtime), the
//! Equi-X verification alone with each runtime (the measurement behind that choice),
//! and `solve` at effort 1 (one or two Equi-X challenges). Solve times at the default
//! difficulty, with their spread, come from `examples/calibrate.rs`.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use equix::{EquiXBuilder, RuntimeOption, Solution, SolutionByteArray};
use lf_pow::{SolveOptions, Work, solve, verify};

/// Works of effort 1 for 16 different challenges: a verifier meets a new program each
/// time, so benches cycle through several rather than repeat one.
fn works() -> Vec<([u8; 32], Work)> {
    let opts = SolveOptions {
        threads: 1,
        start_nonce: 0,
    };
    (0..16u8)
        .map(|i| {
            let w = solve(&[i; 32], 1, &opts, &AtomicBool::new(false), &|_| {});
            ([i; 32], w.expect("effort 1 is solvable"))
        })
        .collect()
}

fn verify_benches(c: &mut Criterion) {
    let works = works();
    let mut i = 0;
    c.bench_function("pow_verify", |b| {
        b.iter(|| {
            i = (i + 1) % works.len();
            let (challenge, work) = &works[i];
            verify(black_box(challenge), black_box(work)).expect("valid work")
        })
    });

    // Equi-X alone, on its own challenges and solutions.
    let solved: Vec<([u8; 8], SolutionByteArray)> = (0..16u64)
        .filter_map(|i| {
            let challenge = i.to_le_bytes();
            let solutions = equix::solve(&challenge).ok()?;
            Some((challenge, solutions.first()?.to_bytes()))
        })
        .collect();
    for (name, runtime) in [
        ("equix_verify_interpreted", RuntimeOption::InterpretOnly),
        ("equix_verify_compiled", RuntimeOption::CompileOnly),
    ] {
        let mut builder = EquiXBuilder::new();
        builder.runtime(runtime);
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % solved.len();
                let (challenge, bytes) = &solved[i];
                let solution = Solution::try_from_bytes(bytes).expect("solver output");
                builder
                    .build(black_box(challenge))
                    .and_then(|e| e.verify(&solution))
                    .expect("valid solution")
            })
        });
    }
}

fn solve_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("solve");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let mut nonce = 0u64;
    group.bench_function("pow_solve_effort_1", |b| {
        b.iter(|| {
            // A fresh start nonce each time: new challenges, not a replay of the first.
            nonce += 1_000;
            let opts = SolveOptions {
                threads: 1,
                start_nonce: nonce,
            };
            solve(&[2; 32], 1, &opts, &AtomicBool::new(false), &|_| {}).expect("solvable")
        })
    });
    group.finish();
}

criterion_group!(pow_benches, verify_benches, solve_benches);
criterion_main!(pow_benches);
