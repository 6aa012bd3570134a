//! Hash buckets for set reconciliation: the hash space is cut into [`BUCKETS`] ranges by
//! the top [`BUCKET_BITS`] bits, each summarized by a [`Digest`] (count and XOR of the
//! hashes). Two nodes compare digests, then list hashes only where they differ, so the
//! traffic follows the size of the difference, not of the store.
//!
//! Digests are cached in memory (fixed size: 4096 × 36 bytes) and recomputed from the
//! [`crate::RecordSource`] for buckets marked dirty, so a missed update costs a
//! recomputation, never a wrong answer for long.

use lf_record::RecordHash;

/// Bits of hash prefix per bucket.
pub const BUCKET_BITS: u32 = 12;
/// Number of buckets.
pub const BUCKETS: usize = 1 << BUCKET_BITS;
/// Encoded size of one digest.
pub const DIGEST_BYTES: usize = 36;

/// The bucket a hash falls in.
pub fn bucket_of(h: &RecordHash) -> usize {
    ((h.0[0] as usize) << 4) | (h.0[1] as usize >> 4)
}

/// First and last hash of bucket `b`.
pub fn bucket_range(b: usize) -> (RecordHash, RecordHash) {
    let mut lo = [0u8; 32];
    lo[0] = (b >> 4) as u8;
    lo[1] = ((b & 0xf) << 4) as u8;
    let mut hi = [0xffu8; 32];
    hi[0] = lo[0];
    hi[1] = lo[1] | 0x0f;
    (RecordHash(lo), RecordHash(hi))
}

/// First and last hash of buckets `first..first + count`.
pub fn buckets_range(first: usize, count: usize) -> (RecordHash, RecordHash) {
    (bucket_range(first).0, bucket_range(first + count - 1).1)
}

/// Summary of a set of hashes: how many, and their XOR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    /// Number of hashes.
    pub count: u32,
    /// XOR of the hashes.
    pub xor: [u8; 32],
}

impl Digest {
    /// Adds one hash.
    pub fn add(&mut self, h: &RecordHash) {
        self.count = self.count.wrapping_add(1);
        for (x, y) in self.xor.iter_mut().zip(h.0) {
            *x ^= y;
        }
    }

    /// Adds another digest (of a disjoint set).
    pub fn combine(&mut self, o: &Digest) {
        self.count = self.count.wrapping_add(o.count);
        for (x, y) in self.xor.iter_mut().zip(o.xor) {
            *x ^= y;
        }
    }

    /// Appends the wire encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.xor);
    }

    /// Decodes a list of digests; `None` if the length is not a multiple of 36.
    pub fn decode_list(b: &[u8]) -> Option<Vec<Digest>> {
        if !b.len().is_multiple_of(DIGEST_BYTES) {
            return None;
        }
        Some(
            b.chunks_exact(DIGEST_BYTES)
                .map(|c| Digest {
                    count: u32::from_be_bytes(c[..4].try_into().expect("4 bytes")),
                    xor: c[4..].try_into().expect("32 bytes"),
                })
                .collect(),
        )
    }
}

/// The cached digests of every bucket, with a dirty flag per bucket.
pub struct HashBuckets {
    digests: Vec<Digest>,
    dirty: Vec<bool>,
}

impl Default for HashBuckets {
    fn default() -> Self {
        HashBuckets::new()
    }
}

impl HashBuckets {
    /// Every bucket dirty (nothing computed yet).
    pub fn new() -> HashBuckets {
        HashBuckets {
            digests: vec![Digest::default(); BUCKETS],
            dirty: vec![true; BUCKETS],
        }
    }

    /// Marks the bucket of `h` for recomputation (a record was added).
    pub fn mark(&mut self, h: &RecordHash) {
        self.dirty[bucket_of(h)] = true;
    }

    /// Marks every bucket for recomputation.
    pub fn mark_all(&mut self) {
        self.dirty.iter_mut().for_each(|d| *d = true);
    }

    /// Clears and returns the dirty buckets. The caller recomputes them and calls
    /// [`HashBuckets::set`]; a bucket marked again meanwhile stays dirty.
    pub fn take_dirty(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        for (b, d) in self.dirty.iter_mut().enumerate() {
            if std::mem::take(d) {
                out.push(b);
            }
        }
        out
    }

    /// Stores a recomputed digest.
    pub fn set(&mut self, b: usize, d: Digest) {
        self.digests[b] = d;
    }

    /// Digests of buckets `first..first + count` combined in groups of `group`.
    pub fn grouped(&self, first: usize, count: usize, group: usize) -> Vec<Digest> {
        let end = (first + count).min(BUCKETS);
        let group = group.max(1);
        self.digests[first.min(end)..end]
            .chunks(group)
            .map(|c| {
                let mut d = Digest::default();
                c.iter().for_each(|x| d.combine(x));
                d
            })
            .collect()
    }

    /// Total count over all buckets.
    pub fn total(&self) -> u64 {
        self.digests.iter().map(|d| d.count as u64).sum()
    }
}

/// Recomputes the digest of bucket `b` from `source` (blocking; pages of 4096).
pub fn compute(source: &dyn crate::RecordSource, b: usize) -> Digest {
    let (mut start, end) = bucket_range(b);
    let mut d = Digest::default();
    loop {
        let page = source.hashes_in(&start, &end, 4096);
        page.iter().for_each(|h| d.add(h));
        match page.last() {
            Some(last) if page.len() == 4096 => match next_hash(last) {
                Some(n) => start = n,
                None => break,
            },
            _ => break,
        }
    }
    d
}

/// The hash right after `h`, if any.
pub fn next_hash(h: &RecordHash) -> Option<RecordHash> {
    let mut n = h.0;
    for i in (0..32).rev() {
        if n[i] == 0xff {
            n[i] = 0;
        } else {
            n[i] += 1;
            return Some(RecordHash(n));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_space_in_order() {
        assert_eq!(bucket_range(0).0, RecordHash([0; 32]));
        assert_eq!(bucket_range(BUCKETS - 1).1, RecordHash([0xff; 32]));
        for b in [0, 1, 15, 16, 17, 255, 4095] {
            let (lo, hi) = bucket_range(b);
            assert_eq!(bucket_of(&lo), b);
            assert_eq!(bucket_of(&hi), b);
            if b + 1 < BUCKETS {
                assert_eq!(next_hash(&hi), Some(bucket_range(b + 1).0));
            }
        }
        assert_eq!(next_hash(&RecordHash([0xff; 32])), None);
    }

    #[test]
    fn digests_group_and_round_trip() {
        let mut hb = HashBuckets::new();
        assert_eq!(hb.take_dirty().len(), BUCKETS);
        assert!(hb.take_dirty().is_empty());
        let mut d = Digest::default();
        d.add(&RecordHash([7; 32]));
        hb.set(3, d);
        hb.set(5, d);
        let g = hb.grouped(0, 16, 16);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].count, 2);
        assert_eq!(g[0].xor, [0; 32]);
        let mut b = Vec::new();
        d.encode(&mut b);
        assert_eq!(Digest::decode_list(&b).unwrap(), vec![d]);
        assert!(Digest::decode_list(&b[..35]).is_none());
        hb.mark(&RecordHash([0; 32]));
        assert_eq!(hb.take_dirty(), vec![0]);
    }
}
