//! The one error type of the crate: decoding, verifying and solving work.

use crate::work::WORK_LEN;

/// Why work could not be decoded, did not verify, or could not be found.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PowError {
    /// The encoded work is not [`WORK_LEN`] bytes long.
    #[error("work must be {WORK_LEN} bytes, got {len}")]
    WrongLength {
        /// Length of the bytes given.
        len: usize,
    },
    /// Effort 0 is not a valid claim (a record that needs no work carries none).
    #[error("work claims effort 0")]
    ZeroEffort,
    /// The solution bytes are not a well-formed Equi-X solution (items out of tree order).
    #[error("malformed equi-x solution")]
    MalformedSolution,
    /// HashX rejects the random program of this Equi-X challenge; solvers skip such
    /// nonces, so no honest work carries one.
    #[error("hashx rejects the program of nonce {nonce}")]
    ProgramRejected {
        /// Nonce whose challenge has no usable program.
        nonce: u64,
    },
    /// The solution is well formed but does not solve the challenge.
    #[error("equi-x solution does not solve the challenge")]
    InvalidSolution,
    /// The solution does not pass the threshold of the effort it claims.
    #[error("solution does not meet its claimed effort {effort}")]
    BelowThreshold {
        /// Effort the work claims.
        effort: u32,
    },
    /// The work is valid but claims less effort than required.
    #[error("work has effort {carried}, {required} required")]
    InsufficientEffort {
        /// Effort required.
        required: u32,
        /// Effort the work carries.
        carried: u32,
    },
    /// The caller cancelled solving.
    #[error("proof of work cancelled")]
    Cancelled,
}
