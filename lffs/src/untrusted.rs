//! Entries are records anyone on the network can write, and they verify: signature and
//! work say nothing about whether the value makes sense. What makes an entry usable is
//! decided here, once, for every entry read from the store; an unusable entry is
//! skipped (as if absent) so that one bad record never fails its directory's listing.
//! Skips are counted in `lf_lffs_bad_entries_total` and logged once per entry.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::content::MAX_DEPTH;
use crate::layout::{self, Body, Entry, FileData, PASSWD_NAME};

/// Longest directory selector name an entry may hold (ours are `<root>/d/` and 32
/// hex digits).
pub const MAX_DIR_SELECTOR: usize = 256;
/// Longest symbolic link target (PATH_MAX less its NUL).
pub const MAX_LINK_TARGET: usize = 4095;
/// Bad entries remembered for logging once; past it, skips are only counted.
const LOGGED_MAX: usize = 4096;

/// Why an entry found under (`dir_sel`, `ordinal`) is unusable, if it is. `root` is
/// the mount's root selector name.
pub fn check(e: &Entry, dir_sel: &[u8], ordinal: u64, root: &[u8]) -> Result<(), &'static str> {
    if !layout::valid_name(&e.name) {
        return Err("invalid name");
    }
    if layout::name_ordinal(&e.name) != ordinal {
        return Err("name does not match the ordinal it is stored under");
    }
    if dir_sel == root && e.name == PASSWD_NAME {
        return Err("reserved name");
    }
    match &e.body {
        Body::Dir(sel) => {
            let mut prefix = root.to_vec();
            prefix.extend_from_slice(b"/d/");
            if !sel.starts_with(&prefix) || sel.len() > MAX_DIR_SELECTOR {
                return Err("directory selector outside the mount's tree");
            }
            if sel == dir_sel {
                return Err("directory contains itself");
            }
        }
        Body::Symlink(t) => {
            if t.is_empty() || t.len() > MAX_LINK_TARGET || t.contains(&0) {
                return Err("bad symbolic link target");
            }
        }
        Body::File(FileData::Chunked { depth, refs, .. }) => {
            if *depth == 0 || *depth > MAX_DEPTH || refs.is_empty() {
                return Err("bad manifest header");
            }
        }
        Body::File(FileData::Inline(_)) | Body::Tombstone => {}
    }
    Ok(())
}

/// Counts (and logs once) entries skipped as unusable.
#[derive(Default)]
pub struct BadEntries {
    logged: Mutex<HashSet<(Vec<u8>, u64)>>,
}

impl BadEntries {
    /// Notes that the entry under (`dir_sel`, `ordinal`) was skipped, and why.
    pub fn skipped(&self, dir_sel: &[u8], ordinal: u64, why: &str) {
        metrics::counter!("lf_lffs_bad_entries_total").increment(1);
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() < LOGGED_MAX && logged.insert((dir_sel.to_vec(), ordinal)) {
            tracing::warn!(
                directory = %String::from_utf8_lossy(dir_sel),
                ordinal,
                "lffs: skipping an unusable entry from the network: {why}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8], body: Body) -> Entry {
        Entry {
            name: name.to_vec(),
            mode: 0o644,
            mtime: 1,
            body,
        }
    }

    #[test]
    fn hostile_entries_are_refused_with_a_reason() {
        let root = b"r";
        let file = Body::File(FileData::Inline(b"x".to_vec()));
        let ok = |n: &[u8], b: Body| check(&entry(n, b), root, layout::name_ordinal(n), root);
        assert_eq!(ok(b"good", file.clone()), Ok(()));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
            assert_eq!(ok(bad, file.clone()), Err("invalid name"), "{bad:?}");
        }
        assert_eq!(ok(b".passwd", file.clone()), Err("reserved name"));
        let e = entry(b"good", file.clone());
        assert!(check(&e, root, 7, root).is_err(), "wrong ordinal");
        assert_eq!(ok(b"d", Body::Dir(b"r/d/00".to_vec())), Ok(()));
        assert!(ok(b"d", Body::Dir(b"elsewhere".to_vec())).is_err());
        assert!(ok(b"d", Body::Dir(b"r".to_vec())).is_err());
        let dir_sel = b"r/d/11";
        let self_loop = entry(b"d", Body::Dir(dir_sel.to_vec()));
        assert!(check(&self_loop, dir_sel, layout::name_ordinal(b"d"), root).is_err());
        assert!(ok(b"l", Body::Symlink(Vec::new())).is_err());
        assert!(ok(b"l", Body::Symlink(b"a\0".to_vec())).is_err());
        assert!(ok(b"l", Body::Symlink(vec![b'a'; 4096])).is_err());
        let chunked = |depth| {
            Body::File(FileData::Chunked {
                size: 1,
                depth,
                refs: vec![crate::chunk::ChunkRef {
                    id: [0; 32],
                    len: 1,
                }],
            })
        };
        assert_eq!(ok(b"f", chunked(1)), Ok(()));
        assert!(ok(b"f", chunked(0)).is_err());
        assert!(ok(b"f", chunked(MAX_DEPTH + 1)).is_err());
    }
}
