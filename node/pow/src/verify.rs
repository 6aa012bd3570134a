//! Verification: one SHA-256 for the effort threshold, one Equi-X check. Stateless, so
//! any number of threads can verify at once without sharing anything.

use equix::{EquiXBuilder, RuntimeOption, Solution};

use crate::PowError;
use crate::work::{Work, equix_challenge, meets_effort};

/// HashX runtime for verification: the interpreter.
///
/// A verification evaluates the challenge's HashX program only 8 times, so building the
/// program dominates: generating it takes about 40 µs either way. Interpreting the 8
/// hashes then adds about 30 µs; compiling them adds about 20 µs, but the compiler
/// emits into a fresh `mmap`ed page, `mprotect`s it and `munmap`s it after, and those
/// calls serialize on the process's address-space lock and make the kernel interrupt
/// every other core running this process to flush its TLB. Measured here (release, one
/// core, `examples/calibrate.rs`): 58–65 µs per verification compiled, 70–77 µs
/// interpreted; with both cores verifying at once, compiled throughput stayed at one
/// core's (about 15k/s) while interpreted throughput doubled (about 27k/s). A node
/// verifies records from many peers on many threads, so the interpreter is the faster
/// choice where it matters; it also works where W^X policies forbid generating code.
const VERIFY_RUNTIME: RuntimeOption = RuntimeOption::InterpretOnly;

/// Verifies work against a record's `challenge`, for the effort it claims.
///
/// Cheapest checks first: effort and solution form, then the effort threshold (one
/// SHA-256, which rejects a forged claim of effort `E` with probability `1 − 1/E`),
/// then the Equi-X solution itself.
pub fn verify(challenge: &[u8; 32], work: &Work) -> Result<(), PowError> {
    if work.effort == 0 {
        return Err(PowError::ZeroEffort);
    }
    let solution =
        Solution::try_from_bytes(&work.solution).map_err(|_| PowError::MalformedSolution)?;
    let c = equix_challenge(challenge, work.nonce, work.effort);
    if !meets_effort(&c, &work.solution, work.effort) {
        return Err(PowError::BelowThreshold {
            effort: work.effort,
        });
    }
    let equix = EquiXBuilder::new()
        .runtime(VERIFY_RUNTIME)
        .build(&c)
        .map_err(|_| PowError::ProgramRejected { nonce: work.nonce })?;
    equix
        .verify(&solution)
        .map_err(|_| PowError::InvalidSolution)
}

/// Verifies work and that it carries at least `required_effort` (see
/// [`required_effort`](crate::required_effort)); the effort comparison comes first.
pub fn check(challenge: &[u8; 32], work: &Work, required_effort: u32) -> Result<(), PowError> {
    if work.effort < required_effort {
        return Err(PowError::InsufficientEffort {
            required: required_effort,
            carried: work.effort,
        });
    }
    verify(challenge, work)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::{SolveOptions, WORK_LEN, solve};

    fn solved(challenge: &[u8; 32], effort: u32) -> Work {
        let opts = SolveOptions {
            threads: 1,
            start_nonce: 0,
        };
        solve(challenge, effort, &opts, &AtomicBool::new(false), &|_| {}).unwrap()
    }

    #[test]
    fn tampering_with_the_challenge_fails() {
        let c = [5u8; 32];
        let w = solved(&c, 2);
        verify(&c, &w).unwrap();
        for i in 0..32 {
            let mut other = c;
            other[i] ^= 0x80 >> (i % 8);
            assert!(verify(&other, &w).is_err(), "challenge byte {i}");
        }
    }

    #[test]
    fn tampering_with_the_work_fails() {
        let c = [6u8; 32];
        let w = solved(&c, 2);
        for i in 0..WORK_LEN {
            for flip in [0x01, 0x80] {
                let mut b = w.to_bytes();
                b[i] ^= flip;
                // A flip may already be refused by decoding (effort 0, item order).
                if let Ok(t) = Work::from_bytes(&b) {
                    assert!(verify(&c, &t).is_err(), "byte {i} ^ {flip:#x}");
                }
            }
        }
    }

    #[test]
    fn verify_reports_each_failure() {
        let c = [7u8; 32];
        let w = solved(&c, 1);
        assert_eq!(
            verify(&c, &Work { effort: 0, ..w }),
            Err(PowError::ZeroEffort)
        );
        let mut bad_order = w;
        bad_order.solution[..2].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(verify(&c, &bad_order), Err(PowError::MalformedSolution));
        // Claiming the maximum effort fails the threshold, before any Equi-X work.
        assert_eq!(
            verify(
                &c,
                &Work {
                    effort: u32::MAX,
                    ..w
                }
            ),
            Err(PowError::BelowThreshold { effort: u32::MAX })
        );
        // Effort 1 passes any threshold: a wrong nonce reaches the Equi-X check.
        assert_eq!(
            verify(
                &c,
                &Work {
                    nonce: w.nonce ^ 1,
                    ..w
                }
            ),
            Err(PowError::InvalidSolution)
        );
    }

    #[test]
    fn verifies_in_parallel() {
        let c = [8u8; 32];
        let w = solved(&c, 1);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..50).for_each(|_| verify(&c, &w).unwrap()));
            }
        });
    }
}
