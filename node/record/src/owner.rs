//! Owners: P-384 ECDSA key pairs that sign records.
//!
//! The public form ([`Owner`]) is the 49-byte SEC1-compressed public key, written as
//! `@` + base62. It is carried whole in every record so that verification is one plain
//! ECDSA verify (the seed truncated a hash of the key and used public-key recovery,
//! which costs two recoveries per record). Secrets are stored as standard SEC1
//! `EC PRIVATE KEY` PEM (readable by OpenSSL); PKCS#8 `PRIVATE KEY` PEM is accepted too.

use std::fmt;
use std::str::FromStr;

use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use p384::elliptic_curve::pkcs8::DecodePrivateKey;
use p384::pkcs8::LineEnding;

use crate::kdf::hkdf_sha256;

/// Length of an owner's public key on the wire.
pub const OWNER_LEN: usize = 49;
/// Length of an owner signature (r || s).
pub const SIGNATURE_LEN: usize = 96;

/// The passphrase KDF, for documentation and `lf selftest` output.
pub const PASSPHRASE_KDF: &str = "Argon2id (RFC 9106), m=64 MiB, t=3, p=1";

/// Errors about owner keys.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnerError {
    /// Not a compressed P-384 point (wrong length or tag byte).
    #[error("owner must be a 49-byte compressed P-384 public key")]
    BadPublicKey,
    /// The text form is not `@` followed by base62.
    #[error("owner {0:?} is not @ followed by base62")]
    BadText(String),
    /// The PEM or DER secret key could not be read.
    #[error("owner secret key is not a P-384 EC PRIVATE KEY or PRIVATE KEY PEM")]
    BadSecret,
    /// The passphrase KDF failed (empty passphrase).
    #[error("passphrase must not be empty")]
    EmptyPassphrase,
}

/// An owner's public identity: a compressed P-384 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner(pub(crate) [u8; OWNER_LEN]);

impl Owner {
    /// Wraps 49 bytes after a cheap shape check (length and SEC1 tag). Whether the
    /// point is on the curve is found out by [`Owner::verify`], which must decompress
    /// it anyway; parsing stays cheap.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OwnerError> {
        let arr: [u8; OWNER_LEN] = bytes.try_into().map_err(|_| OwnerError::BadPublicKey)?;
        if arr[0] != 2 && arr[0] != 3 {
            return Err(OwnerError::BadPublicKey);
        }
        Ok(Owner(arr))
    }

    /// The 49 wire bytes.
    pub fn as_bytes(&self) -> &[u8; OWNER_LEN] {
        &self.0
    }

    /// Verifies a low-S ECDSA P-384 (SHA-384) signature over `msg`.
    pub fn verify(&self, msg: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        self.verify_with(msg, signature, &mut OwnerKeys::default())
    }

    /// [`Owner::verify`], taking the decompressed key from `keys` (decompressing a
    /// P-384 point costs about a quarter of a verification).
    pub fn verify_with(
        &self,
        msg: &[u8],
        signature: &[u8; SIGNATURE_LEN],
        keys: &mut OwnerKeys,
    ) -> bool {
        let Some(point) = keys.point(self) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        // Only the low-S form is valid, so a record has exactly one valid encoding
        // per signature and its hash cannot be changed by flipping s.
        if sig.normalize_s().to_bytes() != sig.to_bytes() {
            return false;
        }
        verify_p384(
            point,
            msg,
            signature,
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
        )
    }

    /// The key as an uncompressed SEC1 point (97 bytes), or `None` if the 49 bytes are
    /// not a point on P-384. Decompression is p384's (faster than AWS-LC's here).
    pub fn uncompressed(&self) -> Option<Vec<u8>> {
        let vk = VerifyingKey::from_sec1_bytes(&self.0).ok()?;
        Some(vk.to_sec1_point(false).as_bytes().to_vec())
    }
}

/// Decompressed owner keys, for verifying many records of the same owners (a catch-up,
/// a batch from a peer). Bounded: it forgets everything past [`OwnerKeys::CAPACITY`]
/// owners. Plain data: each verifying thread keeps its own.
#[derive(Default)]
pub struct OwnerKeys {
    points: std::collections::HashMap<Owner, Option<Vec<u8>>>,
}

impl OwnerKeys {
    /// Most owners remembered (about 100 KiB).
    pub const CAPACITY: usize = 1024;

    /// The owner's uncompressed point, or `None` if it is not a point on P-384.
    fn point(&mut self, owner: &Owner) -> Option<&[u8]> {
        if self.points.len() >= Self::CAPACITY && !self.points.contains_key(owner) {
            self.points.clear();
        }
        self.points
            .entry(*owner)
            .or_insert_with(|| owner.uncompressed())
            .as_deref()
    }
}

/// The low-S form of a fixed-size (r || s) ECDSA P-384 signature, the only form
/// records accept; `None` if the bytes are not a signature.
pub fn low_s(signature: &[u8]) -> Option<[u8; SIGNATURE_LEN]> {
    let sig = Signature::from_slice(signature).ok()?;
    let mut out = [0u8; SIGNATURE_LEN];
    out.copy_from_slice(&sig.normalize_s().to_bytes());
    Some(out)
}

