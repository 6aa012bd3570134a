//! Randomness from the operating system, for keys and network IDs.

/// Fills `buf` with OS randomness; failure to read it is fatal for key generation.
pub fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// A fresh random P-384 owner.
pub fn new_owner() -> lf_record::OwnerSecret {
    lf_record::OwnerSecret::generate(|b| fill(b))
}
