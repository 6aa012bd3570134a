//! Full-record verifications per second (owner signature + one claim + proof of work)
//! on one core and on all cores: the bound on ingest and catch-up.
//!
//! `cargo run --release -p lf-record --example verify_rate [records]`

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use lf_record::{Limits, OwnerSecret, Record, RecordBuilder, RecordType, lf_pow};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let owner = OwnerSecret::from_scalar_bytes(&[3; 48]).unwrap();
    let records: Vec<Record> = (0..64u64)
        .map(|i| {
            let u = RecordBuilder::new(RecordType::Datum, 1_700_000_000 + i)
                .value(vec![7u8; 100])
                .selector(b"rate", i)
                .build(&owner.public())
                .unwrap();
            let effort = u.required_effort(1);
            let u = u.sign(effort, &owner).unwrap();
            let o = lf_pow::SolveOptions {
                threads: 0,
                start_nonce: 0,
            };
            let w = lf_pow::solve(
                &u.work_challenge(),
                effort,
                &o,
                &AtomicBool::new(false),
                &|_| {},
            )
            .unwrap();
            u.finish(Some(w)).unwrap()
        })
        .collect();
    let limits = Limits {
        max_value_size: 1024,
        work_difficulty: 1,
    };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    for threads in [1, cores] {
        let t = Instant::now();
        std::thread::scope(|s| {
            for k in 0..threads {
                let records = &records;
                s.spawn(move || {
                    for i in (k..n).step_by(threads) {
                        records[i % records.len()].verify(&limits).unwrap();
                    }
                });
            }
        });
        let rate = n as f64 / t.elapsed().as_secs_f64();
        println!("full verify, {threads} thread(s): {rate:.0} records/s");
    }
}
