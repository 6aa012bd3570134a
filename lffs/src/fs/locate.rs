//! Where a path of the mount lives in the store, and what a stored entry version holds:
//! for the daemon's watch and history, which read the store's records under a path's
//! selector key rather than through the kernel.

use super::*;

/// A path of the mount, as the store sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Selector name of the directory holding the entry (for the root: the root's own
    /// selector name).
    pub dir_selector: Vec<u8>,
    /// The entry's name in that directory; `None` for the root.
    pub name: Option<Vec<u8>>,
    /// The selector name of the directory at the path, if the path is one now.
    pub dir: Option<Vec<u8>>,
}

impl<S: Store> Filesystem<S> {
    /// Resolves `path` (relative to the mount root, `/`-separated; empty for the root).
    /// The last component need not exist (a file about to be created can be watched),
    /// every other one must be a directory.
    pub fn locate(&self, path: &[u8]) -> Result<Location> {
        let parts: Vec<&[u8]> = path
            .split(|b| *b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .collect();
        let mut dir = self.config.root.clone();
        let Some((last, parents)) = parts.split_last() else {
            return Ok(Location {
                dir_selector: dir.clone(),
                name: None,
                dir: Some(dir),
            });
        };
        for p in parents {
            if !layout::valid_name(p) {
                return Err(FsError::InvalidName);
            }
            match self.resolve(&dir, p)? {
                Some((
                    Entry {
                        body: Body::Dir(sel),
                        ..
                    },
                    _,
                )) => dir = sel,
                Some(_) => return Err(FsError::NotDir),
                None => return Err(FsError::NotFound),
            }
        }
        if !layout::valid_name(last) {
            return Err(FsError::InvalidName);
        }
        let sub = match self.resolve(&dir, last)? {
            Some((
                Entry {
                    body: Body::Dir(sel),
                    ..
                },
                _,
            )) => Some(sel),
            _ => None,
        };
        Ok(Location {
            dir_selector: dir,
            name: Some(last.to_vec()),
            dir: sub,
        })
    }

    /// The subdirectories of the directory with selector `dir_sel`: (name, selector
    /// name) of each winning entry that is a directory.
    pub fn subdirectories(&self, dir_sel: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for (ordinal, versions) in self.store.list(dir_sel, &self.mask_for(dir_sel))? {
            let winner = versions
                .iter()
                .find_map(|v| self.usable(v, dir_sel, ordinal));
            if let Some(Entry {
                name,
                body: Body::Dir(sel),
                ..
            }) = winner
            {
                out.push((name, sel));
            }
        }
        Ok(out)
    }

    /// The masking key of the entries of the directory with selector `dir_sel`.
    pub fn entry_mask(&self, dir_sel: &[u8]) -> Vec<u8> {
        self.mask_for(dir_sel)
    }

    /// A stored value as an entry of `dir_sel` at `ordinal`, if it is a usable one
    /// (checked as untrusted input, as every read of the mount does).
    pub fn stored_entry(&self, value: &[u8], dir_sel: &[u8], ordinal: u64) -> Option<Entry> {
        let e = Entry::decode(value)?;
        untrusted::check(&e, dir_sel, ordinal, &self.config.root).ok()?;
        Some(e)
    }

    /// The whole content of a file entry (chunked files reassembled, under the
    /// mount's file size bound); a symbolic link's target; empty for the rest.
    pub fn entry_content(&self, e: &Entry) -> Result<Vec<u8>> {
        match &e.body {
            Body::File(_) => {
                let base = Base::of(&self.store, e, self.config.max_file_size)?;
                let mut c = Content::new(base, self.spill.clone());
                let len = c.len();
                c.read(&self.store, 0, len)
            }
            Body::Symlink(t) => Ok(t.clone()),
            Body::Dir(_) | Body::Tombstone => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;

    #[test]
    fn locates_files_directories_and_paths_yet_to_be_created() {
        let owner = lf_record::OwnerSecret::from_scalar_bytes(&[5; 48]).unwrap();
        let fs = Filesystem::new(MemStore::new(owner.public(), 4096), FsConfig::default());
        let d = fs.mkdir(ROOT_INO, b"etc", 0o755).unwrap();
        let (f, fh) = fs.create(d.ino, b"app.conf", 0o644).unwrap();
        fs.write(f.ino, 0, b"port=1").unwrap();
        fs.release(fh).unwrap();
        let root = fs.locate(b"").unwrap();
        assert_eq!(root.name, None);
        assert_eq!(root.dir.as_deref(), Some(&b"lf.shared"[..]));
        let etc = fs.locate(b"/etc/").unwrap();
        let etc_sel = etc.dir.clone().unwrap();
        assert_eq!(etc.dir_selector, b"lf.shared");
        let file = fs.locate(b"etc/app.conf").unwrap();
        assert_eq!(file.dir_selector, etc_sel);
        assert_eq!(file.name.as_deref(), Some(&b"app.conf"[..]));
        assert_eq!(file.dir, None);
        assert!(
            fs.locate(b"etc/new.conf").is_ok(),
            "the last part may be missing"
        );
        assert!(matches!(fs.locate(b"nope/x"), Err(FsError::NotFound)));
        assert!(matches!(fs.locate(b"etc/app.conf/x"), Err(FsError::NotDir)));
        // The stored version reads back through stored_entry and entry_content.
        let ord = layout::name_ordinal(b"app.conf");
        let v = fs
            .store()
            .get(&etc_sel, ord, &fs.entry_mask(&etc_sel))
            .unwrap();
        let e = fs.stored_entry(&v[0].value, &etc_sel, ord).unwrap();
        assert_eq!(fs.entry_content(&e).unwrap(), b"port=1");
        assert!(fs.stored_entry(&v[0].value, &etc_sel, ord + 1).is_none());
        assert_eq!(
            fs.subdirectories(b"lf.shared").unwrap(),
            vec![(b"etc".to_vec(), etc_sel)]
        );
    }
}
