//! Solving: try nonces on N threads until an Equi-X solution passes the effort
//! threshold, with cancellation and progress reports.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use equix::{EquiXBuilder, RuntimeOption, SolverMemory};

use crate::PowError;
use crate::work::{Work, equix_challenge, meets_effort};

/// Challenges each thread tries between progress reports (about 0.2 s here).
const PROGRESS_EVERY: u64 = 16;

/// How to solve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SolveOptions {
    /// Solver threads; 0 = [`std::thread::available_parallelism`]. Each holds one
    /// `equix::SolverMemory` (1.8 MiB) for the whole solve.
    pub threads: usize,
    /// First nonce: thread `i` tries `start_nonce + i`, then steps by `threads`
    /// (wrapping). Writers should start at a random nonce; a fixed one with one thread
    /// makes [`solve`] deterministic.
    pub start_nonce: u64,
}

/// A progress report, passed to [`solve`]'s callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Equi-X challenges tried so far, over all threads.
    pub challenges_tried: u64,
    /// [`expected_challenges`](crate::expected_challenges) for this effort; the actual
    /// number varies geometrically around it.
    pub expected_challenges: f64,
}

/// Finds work of `effort` for a record's `challenge`.
///
/// Runs `opts.threads` solvers (the calling thread is one of them; the others are
/// scoped threads joined before returning) until one finds a solution that passes the
/// threshold, or until the caller sets `cancel`, which returns [`PowError::Cancelled`]
/// within one Equi-X challenge (about 10 ms). `progress` is called every 16 challenges
/// of each thread, from the solver threads. With one thread and a fixed
/// `start_nonce` the result is deterministic; with more, whichever thread finds work
/// first wins. If the system refuses to start a thread, the threads already running
/// carry on without it.
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
    let shared = Shared {
        challenge,
        effort,
        stride: threads as u64,
        expected: crate::expected_challenges(effort),
        cancel,
        progress,
        found: OnceLock::new(),
        stop: AtomicBool::new(false),
        tried: AtomicU64::new(0),
    };
    std::thread::scope(|s| {
        for i in 1..threads {
            let shared = &shared;
            let start = opts.start_nonce.wrapping_add(i as u64);
            let spawned = std::thread::Builder::new()
                .name(format!("lf-pow-{i}"))
                .spawn_scoped(s, move || shared.run(start));
            if spawned.is_err() {
                break;
            }
        }
        shared.run(opts.start_nonce);
    });
    shared.found.into_inner().ok_or(PowError::Cancelled)
}

/// What the solver threads share.
struct Shared<'a> {
    challenge: &'a [u8; 32],
    effort: u32,
    /// Nonce step of each thread: the number of threads asked for.
    stride: u64,
    expected: f64,
    cancel: &'a AtomicBool,
    progress: &'a (dyn Fn(Progress) + Sync),
    /// The first work found; only ever set once.
    found: OnceLock<Work>,
    /// Set when work is found, so the other threads stop.
    stop: AtomicBool,
    /// Challenges tried by all threads, counted in batches of [`PROGRESS_EVERY`].
    tried: AtomicU64,
}

