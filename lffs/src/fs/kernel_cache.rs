//! What the kernel caches (pages, attributes, dentries) and the checks that tell which
//! of it another node's records made stale; called from the invalidation thread only.

use super::*;

impl<S: Store> Filesystem<S> {
    pub(super) fn note_attrs_out(&self, ino: u64, e: &Entry) {
        self.attrs_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ino, (version(e), std::time::Instant::now()));
    }

    /// Opens a file like [`Filesystem::open`] and tells whether the kernel may keep
    /// the pages it cached at the previous open (the file has not changed since).
    pub fn open_keep_cache(&self, ino: u64, write: bool) -> Result<(u64, bool)> {
        let fh = self.open(ino, write)?;
        let current = self.entry_of(ino).ok().map(|(_, e, _)| version(&e));
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let keep = current.is_some() && cached.get(&ino) == current.as_ref();
        if let Some(v) = current {
            cached.insert(ino, v);
        }
        Ok((fh, keep))
    }

    /// Inodes whose pages or recently handed-out attributes the kernel may cache and
    /// that changed since (records from other nodes): the caller invalidates them with
    /// `notify_inval_inode`. Called from a background thread, never from inside a FUSE
    /// request. Only attributes younger than [`ATTR_WATCH`] are checked, so the work
    /// is bounded by what was used lately, not by the size of the tree.
    pub fn changed_cached_files(&self) -> Vec<u64> {
        let mut changed = self.changed_page_files();
        let recent: Vec<(u64, (u64, u64))> = {
            let mut out = self.attrs_out.lock().unwrap_or_else(|e| e.into_inner());
            out.retain(|_, (_, at)| at.elapsed() < ATTR_WATCH);
            out.iter().map(|(k, (v, _))| (*k, *v)).collect()
        };
        for (ino, v) in recent {
            let now = self.entry_of(ino).ok().map(|(_, e, _)| version(&e));
            if now != Some(v) {
                self.attrs_out
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&ino);
                if !changed.contains(&ino) {
                    changed.push(ino);
                }
            }
        }
        changed
    }

    /// (parent inode, name) pairs the kernel resolved within [`ATTR_WATCH`] that no
    /// longer exist (deleted or renamed away, by records from another node), with the
    /// entry's inode: the caller tells the kernel with `notify_delete` (which also
    /// reports `IN_DELETE_SELF` to inotify watches on the file) and `notify_inval_entry`.
    /// Same rules as [`Filesystem::changed_cached_files`]: background thread only, bounded by recent use.
    pub fn vanished_cached_entries(&self) -> Vec<(u64, Vec<u8>, u64)> {
        let recent: Vec<(u64, Vec<u8>)> = {
            let mut out = self.entries_out.lock().unwrap_or_else(|e| e.into_inner());
            out.retain(|_, at| at.elapsed() < ATTR_WATCH);
            out.keys().cloned().collect()
        };
        let mut gone = Vec::new();
        for (parent, name) in recent {
            // On a store error, keep watching rather than drop a valid dentry.
            let Ok(sel) = self.dir_selector(parent) else {
                continue;
            };
            if let Ok(None) = self.resolve(&sel, &name) {
                // The kernel's node id of the entry (inodes derive from the names).
                let child = layout::inode(&sel, &name);
                self.entries_out
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(parent, name.clone()));
                gone.push((parent, name, child));
            }
        }
        gone
    }

    pub(super) fn changed_page_files(&self) -> Vec<u64> {
        let known: Vec<(u64, (u64, u64))> = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        let mut changed = Vec::new();
        for (ino, v) in known {
            let now = self.entry_of(ino).ok().map(|(_, e, _)| version(&e));
            if now != Some(v) {
                changed.push(ino);
                let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
                match now {
                    Some(n) => cached.insert(ino, n),
                    None => cached.remove(&ino),
                };
            }
        }
        changed
    }
}
