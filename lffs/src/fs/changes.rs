//! Changes to the tree: who may make them, new names, create, mkdir, symlink, setattr
//! (of the root too), unlink, rmdir and rename.

use super::*;

impl<S: Store> Filesystem<S> {
    /// Whether the local user `uid` may change anything on this mount: the user(s)
    /// the mount maps to its owner (its `uid`) and root. Everyone else may only read.
    pub fn may_change(&self, uid: u32) -> Result<()> {
        if uid == 0 || uid == self.config.uid {
            Ok(())
        } else {
            Err(FsError::Access)
        }
    }

    /// Stores the root's mode and time (chmod, touch of the mount point).
    pub(super) fn set_root(&self, mode: Option<u32>, mtime: Option<SystemTime>) -> Result<Attr> {
        self.check_writable_dir()?;
        let current = self.root_attr();
        let e = Entry {
            name: b".".to_vec(),
            mode: mode.unwrap_or(current.perm as u32) & 0o7777,
            mtime: match mtime {
                Some(t) => t
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
                None => self.store.now_nanos(),
            },
            body: Body::Dir(self.config.root.clone()),
        };
        let sel = self.root_entry_selector();
        let stored = self.store.put(vec![Put {
            ordinal: 0,
            mask: self.mask_for(&sel),
            name: sel.clone(),
            value: e.encode(),
        }]);
        self.changed_dirs(&[&sel]);
        stored?;
        Ok(self.root_attr())
    }