impl Shared<'_> {
    /// One solver thread: tries `nonce`, `nonce + stride`, ... until told to stop.
    fn run(&self, mut nonce: u64) {
        // Solving evaluates each program 2^16 times: compiling pays for itself many
        // times over (measured here: about 9.5 ms per challenge compiled, 260 ms
        // interpreted). TryCompile falls back to the interpreter where code
        // generation is forbidden.
        let mut builder = EquiXBuilder::new();
        builder.runtime(RuntimeOption::TryCompile);
        let mut memory = SolverMemory::new();
        let mut tried = 0u64;
        while !self.stop.load(Ordering::Relaxed) && !self.cancel.load(Ordering::Relaxed) {
            let c = equix_challenge(self.challenge, nonce, self.effort);
            // A challenge whose program HashX rejects (rare) is skipped: no work can
            // carry it, since verifiers reject it too.
            if let Ok(equix) = builder.build(&c) {
                let solutions = equix.solve_with_memory(&mut memory);
                let solution = solutions
                    .iter()
                    .map(|s| s.to_bytes())
                    .find(|s| meets_effort(&c, s, self.effort));
                if let Some(solution) = solution {
                    let _ = self.found.set(Work {
                        nonce,
                        effort: self.effort,
                        solution,
                    });
                    self.stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
            tried += 1;
            if tried.is_multiple_of(PROGRESS_EVERY) {
                let total = self.tried.fetch_add(PROGRESS_EVERY, Ordering::Relaxed);
                (self.progress)(Progress {
                    challenges_tried: total + PROGRESS_EVERY,
                    expected_challenges: self.expected,
                });
            }
            nonce = nonce.wrapping_add(self.stride);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{check, verify};

    fn solve_with(challenge: &[u8; 32], effort: u32, threads: usize, start_nonce: u64) -> Work {
        let opts = SolveOptions {
            threads,
            start_nonce,
        };
        solve(challenge, effort, &opts, &AtomicBool::new(false), &|_| {}).unwrap()
    }

    #[test]
    fn solve_then_verify() {
        for (effort, threads) in [(1, 1), (1, 2), (4, 1), (4, 2)] {
            let c = [effort as u8 + threads as u8; 32];
            let w = solve_with(&c, effort, threads, 0);
            assert_eq!(w.effort, effort);
            verify(&c, &w).unwrap();
            check(&c, &w, effort).unwrap();
            check(&c, &w, 1).unwrap();
            assert_eq!(
                check(&c, &w, effort + 1),
                Err(PowError::InsufficientEffort {
                    required: effort + 1,
                    carried: effort
                })
            );
        }
    }

    #[test]
    fn start_nonce_wraps() {
        let c = [3; 32];
        let w = solve_with(&c, 4, 2, u64::MAX);
        verify(&c, &w).unwrap();
    }

    #[test]
    fn deterministic_with_one_thread() {
        let w = solve_with(&[9; 32], 3, 1, 1000);
        assert_eq!(w, solve_with(&[9; 32], 3, 1, 1000));
        assert!(w.nonce >= 1000);
        // A later start finds the same work if the earlier nonces found none.
        assert_eq!(w, solve_with(&[9; 32], 3, 1, w.nonce));
    }

    #[test]
    fn golden_vector() {
        // Pins the scheme (challenge layout, threshold, nonce order): any change here
        // invalidates all existing records' work.
        let w = solve_with(&[0; 32], 8, 1, 0);
        let hex: String = w.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "000000000000000100000008ca22782bfc1a38ac5fbcc0bc565337f3"
        );
    }

    #[test]
    fn zero_effort_is_refused() {
        let opts = SolveOptions::default();
        let r = solve(&[1; 32], 0, &opts, &AtomicBool::new(false), &|_| {});
        assert_eq!(r, Err(PowError::ZeroEffort));
    }

    #[test]
    fn cancelled_before_start() {
        let opts = SolveOptions {
            threads: 2,
            start_nonce: 0,
        };
        let r = solve(&[1; 32], u32::MAX, &opts, &AtomicBool::new(true), &|_| {});
        assert_eq!(r, Err(PowError::Cancelled));
    }

    #[test]
    fn cancellation_is_prompt() {
        // Effort u32::MAX takes about 2^31 challenges: only cancellation ends it.
        let cancel = AtomicBool::new(false);
        let opts = SolveOptions {
            threads: 2,
            start_nonce: 0,
        };
        std::thread::scope(|s| {
            let solver = s.spawn(|| solve(&[1; 32], u32::MAX, &opts, &cancel, &|_| {}));
            std::thread::sleep(Duration::from_millis(100));
            let t = Instant::now();
            cancel.store(true, Ordering::Relaxed);
            assert_eq!(solver.join().unwrap(), Err(PowError::Cancelled));
            let waited = t.elapsed();
            assert!(waited < Duration::from_secs(2), "{waited:?}");
        });
    }

    #[test]
    fn progress_is_reported_and_can_cancel() {
        let cancel = AtomicBool::new(false);
        let calls = AtomicU64::new(0);
        let opts = SolveOptions {
            threads: 1,
            start_nonce: 0,
        };
        let r = solve(&[2; 32], u32::MAX, &opts, &cancel, &|p| {
            assert_eq!(p.expected_challenges, crate::expected_challenges(u32::MAX));
            let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
            assert_eq!(p.challenges_tried, n * PROGRESS_EVERY);
            if n == 2 {
                cancel.store(true, Ordering::Relaxed);
            }
        });
        assert_eq!(r, Err(PowError::Cancelled));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn progress_counts_all_threads() {
        let cancel = AtomicBool::new(false);
        let opts = SolveOptions {
            threads: 2,
            start_nonce: 0,
        };
        let r = solve(&[4; 32], u32::MAX, &opts, &cancel, &|p| {
            assert_eq!(p.challenges_tried % PROGRESS_EVERY, 0);
            if p.challenges_tried >= 4 * PROGRESS_EVERY {
                cancel.store(true, Ordering::Relaxed);
            }
        });
        assert_eq!(r, Err(PowError::Cancelled));
    }
}
