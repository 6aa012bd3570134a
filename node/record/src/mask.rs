//! Value masking: values are encrypted with AES-256-GCM-SIV (RFC 8452) under a key
//! derived from the masking key, so only readers who know it (by default, the first
//! selector's plain name) can read them, and a wrong key is always detected by the
//! 128-bit tag (the seed's 14-bit check accepted a wrong key 1 time in 16,384).
//!
//! The AEAD key is HKDF-SHA256(masking key) bound to the owner, timestamp and record
//! type. The nonce is fixed (zero): GCM-SIV is nonce-misuse resistant, and the key is
//! already unique per (owner, timestamp, type, masking key), so a repeated key and
//! nonce reveals only that two such records hold the same value. An empty value is
//! stored as zero bytes (no tag): there is nothing to protect.

use aes_gcm_siv::aead::{Aead, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};

use crate::kdf::hkdf_sha256;
use crate::owner::Owner;

/// Length of the authentication tag appended to every non-empty masked value.
pub const TAG_LEN: usize = 16;

/// A masking key (any bytes; the default is the first selector's name).
pub type MaskingKey = Vec<u8>;

/// Errors from unmasking.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaskError {
    /// The masking key is not the one the value was masked with (or the value was
    /// altered).
    #[error("wrong masking key")]
    WrongKey,
}

fn cipher(key: &[u8], owner: &Owner, timestamp: u64, record_type: u8) -> Aes256GcmSiv {
    let k: [u8; 32] = hkdf_sha256(
        b"lf value mask v1",
        key,
        &[owner.as_bytes(), &timestamp.to_be_bytes(), &[record_type]],
    );
    Aes256GcmSiv::new(&k.into())
}

/// Masks `plain`; empty in, empty out.
pub(crate) fn mask(
    plain: &[u8],
    key: &[u8],
    owner: &Owner,
    timestamp: u64,
    record_type: u8,
) -> Vec<u8> {
    if plain.is_empty() {
        return Vec::new();
    }
    cipher(key, owner, timestamp, record_type)
        .encrypt(&Nonce::default(), plain)
        // GCM-SIV encryption only fails for inputs over 2^36 bytes.
        .expect("aes-gcm-siv encryption of a bounded value")
}

/// Unmasks a value masked by [`mask`].
pub(crate) fn unmask(
    masked: &[u8],
    key: &[u8],
    owner: &Owner,
    timestamp: u64,
    record_type: u8,
) -> Result<Vec<u8>, MaskError> {
    if masked.is_empty() {
        return Ok(Vec::new());
    }
    cipher(key, owner, timestamp, record_type)
        .decrypt(&Nonce::default(), masked)
        .map_err(|_| MaskError::WrongKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let o = Owner([2; 49]);
        let m = mask(b"secret", b"k", &o, 5, 0);
        assert_eq!(m.len(), 6 + TAG_LEN);
        assert_eq!(unmask(&m, b"k", &o, 5, 0).unwrap(), b"secret");
        assert_eq!(unmask(&m, b"j", &o, 5, 0), Err(MaskError::WrongKey));
        assert_eq!(unmask(&m, b"k", &o, 6, 0), Err(MaskError::WrongKey));
        assert_eq!(
            unmask(&m, b"k", &Owner([3; 49]), 5, 0),
            Err(MaskError::WrongKey)
        );
        assert!(mask(b"", b"k", &o, 5, 0).is_empty());
    }
}
