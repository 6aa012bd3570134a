//! Selectors: what a record is stored under, as (name, ordinal), without revealing
//! either to the nodes that store it.
//!
//! From the plain name a client derives an Ed25519 key pair (HKDF-SHA256 of the name
//! as the secret seed) and an [`OrdinalMask`]. A selector on the wire holds:
//! - the name's Ed25519 public key (32 bytes; the same for every ordinal of the name),
//! - the masked ordinal (16 bytes, order-preserving, see [`crate::ordinal`]),
//! - the claim: an Ed25519 signature by the name's secret key over the record's body
//!   hash, the selector's index and the masked ordinal (64 bytes).
//!
//! Only someone who knows the name can make a claim that verifies, and a claim cannot
//! be moved to another record or ordinal. Ed25519 was chosen for claims over P-384
//! because every node verifies one claim per selector of every record: strict Ed25519
//! verification costs tens of microseconds, P-384 about a millisecond here.
//!
//! The database key ([`SelectorKey`]) is the first 16 bytes of SHA-256 of the name's
//! public key followed by the masked ordinal: keys of one name sort by ordinal, so
//! `[key(n, a), key(n, b)]` is exactly the ordinals `a..=b` of `n`, and the key shows
//! neither the name nor the ordinal.

use std::fmt;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use ed25519_dalek::{Signature, VerifyingKey};

use crate::kdf::{hkdf_sha256, sha256};
use crate::ordinal::{MaskedOrdinal, OrdinalMask};

/// Encoded length of one selector.
pub const SELECTOR_LEN: usize = 32 + 16 + 64;

/// A selector's database key: 16-byte name tag then the 16-byte masked ordinal.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SelectorKey(pub [u8; 32]);

impl fmt::Debug for SelectorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SelectorKey({})", crate::base62::encode(&self.0))
    }
}

impl SelectorKey {
    fn new(name_key: &[u8; 32], ordinal: &MaskedOrdinal) -> Self {
        let tag = sha256(&[b"lf selector key v1", name_key]);
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(&tag[..16]);
        k[16..].copy_from_slice(ordinal);
        SelectorKey(k)
    }
}

/// What a client derives from a plain selector name; the node never sees it.
///
/// The claim key is AWS-LC's Ed25519 (same keys and signatures as any RFC 8032
/// implementation; its base-point multiplication is several times faster than
/// ed25519-dalek's, and a node derives a key for every chunk it reads first).
#[derive(Clone)]
pub struct SelectorName {
    name: Vec<u8>,
    claim_key: std::sync::Arc<Ed25519KeyPair>,
    name_key: [u8; 32],
    ordinal_mask: OrdinalMask,
}

impl fmt::Debug for SelectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print names: they are the secret that selectors protect.
        f.write_str("SelectorName(..)")
    }
}

impl SelectorName {
    /// Derives the claim key and ordinal mask of a plain name.
    pub fn new(name: &[u8]) -> Self {
        let seed: [u8; 32] = hkdf_sha256(b"lf selector name v1", name, &[b"ed25519 claim key"]);
        // Any 32 bytes are an Ed25519 seed: this cannot fail.
        let claim_key = Ed25519KeyPair::from_seed_unchecked(&seed).expect("a 32-byte seed");
        let mut name_key = [0u8; 32];
        name_key.copy_from_slice(claim_key.public_key().as_ref());
        SelectorName {
            name: name.to_vec(),
            claim_key: std::sync::Arc::new(claim_key),
            name_key,
            ordinal_mask: OrdinalMask::new(name),
        }
    }

    /// The plain name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The name's public claim key, as carried in selectors.
    pub fn name_key(&self) -> [u8; 32] {
        self.name_key
    }

    /// The ordinal masking function of this name.
    pub fn ordinal_mask(&self) -> &OrdinalMask {
        &self.ordinal_mask
    }

    /// The database key of (this name, `ordinal`).
    pub fn key(&self, ordinal: u64) -> SelectorKey {
        SelectorKey::new(&self.name_key(), &self.ordinal_mask.mask(ordinal))
    }

    /// The inclusive key range covering ordinals `first..=last` of this name.
    pub fn key_range(&self, first: u64, last: u64) -> (SelectorKey, SelectorKey) {
        (self.key(first), self.key(last))
    }

