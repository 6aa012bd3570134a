//! Record signatures by AWS-LC, for the node's own writes.
//!
//! Signing with `p384` (RFC 6979 nonces, in `lf-record`) costs about 450 µs per record
//! on this machine kind and bounded how fast LFFS publishes a big file; AWS-LC, already
//! what verifies every record, signs the same ECDSA P-384 / SHA-384 several times
//! faster (figures: `cargo bench -p lf-record`, "sign"). Its nonces come from AWS-LC's
//! own generator, which is why this lives here and not in `lf-record`, which draws no
//! randomness. Signatures are brought to the low-S form records require; anything that
//! fails here falls back to `lf-record`'s signer, so a write never fails for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use lf_record::{Owner, OwnerSecret, SIGNATURE_LEN};

/// Most owners whose AWS-LC key is kept (a node signs for its identity and the owners
/// of its mounts); past it the cache starts again.
const CAPACITY: usize = 64;

type Keys = Mutex<HashMap<Owner, Option<Arc<EcdsaKeyPair>>>>;

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(Keys::default)
}

/// `owner`'s AWS-LC key pair, made once; `None` if AWS-LC refused the key.
fn key_of(owner: &OwnerSecret) -> Option<Arc<EcdsaKeyPair>> {
    let mut keys = keys().lock().unwrap_or_else(|p| p.into_inner());
    if keys.len() >= CAPACITY && !keys.contains_key(&owner.public()) {
        keys.clear();
    }
    keys.entry(owner.public())
        .or_insert_with(|| {
            let public = owner.public().uncompressed()?;
            EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P384_SHA384_FIXED_SIGNING,
                &owner.to_scalar_bytes(),
                &public,
            )
            .ok()
            .map(Arc::new)
        })
        .clone()
}

/// Signs `msg` as `owner` (ECDSA P-384 / SHA-384, low-S), by AWS-LC when it can.
pub fn sign(owner: &OwnerSecret, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
    key_of(owner)
        .and_then(|k| k.sign(&SystemRandom::new(), msg).ok())
        .and_then(|sig| lf_record::low_s(sig.as_ref()))
        .unwrap_or_else(|| owner.sign(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(seed: u8) -> OwnerSecret {
        OwnerSecret::generate(|b| b.fill(seed))
    }

    #[test]
    fn signatures_verify_as_the_owner_and_are_low_s() {
        for seed in 1..=8u8 {
            let o = owner(seed);
            for i in 0..16u8 {
                let msg = [i; 40];
                let sig = sign(&o, &msg);
                assert!(o.public().verify(&msg, &sig), "seed {seed}, message {i}");
                assert_eq!(lf_record::low_s(&sig), Some(sig));
                assert!(!owner(seed + 100).public().verify(&msg, &sig));
            }
        }
    }

    #[test]
    fn a_record_signed_here_passes_every_check() {
        let o = owner(7);
        let r = lf_record::RecordBuilder::new(lf_record::RecordType::Datum, 1_700_000_000)
            .value(b"v".to_vec())
            .selector(b"name", 0)
            .build(&o.public())
            .unwrap()
            .sign_with(0, |m| sign(&o, m))
            .finish(None)
            .unwrap();
        r.verify_signatures_with(&mut lf_record::OwnerKeys::default())
            .unwrap();
    }
}
