//! The work a record carries, its 28-byte encoding, and the two definitions the scheme
//! rests on: the Equi-X challenge derived from a record's challenge, and the effort
//! threshold a solution must pass.

use equix::{Solution, SolutionByteArray};
use sha2::{Digest, Sha256};

use crate::PowError;

/// Encoded length of [`Work`]: nonce (8) · effort (4) · solution (16).
pub const WORK_LEN: usize = 28;

/// Work algorithm id of Equi-X-with-effort in records; 0 is reserved for "no work".
pub const ALGORITHM_ID: u8 = 1;

/// Domain separation (and version) of the Equi-X challenge.
const DOMAIN: &[u8; 9] = b"lf-pow-v1";

/// Length of an Equi-X challenge: domain · record challenge · nonce · effort.
pub(crate) const EQUIX_CHALLENGE_LEN: usize = DOMAIN.len() + 32 + 8 + 4;

/// Proof of work: the nonce, the claimed effort and the Equi-X solution found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Work {
    /// Nonce mixed into the Equi-X challenge.
    pub nonce: u64,
    /// Claimed effort, at least 1; the solution passes the threshold for it.
    pub effort: u32,
    /// Equi-X solution, as `equix::Solution::to_bytes` packs it.
    pub solution: SolutionByteArray,
}

impl Work {
    /// Encodes as nonce (big-endian 64) · effort (big-endian 32) · solution bytes.
    pub fn to_bytes(&self) -> [u8; WORK_LEN] {
        let mut b = [0u8; WORK_LEN];
        b[..8].copy_from_slice(&self.nonce.to_be_bytes());
        b[8..12].copy_from_slice(&self.effort.to_be_bytes());
        b[12..].copy_from_slice(&self.solution);
        b
    }

    /// Decodes [`Work::to_bytes`]. Checks the length, that effort is not 0 and that the
    /// solution is well formed; whether it solves anything is [`verify`](crate::verify)'s job.
    pub fn from_bytes(b: &[u8]) -> Result<Work, PowError> {
        let wrong_length = PowError::WrongLength { len: b.len() };
        let b: &[u8; WORK_LEN] = b.try_into().map_err(|_| wrong_length)?;
        let (nonce, rest) = b.split_first_chunk::<8>().ok_or(wrong_length)?;
        let (effort, solution) = rest.split_first_chunk::<4>().ok_or(wrong_length)?;
        let solution: SolutionByteArray = solution.try_into().map_err(|_| wrong_length)?;
        let effort = u32::from_be_bytes(*effort);
        if effort == 0 {
            return Err(PowError::ZeroEffort);
        }
        Solution::try_from_bytes(&solution).map_err(|_| PowError::MalformedSolution)?;
        Ok(Work {
            nonce: u64::from_be_bytes(*nonce),
            effort,
            solution,
        })
    }
}

/// The Equi-X challenge for (record challenge, nonce, effort):
/// `"lf-pow-v1" · challenge · nonce (BE64) · effort (BE32)`. Binding the effort in means
/// a solution found for one effort cannot be re-labelled with another.
pub(crate) fn equix_challenge(
    challenge: &[u8; 32],
    nonce: u64,
    effort: u32,
) -> [u8; EQUIX_CHALLENGE_LEN] {
    let mut c = [0u8; EQUIX_CHALLENGE_LEN];
    c[..9].copy_from_slice(DOMAIN);
    c[9..41].copy_from_slice(challenge);
    c[41..49].copy_from_slice(&nonce.to_be_bytes());
    c[49..].copy_from_slice(&effort.to_be_bytes());
    c
}