    /// Makes the selector at `index` of a record whose body hash is `body_hash`.
    pub(crate) fn claim(&self, ordinal: u64, index: u8, body_hash: &[u8; 32]) -> Selector {
        let masked = self.ordinal_mask.mask(ordinal);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(
            self.claim_key
                .sign(&claim_message(body_hash, index, &masked))
                .as_ref(),
        );
        Selector {
            name_key: self.name_key(),
            ordinal: masked,
            claim: sig,
        }
    }

    /// Whether `selector` was made from this name.
    pub fn is_named(&self, selector: &Selector) -> bool {
        selector.name_key == self.name_key()
    }
}

fn claim_message(body_hash: &[u8; 32], index: u8, masked: &MaskedOrdinal) -> [u8; 69] {
    let mut m = [0u8; 69];
    m[..20].copy_from_slice(b"lf selector claim v1");
    m[20..52].copy_from_slice(body_hash);
    m[52] = index;
    m[53..].copy_from_slice(masked);
    m
}

/// One selector as carried in a record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Selector {
    /// The name's Ed25519 public key.
    pub name_key: [u8; 32],
    /// The masked ordinal.
    pub ordinal: MaskedOrdinal,
    /// Ed25519 signature by the name's key over the body hash, index and ordinal.
    pub claim: [u8; 64],
}

impl Selector {
    /// The database key of this selector.
    pub fn key(&self) -> SelectorKey {
        SelectorKey::new(&self.name_key, &self.ordinal)
    }

    /// Verifies the claim (strict Ed25519: no malleable or small-order encodings).
    pub fn verify(&self, index: u8, body_hash: &[u8; 32]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.name_key) else {
            return false;
        };
        let sig = Signature::from_bytes(&self.claim);
        key.verify_strict(&claim_message(body_hash, index, &self.ordinal), &sig)
            .is_ok()
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.name_key);
        out.extend_from_slice(&self.ordinal);
        out.extend_from_slice(&self.claim);
    }

    pub(crate) fn read(b: &[u8; SELECTOR_LEN]) -> Self {
        let mut s = Selector {
            name_key: [0; 32],
            ordinal: [0; 16],
            claim: [0; 64],
        };
        s.name_key.copy_from_slice(&b[..32]);
        s.ordinal.copy_from_slice(&b[32..48]);
        s.claim.copy_from_slice(&b[48..]);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_ordinal_within_a_name() {
        let n = SelectorName::new(b"bad horse");
        assert!(n.key(0) < n.key(1));
        assert!(n.key(1) < n.key(u64::MAX));
        assert_eq!(n.key(5).0[..16], n.key(900).0[..16]);
        assert_ne!(
            n.key(5).0[..16],
            SelectorName::new(b"good horse").key(5).0[..16]
        );
    }

    #[test]
    fn keys_and_claims_are_ed25519_of_the_derived_seed() {
        // The format: the name key and claims are RFC 8032 Ed25519 of the HKDF seed,
        // whichever implementation makes them (here checked against ed25519-dalek).
        use ed25519_dalek::{Signer, SigningKey};
        for name in [&b"bad horse"[..], b"", b"lffs-chunk:0123"] {
            let seed: [u8; 32] = hkdf_sha256(b"lf selector name v1", name, &[b"ed25519 claim key"]);
            let dalek = SigningKey::from_bytes(&seed);
            let n = SelectorName::new(name);
            assert_eq!(n.name_key(), dalek.verifying_key().to_bytes());
            let body = [3u8; 32];
            let s = n.claim(7, 1, &body);
            let want = dalek.sign(&claim_message(&body, 1, &n.ordinal_mask().mask(7)));
            assert_eq!(s.claim, want.to_bytes());
        }
    }

    #[test]
    fn claims_bind_body_index_and_ordinal() {
        let n = SelectorName::new(b"name");
        let body = [9u8; 32];
        let s = n.claim(42, 0, &body);
        assert!(s.verify(0, &body));
        assert!(n.is_named(&s));
        assert!(!SelectorName::new(b"other").is_named(&s));
        assert!(!s.verify(1, &body));
        assert!(!s.verify(0, &[8u8; 32]));
        let mut moved = s;
        moved.ordinal = n.ordinal_mask().mask(43);
        assert!(!moved.verify(0, &body));
        assert_eq!(n.ordinal_mask().unmask(&s.ordinal), 42);
    }
}