/// ECDSA P-384 / SHA-384 verification by AWS-LC; `alg` picks the signature encoding
/// (fixed r || s for records, ASN.1 DER for X.509).
pub(crate) fn verify_p384(
    uncompressed: &[u8],
    msg: &[u8],
    signature: &[u8],
    alg: &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm,
) -> bool {
    aws_lc_rs::signature::UnparsedPublicKey::new(alg, uncompressed)
        .verify(msg, signature)
        .is_ok()
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", crate::base62::encode(&self.0))
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Owner {
    type Err = OwnerError;
    fn from_str(s: &str) -> Result<Self, OwnerError> {
        let body = s
            .strip_prefix('@')
            .ok_or_else(|| OwnerError::BadText(s.into()))?;
        let bytes = crate::base62::decode(body).ok_or_else(|| OwnerError::BadText(s.into()))?;
        Owner::from_bytes(&bytes)
    }
}

/// An owner's secret key. Signs deterministically (RFC 6979) in low-S form.
#[derive(Clone)]
pub struct OwnerSecret {
    key: SigningKey,
    public: Owner,
}

impl fmt::Debug for OwnerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerSecret({})", self.public)
    }
}

impl OwnerSecret {
    /// Makes an owner from 48 secret bytes (a P-384 scalar, big-endian); fails if the
    /// bytes are zero or not below the group order. Callers bring the randomness.
    pub fn from_scalar_bytes(bytes: &[u8]) -> Result<Self, OwnerError> {
        if bytes.len() != 48 {
            return Err(OwnerError::BadSecret);
        }
        let key = SigningKey::from_slice(bytes).map_err(|_| OwnerError::BadSecret)?;
        Ok(Self::from_key(key))
    }

    /// Makes a fresh owner by drawing scalars from `random` until one is valid.
    pub fn generate(mut random: impl FnMut(&mut [u8; 48])) -> Self {
        loop {
            let mut b = [0u8; 48];
            random(&mut b);
            if let Ok(s) = Self::from_scalar_bytes(&b) {
                return s;
            }
        }
    }

    /// Derives an owner and a masking key from a passphrase, deterministically.
    ///
    /// The passphrase is stretched with Argon2id (RFC 9106; the winner of the Password
    /// Hashing Competition and the RFC's recommended choice) with 64 MiB of memory and
    /// three passes, so that guessing passphrases costs memory as well as time. The
    /// salt is fixed on purpose: the same passphrase must give the same owner on every
    /// machine (LFFS `passphrase` mounts rely on it). The 64-byte result seeds the owner
    /// scalar and the masking key through HKDF with distinct labels.
    pub fn from_passphrase(passphrase: &str) -> Result<(Self, Vec<u8>), OwnerError> {
        let passphrase = passphrase.trim();
        if passphrase.is_empty() {
            return Err(OwnerError::EmptyPassphrase);
        }
        let params = argon2::Params::new(64 * 1024, 3, 1, Some(64))
            .map_err(|_| OwnerError::EmptyPassphrase)?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut seed = [0u8; 64];
        argon
            .hash_password_into(passphrase.as_bytes(), b"lf passphrase owner v1", &mut seed)
            .map_err(|_| OwnerError::EmptyPassphrase)?;
        let mut counter = 0u32;
        let owner = loop {
            let scalar: [u8; 48] = hkdf_sha256(
                b"lf passphrase v1",
                &seed,
                &[b"owner", &counter.to_be_bytes()],
            );
            if let Ok(o) = Self::from_scalar_bytes(&scalar) {
                break o;
            }
            counter += 1;
        };
        let mask: [u8; 32] = hkdf_sha256(b"lf passphrase v1", &seed, &[b"masking key"]);
        Ok((owner, mask.to_vec()))
    }

    fn from_key(key: SigningKey) -> Self {
        let point = key.verifying_key().to_sec1_point(true);
        let mut public = [0u8; OWNER_LEN];
        public.copy_from_slice(point.as_bytes());
        OwnerSecret {
            key,
            public: Owner(public),
        }
    }

    /// The public owner.
    pub fn public(&self) -> Owner {
        self.public
    }

