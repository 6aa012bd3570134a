//! Key derivation helpers shared by selectors, ordinals and masking: HKDF-SHA256 with
//! a fixed, versioned salt per purpose so that no two purposes ever share a key.

use hkdf::Hkdf;
use sha2::Sha256;

/// Derives `N` bytes from `ikm` for one purpose (`salt`) and context (`info`).
pub(crate) fn hkdf_sha256<const N: usize>(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand_multi_info(info, &mut out)
        // Only fails for N > 255 * 32, which no caller asks for.
        .expect("hkdf output length within bounds");
    out
}

/// SHA-256 over several parts, without allocating.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}
