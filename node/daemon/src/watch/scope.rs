//! What a watcher watches, as key ranges of the store, and how a record under one of
//! them is named in an event. Selector keys are masked: the node knows the keys of
//! records it did not write, not their names, so a watch names what it wants (a
//! selector name with ordinals, or a path of a mount) and the keys are computed here,
//! as a query computes them.
//!
//! - A selector name with ordinals `first..=last` is one key range (ordinal masking
//!   keeps order).
//! - A file of a mount is one key: (its directory's selector name, CRC-64 of its name)
//!   (`lffs/src/layout.rs`).
//! - A directory of a mount is every ordinal of its selector name; a directory tree
//!   adds the range of each subdirectory, found when the watch starts and as new
//!   subdirectories' entries arrive.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lf_record::{Record, SelectorKey, SelectorName};
use lffs::layout::{self, Body};

use crate::lffs_glue::mount_manager::MountFs;

/// Most directories one tree watch follows.
pub const MAX_TREE_DIRS: usize = 1000;

/// How records under a range are named.
#[derive(Clone)]
pub enum Naming {
    /// A selector name (given by the client); values unmasked with `mask`.
    Selector {
        /// The name as given.
        name: String,
        /// Derived keys and ordinal mask.
        sel: Arc<SelectorName>,
    },
    /// Entries of a directory of a mount.
    Entries {
        /// The mount's filesystem.
        fs: Arc<MountFs>,
        /// The directory's path (absolute, on the mount).
        dir_path: PathBuf,
        /// The directory's selector name.
        dir_sel: Vec<u8>,
        /// Follow subdirectories (a tree watch).
        tree: bool,
    },
}

/// One key range and how to name what arrives under it.
#[derive(Clone)]
pub struct Range {
    /// First key.
    pub start: SelectorKey,
    /// Last key.
    pub end: SelectorKey,
    /// Naming.
    pub naming: Naming,
}

/// What a record under a range is, for an event.
pub struct Named {
    /// `Selector` events: the name and ordinal.
    pub selector: Option<(String, u64)>,
    /// Path events: the path.
    pub path: Option<PathBuf>,
    /// Deleted (a tombstone entry).
    pub deleted: bool,
    /// Bytes of content (a file's size, a value's length).
    pub size: u64,
    /// A new subdirectory of a tree watch: its path and selector name.
    pub subdir: Option<(PathBuf, Vec<u8>)>,
}

impl Range {
    /// Whether this is a directory of a tree watch (its new subdirectories join it).
    pub fn is_tree(&self) -> bool {
        matches!(self.naming, Naming::Entries { tree: true, .. })
    }

    /// A selector name's ordinals `first..=last`.
    pub fn selector(name: &str, first: u64, last: u64) -> Range {
        let sel = SelectorName::new(name.as_bytes());
        let (start, end) = sel.key_range(first, last);
        Range {
            start,
            end,
            naming: Naming::Selector {
                name: name.to_string(),
                sel: Arc::new(sel),
            },
        }
    }

    /// One entry of a mount directory.
    pub fn entry(fs: Arc<MountFs>, dir_path: &Path, dir_sel: Vec<u8>, name: &[u8]) -> Range {
        let key = SelectorName::new(&dir_sel).key(layout::name_ordinal(name));
        Range {
            start: key,
            end: key,
            naming: Naming::Entries {
                fs,
                dir_path: dir_path.to_path_buf(),
                dir_sel,
                tree: false,
            },
        }
    }

    /// Every entry of a mount directory.
    pub fn directory(fs: Arc<MountFs>, dir_path: &Path, dir_sel: Vec<u8>, tree: bool) -> Range {
        let (start, end) = SelectorName::new(&dir_sel).key_range(0, u64::MAX);
        Range {
            start,
            end,
            naming: Naming::Entries {
                fs,
                dir_path: dir_path.to_path_buf(),
                dir_sel,
                tree,
            },
        }
    }

    /// Whether `key` is in this range.
    pub fn holds(&self, key: &SelectorKey) -> bool {
        self.start.0 <= key.0 && key.0 <= self.end.0
    }

    /// Names `r` (whose first key is in this range), or `None` if it is nothing a
    /// reader of this range would see (an entry that does not decode or check: the
    /// mount skips it too).
    pub fn name(&self, r: &Record, mask: Option<&[u8]>) -> Option<Named> {
        let selector = r.selectors().first()?;
        match &self.naming {
            Naming::Selector { name, sel } => {
                let ordinal = sel.ordinal_mask().unmask(&selector.ordinal);
                let key = mask.map_or_else(|| name.as_bytes().to_vec(), <[u8]>::to_vec);
                let size = r.value(Some(&key)).map_or(0, |v| v.len() as u64);
                Some(Named {
                    selector: Some((name.clone(), ordinal)),
                    path: None,
                    deleted: false,
                    size,
                    subdir: None,
                })
            }
            Naming::Entries {
                fs,
                dir_path,
                dir_sel,
                tree,
            } => {
                let ordinal = SelectorName::new(dir_sel)
                    .ordinal_mask()
                    .unmask(&selector.ordinal);
                let value = r.value(Some(&fs.entry_mask(dir_sel))).ok()?;
                let e = fs.stored_entry(&value, dir_sel, ordinal)?;
                let path = dir_path.join(std::ffi::OsStr::from_bytes(&e.name));
                let size = match &e.body {
                    Body::File(layout::FileData::Inline(d)) => d.len() as u64,
                    Body::File(layout::FileData::Chunked { size, .. }) => *size,
                    Body::Symlink(t) => t.len() as u64,
                    _ => 0,
                };
                let subdir = match &e.body {
                    Body::Dir(sel) if *tree => Some((path.clone(), sel.clone())),
                    _ => None,
                };
                Some(Named {
                    selector: None,
                    path: Some(path),
                    deleted: e.body == Body::Tombstone,
                    size,
                    subdir,
                })
            }
        }
    }
}

/// The ranges of a mount path: one key for a file (or a name yet to exist), every
/// ordinal of a directory, and with `tree`, of each subdirectory below it (at most
/// [`MAX_TREE_DIRS`] directories in all). Blocking (reads the store).
pub fn path_ranges(
    fs: &Arc<MountFs>,
    path: &Path,
    rel: &Path,
    tree: bool,
) -> Result<Vec<Range>, String> {
    let loc = fs
        .locate(rel.as_os_str().as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(dir) = loc.dir else {
        let name = loc.name.unwrap_or_default();
        let parent = path.parent().unwrap_or(path);
        return Ok(vec![Range::entry(
            fs.clone(),
            parent,
            loc.dir_selector,
            &name,
        )]);
    };
    let mut out = vec![Range::directory(fs.clone(), path, dir.clone(), tree)];
    if tree {
        let mut todo = vec![(path.to_path_buf(), dir)];
        while let Some((p, sel)) = todo.pop() {
            for (name, sub) in fs.subdirectories(&sel).map_err(|e| e.to_string())? {
                if out.len() >= MAX_TREE_DIRS {
                    return Err(format!(
                        "{} holds more than {MAX_TREE_DIRS} directories: watch a smaller tree",
                        path.display()
                    ));
                }
                let sp = p.join(std::ffi::OsStr::from_bytes(&name));
                out.push(Range::directory(fs.clone(), &sp, sub.clone(), true));
                todo.push((sp, sub));
            }
        }
    }
    Ok(out)
}
