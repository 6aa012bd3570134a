//! Content-defined chunking (FastCDC 2020, `fastcdc` pinned to =5.0.0 because cut points
//! are a storage format) and chunk manifests. Pure: no I/O.

use sha2::{Digest, Sha256};

/// A chunk's identity: SHA-256 of its content.
pub type ChunkId = [u8; 32];

/// One entry of a manifest: chunk hash and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    /// SHA-256 of the chunk.
    pub id: ChunkId,
    /// Its length in bytes.
    pub len: u32,
}

/// Encoded size of one [`ChunkRef`].
pub const REF_LEN: usize = 36;

/// Chunk size bounds for a network whose records hold at most `max_value` bytes:
/// the largest power of two that fits (at least FastCDC's 1 KiB floor), a quarter of
/// it on average, a sixteenth at least.
pub fn sizes(max_value: usize) -> (usize, usize, usize) {
    let max = if max_value < 2048 {
        1024
    } else {
        1 << (usize::BITS - 1 - max_value.leading_zeros())
    };
    let max = max.min(1 << 20);
    (max / 16, max / 4, max)
}

/// Cuts `data` into content-defined chunks; returns (offset, length) pairs.
pub fn cut(data: &[u8], max_value: usize) -> Vec<(usize, usize)> {
    let (min, avg, max) = sizes(max_value);
    fastcdc::v2020::FastCDC::new(data, min, avg, max)
        .map(|c| (c.offset, c.length))
        .collect()
}

/// SHA-256 of a chunk.
pub fn chunk_id(data: &[u8]) -> ChunkId {
    Sha256::digest(data).into()
}

/// Encodes manifest entries back to back.
pub fn encode_refs(refs: &[ChunkRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(refs.len() * REF_LEN);
    for r in refs {
        out.extend_from_slice(&r.id);
        out.extend_from_slice(&r.len.to_be_bytes());
    }
    out
}

/// Decodes manifest entries; `None` if the length is not a multiple of 36.
pub fn decode_refs(b: &[u8]) -> Option<Vec<ChunkRef>> {
    if !b.len().is_multiple_of(REF_LEN) {
        return None;
    }
    Some(
        b.chunks_exact(REF_LEN)
            .map(|c| ChunkRef {
                id: c[..32].try_into().expect("32 bytes"),
                len: u32::from_be_bytes(c[32..].try_into().expect("4 bytes")),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn sizes_follow_the_network_limit() {
        assert_eq!(sizes(1024), (64, 256, 1024));
        assert_eq!(sizes(60_000), (2048, 8192, 32768));
        assert_eq!(sizes(65535), (2048, 8192, 32768));
    }

    #[test]
    fn golden_cut_points() {
        // Cut points are a storage format: if this changes, existing chunks stop
        // deduplicating. Update deliberately (and say so) if fastcdc is upgraded.
        let data = pseudo_random(200_000, 42);
        let cuts = cut(&data, 60_000);
        let offsets: Vec<usize> = cuts.iter().map(|c| c.0).collect();
        assert_eq!(
            offsets,
            vec![
                0, 11546, 14458, 19318, 32621, 44825, 50020, 61621, 71876, 91902, 115000, 130661,
                141048, 144710, 166482, 174932, 180518, 189126
            ]
        );
        assert_eq!(cuts.iter().map(|c| c.1).sum::<usize>(), data.len());
    }

    #[test]
    fn streaming_cuts_where_the_slice_cutter_does() {
        // Commits stream files through StreamCDC: its cut points must be the slice
        // cutter's, or files written before would stop deduplicating.
        let data = pseudo_random(300_000, 9);
        let (min, avg, max) = sizes(60_000);
        let streamed: Vec<(usize, usize)> =
            fastcdc::v2020::StreamCDC::new(std::io::Cursor::new(&data), min, avg, max)
                .map(|c| c.map(|c| (c.offset as usize, c.length)).unwrap())
                .collect();
        assert_eq!(streamed, cut(&data, 60_000));
    }

    #[test]
    fn small_edit_changes_few_chunks() {
        let mut data = pseudo_random(1 << 20, 7);
        let before: Vec<ChunkId> = cut(&data, 60_000)
            .iter()
            .map(|&(o, l)| chunk_id(&data[o..o + l]))
            .collect();
        data[500_000] ^= 0xff;
        let after: Vec<ChunkId> = cut(&data, 60_000)
            .iter()
            .map(|&(o, l)| chunk_id(&data[o..o + l]))
            .collect();
        let new = after.iter().filter(|c| !before.contains(c)).count();
        assert!(new <= 2, "{new} chunks changed for a 1-byte edit");
    }

    #[test]
    fn refs_round_trip() {
        let refs = vec![
            ChunkRef {
                id: [1; 32],
                len: 5,
            },
            ChunkRef {
                id: [2; 32],
                len: 9,
            },
        ];
        assert_eq!(decode_refs(&encode_refs(&refs)).unwrap(), refs);
        assert!(decode_refs(&[0; 35]).is_none());
    }
}
