//! The peer protocol's messages, version 1 (CBOR through libp2p's request-response
//! codec; announcements as CBOR gossipsub payloads). Hash lists travel as one byte
//! string of 32-byte hashes. Every size is bounded here and checked on decode, so a
//! peer cannot make a node allocate more than these limits allow.

use lf_record::RecordHash;
use serde::{Deserialize, Serialize};

/// Request-response protocol name.
pub const SYNC_PROTOCOL: &str = "/lf/sync/1";
/// Gossipsub topic of record announcements.
pub const TOPIC: &str = "lf/records/1";
/// Identify protocol version string (peers of other software are told apart by it).
pub const IDENTIFY_VERSION: &str = "/lf/1";
/// Largest record (the format's limit).
pub const MAX_RECORD_SIZE: usize = 65_536;
/// Most hashes in one [`Request::Get`].
pub const MAX_GET: usize = 128;
/// Most hashes in one [`Announce`].
pub const MAX_ANNOUNCE: usize = 512;
/// Most hashes in one [`Response::Hashes`] page.
pub const MAX_HASH_PAGE: usize = 1024;
/// Most addresses in one [`Response::Peers`].
pub const MAX_PEERS: usize = 32;
/// Largest encoded request.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// Largest encoded response (a full [`Request::Get`] batch of maximal records).
pub const MAX_RESPONSE_BYTES: u64 = (MAX_GET * (MAX_RECORD_SIZE + 16) + 4096) as u64;
/// Largest gossip message.
pub const MAX_GOSSIP_BYTES: usize = 32 * MAX_ANNOUNCE + 1024;

/// A list of record hashes, encoded as one byte string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashList(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl HashList {
    /// Encodes hashes.
    pub fn new(hashes: &[RecordHash]) -> HashList {
        HashList(hashes.iter().flat_map(|h| h.0).collect())
    }

    /// Decodes, refusing a length that is not a multiple of 32 or more than `max` hashes.
    pub fn decode(&self, max: usize) -> Result<Vec<RecordHash>, WireError> {
        if !self.0.len().is_multiple_of(32) {
            return Err(WireError::Malformed(
                "hash list length is not a multiple of 32",
            ));
        }
        if self.0.len() / 32 > max {
            return Err(WireError::TooMany {
                got: self.0.len() / 32,
                max,
            });
        }
        Ok(self
            .0
            .chunks_exact(32)
            .map(|c| RecordHash(c.try_into().expect("32-byte chunk")))
            .collect())
    }
}

/// A request on [`SYNC_PROTOCOL`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Records by hash (at most [`MAX_GET`]).
    Get(HashList),
    /// Bucket digests (see [`crate::buckets`]): buckets `first..first+count`, combined
    /// in groups of `group` consecutive buckets.
    Digests {
        /// First bucket.
        first: u16,
        /// Number of buckets.
        count: u16,
        /// Buckets per returned digest.
        group: u16,
    },
    /// Stored hashes in `start..=end`, ascending, at most `limit` (≤ [`MAX_HASH_PAGE`]).
    Hashes {
        /// First hash of the range.
        #[serde(with = "serde_bytes")]
        start: [u8; 32],
        /// Last hash of the range.
        #[serde(with = "serde_bytes")]
        end: [u8; 32],
        /// Page size.
        limit: u16,
    },
    /// Addresses of other peers (peer exchange).
    Peers,
    /// Stored hashes in the order the peer stored them, after position `after` (0:
    /// from its first record), at most `limit` (≤ [`MAX_HASH_PAGE`]): how a node far
    /// behind pulls records parents first, and how a node follows a peer's new records.
    /// `after == u64::MAX` asks for the tail only: an empty page whose `next` is the
    /// position of the last stored record (a peer without storage order answers
    /// `next == u64::MAX`).
    Stored {
        /// Position to continue after (a previous answer's `next`).
        after: u64,
        /// Page size.
        limit: u16,
    },
}

/// A response on [`SYNC_PROTOCOL`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The requested records that are stored, in any order.
    Records(Vec<serde_bytes::ByteBuf>),
    /// Digests, 36 bytes each: count (u32, big-endian) · XOR of the hashes.
    Digests(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Hashes.
    Hashes(HashList),
    /// Multiaddrs ending in `/p2p/<peer id>`.
    Peers(Vec<String>),
    /// Hashes in storage order, and the position of the last one (to continue after).
    Stored {
        /// The page.
        hashes: HashList,
        /// Position of its last hash (`after` when the page is empty).
        next: u64,
    },
    /// The request was refused (malformed or out of bounds).
    Refused(String),
}

/// A gossip announcement of new records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// Hashes of records the sender has stored and validated (at most [`MAX_ANNOUNCE`]).
    pub hashes: HashList,
}

/// A message that breaks the protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Undecodable or inconsistent.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// More items than allowed.
    #[error("{got} items where at most {max} are allowed")]
    TooMany {
        /// Items sent.
        got: usize,
        /// Limit.
        max: usize,
    },
}

/// Encodes an announcement for gossip.
pub fn encode_announce(hashes: &[RecordHash]) -> Vec<u8> {
    let a = Announce {
        hashes: HashList::new(hashes),
    };
    // Encoding into a Vec cannot fail for these plain types.
    cbor4ii::serde::to_vec(Vec::with_capacity(hashes.len() * 32 + 16), &a).unwrap_or_default()
}

/// Decodes a gossip announcement.
pub fn decode_announce(bytes: &[u8]) -> Result<Vec<RecordHash>, WireError> {
    if bytes.len() > MAX_GOSSIP_BYTES {
        return Err(WireError::Malformed("announcement too large"));
    }
    // Gossip payloads use the same CBOR as request-response (cbor4ii through serde).
    let a: Announce =
        cbor4ii::serde::from_slice(bytes).map_err(|_| WireError::Malformed("undecodable"))?;
    a.hashes.decode(MAX_ANNOUNCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_round_trips_and_rejects_garbage() {
        let hs = vec![RecordHash([1; 32]), RecordHash([2; 32])];
        let b = encode_announce(&hs);
        assert_eq!(decode_announce(&b).unwrap(), hs);
        assert!(decode_announce(b"\xff\x00garbage").is_err());
        assert!(decode_announce(&[]).is_err());
        let bad = HashList(vec![0; 33]);
        assert!(bad.decode(10).is_err());
        let many = HashList(vec![0; 32 * 11]);
        assert_eq!(
            many.decode(10),
            Err(WireError::TooMany { got: 11, max: 10 })
        );
    }
}
