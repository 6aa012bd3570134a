//! Open files: handles, the buffer shared by every handle of a file, reads and writes
//! through it, and the commit that turns a dirty buffer into records (streamed through
//! the chunker, in parts).

use super::*;

/// Largest file whose commit counts as small for [`Filesystem::unsaved`]: one journal
/// flush of a few records.
const SMALL_COMMIT: u64 = 256 << 10;

/// What a flush has to do ([`Filesystem::unsaved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsaved {
    /// Nothing: the file and every create are durable.
    Nothing,
    /// A commit of a small file, or a flush of creates: one journal flush.
    Little,
    /// Maybe a big file's data, or it waits for a commit under way.
    Much,
}

impl<S: Store> Filesystem<S> {
    /// Bytes of written, uncommitted data the open files hold now.
    pub fn spilled_bytes(&self) -> u64 {
        self.spill.used()
    }

    /// The size of unflushed writes wins over the stored size; a clean buffer may be
    /// older than the store (a newer version arrived), so the store's size counts,
    /// unless the buffer committed a newer entry after `a` was read (a stat that
    /// waited for an fsync's commit took size 0 from the create before it).
    pub(super) fn with_open_size(&self, mut a: Attr) -> Attr {
        if let Some(f) = self.live_open(a.ino) {
            let g = f.lock().unwrap_or_else(|e| e.into_inner());
            let committed = time(g.entry.mtime);
            if g.dirty {
                a.size = g.content.len();
            } else if committed > a.mtime {
                a.size = g.content.len();
                a.mtime = committed;
            }
        }
        a
    }

    /// What a flush of `ino` has to do: nothing but a check, a small commit (one
    /// journal flush of a small file or a create), or maybe more (a big file's data,
    /// or a commit of it under way, whose buffer is locked).
    pub fn unsaved(&self, ino: u64) -> Unsaved {
        let state = |g: &OpenFile| (g.dirty, g.content.len() > SMALL_COMMIT);
        let dirty = self.registered(ino).map(|f| match f.try_lock() {
            Ok(g) => state(&g),
            Err(std::sync::TryLockError::Poisoned(g)) => state(&g.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => (true, true),
        });
        match dirty {
            Some((true, true)) => Unsaved::Much,
            Some((true, false)) => Unsaved::Little,
            _ if self.store.unsynced() => Unsaved::Little,
            _ => Unsaved::Nothing,
        }
    }

    /// The open buffer registered under `ino` if it still holds the entry the inode
    /// names now (not unlinked, replaced, or of another file that had the same inode).
    pub(super) fn live_open(&self, ino: u64) -> Option<Arc<Mutex<OpenFile>>> {
        let node = self.node(ino).ok()?;
        let f = self.registered(ino)?;
        let live = {
            let g = f.lock().unwrap_or_else(|e| e.into_inner());
            !g.detached && g.node == node
        };
        live.then_some(f)
    }

    /// Reloads a clean buffer when a newer version of its entry arrived (records from
    /// another node). If the new version cannot be assembled yet (its chunks have not
    /// arrived), the old content stays and the check is repeated later.
    pub(super) fn refresh(&self, f: &Mutex<OpenFile>) {
        let gen_now = self.store.generation();
        let mut g = f.lock().unwrap_or_else(|e| e.into_inner());
        if g.dirty || g.detached || g.generation == gen_now {
            return;
        }
        if let Ok(Some((e, _))) = self.resolve(&g.node.dir_sel, &g.node.name)
            && e != g.entry
            && matches!(e.body, Body::File(_))
        {
            match Base::of(&self.store, &e, self.config.max_file_size) {
                Ok(base) => {
                    g.content = Content::new(base, self.spill.clone());
                    g.entry = e;
                }
                Err(_) => return,
            }
        }
        g.generation = gen_now;
    }

    /// The buffer registered under `ino`, whatever it holds now.
    fn registered(&self, ino: u64) -> Option<Arc<Mutex<OpenFile>>> {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ino)
            .cloned()
    }

