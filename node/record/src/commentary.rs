//! Commentary: what oracles say about other records, carried as the value of
//! commentary records (type 2, no selectors, readable without a masking key).
//!
//! Value format (as the seed's): comments back to back, each
//! `assertion (1 byte) · reason (1 byte) · subject length (1 byte) · subject`.
//! Assertion 1 = "this record collides with a previously claimed ID" (subject = the
//! suspect record's 32-byte hash). Reason 1 = flagged automatically, 2 = manually.
//! Unknown assertions are kept (future use) and ignored by queries.

use crate::RecordHash;

/// "Collides with a previously claimed ID": the subject is an impostor.
pub const ASSERT_COLLISION: u8 = 1;
/// Flagged automatically by an oracle node.
pub const REASON_AUTOMATIC: u8 = 1;
/// Flagged by a person.
pub const REASON_MANUAL: u8 = 2;

/// One comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// What is asserted.
    pub assertion: u8,
    /// Why.
    pub reason: u8,
    /// About what (a record hash for [`ASSERT_COLLISION`]).
    pub subject: Vec<u8>,
}

impl Comment {
    /// A collision comment about `suspect`.
    pub fn collision(suspect: RecordHash) -> Self {
        Comment {
            assertion: ASSERT_COLLISION,
            reason: REASON_AUTOMATIC,
            subject: suspect.0.to_vec(),
        }
    }

    /// The subject as a record hash, when it is one.
    pub fn subject_hash(&self) -> Option<RecordHash> {
        self.subject.as_slice().try_into().ok().map(RecordHash)
    }
}

/// Encodes comments (subjects longer than 255 bytes are cut: they never are).
pub fn encode_comments(comments: &[Comment]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in comments {
        let s = &c.subject[..c.subject.len().min(255)];
        out.extend_from_slice(&[c.assertion, c.reason, s.len() as u8]);
        out.extend_from_slice(s);
    }
    out
}

/// Decodes comments; stops at the first incomplete one (never panics).
pub fn decode_comments(mut b: &[u8]) -> Vec<Comment> {
    let mut out = Vec::new();
    while b.len() >= 3 {
        let len = b[2] as usize;
        let Some(subject) = b.get(3..3 + len) else {
            break;
        };
        out.push(Comment {
            assertion: b[0],
            reason: b[1],
            subject: subject.to_vec(),
        });
        b = &b[3 + len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let cs = vec![
            Comment::collision(RecordHash([7; 32])),
            Comment {
                assertion: 9,
                reason: 2,
                subject: vec![1],
            },
        ];
        let b = encode_comments(&cs);
        assert_eq!(decode_comments(&b), cs);
        assert_eq!(decode_comments(&b[..b.len() - 1]), cs[..1].to_vec());
        assert_eq!(cs[0].subject_hash(), Some(RecordHash([7; 32])));
        assert!(decode_comments(&[1, 1, 200]).is_empty());
    }
}