/// Whether a solution passes the effort threshold: with `R` the first 4 bytes
/// (big-endian) of SHA-256(Equi-X challenge · solution), `R · effort ≤ 2³² − 1`.
/// A uniform `R` passes with probability ≈ 1/effort; effort 1 passes everything.
pub(crate) fn meets_effort(
    equix_challenge: &[u8; EQUIX_CHALLENGE_LEN],
    solution: &SolutionByteArray,
    effort: u32,
) -> bool {
    let h = Sha256::new()
        .chain_update(equix_challenge)
        .chain_update(solution)
        .finalize();
    let r = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    u64::from(r) * u64::from(effort) <= u64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A well-formed solution from arbitrary items: sorts them into Equi-X tree order
    /// (at each tree node the left branch, read from its last item, is not greater).
    fn well_formed(mut items: [u16; 8]) -> SolutionByteArray {
        fn sort(items: &mut [u16]) {
            let half = items.len() / 2;
            if items.len() > 2 {
                sort(&mut items[..half]);
                sort(&mut items[half..]);
            }
            let (l, r) = items.split_at_mut(half);
            if l.iter().rev().cmp(r.iter().rev()).is_gt() {
                l.swap_with_slice(r);
            }
        }
        sort(&mut items);
        let mut b = [0u8; 16];
        for (chunk, item) in b.chunks_exact_mut(2).zip(items) {
            chunk.copy_from_slice(&item.to_le_bytes());
        }
        b
    }

    proptest! {
        #[test]
        fn proptest_round_trip(nonce in any::<u64>(), effort in 1u32.., items in any::<[u16; 8]>()) {
            let w = Work { nonce, effort, solution: well_formed(items) };
            prop_assert_eq!(Work::from_bytes(&w.to_bytes()), Ok(w));
        }

        #[test]
        fn proptest_from_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            match Work::from_bytes(&b) {
                Ok(w) => prop_assert_eq!(&w.to_bytes()[..], &b[..]),
                Err(PowError::WrongLength { len }) => prop_assert!(len != WORK_LEN),
                Err(e) => prop_assert!(
                    matches!(e, PowError::ZeroEffort | PowError::MalformedSolution),
                    "{e}"
                ),
            }
        }
    }

    #[test]
    fn from_bytes_rejects_bad_encodings() {
        assert_eq!(
            Work::from_bytes(&[0; 27]),
            Err(PowError::WrongLength { len: 27 })
        );
        assert_eq!(
            Work::from_bytes(&[0; 29]),
            Err(PowError::WrongLength { len: 29 })
        );
        assert_eq!(Work::from_bytes(&[]), Err(PowError::WrongLength { len: 0 }));
        assert_eq!(Work::from_bytes(&[0; 28]), Err(PowError::ZeroEffort));
        let mut b = [0u8; WORK_LEN];
        b[11] = 1;
        // Items 1, 0 in the first pair are out of tree order.
        b[12] = 1;
        assert_eq!(Work::from_bytes(&b), Err(PowError::MalformedSolution));
        b[12] = 0;
        assert!(Work::from_bytes(&b).is_ok());
    }

    #[test]
    fn encoding_layout() {
        let w = Work {
            nonce: 0x0102_0304_0506_0708,
            effort: 0x090a_0b0c,
            solution: well_formed([0; 8]),
        };
        let b = w.to_bytes();
        assert_eq!(b[..12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(b[12..], [0; 16]);
    }

    #[test]
    fn equix_challenge_layout() {
        let c = equix_challenge(&[0xaa; 32], 0x0102_0304_0506_0708, 0x090a_0b0c);
        assert_eq!(&c[..9], b"lf-pow-v1");
        assert_eq!(c[9..41], [0xaa; 32]);
        assert_eq!(c[41..], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn threshold_scales_with_effort() {
        let c = equix_challenge(&[0; 32], 0, 1);
        let pass = |effort| {
            (0u16..2000)
                .filter(|i| {
                    let mut s = [0u8; 16];
                    s[..2].copy_from_slice(&i.to_le_bytes());
                    meets_effort(&c, &s, effort)
                })
                .count()
        };
        assert_eq!(pass(1), 2000);
        assert!((850..1150).contains(&pass(2)), "{}", pass(2));
        assert!((5..40).contains(&pass(100)), "{}", pass(100));
        assert!(pass(u32::MAX) <= 1);
    }
}