    pub(super) fn check_writable_dir(&self) -> Result<()> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        if let Some(why) = self.store.write_refused() {
            tracing::debug!("write refused: {why}");
            return Err(FsError::Access);
        }
        Ok(())
    }

    pub(super) fn check_new_name(&self, parent: u64, name: &[u8]) -> Result<Vec<u8>> {
        self.check_writable_dir()?;
        if name.len() > layout::MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        if !layout::valid_name(name) || (parent == ROOT_INO && name == PASSWD_NAME) {
            return Err(FsError::InvalidName);
        }
        let sel = self.dir_selector(parent)?;
        match self.resolve(&sel, name)? {
            Some(_) => Err(FsError::Exists),
            None if self.claimed_by_other(&sel, name)? => Err(FsError::Access),
            None => Ok(sel),
        }
    }

    pub(super) fn put_entry(&self, dir_sel: &[u8], e: &Entry, extra: Vec<Put>) -> Result<()> {
        self.put_entry_after(
            dir_sel,
            e,
            Commit {
                puts: extra,
                ..Commit::default()
            },
        )
    }

    /// Puts the entry with what is left of its commit (the last part of a change the
    /// store may already have admitted).
    pub(super) fn put_entry_after(
        &self,
        dir_sel: &[u8],
        e: &Entry,
        mut commit: Commit,
    ) -> Result<()> {
        commit.puts.push(self.entry_put(dir_sel, e)?);
        let stored = self.store.put_last(commit.puts, !commit.admitted);
        // Also after a failure: part of it may be visible.
        self.changed_dirs(&[dir_sel]);
        stored?;
        Ok(())
    }

    /// The put that stores entry `e` in directory `dir_sel`.
    fn entry_put(&self, dir_sel: &[u8], e: &Entry) -> Result<Put> {
        let value = e.encode();
        if value.len() > self.store.max_value_size() {
            return Err(FsError::TooBig);
        }
        Ok(Put {
            name: dir_sel.to_vec(),
            ordinal: layout::name_ordinal(&e.name),
            mask: self.mask_for(dir_sel),
            value,
        })
    }

    /// Creates an empty regular file and opens it; returns its attributes and handle.
    pub fn create(&self, parent: u64, name: &[u8], mode: u32) -> Result<(Attr, u64)> {
        let sel = self.check_new_name(parent, name)?;
        let e = Entry {
            name: name.to_vec(),
            mode: mode & 0o7777,
            mtime: self.store.now_nanos(),
            body: Body::File(FileData::Inline(Vec::new())),
        };
        // Durable with the file's first fsync or close, or any durable change after it
        // (as on ext4, a create alone is not durable without an fsync): one journal
        // sync per small file instead of two.
        let stored = self.store.put_lazy(vec![self.entry_put(&sel, &e)?]);
        self.changed_dirs(&[&sel]);
        stored?;
        self.names_changed(&sel, &[layout::name_ordinal(name)], e.mtime);
        let ino = self.remember(&sel, name);
        let fh = self.open(ino, true)?;
        // The entry just put, not read back through the store (a query per create).
        let attr = self.attr_of(ino, &e, &self.store.owner(), false);
        self.note_attrs_out(ino, &e);
        Ok((attr, fh))
    }

    /// Creates a directory with a fresh selector name (stable across renames).
    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32) -> Result<Attr> {
        let sel = self.check_new_name(parent, name)?;
        let now = self.store.now_nanos();
        let h = Sha256::new()
            .chain_update(&sel)
            .chain_update([0])
            .chain_update(name)
            .chain_update(now.to_be_bytes())
            .finalize();
        let mut own = self.config.root.clone();
        own.extend_from_slice(b"/d/");
        own.extend(h[..16].iter().flat_map(|b| format!("{b:02x}").into_bytes()));
        let e = Entry {
            name: name.to_vec(),
            mode: mode & 0o7777,
            mtime: now,
            body: Body::Dir(own),
        };
        self.put_entry(&sel, &e, Vec::new())?;
        self.names_changed(&sel, &[layout::name_ordinal(name)], now);
        self.lookup(parent, name)
    }

    /// Creates a symbolic link.
    pub fn symlink(&self, parent: u64, name: &[u8], target: &[u8]) -> Result<Attr> {
        let sel = self.check_new_name(parent, name)?;
        let e = Entry {
            name: name.to_vec(),
            mode: 0o777,
            mtime: self.store.now_nanos(),
            body: Body::Symlink(target.to_vec()),
        };
        self.put_entry(&sel, &e, Vec::new())?;
        self.names_changed(&sel, &[layout::name_ordinal(name)], e.mtime);
        self.lookup(parent, name)
    }

    pub(super) fn writable_entry(&self, dir_sel: &[u8], name: &[u8]) -> Result<Entry> {
        self.check_writable_dir()?;
        let (e, owner) = self.resolve(dir_sel, name)?.ok_or(FsError::NotFound)?;
        // A conflict copy (its entry carries the contested name) is read-only.
        if owner != self.store.owner() || e.name != name {
            return Err(FsError::Access);
        }
        Ok(e)
    }

    /// Truncates a file through one of its open handles (`ftruncate`, or `open` with
    /// O_TRUNC): the shared buffer changes at once, for every reader on this node, and
    /// the new content is stored at the next flush, fsync or close with what is
    /// written meanwhile, so `echo x > file` is one new version, not an empty one and
    /// then `x` (another node would have seen the file empty). `false` if the file is
    /// not open here: the caller truncates by `setattr`.
    pub fn truncate_open(&self, ino: u64, size: u64) -> Result<bool> {
        if ino == ROOT_INO || ino == PASSWD_INO {
            return Ok(false);
        }
        if size > self.config.max_file_size {
            return Err(FsError::TooBig);
        }
        let Some(f) = self.live_open(ino) else {
            return Ok(false);
        };
        // The same rule as a truncate by `setattr`: only the owner's own files.
        let node = self.node(ino)?;
        self.writable_entry(&node.dir_sel, &node.name)?;
        self.refresh(&f);
        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
        f.content.truncate(size)?;
        f.dirty = true;
        Ok(true)
    }

    /// Changes mode, size (truncate) and times; changing uid/gid is refused (EPERM):
    /// ownership is the signing key, not a number.
    pub fn setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        mtime: Option<SystemTime>,
    ) -> Result<Attr> {
        let current = self.getattr(ino)?;
        if uid.is_some_and(|u| u != current.uid) || gid.is_some_and(|g| g != current.gid) {
            return Err(FsError::Perm);
        }
        if mode.is_none() && size.is_none() && mtime.is_none() {
            return Ok(current);
        }
        if ino == ROOT_INO {
            if size.is_some() {
                return Err(FsError::IsDir);
            }
            return self.set_root(mode, mtime);
        }
        if ino == PASSWD_INO {
            return Err(FsError::Perm);
        }
        if let Some(f) = self.unlinked_open(ino) {
            // Unlinked while open: its buffer lives until the last close; a truncate
            // (ftruncate) applies to it, nothing is stored.
            let mut g = f.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(sz) = size {
                if sz > self.config.max_file_size {
                    return Err(FsError::TooBig);
                }
                g.content.truncate(sz)?;
            }
            if let Some(m) = mode {
                g.entry.mode = m & 0o7777;
            }
            drop(g);
            return self.getattr(ino);
        }
        let node = self.node(ino)?;
        let mut e = self.writable_entry(&node.dir_sel, &node.name)?;
        if let Some(m) = mode {
            e.mode = m & 0o7777;
        }
        e.mtime = match mtime {
            Some(t) => t
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            None => self.store.now_nanos(),
        };
        if let Some(sz) = size {
            if sz > self.config.max_file_size {
                return Err(FsError::TooBig);
            }
            if let Some(f) = self.live_open(ino) {
                self.refresh(&f);
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                f.content.truncate(sz)?;
                f.entry.mode = e.mode;
                f.dirty = true;
                drop(f);
                self.flush(ino)?;
                return self.getattr(ino);
            }
            let mut content = self.content_of(&e)?;
            content.truncate(sz)?;
            let commit = self.store_content(&mut e, &mut content)?;
            self.put_entry_after(&node.dir_sel, &e, commit)?;
        } else {
            let generation = self.store.generation();
            self.put_entry(&node.dir_sel, &e, Vec::new())?;
            if let Some(f) = self.live_open(ino) {
                let mut g = f.lock().unwrap_or_else(|e| e.into_inner());
                g.entry.mode = e.mode;
                if !g.dirty {
                    // Same content, new mode and time: nothing to reload.
                    g.entry = e;
                    g.generation = generation;
                }
            }
            return self.getattr(ino);
        }
        self.getattr(ino)
    }

    pub(super) fn tombstone(&self, e: &Entry) -> Entry {
        Entry {
            name: e.name.clone(),
            mode: 0,
            mtime: self.store.now_nanos(),
            body: Body::Tombstone,
        }
    }

    /// Removes a file or symlink.
    pub fn unlink(&self, parent: u64, name: &[u8]) -> Result<()> {
        let sel = self.dir_selector(parent)?;
        if let Some((e, owner)) = self.resolve(&sel, name)?
            && e.name != name
        {
            return self.withdraw(&sel, e, owner);
        }
        let e = self.writable_entry(&sel, name)?;
        if matches!(e.body, Body::Dir(_)) {
            return Err(FsError::IsDir);
        }
        let stone = self.tombstone(&e);
        self.put_entry(&sel, &stone, Vec::new())?;
        self.names_changed(&sel, &[layout::name_ordinal(name)], stone.mtime);
        self.detach(&sel, name);
        Ok(())
    }

    /// Unlinking a conflict copy of `e` (written by `owner`): the mount's own
    /// version is withdrawn (a deletion of the contested name, so the copy goes on
    /// every node); another owner's version cannot be removed (EACCES).
    fn withdraw(&self, sel: &[u8], e: Entry, owner: Owner) -> Result<()> {
        self.check_writable_dir()?;
        if owner != self.store.owner() {
            return Err(FsError::Access);
        }
        if matches!(e.body, Body::Dir(_)) {
            return Err(FsError::IsDir);
        }
        // The copy's name goes on every node; the contested name only where this
        // version won, so the directory's derived time is left to its next listing.
        self.put_entry(sel, &self.tombstone(&e), Vec::new())
    }

    pub(super) fn is_empty_dir(&self, own_sel: &[u8]) -> Result<bool> {
        for (ordinal, cands) in self.store.list(own_sel, &self.mask_for(own_sel))? {
            if let Some(e) = cands.iter().find_map(|v| self.usable(v, own_sel, ordinal))
                && e.body != Body::Tombstone
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: u64, name: &[u8]) -> Result<()> {
        let sel = self.dir_selector(parent)?;
        let e = self.writable_entry(&sel, name)?;
        let Body::Dir(own) = &e.body else {
            return Err(FsError::NotDir);
        };
        if !self.is_empty_dir(own)? {
            return Err(FsError::NotEmpty);
        }
        let stone = self.tombstone(&e);
        self.put_entry(&sel, &stone, Vec::new())?;
        self.names_changed(&sel, &[layout::name_ordinal(name)], stone.mtime);
        Ok(())
    }

    /// Renames atomically for readers on this node: the new entry and the old name's
    /// tombstone are one store batch. A directory keeps its selector, so its contents.
    pub fn rename(&self, parent: u64, name: &[u8], newparent: u64, newname: &[u8]) -> Result<()> {
        if newname.len() > layout::MAX_NAME || name.len() > layout::MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        if !layout::valid_name(newname) || (newparent == ROOT_INO && newname == PASSWD_NAME) {
            return Err(FsError::InvalidName);
        }
        let src_sel = self.dir_selector(parent)?;
        let dst_sel = self.dir_selector(newparent)?;
        let src_node = Node {
            dir_sel: src_sel.clone(),
            name: name.to_vec(),
        };
        let dst_node = Node {
            dir_sel: dst_sel.clone(),
            name: newname.to_vec(),
        };
        // Commit pending writes of the source first so the moved entry carries them.
        let old_ino = layout::inode(&src_sel, name);
        for f in self.buffers_of(&src_node) {
            self.flush_file(old_ino, &f)?;
        }
        let e = self.writable_entry(&src_sel, name)?;
        if src_sel == dst_sel && name == newname {
            return Ok(());
        }
        let target = self.resolve(&dst_sel, newname)?;
        let replaces = target.is_some();
        if let Some((dst, owner)) = target {
            if owner != self.store.owner() || dst.name != newname {
                return Err(FsError::Access);
            }
            match (&e.body, &dst.body) {
                (Body::Dir(_), Body::Dir(own)) if !self.is_empty_dir(own)? => {
                    return Err(FsError::NotEmpty);
                }
                (Body::Dir(_), Body::Dir(_)) => {}
                (Body::Dir(_), _) => return Err(FsError::NotDir),
                (_, Body::Dir(_)) => return Err(FsError::IsDir),
                _ => {}
            }
        } else if self.claimed_by_other(&dst_sel, newname)? {
            // Our entry there would lose to their deletion: the file would vanish.
            return Err(FsError::Access);
        }
        if let Body::Dir(own) = &e.body
            && self.is_inside(&dst_sel, own)?
        {
            return Err(FsError::InvalidName);
        }
        let mut moved = e.clone();
        moved.name = newname.to_vec();
        let mut commit = Commit::default();
        if moved.encode().len() > self.store.max_value_size() && matches!(e.body, Body::File(_)) {
            // A longer name can push a file that was just inline (or a manifest that
            // just fitted) over the record limit: store its content again for the new
            // name (chunks already stored are not written again).
            let mut content = self.content_of(&e)?;
            commit = self.store_content(&mut moved, &mut content)?;
        }
        let moved_value = moved.encode();
        if moved_value.len() > self.store.max_value_size() {
            return Err(FsError::TooBig);
        }
        let stone = self.tombstone(&e);
        // The new name first: a node that receives these records one by one sees the
        // file under both names for a moment, never under neither. Chunks (if any)
        // come before both.
        let mut puts = commit.puts;
        puts.extend([
            Put {
                name: dst_sel.clone(),
                ordinal: layout::name_ordinal(newname),
                mask: self.mask_for(&dst_sel),
                value: moved_value,
            },
            Put {
                name: src_sel.clone(),
                ordinal: layout::name_ordinal(name),
                mask: self.mask_for(&src_sel),
                value: stone.encode(),
            },
        ]);
        let stored = self.store.put_last(puts, !commit.admitted);
        self.changed_dirs(&[&src_sel, &dst_sel]);
        stored?;
        self.names_changed(&src_sel, &[layout::name_ordinal(name)], stone.mtime);
        if !replaces {
            self.names_changed(&dst_sel, &[layout::name_ordinal(newname)], stone.mtime);
        }
        // A replaced target's open handles keep their (now nameless) buffer.
        self.detach(&dst_sel, newname);
        // The kernel keeps the source's inode number for the moved dentry: point it at
        // the new location. Open buffers stay registered under it (the kernel sends
        // their reads, writes and flushes there) and are shared with the new name's
        // inode, which later lookups return.
        self.nodes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(old_ino, dst_node.clone());
        let moving = self.buffers_of(&src_node);
        if let Some(first) = moving.first() {
            let new_ino = self.remember(&dst_sel, newname);
            for f in &moving {
                let mut g = f.lock().unwrap_or_else(|e| e.into_inner());
                g.node = dst_node.clone();
                g.entry = moved.clone();
            }
            self.open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(new_ino, first.clone());
        }
        Ok(())
    }

    /// Whether directory selector `sel` is `dir` or below it (moving a directory into
    /// itself is refused). Walks up through the remembered inodes.
    pub(super) fn is_inside(&self, sel: &[u8], dir: &[u8]) -> Result<bool> {
        if sel == dir {
            return Ok(true);
        }
        let nodes: Vec<Node> = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut current = sel.to_vec();
        for _ in 0..4096 {
            if current == self.config.root {
                return Ok(false);
            }
            let Some(parent) = nodes.iter().find(|n| {
                matches!(self.resolve(&n.dir_sel, &n.name), Ok(Some((Entry { body: Body::Dir(ref s), .. }, _))) if *s == current)
            }) else {
                return Ok(false);
            };
            if parent.dir_sel == dir {
                return Ok(true);
            }
            current = parent.dir_sel.clone();
        }
        Ok(false)
    }
}