    /// The buffer still open under `ino` after its name was unlinked or replaced.
    pub(super) fn unlinked_open(&self, ino: u64) -> Option<Arc<Mutex<OpenFile>>> {
        let f = self.registered(ino)?;
        let detached = f.lock().unwrap_or_else(|e| e.into_inner()).detached;
        detached.then_some(f)
    }

    /// Marks every open buffer of (`dir_sel`, `name`) as detached: its name was
    /// unlinked or replaced, so closing it must not write the entry back.
    pub(super) fn detach(&self, dir_sel: &[u8], name: &[u8]) {
        let gone = Node {
            dir_sel: dir_sel.to_vec(),
            name: name.to_vec(),
        };
        for f in self.open.lock().unwrap_or_else(|e| e.into_inner()).values() {
            let mut g = f.lock().unwrap_or_else(|e| e.into_inner());
            if g.node == gone {
                g.detached = true;
            }
        }
    }

    /// The whole content of a file entry (inline or chunked), for a commit under a
    /// new name or size; reads chunks as the commit streams them.
    pub(super) fn content_of(&self, e: &Entry) -> Result<Content> {
        Ok(Content::new(
            Base::of(&self.store, e, self.config.max_file_size)?,
            self.spill.clone(),
        ))
    }

    /// Opens a file; `write` checks that the mount's owner may change it.
    pub fn open(&self, ino: u64, write: bool) -> Result<u64> {
        if ino == PASSWD_INO {
            if write {
                return Err(FsError::Access);
            }
        } else {
            let (node, e, owner) = self.entry_of(ino)?;
            if matches!(e.body, Body::Dir(_)) {
                return Err(FsError::IsDir);
            }
            if write {
                self.check_writable_dir()?;
                // Another owner's entry, or a conflict copy (read-only, see SEMANTICS).
                if owner != self.store.owner() || e.name != node.name {
                    return Err(FsError::Access);
                }
            }
            if let Some(f) = self.share_open(ino, &node) {
                self.refresh(&f);
                return Ok(self.new_handle(ino, Some(f)));
            }
            // Assembled outside every lock another open needs: another owner's
            // manifest may take a while to check, and it delays only this file.
            let gen_now = self.store.generation();
            let base = Base::of(&self.store, &e, self.config.max_file_size)?;
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let f = match Self::live_in(&open, ino, &node) {
                // Opened by someone else meanwhile: share theirs.
                Some(f) => {
                    f.lock().unwrap_or_else(|e| e.into_inner()).handles += 1;
                    f
                }
                None => {
                    let f = Arc::new(Mutex::new(OpenFile {
                        content: Content::new(base, self.spill.clone()),
                        dirty: false,
                        handles: 1,
                        entry: e,
                        node,
                        generation: gen_now,
                        detached: false,
                    }));
                    open.insert(ino, f.clone());
                    f
                }
            };
            drop(open);
            return Ok(self.new_handle(ino, Some(f)));
        }
        Ok(self.new_handle(ino, None))
    }

    /// The buffer under `ino` if it still holds the entry at `node` (an unlinked or
    /// replaced file, or another file that had this inode, is not shared).
    pub(super) fn live_in(
        open: &HashMap<u64, Arc<Mutex<OpenFile>>>,
        ino: u64,
        node: &Node,
    ) -> Option<Arc<Mutex<OpenFile>>> {
        open.get(&ino).cloned().filter(|f| {
            let g = f.lock().unwrap_or_else(|e| e.into_inner());
            !g.detached && g.node == *node
        })
    }

