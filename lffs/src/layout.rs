//! How the namespace maps onto records (the on-store schema, format 1).
//!
//! - A directory has a selector name: the mount's `root` for the root directory, and
//!   for every other directory a name fixed when it is created (`<root>/d/<hex>`),
//!   stored in its entry. Renaming a directory moves its entry; its selector name and
//!   so its contents stay (the seed derived it from the path and lost the contents).
//! - The entry for `name` in a directory is a record under (directory selector,
//!   ordinal = CRC-64/XZ of `name`) whose value is an [`Entry`]. Several owners may
//!   write the same (selector, ordinal); the store ranks them and the winner counts.
//! - A file's content is inline when the entry fits in one record value; otherwise it
//!   is cut into FastCDC chunks, each a record under (`lffs-chunk` ‖ SHA-256, 0) masked
//!   with the SHA-256, and the entry holds the manifest (chunk hashes and lengths),
//!   itself chunked again while it does not fit (`depth` levels).

use crate::chunk::ChunkRef;

/// Entry format version.
pub const FORMAT: u8 = 1;
/// Longest file name, bytes.
pub const MAX_NAME: usize = 255;
/// Root inode.
pub const ROOT_INO: u64 = 1;
/// The `.passwd` virtual file's inode.
pub const PASSWD_INO: u64 = 2;
/// Inodes below this are reserved.
pub const FIRST_INO: u64 = 1024;
/// Name of the virtual owner table in the root.
pub const PASSWD_NAME: &[u8] = b".passwd";

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A regular file.
    File(FileData),
    /// A directory and its selector name.
    Dir(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// A deletion.
    Tombstone,
}

/// Where a file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileData {
    /// In the entry.
    Inline(Vec<u8>),
    /// In chunks; `refs` is the top manifest level, `depth` ≥ 1 levels of indirection.
    Chunked {
        /// File size.
        size: u64,
        /// Manifest levels (1: refs point at data chunks).
        depth: u8,
        /// Top-level references.
        refs: Vec<ChunkRef>,
    },
}

/// A directory entry as stored in a record value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The name in its directory.
    pub name: Vec<u8>,
    /// Permission bits (0o7777).
    pub mode: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: u64,
    /// Kind and content.
    pub body: Body,
}

/// CRC-64/XZ of a name: the entry's ordinal in its directory.
pub fn name_ordinal(name: &[u8]) -> u64 {
    let mut d = crc64fast::Digest::new();
    d.write(name);
    d.sum64()
}

/// The kernel inode of an entry: stable across mounts, derived from the directory's
/// selector name and the entry name; never below [`FIRST_INO`].
pub fn inode(dir_selector: &[u8], name: &[u8]) -> u64 {
    let ino = name_ordinal(dir_selector).wrapping_add(name_ordinal(name));
    if ino < FIRST_INO {
        ino + FIRST_INO
    } else {
        ino
    }
}

/// Selector name of a chunk.
pub fn chunk_selector(id: &[u8; 32]) -> Vec<u8> {
    let mut s = CHUNK_PREFIX.to_vec();
    s.extend_from_slice(id);
    s
}

const CHUNK_PREFIX: &[u8] = b"lffs-chunk:";

/// Whether `name` has the form of a chunk's selector name.
pub fn is_chunk_selector(name: &[u8]) -> bool {
    name.len() == CHUNK_PREFIX.len() + 32 && name.starts_with(CHUNK_PREFIX)
}

/// Checks a name: non-empty, ≤ 255 bytes, not `.`/`..`, no `/` or NUL, and not the
/// reserved `.passwd` in the root.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

impl Entry {
    /// Encodes the entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![FORMAT];
        b.push(match self.body {
            Body::File(_) => 1,
            Body::Dir(_) => 2,
            Body::Symlink(_) => 3,
            Body::Tombstone => 4,
        });
        b.extend_from_slice(&self.mode.to_be_bytes());
        b.extend_from_slice(&self.mtime.to_be_bytes());
        b.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        b.extend_from_slice(&self.name);
        match &self.body {
            Body::File(FileData::Inline(d)) => {
                b.push(0);
                b.extend_from_slice(d);
            }
            Body::File(FileData::Chunked { size, depth, refs }) => {
                b.push(1);
                b.extend_from_slice(&size.to_be_bytes());
                b.push(*depth);
                b.extend_from_slice(&crate::chunk::encode_refs(refs));
            }
            Body::Dir(sel) | Body::Symlink(sel) => b.extend_from_slice(sel),
            Body::Tombstone => {}
        }
        b
    }

    /// Decodes an entry; `None` for anything malformed (never panics).
    pub fn decode(b: &[u8]) -> Option<Entry> {
        if b.len() < 16 || b[0] != FORMAT {
            return None;
        }
        let kind = b[1];
        let mode = u32::from_be_bytes(b[2..6].try_into().ok()?);
        let mtime = u64::from_be_bytes(b[6..14].try_into().ok()?);
        let nlen = u16::from_be_bytes(b[14..16].try_into().ok()?) as usize;
        let name = b.get(16..16 + nlen)?.to_vec();
        let rest = &b[16 + nlen..];
        let body = match kind {
            1 => match rest.first()? {
                0 => Body::File(FileData::Inline(rest[1..].to_vec())),
                1 => {
                    let size = u64::from_be_bytes(rest.get(1..9)?.try_into().ok()?);
                    let depth = *rest.get(9)?;
                    let refs = crate::chunk::decode_refs(&rest[10..])?;
                    if depth == 0 {
                        return None;
                    }
                    Body::File(FileData::Chunked { size, depth, refs })
                }
                _ => return None,
            },
            2 => Body::Dir(rest.to_vec()),
            3 => Body::Symlink(rest.to_vec()),
            4 => Body::Tombstone,
            _ => return None,
        };
        Some(Entry {
            name,
            mode,
            mtime,
            body,
        })
    }

    /// Encoded size of an entry with this name and inline data of `data_len` bytes.
    pub fn inline_size(name_len: usize, data_len: usize) -> usize {
        17 + name_len + data_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc64_is_xz() {
        assert_eq!(name_ordinal(b"123456789"), 0x995dc9bbdf1939fa);
    }

    #[test]
    fn names() {
        assert!(valid_name(b"a.txt"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(!valid_name(bad));
        }
        assert!(!valid_name(&[b'a'; 256]));
        assert!(inode(b"root", b"x") >= FIRST_INO);
    }

    #[test]
    fn entries_round_trip() {
        let bodies = [
            Body::File(FileData::Inline(b"hi".to_vec())),
            Body::File(FileData::Chunked {
                size: 10,
                depth: 1,
                refs: vec![ChunkRef {
                    id: [3; 32],
                    len: 10,
                }],
            }),
            Body::Dir(b"root/d/ab".to_vec()),
            Body::Symlink(b"../x".to_vec()),
            Body::Tombstone,
        ];
        for body in bodies {
            let e = Entry {
                name: b"n".to_vec(),
                mode: 0o644,
                mtime: 5,
                body,
            };
            assert_eq!(Entry::decode(&e.encode()), Some(e));
        }
    }

    proptest! {
        #[test]
        fn proptest_decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Entry::decode(&b);
        }
    }
}
