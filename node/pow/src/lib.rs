//! LF proof of work: Tor's Equi-X client puzzle with an effort threshold.
//!
//! A record's writer pays for it with CPU time: [`solve`] finds a [`Work`] for the
//! record's 32-byte challenge (a hash of its body, selectors and owner signature), and
//! every node runs [`verify`] (or [`check`], which also compares the effort with what the network
//! requires) on every record it receives.
//!
//! # Why Equi-X
//!
//! The seed used Wharrgarbl, a memory-hard momentum search over a 128 MiB table plus
//! 512 MiB of collision memory: here it ran at about 37k hashes/s, cost minutes per
//! small record, and verifying needed the 128 MiB table too. Equi-X (the `equix`
//! crate, the Tor Project's puzzle behind onion-service denial-of-service defence) is
//! an Equihash-style birthday puzzle over HashX, a hash function made of a random
//! program generated for each challenge. Solving means running fresh, branchy integer
//! code 2¹⁶ times per challenge, which is what general-purpose CPUs are built for and
//! where GPUs and ASICs gain little. It has been reviewed and is maintained by Tor, is
//! asymmetric (one challenge takes about 10 ms to solve here and a solution about
//! 40 µs to verify) and needs no static table, so there is nothing to build or cache
//! on disk. Memory per solver thread is one `equix::SolverMemory`: 1,895,424 bytes
//! (1.8 MiB), reused across challenges.
//!
//! # The scheme
//!
//! - The Equi-X challenge is `"lf-pow-v1" · challenge · nonce (BE64) · effort (BE32)`.
//! - Effort threshold, as in Tor: a solution counts only if `R · effort ≤ 2³² − 1`,
//!   where `R` is the first 4 bytes, big-endian, of SHA-256(Equi-X challenge ·
//!   solution bytes). Each challenge yields about [`SOLUTIONS_PER_CHALLENGE`]
//!   solutions, so finding work takes [`expected_challenges`]`(effort) ≈ effort / 2`
//!   challenges on average, while verification stays one hash plus one Equi-X check
//!   whatever the effort. Effort 1 accepts any valid solution; effort 0 is invalid
//!   (a record that needs no work carries none).
//! - [`Work`] is encoded in [`WORK_LEN`] = 28 bytes: nonce (BE64) · effort (BE32) ·
//!   solution (16 bytes, as `equix::Solution::to_bytes`). Records tag it with
//!   [`ALGORITHM_ID`] = 1; 0 means "no work".
//! - A record's weight contribution is [`score`]: its claimed effort, or 1 without work.
//!
//! # Cost curve and difficulty
//!
//! The effort a record needs grows with its billable bytes `b` along the seed's curve,
//! [`cost`]`(b) ≈ 9·b^1.5` (flat past 64 KiB), scaled by the network's difficulty
//! factor: [`required_effort`]`= ⌈cost(b) · difficulty / 65536⌉`. Difficulty 0 needs no
//! work. [`DEFAULT_DIFFICULTY`] was calibrated with `examples/calibrate.rs` (release
//! build, 2-core reference machine): one Equi-X challenge costs about 9–10.5 ms of one
//! core and yields about 2 solutions, so the mean solve time is about
//! `effort / 2 × 10 ms` on one core:
//!
//! | billable bytes | effort at 350 | mean, one core | mean, two cores |
//! |---|---|---|---|
//! | 64 | 35 | ≈ 0.17 s | ≈ 0.09 s |
//! | 256 | 312 | ≈ 1.5 s | ≈ 0.8 s |
//! | 1024 | 2,576 | ≈ 12.5 s | ≈ 6.5 s |
//!
//! Solve times are geometrically distributed (each challenge is an independent
//! trial): the median is about 0.7 of the mean and one solve in twenty takes about
//! three times the mean, hence the wide spread.
//!
//! # Properties
//!
//! Pure CPU: no I/O, no clock, no environment; randomness (the start nonce) and
//! cancellation come in as parameters. The only threads are scoped inside [`solve`] and
//! joined before it returns. [`verify`] shares no state, so any number of threads can
//! verify at once.
//!
//! # Licence
//!
//! `equix` and `hashx` are LGPL-3.0-only. They are linked as ordinary crate
//! dependencies, unmodified; whoever distributes a binary of LF must let its users
//! relink it against a modified `equix` (shipping the source of LF satisfies that).
#![forbid(unsafe_code)]

mod cost;
mod error;
mod solve;
mod verify;
mod work;

pub use cost::{
    DEFAULT_DIFFICULTY, SOLUTIONS_PER_CHALLENGE, cost, expected_challenges, required_effort, score,
};
pub use error::PowError;
pub use solve::{Progress, SolveOptions, solve};
pub use verify::{check, verify};
pub use work::{ALGORITHM_ID, WORK_LEN, Work};
