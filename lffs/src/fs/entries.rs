//! Resolving names and inodes to entries: the inode table, the lookup cache, every
//! entry read checked as untrusted input, attributes (the root's and `.passwd`'s too),
//! lookup, getattr, readdir and readlink.

use super::*;

impl<S: Store> Filesystem<S> {
    /// The entry in `v` if it decodes and is usable under (`dir_sel`, `ordinal`);
    /// otherwise the skip is counted and `None` returned.
    pub(super) fn usable(&self, v: &Version, dir_sel: &[u8], ordinal: u64) -> Option<Entry> {
        let checked = Entry::decode(&v.value)
            .ok_or("undecodable value")
            .and_then(|e| untrusted::check(&e, dir_sel, ordinal, &self.config.root).map(|()| e));
        match checked {
            Ok(e) => Some(e),
            Err(why) => {
                self.bad.skipped(dir_sel, ordinal, why);
                None
            }
        }
    }

    pub(super) fn saw_owner(&self, owner: Owner) {
        let mut seen = self.owners_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() < OWNERS_SEEN_MAX {
            seen.insert(owner);
        }
    }

    pub(super) fn mask_for(&self, dir_sel: &[u8]) -> Vec<u8> {
        self.config
            .masking_key
            .clone()
            .unwrap_or_else(|| dir_sel.to_vec())
    }

