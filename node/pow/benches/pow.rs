//! Criterion benches of proof of work: verification, and a solve at effort 1 (one or a
//! few Equi-X challenges). Solve times at the default difficulty, with their spread,
//! come from `examples/calibrate.rs`.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{Criterion, criterion_group, criterion_main};
use lf_pow::{SolveOptions, solve, verify};

fn benches(c: &mut Criterion) {
    let one = SolveOptions {
        threads: 1,
        start_nonce: 0,
    };
    let w = solve(&[1; 32], 1, &one, &AtomicBool::new(false), &|_| {}).unwrap();
    c.bench_function("pow_verify", |b| {
        b.iter(|| verify(black_box(&[1; 32]), &w).unwrap())
    });
    let mut nonce = 0u64;
    c.bench_function("pow_solve_effort_1", |b| {
        b.iter(|| {
            nonce += 1_000;
            let o = SolveOptions {
                threads: 1,
                start_nonce: nonce,
            };
            solve(&[2; 32], 1, &o, &AtomicBool::new(false), &|_| {}).unwrap()
        })
    });
}

criterion_group!(pow_benches, benches);
criterion_main!(pow_benches);
