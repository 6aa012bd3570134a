//! LF proof of work: Equi-X (Tor's client puzzle) with an effort threshold.
//!
//! **Why Equi-X.** The seed's Wharrgarbl is a memory-hard momentum search over a
//! 128 MiB table plus 512 MiB of collision memory; here it ran at about 37k hashes/s
//! and cost minutes per small record, and its verification needed the 128 MiB table.
//! Equi-X (the `equix` crate, the Tor Project's puzzle behind onion-service DoS
//! defence) is an asymmetric Equihash-style birthday puzzle over HashX, a hash made of
//! a random program generated per challenge: it needs real CPU execution of fresh
//! code, which is what makes GPUs and ASICs gain little. It is reviewed, maintained,
//! needs no static table (so nothing is cached on disk), solves in about 10 ms with a
//! few MiB of memory and verifies in tens of microseconds. It is LGPL-3.0-only and
//! linked as an ordinary crate dependency.
//!
//! **Effort.** As in Tor, difficulty is layered on top: for effort `E`, a solution
//! counts only if `R · E ≤ 2^32 − 1`, where `R` is the first 4 bytes (big-endian) of
//! SHA-256 over the Equi-X challenge and the solution. Each Equi-X challenge yields
//! about two solutions, so the expected number of challenges tried is `E / 2`, and
//! verification stays one Equi-X check plus one hash, whatever `E` is.
//!
//! **Cost curve.** The effort a record needs grows with its billable bytes following
//! the seed's curve `cost(b) ≈ 9·b^1.5`, scaled by the network's difficulty factor:
//! `effort = ceil(cost(b) · difficulty / 65536)`. A difficulty of 0 needs no work.
//! See [`DEFAULT_DIFFICULTY`] for the calibration on this machine kind.
//!
//! Pure CPU: no I/O, no clock. The only threads are scoped inside [`solve`].
#![forbid(unsafe_code)]

mod cost;
mod solve;
mod work;

pub use cost::{DEFAULT_DIFFICULTY, cost, expected_challenges, required_effort, score};
pub use solve::{Progress, SolveOptions, solve};
pub use work::{ALGORITHM_ID, PowError, WORK_LEN, Work, check, verify};
