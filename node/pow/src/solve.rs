//! Solving: try nonces on N threads until a solution meets the effort.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use equix::{EquiXBuilder, RuntimeOption, SolverMemory};

use crate::work::{PowError, Work, equix_challenge, meets_effort};

/// How to solve.
#[derive(Clone, Copy, Debug, Default)]
pub struct SolveOptions {
    /// Worker threads; 0 = all available cores.
    pub threads: usize,
    /// First nonce; thread `i` tries `start_nonce + i`, then steps by `threads`.
    /// Give a random start so two writers of one record do not race on nonces.
    pub start_nonce: u64,
}

/// Progress report passed to the callback.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Equi-X challenges tried so far, over all threads.
    pub challenges_tried: u64,
    /// Expected total for this effort (the actual number varies, geometrically).
    pub expected_challenges: f64,
}

/// Finds work of `effort` for `challenge`. Deterministic for one thread and a fixed
/// start nonce. Returns [`PowError::Cancelled`] soon after `cancel` is set.
pub fn solve(
    challenge: &[u8; 32],
    effort: u32,
    opts: &SolveOptions,
    cancel: &AtomicBool,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Work, PowError> {
    if effort == 0 {
        return Err(PowError::ZeroEffort);
    }
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let done = AtomicBool::new(false);
    let tried = AtomicU64::new(0);
    let expected = crate::expected_challenges(effort);
    let found = std::sync::Mutex::new(None::<Work>);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (done, tried, found) = (&done, &tried, &found);
            s.spawn(move || {
                let mut mem = SolverMemory::new();
                let mut builder = EquiXBuilder::new();
                builder.runtime(RuntimeOption::TryCompile);
                let mut nonce = opts.start_nonce.wrapping_add(t as u64);
                let mut local = 0u64;
                while !done.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
                    let c = equix_challenge(challenge, nonce, effort);
                    if let Ok(equix) = builder.build(&c) {
                        for sol in equix.solve_with_memory(&mut mem).iter() {
                            let bytes = sol.to_bytes();
                            if meets_effort(&c, &bytes, effort) {
                                let mut f = found.lock().unwrap_or_else(|p| p.into_inner());
                                // With several threads keep the lowest nonce, so a
                                // single thread's answer does not depend on timing.
                                if f.is_none_or(|w: Work| w.nonce > nonce) {
                                    *f = Some(Work {
                                        nonce,
                                        effort,
                                        solution: bytes,
                                    });
                                }
                                done.store(true, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                    local += 1;
                    if local.is_multiple_of(16) {
                        let n = tried.fetch_add(16, Ordering::Relaxed) + 16;
                        progress(Progress {
                            challenges_tried: n,
                            expected_challenges: expected,
                        });
                    }
                    nonce = nonce.wrapping_add(threads as u64);
                }
            });
        }
    });
    let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    match found {
        Some(w) => Ok(w),
        None => Err(PowError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, verify};

    fn solve1(challenge: &[u8; 32], effort: u32, threads: usize) -> Work {
        let opts = SolveOptions {
            threads,
            start_nonce: 0,
        };
        solve(challenge, effort, &opts, &AtomicBool::new(false), &|_| {}).unwrap()
    }

    #[test]
    fn solve_then_verify() {
        for (effort, threads) in [(1, 1), (4, 1), (4, 2)] {
            let w = solve1(&[effort as u8; 32], effort, threads);
            assert_eq!(w.effort, effort);
            verify(&[effort as u8; 32], &w).unwrap();
            check(&[effort as u8; 32], &w, effort).unwrap();
            assert!(matches!(
                check(&[effort as u8; 32], &w, effort + 1),
                Err(PowError::Insufficient { .. })
            ));
        }
    }

    #[test]
    fn deterministic_with_one_thread() {
        assert_eq!(solve1(&[9; 32], 3, 1), solve1(&[9; 32], 3, 1));
    }

    #[test]
    fn tampering_fails() {
        let c = [5u8; 32];
        let w = solve1(&c, 2, 1);
        let mut other = c;
        other[0] ^= 1;
        assert!(verify(&other, &w).is_err());
        for i in 0..crate::WORK_LEN {
            let mut b = w.to_bytes();
            b[i] ^= 0x01;
            if let Ok(t) = Work::from_bytes(&b) {
                assert!(verify(&c, &t).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn cancellation_is_prompt() {
        let cancel = AtomicBool::new(true);
        let opts = SolveOptions {
            threads: 2,
            start_nonce: 0,
        };
        let r = solve(&[1; 32], u32::MAX, &opts, &cancel, &|_| {});
        assert_eq!(r, Err(PowError::Cancelled));
        assert_eq!(
            solve(&[1; 32], 0, &opts, &cancel, &|_| {}),
            Err(PowError::ZeroEffort)
        );
    }

    #[test]
    fn progress_is_reported_and_can_cancel() {
        // Effort u32::MAX never finishes by luck: only the callback's cancel ends it.
        let cancel = AtomicBool::new(false);
        let calls = AtomicU64::new(0);
        let opts = SolveOptions {
            threads: 1,
            start_nonce: 0,
        };
        let r = solve(&[2; 32], u32::MAX, &opts, &cancel, &|p| {
            assert!(p.expected_challenges > 1e9);
            assert_eq!(p.challenges_tried, 16);
            calls.fetch_add(1, Ordering::Relaxed);
            cancel.store(true, Ordering::Relaxed);
        });
        assert_eq!(r, Err(PowError::Cancelled));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
