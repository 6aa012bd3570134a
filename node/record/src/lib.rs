//! LF records: the canonical wire format, hashes, owners, selectors with masked
//! ordinals, value masking, validation, the genesis network configuration and X.509
//! owner certificates.
//!
//! This crate is pure: no I/O, no clock, no threads, no randomness of its own. Time,
//! keys and nonces come in as parameters, which keeps it deterministic, fuzzable and
//! benchmarkable. Every function that takes bytes from outside (parsing, decoding,
//! unmasking) returns a typed error and never panics.
//!
//! The byte layout and what each hash and signature covers is written down in
//! `FORMAT.md` next to this crate's `Cargo.toml`.
#![forbid(unsafe_code)]

mod base62;
pub mod cert;
pub mod commentary;
mod error;
mod genesis;
mod hash;
mod kdf;
mod mask;
mod ordinal;
mod owner;
mod record;
mod selector;
mod validate;

pub use base62::{decode as base62_decode, encode as base62_encode};
pub use cert::{CertError, CertRegistry, CertStatus, Certificate, CertificateRequest, Crl};
pub use error::RecordError;
pub use genesis::{GenesisError, NetworkConfig, NetworkId, create_genesis_records, parse_records};
pub use hash::{RecordHash, RecordId};
pub use mask::{MaskError, MaskingKey};
pub use ordinal::{MaskedOrdinal, OrdinalMask};
pub use owner::{Owner, OwnerError, OwnerKeys, OwnerSecret, PASSPHRASE_KDF, low_s};
pub use record::{
    FORMAT_VERSION, MAX_LINKS, MAX_RECORD_SIZE, MAX_SELECTORS, Record, RecordBuilder, RecordType,
    SELECTOR_LEN, SIGNATURE_LEN, SignedRecord, UnsignedRecord,
};
pub use selector::{Selector, SelectorKey, SelectorName};
pub use validate::{Limits, check_time_drift};

/// Re-exported so callers name one proof-of-work crate version.
pub use lf_pow;