    pub(super) fn node(&self, ino: u64) -> Result<Node> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ino)
            .cloned()
            .ok_or(FsError::Stale)
    }

    pub(super) fn remember(&self, dir_sel: &[u8], name: &[u8]) -> u64 {
        let ino = layout::inode(dir_sel, name);
        self.nodes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                ino,
                Node {
                    dir_sel: dir_sel.to_vec(),
                    name: name.to_vec(),
                },
            );
        ino
    }

    /// The winning entry for `name` in the directory with selector `dir_sel`, or `None`
    /// (absent or deleted). Cached until others change the store
    /// ([`Store::others_generation`]) or this mount changes the directory
    /// ([`Filesystem::changed_dirs`]).
    pub(super) fn resolve(&self, dir_sel: &[u8], name: &[u8]) -> Result<Option<(Entry, Owner)>> {
        let gen_now = self.store.others_generation();
        let epoch = {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if c.generation != gen_now {
                c.generation = gen_now;
                c.dirs.clear();
                c.names = 0;
            } else if let Some(hit) = c.dirs.get(dir_sel).and_then(|d| d.get(name)) {
                return Ok(hit.clone());
            }
            c.epoch
        };
        let ordinal = layout::name_ordinal(name);
        let cands = self.store.get(dir_sel, ordinal, &self.mask_for(dir_sel))?;
        let mut found = None;
        for v in cands {
            if let Some(e) = self.usable(&v, dir_sel, ordinal).filter(|e| e.name == name) {
                self.saw_owner(v.owner);
                if e.body != Body::Tombstone {
                    found = Some((e, v.owner));
                }
                break;
            }
        }
        if found.is_none() {
            found = self.resolve_copy(dir_sel, name)?;
        }
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Not if anything changed meanwhile: this may be what was there before.
        if c.generation == gen_now && c.epoch == epoch {
            if c.names >= super::LOOKUP_CACHE_MAX {
                c.dirs.clear();
                c.names = 0;
            }
            let dir = c.dirs.entry(dir_sel.to_vec()).or_default();
            if dir.insert(name.to_vec(), found.clone()).is_none() {
                c.names += 1;
            }
        }
        Ok(found)
    }

    /// After this mount's own puts into the directories `dir_sels` (stored): what was
    /// resolved in them is forgotten, and resolutions under way are not kept.
    pub(super) fn changed_dirs(&self, dir_sels: &[&[u8]]) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.epoch += 1;
        for d in dir_sels {
            if let Some(names) = c.dirs.remove(*d) {
                c.names -= names.len();
            }
        }
    }

    /// Every usable entry among `cands` (each owner's latest), with its owner.
    pub(super) fn usable_all(
        &self,
        cands: &[Version],
        dir_sel: &[u8],
        ordinal: u64,
    ) -> Vec<(Entry, Owner)> {
        cands
            .iter()
            .filter_map(|v| self.usable(v, dir_sel, ordinal).map(|e| (e, v.owner)))
            .collect()
    }

    /// The version shown under the conflict name `name`, if it is one: its entry keeps
    /// the contested name, so `entry.name != name` tells a conflict copy.
    fn resolve_copy(&self, dir_sel: &[u8], name: &[u8]) -> Result<Option<(Entry, Owner)>> {
        for original in conflicts::originals(name) {
            if !layout::valid_name(&original) {
                continue;
            }
            let ordinal = layout::name_ordinal(&original);
            let cands = self.store.get(dir_sel, ordinal, &self.mask_for(dir_sel))?;
            let entries = self.usable_all(&cands, dir_sel, ordinal);
            if let Some(c) = conflicts::copies(&entries)
                .into_iter()
                .find(|c| c.name == name)
            {
                return Ok(Some((c.entry, c.owner)));
            }
        }
        Ok(None)
    }

    /// Selector of the directory at `ino`.
    pub(super) fn dir_selector(&self, ino: u64) -> Result<Vec<u8>> {
        if ino == ROOT_INO {
            return Ok(self.config.root.clone());
        }
        let n = self.node(ino)?;
        match self.resolve(&n.dir_sel, &n.name)? {
            Some((
                Entry {
                    body: Body::Dir(sel),
                    ..
                },
                _,
            )) => Ok(sel),
            Some(_) => Err(FsError::NotDir),
            None => Err(FsError::NotFound),
        }
    }

    /// Attributes of entry `e` shown at `ino`; `copy`: shown under a conflict name
    /// (read-only, whoever wrote it).
    pub(super) fn attr_of(&self, ino: u64, e: &Entry, owner: &Owner, copy: bool) -> Attr {
        let writable = *owner == self.store.owner() && !self.config.read_only && !copy;
        let (kind, size) = match &e.body {
            Body::File(FileData::Inline(d)) => (Kind::File, d.len() as u64),
            Body::File(FileData::Chunked { size, .. }) => (Kind::File, *size),
            Body::Dir(_) => (Kind::Dir, 0),
            Body::Symlink(t) => (Kind::Symlink, t.len() as u64),
            Body::Tombstone => (Kind::File, 0),
        };
        let mut perm = (e.mode & 0o7777) as u16;
        if !writable && kind != Kind::Symlink {
            perm &= !0o222;
        }
        let uid = if *owner == self.store.owner() {
            self.config.uid
        } else {
            owner_uid(owner)
        };
        let mtime = match &e.body {
            Body::Dir(sel) => self.dir_mtime(sel, e.mtime),
            _ => e.mtime,
        };
        Attr {
            ino,
            kind,
            size,
            perm,
            uid,
            gid: self.config.gid,
            mtime: time(mtime),
            writable,
            nlink: if kind == Kind::Dir { 2 } else { 1 },
        }
    }

    /// A directory's modification time, derived, never stored (no extra record per
    /// change): it moves when the directory's set of names changes (create, delete,
    /// rename in or out), to the latest time among its entries (a tombstone's is its
    /// deletion), or to the time this node saw the change if none is later; writes to
    /// its files do not move it. Its own entry's time (mkdir, chmod, touch) counts too.
    /// A directory first seen since start takes the latest of its entries' times.
    pub(super) fn dir_mtime(&self, sel: &[u8], own: u64) -> u64 {
        let known = self
            .dir_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sel)
            .copied();
        if let Some(t) = known
            && t.checked.elapsed() < DIR_TIME_RECHECK
        {
            return t.mtime.max(own);
        }
        let mut latest = 0;
        let mut names = 0u64;
        if let Ok(all) = self.store.list(sel, &self.mask_for(sel)) {
            for (ordinal, cands) in all {
                if let Some(e) = cands.iter().find_map(|v| self.usable(v, sel, ordinal)) {
                    latest = latest.max(e.mtime);
                    if e.body != Body::Tombstone {
                        names ^= ordinal;
                    }
                }
            }
        }
        let mtime = match known {
            None => latest,
            Some(t) if t.names == names => t.mtime,
            // The names changed; if no entry says when (a file moved in keeps its own
            // time), now is when this node saw it.
            Some(t) if latest > t.mtime => latest,
            Some(t) => self.store.now_nanos().max(t.mtime + 1),
        };
        let mut c = self.dir_times.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= DIR_TIMES_MAX {
            c.clear();
        }
        c.insert(
            sel.to_vec(),
            DirTime {
                checked: std::time::Instant::now(),
                names,
                mtime,
            },
        );
        mtime.max(own)
    }

    /// This mount added or removed the names with these ordinals in the directory
    /// `sel`, at `at`: its derived time moves now, without listing it again.
    pub(super) fn names_changed(&self, sel: &[u8], ordinals: &[u64], at: u64) {
        let mut c = self.dir_times.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = c.get_mut(sel) {
            for o in ordinals {
                t.names ^= o;
            }
            t.mtime = t.mtime.max(at);
        }
    }

    /// Where the root's own entry (its mode and time) is stored: beside the tree, not
    /// in it, so no listing shows it.
    pub(super) fn root_entry_selector(&self) -> Vec<u8> {
        let mut s = self.config.root.clone();
        s.extend_from_slice(b"/root");
        s
    }

    /// The root's entry as the mount's owner stored it (another owner's is ignored:
    /// the root's mode is its mount owner's choice).
    pub(super) fn root_entry(&self) -> Result<Option<Entry>> {
        let gen_now = self.store.generation();
        {
            let c = self.root_entry.lock().unwrap_or_else(|e| e.into_inner());
            if c.0 == gen_now {
                return Ok(c.1.clone());
            }
        }
        let sel = self.root_entry_selector();
        let me = self.store.owner();
        let found = self
            .store
            .get(&sel, 0, &self.mask_for(&sel))?
            .into_iter()
            .filter(|v| v.owner == me)
            .find_map(|v| Entry::decode(&v.value))
            .filter(|e| matches!(e.body, Body::Dir(_)));
        *self.root_entry.lock().unwrap_or_else(|e| e.into_inner()) = (gen_now, found.clone());
        Ok(found)
    }

    pub(super) fn root_attr(&self) -> Attr {
        let stored = self.root_entry().ok().flatten();
        let mut perm = stored.as_ref().map_or(self.config.root_mode, |e| e.mode) as u16 & 0o7777;
        if self.config.read_only {
            perm &= !0o222;
        }
        Attr {
            ino: ROOT_INO,
            kind: Kind::Dir,
            size: 0,
            perm,
            uid: self.config.uid,
            gid: self.config.gid,
            // An empty tree with no time of its own shows when it was mounted.
            mtime: time(
                match self.dir_mtime(&self.config.root, stored.map_or(0, |e| e.mtime)) {
                    0 => self.started,
                    t => t,
                },
            ),
            writable: !self.config.read_only,
            nlink: 2,
        }
    }

    pub(super) fn passwd(&self) -> Vec<u8> {
        let mut owners: Vec<Owner> = self
            .owners_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        owners.push(self.store.owner());
        owners.sort();
        owners.dedup();
        let mut out = String::new();
        for o in owners {
            let uid = if o == self.store.owner() {
                self.config.uid
            } else {
                owner_uid(&o)
            };
            out.push_str(&format!(
                "lf{uid}:x:{uid}:{}:{o}:/:/usr/bin/false\n",
                self.config.gid
            ));
        }
        out.into_bytes()
    }

    pub(super) fn passwd_attr(&self) -> Attr {
        Attr {
            ino: PASSWD_INO,
            kind: Kind::File,
            size: self.passwd().len() as u64,
            perm: 0o444,
            uid: self.config.uid,
            gid: self.config.gid,
            mtime: time(self.started),
            writable: false,
            nlink: 1,
        }
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        if name.len() > layout::MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        if parent == ROOT_INO && name == PASSWD_NAME {
            return Ok(self.passwd_attr());
        }
        let sel = self.dir_selector(parent)?;
        let (e, owner) = self.resolve(&sel, name)?.ok_or(FsError::NotFound)?;
        if let Body::Dir(own) = &e.body
            && e.name == name
        {
            self.note_dir(own, &sel, name);
        }
        let ino = self.remember(&sel, name);
        self.note_attrs_out(ino, &e);
        self.entries_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((parent, name.to_vec()), std::time::Instant::now());
        let copy = e.name != name;
        Ok(self.with_open_size(self.attr_of(ino, &e, &owner, copy)))
    }

    /// Whether another owner's record wins `name` in `dir_sel` although nothing is
    /// visible there (they deleted it): first owner wins, even after a deletion, so an
    /// entry we wrote there would never be seen.
    pub(super) fn claimed_by_other(&self, dir_sel: &[u8], name: &[u8]) -> Result<bool> {
        let ordinal = layout::name_ordinal(name);
        let cands = self.store.get(dir_sel, ordinal, &self.mask_for(dir_sel))?;
        Ok(cands
            .iter()
            .find(|v| {
                self.usable(v, dir_sel, ordinal)
                    .is_some_and(|e| e.name == name)
            })
            .is_some_and(|v| v.owner != self.store.owner()))
    }

    pub(super) fn entry_of(&self, ino: u64) -> Result<(Node, Entry, Owner)> {
        let n = self.node(ino)?;
        let (e, o) = self
            .resolve(&n.dir_sel, &n.name)?
            .ok_or(FsError::NotFound)?;
        Ok((n, e, o))
    }

    /// Attributes of an inode.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        match ino {
            ROOT_INO => Ok(self.root_attr()),
            PASSWD_INO => Ok(self.passwd_attr()),
            _ => {
                let (n, e, o) = match self.entry_of(ino) {
                    Ok(found) => found,
                    // Unlinked while open: the open descriptors still see the file
                    // (fstat), with no link, until the last close.
                    Err(FsError::NotFound) => match self.unlinked_open(ino) {
                        Some(f) => {
                            let g = f.lock().unwrap_or_else(|e| e.into_inner());
                            let mut a = self.attr_of(ino, &g.entry, &self.store.owner(), false);
                            a.size = g.content.len();
                            a.nlink = 0;
                            return Ok(a);
                        }
                        None => return Err(FsError::NotFound),
                    },
                    Err(e) => return Err(e),
                };
                self.note_attrs_out(ino, &e);
                let copy = e.name != n.name;
                Ok(self.with_open_size(self.attr_of(ino, &e, &o, copy)))
            }
        }
    }

    /// Lists a directory (without `.` and `..`), sorted by name.
    pub fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>> {
        let sel = self.dir_selector(ino)?;
        // (entry, whether it is a conflict copy): a real entry wins a name a conflict
        // copy would also take.
        let mut out: Vec<(DirEntry, bool)> = Vec::new();
        let kind_of = |e: &Entry| match e.body {
            Body::Tombstone => None,
            Body::Dir(_) => Some(Kind::Dir),
            Body::Symlink(_) => Some(Kind::Symlink),
            Body::File(_) => Some(Kind::File),
        };
        let all = self.store.list(&sel, &self.mask_for(&sel))?;
        self.forget_contested_in(&sel);
        for (ordinal, cands) in all {
            let entries = self.usable_all(&cands, &sel, ordinal);
            let Some((e, owner)) = entries.first() else {
                continue;
            };
            self.saw_owner(*owner);
            if let Body::Dir(own) = &e.body {
                self.note_dir(own, &sel, &e.name);
            }
            if let Some(kind) = kind_of(e) {
                out.push((
                    DirEntry {
                        ino: self.remember(&sel, &e.name),
                        kind,
                        name: e.name.clone(),
                    },
                    false,
                ));
            }
            if entries.len() < 2 {
                continue;
            }
            let copies = conflicts::copies(&entries);
            for c in &copies {
                self.saw_owner(c.owner);
                if let Some(kind) = kind_of(&c.entry) {
                    out.push((
                        DirEntry {
                            ino: self.remember(&sel, &c.name),
                            kind,
                            name: c.name.clone(),
                        },
                        true,
                    ));
                }
            }
            if let Some(c) = copies.first() {
                self.note_conflict(&sel, &c.entry.name, ordinal);
            }
        }
        if ino == ROOT_INO {
            out.push((
                DirEntry {
                    ino: PASSWD_INO,
                    kind: Kind::File,
                    name: PASSWD_NAME.to_vec(),
                },
                false,
            ));
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(a.1.cmp(&b.1)));
        out.dedup_by(|later, first| later.0.name == first.0.name);
        Ok(out.into_iter().map(|(d, _)| d).collect())
    }

    /// Reads a symbolic link.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        match self.entry_of(ino)?.1.body {
            Body::Symlink(t) => Ok(t),
            _ => Err(FsError::InvalidName),
        }
    }
}