    /// Takes one more handle on the live buffer under `ino`, if there is one.
    pub(super) fn share_open(&self, ino: u64, node: &Node) -> Option<Arc<Mutex<OpenFile>>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let f = Self::live_in(&open, ino, node)?;
        f.lock().unwrap_or_else(|e| e.into_inner()).handles += 1;
        Some(f)
    }

    pub(super) fn new_handle(&self, ino: u64, f: Option<Arc<Mutex<OpenFile>>>) -> u64 {
        let mut next = self.next_fh.lock().unwrap_or_else(|e| e.into_inner());
        let fh = *next;
        *next += 1;
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, (ino, f));
        fh
    }

    pub(super) fn open_file(&self, ino: u64) -> Result<Arc<Mutex<OpenFile>>> {
        self.registered(ino).ok_or(FsError::Stale)
    }

    /// Reads from an open file.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let data = if ino == PASSWD_INO {
            self.passwd()
        } else {
            let f = self.open_file(ino)?;
            self.refresh(&f);
            // Chunks fetched outside the file's lock (see `chunks_to_fetch`); if the
            // content changed meanwhile, `read_with` fetches what it still lacks.
            let wanted = f
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .content
                .chunks_to_fetch(offset, size as u64);
            let data = crate::content::load_chunks(&self.store, &wanted)?;
            let mut fetched: Vec<(ChunkRef, Vec<u8>)> = wanted.into_iter().zip(data).collect();
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            return f
                .content
                .read_with(&self.store, offset, size as u64, &mut fetched);
        };
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(size as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }

    /// Writes into an open file's buffer (visible to readers on this node at once;
    /// durable at flush/fsync/close).
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(FsError::TooBig)?;
        if end > self.config.max_file_size {
            return Err(FsError::TooBig);
        }
        let f = self.open_file(ino)?;
        self.refresh(&f);
        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
        f.content.write(offset, data)?;
        f.dirty = true;
        Ok(data.len() as u32)
    }

    /// Makes an open file's changes durable and visible (flush, fsync).
    pub fn flush(&self, ino: u64) -> Result<()> {
        match self.live_open(ino) {
            Some(f) => self.flush_file(ino, &f),
            None => Ok(()),
        }
    }

    pub(super) fn flush_file(&self, ino: u64, file: &Mutex<OpenFile>) -> Result<()> {
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        // The job out on this file cuts what the commit would: wait for it (and let no
        // other start meanwhile), then keep the lock until the commit ends.
        f.content.hold_cuts(true);
        while f.dirty && f.content.cut_busy() {
            drop(f);
            self.wait_for_cut();
            f = file.lock().unwrap_or_else(|e| e.into_inner());
        }
        f.content.hold_cuts(false);
        if f.detached {
            // Unlinked or replaced while open: its data goes with its last handle.
            f.dirty = false;
            return Ok(());
        }
        if !f.dirty {
            // Nothing to write, but a close or fsync still makes the file's create
            // durable (`put_lazy`): a no-op when the store has nothing unsynced.
            self.store.sync()?;
            return Ok(());
        }
        let mut e = f.entry.clone();
        e.mtime = self.store.now_nanos();
        let mut commit = self.store_content(&mut e, &mut f.content)?;
        let cut = std::mem::take(&mut commit.cut);
        // Taken before the put: a record arriving meanwhile still triggers a check.
        let generation = self.store.generation();
        self.put_entry_after(&f.node.dir_sel, &e, commit)?;
        if !cut.is_empty() {
            // Stored now: the next commit of this file cuts only what changes after.
            f.content.commit_cut(self.store.max_value_size(), cut);
        }
        // The kernel's pages hold what was just written: they stay valid.
        if let Some(v) = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&ino)
        {
            *v = version(&e);
        }
        if let Some((v, _)) = self
            .attrs_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&ino)
        {
            *v = version(&e);
        }
        f.entry = e;
        f.dirty = false;
        f.generation = generation;
        Ok(())
    }

    /// Closes a handle: flushes, then forgets the buffer when no handle is left.
    pub fn release(&self, fh: u64) -> Result<()> {
        let Some((ino, Some(f))) = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh)
        else {
            return Ok(());
        };
        // The handle's own buffer: after a rename or unlink it may no longer be the
        // one registered under `ino`.
        let result = self.flush_file(ino, &f);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut g = f.lock().unwrap_or_else(|e| e.into_inner());
        g.handles = g.handles.saturating_sub(1);
        if g.handles == 0 && !g.dirty {
            drop(g);
            open.retain(|_, v| !Arc::ptr_eq(v, &f));
        }
        result
    }

    /// Sets `e.body` to hold `content` (inline or chunked) and returns what is left
    /// to put with the entry. A chunked file streams through the chunker: it is cut
    /// in parts of [`COMMIT_PART_BYTES`] of the file (two in memory at most), whose new
    /// chunks go to the store as they are cut (content-addressed, so harmless before
    /// the entry names them), never the whole file in memory; chunks already stored
    /// are not written again.
    pub(super) fn store_content(&self, e: &mut Entry, content: &mut Content) -> Result<Commit> {
        let max = self.store.max_value_size();
        let len = content.len();
        if Entry::inline_size(e.name.len(), len as usize) <= max {
            e.body = Body::File(FileData::Inline(content.read(&self.store, 0, len)?));
            return Ok(Commit::default());
        }
        let mut commit = Commit::default();
        // What was cut ahead (and stored) while the file was written: only the rest
        // is cut now.
        let (upto, cut) = content.cut_so_far(max);
        let mut refs = cut.to_vec();
        // A file that started empty (new, or truncated) is mostly new chunks: only
        // those waiting to be published are looked for, as when it is cut ahead (see
        // `Store::has_pending_own`); an edited file's chunks are mostly stored.
        let new_file = content.started_empty();
        let (min, avg, most) = chunk::sizes(max);
        let mut reader = content.reader(&self.store, upto);
        let mut seen = HashSet::new();
        let mut failed = false;
        // Two stages, one part apart: while one part's chunks are hashed, checked
        // against the store and journaled on a thread of their own, the next part is
        // cut here (a commit comes after the last write, when the writer's core is
        // free: cut and hashed in one thread, the rest of a 64 MiB file kept its fsync
        // waiting on one core).
        let mut part: Vec<Vec<u8>> = Vec::new();
        let mut part_bytes = 0;
        std::thread::scope(|scope| -> Result<()> {
            // The part out: its refs, and `seen` and `admitted` as it leaves them.
            type Stage = Result<(Vec<ChunkRef>, HashSet<chunk::ChunkId>, bool)>;
            let mut out: Option<std::thread::ScopedJoinHandle<'_, Stage>> = None;
            let mut admitted = commit.admitted;
            let mut join = |out: &mut Option<std::thread::ScopedJoinHandle<'_, Stage>>,
                            seen: &mut HashSet<chunk::ChunkId>,
                            admitted: &mut bool| {
                if let Some(h) = out.take() {
                    let (done, s, a) = h.join().unwrap_or_else(|_| {
                        Err(FsError::Corrupt("storing a part of a file panicked".into()))
                    })?;
                    refs.extend(done);
                    *seen = s;
                    *admitted = a;
                }
                Ok::<(), FsError>(())
            };
            for c in fastcdc::v2020::StreamCDC::new(&mut reader, min, avg, most) {
                let Ok(c) = c else {
                    failed = true;
                    break;
                };
                part_bytes += c.data.len();
                part.push(c.data);
                if part_bytes >= COMMIT_PART_BYTES {
                    // Parts are stored in order, the previous one before this one.
                    join(&mut out, &mut seen, &mut admitted)?;
                    let (chunks, mut seen, admitted) = (
                        std::mem::take(&mut part),
                        std::mem::take(&mut seen),
                        admitted,
                    );
                    let stage = move || {
                        let (refs, part) = Self::new_chunks(chunks, &mut seen);
                        let puts = self.chunk_puts(part, new_file)?;
                        if !puts.is_empty() {
                            self.store.put_part(puts, !admitted)?;
                            return Ok((refs, seen, true));
                        }
                        Ok((refs, seen, admitted))
                    };
                    let spawned = std::thread::Builder::new()
                        .name("lffs-commit-part".into())
                        .spawn_scoped(scope, stage)
                        .map_err(|e| {
                            crate::StoreError::Failed(format!(
                                "cannot start a thread to commit: {e}"
                            ))
                        })?;
                    out = Some(spawned);
                    part_bytes = 0;
                }
            }
            join(&mut out, &mut seen, &mut admitted)?;
            commit.admitted = admitted;
            Ok(())
        })?;
        if failed {
            return Err(reader
                .failed
                .take()
                .unwrap_or_else(|| FsError::Corrupt("chunking failed".into())));
        }
        // The last part goes with the entry.
        let (last, part) = Self::new_chunks(part, &mut seen);
        refs.extend(last);
        commit.puts = self.chunk_puts(part, new_file)?;
        commit.cut = refs.clone();
        let mut depth = 1u8;
        loop {
            let manifest = chunk::encode_refs(&refs);
            if Entry::inline_size(e.name.len(), manifest.len()) + 9 <= max || depth == u8::MAX {
                e.body = Body::File(FileData::Chunked {
                    size: len,
                    depth,
                    refs,
                });
                return Ok(commit);
            }
            refs = Vec::new();
            for (off, n) in chunk::cut(&manifest, max) {
                let data = &manifest[off..off + n];
                let r = ChunkRef {
                    id: chunk::chunk_id(data),
                    len: n as u32,
                };
                if seen.insert(r.id) {
                    let more = self.missing_chunks(vec![(r, data.to_vec())])?;
                    commit.puts.extend(more);
                }
                refs.push(r);
            }
            depth += 1;
        }
    }

    /// The refs of a part's chunks, in order, and those of them not `seen` in this
    /// file before (now seen), with their bytes.
    fn new_chunks(
        chunks: Vec<Vec<u8>>,
        seen: &mut HashSet<chunk::ChunkId>,
    ) -> (Vec<ChunkRef>, Vec<(ChunkRef, Vec<u8>)>) {
        let mut refs = Vec::with_capacity(chunks.len());
        let mut new = Vec::with_capacity(chunks.len());
        for data in chunks {
            let r = ChunkRef {
                id: chunk::chunk_id(&data),
                len: data.len() as u32,
            };
            refs.push(r);
            if seen.insert(r.id) {
                new.push((r, data));
            }
        }
        (refs, new)
    }

    /// The puts for those of `chunks` that the mount's owner does not have yet.
    fn missing_chunks(&self, chunks: Vec<(ChunkRef, Vec<u8>)>) -> Result<Vec<Put>> {
        self.chunk_puts(chunks, false)
    }

    /// [`Filesystem::missing_chunks`]; `pending` asks only about chunks waiting to be
    /// published (see [`Store::has_pending_own`]).
    pub(super) fn chunk_puts(
        &self,
        chunks: Vec<(ChunkRef, Vec<u8>)>,
        pending: bool,
    ) -> Result<Vec<Put>> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<Vec<u8>> = chunks
            .iter()
            .map(|(r, _)| layout::chunk_selector(&r.id))
            .collect();
        let keys: Vec<(&[u8], u64, &[u8])> = names
            .iter()
            .zip(&chunks)
            .map(|(n, (r, _))| (&n[..], 0, &r.id[..]))
            .collect();
        let has = if pending {
            self.store.has_pending_own(&keys)?
        } else {
            self.store.has_own(&keys)?
        };
        Ok(chunks
            .into_iter()
            .zip(names)
            .zip(has)
            .filter(|(_, has)| !has)
            .map(|(((r, value), name), _)| Put {
                name,
                ordinal: 0,
                mask: r.id.to_vec(),
                value,
            })
            .collect())
    }

    /// The open, not detached buffers of the entry at `node`.
    pub(super) fn buffers_of(&self, node: &Node) -> Vec<Arc<Mutex<OpenFile>>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Arc<Mutex<OpenFile>>> = Vec::new();
        for f in open.values() {
            let g = f.lock().unwrap_or_else(|e| e.into_inner());
            if !g.detached && g.node == *node && !out.iter().any(|o| Arc::ptr_eq(o, f)) {
                out.push(f.clone());
            }
        }
        out
    }
}
