//! Record hashes and record IDs, with their `=base62` text form.

use std::fmt;
use std::str::FromStr;

/// SHA-256 of a record's canonical bytes: its identity in the DAG and in links.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RecordHash(pub [u8; 32]);

/// What a record claims: the hash of its selector keys (or its own hash when it has
/// none). Two records with the same ID compete for the same place.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RecordId(pub [u8; 32]);

macro_rules! text_form {
    ($t:ty, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "={}", crate::base62::encode(&self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl FromStr for $t {
            type Err = String;
            /// Parses `=base62` (the `=` is optional).
            fn from_str(s: &str) -> Result<Self, String> {
                let body = s.strip_prefix('=').unwrap_or(s);
                let bytes = crate::base62::decode(body)
                    .ok_or_else(|| format!("{} {s:?} is not base62", $what))?;
                let arr: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| format!("{} {s:?} is not 32 bytes", $what))?;
                Ok(Self(arr))
            }
        }
        impl AsRef<[u8]> for $t {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
    };
}
text_form!(RecordHash, "record hash");
text_form!(RecordId, "record id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_errors() {
        let h = RecordHash([7; 32]);
        let s = h.to_string();
        assert!(s.starts_with('='));
        assert_eq!(s.parse::<RecordHash>().unwrap(), h);
        assert_eq!(
            RecordHash([0; 32])
                .to_string()
                .parse::<RecordHash>()
                .unwrap()
                .0,
            [0; 32]
        );
        assert!(
            "=abc"
                .parse::<RecordHash>()
                .unwrap_err()
                .contains("32 bytes")
        );
        assert!("=a/c".parse::<RecordHash>().unwrap_err().contains("base62"));
    }
}
