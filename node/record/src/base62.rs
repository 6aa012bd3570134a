//! Base62 text form of byte strings (`@owner`, `=hash`), with the seed's alphabet.
//!
//! Big-number conversion as in base58; leading zero bytes become leading `0` digits,
//! so the encoding round-trips byte strings of any length.

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encodes bytes as base62 text.
pub fn encode(bytes: &[u8]) -> String {
    base_x::encode(ALPHABET, bytes)
}

/// Decodes base62 text; `None` if it holds a character outside the alphabet.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    base_x::decode(ALPHABET, text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_vectors() {
        // Vectors from the reference (§1.1); leading zeros map to leading '0's.
        assert_eq!(encode(&[0xff]), "47");
        assert_eq!(encode(&[0, 0, 0xff]), "0047");
        assert_eq!(encode(&[1, 2, 3, 4, 5]), "4iwreH");
        assert_eq!(encode(&[0x68, 0x69]), "6x7");
        assert_eq!(decode("0047").unwrap(), vec![0, 0, 0xff]);
        assert!(decode("ab+c").is_none());
    }

    proptest::proptest! {
        #[test]
        fn proptest_round_trip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            proptest::prop_assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }
    }
}