    /// Signs `msg` (ECDSA P-384 with SHA-384, RFC 6979 nonces, low-S).
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        let sig: Signature = self.key.sign(msg);
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(&sig.normalize_s().to_bytes());
        out
    }

    /// The secret scalar as 48 big-endian bytes.
    pub fn to_scalar_bytes(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out.copy_from_slice(&self.key.to_bytes());
        out
    }

    /// SEC1 `EC PRIVATE KEY` PEM.
    pub fn to_pem(&self) -> String {
        let sk = p384::SecretKey::from_slice(&self.key.to_bytes()).expect("valid scalar");
        sk.to_sec1_pem(LineEnding::LF)
            .expect("pem encoding of a valid key")
            .to_string()
    }

    /// PKCS#8 `PrivateKeyInfo` DER (what X.509 tooling such as rcgen reads).
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        use p384::pkcs8::EncodePrivateKey;
        let sk = p384::SecretKey::from_slice(&self.key.to_bytes()).expect("valid scalar");
        sk.to_pkcs8_der()
            .expect("pkcs8 encoding of a valid key")
            .as_bytes()
            .to_vec()
    }

    /// The public key as an uncompressed SEC1 point (97 bytes; X.509 SubjectPublicKeyInfo).
    pub fn public_uncompressed(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec()
    }

    /// Reads SEC1 `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY` PEM.
    pub fn from_pem(pem: &str) -> Result<Self, OwnerError> {
        let sk = p384::SecretKey::from_sec1_pem(pem)
            .or_else(|_| p384::SecretKey::from_pkcs8_pem(pem))
            .map_err(|_| OwnerError::BadSecret)?;
        Self::from_scalar_bytes(&sk.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(n: u8) -> OwnerSecret {
        OwnerSecret::from_scalar_bytes(&[n; 48]).unwrap()
    }

    #[test]
    fn sign_verify_and_reject_tampering() {
        let o = fixed(1);
        let sig = o.sign(b"hello");
        assert!(o.public().verify(b"hello", &sig));
        assert!(!o.public().verify(b"hellp", &sig));
        assert!(!fixed(2).public().verify(b"hello", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!o.public().verify(b"hello", &bad));
    }

    #[test]
    fn cached_keys_give_the_same_verdicts_and_stay_bounded() {
        let mut keys = OwnerKeys::default();
        let (a, b) = (fixed(4), fixed(5));
        let sig = a.sign(b"m");
        for _ in 0..2 {
            assert!(a.public().verify_with(b"m", &sig, &mut keys));
            assert!(!b.public().verify_with(b"m", &sig, &mut keys));
            assert!(!a.public().verify_with(b"n", &sig, &mut keys));
        }
        // Bytes that are no point on the curve stay invalid, cached or not.
        let mut bytes = *a.public().as_bytes();
        bytes[0] = 0x02;
        bytes[1..].fill(0xff);
        if let Ok(not_a_point) = Owner::from_bytes(&bytes) {
            assert!(!not_a_point.verify_with(b"m", &sig, &mut keys));
            assert!(!not_a_point.verify_with(b"m", &sig, &mut keys));
        }
        for i in 0..OwnerKeys::CAPACITY as u32 + 10 {
            let mut k = [0u8; 48];
            k[..4].copy_from_slice(&(i + 1).to_be_bytes());
            let o = OwnerSecret::from_scalar_bytes(&k).unwrap().public();
            keys.point(&o);
        }
        assert!(keys.points.len() <= OwnerKeys::CAPACITY);
        assert!(a.public().verify_with(b"m", &sig, &mut keys));
    }

    #[test]
    fn high_s_is_rejected() {
        let o = fixed(3);
        let sig = o.sign(b"m");
        let parsed = Signature::from_slice(&sig).unwrap();
        // Build the high-S twin: (r, n - s). It verifies under plain ECDSA but not here.
        let (r, s) = parsed.split_scalars();
        let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        let mut high_bytes = [0u8; SIGNATURE_LEN];
        high_bytes.copy_from_slice(&high.to_bytes());
        assert_ne!(high_bytes, sig);
        assert!(!o.public().verify(b"m", &high_bytes));
    }

    #[test]
    fn text_and_pem_round_trip() {
        let o = fixed(4);
        let text = o.public().to_string();
        assert!(text.starts_with('@'));
        assert_eq!(text.parse::<Owner>().unwrap(), o.public());
        assert!("nope".parse::<Owner>().is_err());
        assert!("@abc".parse::<Owner>().is_err());
        let pem = o.to_pem();
        assert!(pem.contains("BEGIN EC PRIVATE KEY"));
        assert_eq!(OwnerSecret::from_pem(&pem).unwrap().public(), o.public());
        assert_eq!(
            OwnerSecret::from_pem("garbage").unwrap_err(),
            OwnerError::BadSecret
        );
    }

    #[test]
    fn passphrase_is_deterministic_and_distinct() {
        let (a, ka) = OwnerSecret::from_passphrase("correct horse").unwrap();
        let (b, kb) = OwnerSecret::from_passphrase("  correct horse\n").unwrap();
        let (c, kc) = OwnerSecret::from_passphrase("correct horsf").unwrap();
        assert_eq!(a.public(), b.public());
        assert_eq!(ka, kb);
        assert_ne!(a.public(), c.public());
        assert_ne!(ka, kc);
        assert_eq!(
            OwnerSecret::from_passphrase(" ").unwrap_err(),
            OwnerError::EmptyPassphrase
        );
    }

    #[test]
    fn bad_scalars_are_rejected() {
        assert!(OwnerSecret::from_scalar_bytes(&[0; 48]).is_err());
        assert!(OwnerSecret::from_scalar_bytes(&[0xff; 48]).is_err());
        assert!(OwnerSecret::from_scalar_bytes(&[1; 47]).is_err());
    }
}
