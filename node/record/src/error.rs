//! The error type for parsing and validating records.

use crate::{MaskError, OwnerError};

/// Why a record could not be parsed, built or accepted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes end before the named field is complete.
    #[error("record truncated in {0}")]
    Truncated(&'static str),
    /// Bytes follow a complete record where none are allowed.
    #[error("{0} unexpected bytes after the record")]
    TrailingBytes(usize),
    /// The record's format version byte is not one this build understands.
    #[error("unsupported record format version {0}")]
    UnsupportedVersion(u8),
    /// Unknown record type byte.
    #[error("unknown record type {0}")]
    UnknownType(u8),
    /// The encoded record exceeds [`crate::MAX_RECORD_SIZE`].
    #[error("record is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// More than [`crate::MAX_LINKS`] links.
    #[error("record has {0} links, more than 15")]
    TooManyLinks(usize),
    /// Links are not strictly ascending (sorted and unique).
    #[error("record links are not sorted and unique")]
    LinksNotSorted,
    /// More than [`crate::MAX_SELECTORS`] selectors.
    #[error("record has {0} selectors, more than 15")]
    TooManySelectors(usize),
    /// A masked value that cannot hold an authentication tag.
    #[error("masked value of {0} bytes is shorter than its 16-byte tag")]
    ValueTooShort(usize),
    /// The value is larger than the network allows.
    #[error("value is {size} bytes, more than the network's limit of {max}")]
    ValueTooLarge {
        /// Plain value size.
        size: usize,
        /// Network limit.
        max: usize,
    },
    /// The owner field is not a P-384 public key.
    #[error("bad owner: {0}")]
    Owner(#[from] OwnerError),
    /// The owner signature does not verify, or is not in low-S form.
    #[error("owner signature is invalid")]
    BadSignature,
    /// The claim of selector `index` does not verify against its name key.
    #[error("claim of selector {index} is invalid")]
    BadClaim {
        /// Selector position in the record.
        index: usize,
    },
    /// Unknown work algorithm byte.
    #[error("unknown work algorithm {0}")]
    UnknownWorkAlgorithm(u8),
    /// The proof of work could not be paid (cancelled).
    #[error("proof of work not paid: {0}")]
    Unpaid(lf_pow::PowError),
    /// The proof of work does not verify.
    #[error("proof of work is invalid: {0}")]
    BadWork(#[from] lf_pow::PowError),
    /// The record carries less work than its size requires on this network.
    #[error("record needs proof of work with effort {required}, it carries {carried}")]
    InsufficientWork {
        /// Effort required by the network for this record's billable bytes.
        required: u32,
        /// Effort carried by the record (0 = none).
        carried: u32,
    },
    /// The work attached to a signed record has another effort than the one signed.
    #[error("work has effort {carried}, the signature commits to {signed}")]
    WorkEffortMismatch {
        /// Effort the owner signed for (0 = no work).
        signed: u32,
        /// Effort of the work attached (0 = none).
        carried: u32,
    },
    /// The timestamp is further in the future than the network tolerates.
    #[error("timestamp {timestamp} is more than {drift} s ahead of now ({now})")]
    FromTheFuture {
        /// Record timestamp.
        timestamp: u64,
        /// Local clock.
        now: u64,
        /// Network's maximum drift.
        drift: u64,
    },
    /// The value could not be masked (building only).
    #[error("value masking failed: {0}")]
    Mask(#[from] MaskError),
    /// A builder argument is out of range.
    #[error("invalid record: {0}")]
    Invalid(&'static str),
}
