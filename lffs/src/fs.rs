//! The filesystem core: POSIX operations over a [`Store`], FUSE-free and synchronous.
//! Every operation waits only on the local store (never on proof of work or peers).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lf_record::Owner;
use sha2::{Digest, Sha256};

use crate::chunk::{self, ChunkRef};
use crate::content::{Base, Content, SpillBudget};
use crate::layout::{self, Body, Entry, FileData, PASSWD_INO, PASSWD_NAME, ROOT_INO};
use crate::untrusted::{self, BadEntries};
use crate::{FsError, Put, Store, Version};

type Result<T> = std::result::Result<T, FsError>;

/// Per-mount settings.
#[derive(Clone, Debug)]
pub struct FsConfig {
    /// Selector name of the root directory.
    pub root: Vec<u8>,
    /// Masking key of entries; `None` = each directory's selector name.
    pub masking_key: Option<Vec<u8>>,
    /// uid shown for the mount owner's entries.
    pub uid: u32,
    /// gid shown for every entry.
    pub gid: u32,
    /// Largest file, bytes.
    pub max_file_size: u64,
    /// Refuse every change.
    pub read_only: bool,
    /// Permission bits of the root directory until the mount's owner changes them
    /// (`chmod` of the root is stored).
    pub root_mode: u32,
    /// Where written data of open files is kept until it is committed (unlinked
    /// temporary files); `None` = the system's temporary directory.
    pub spill_dir: Option<std::path::PathBuf>,
    /// Most bytes of written, not yet committed data the open files of this mount may
    /// hold at once; a write beyond it fails with ENOSPC.
    pub max_spill_bytes: u64,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            root: b"lf.shared".to_vec(),
            masking_key: None,
            uid: 0,
            gid: 0,
            max_file_size: 64 << 20,
            read_only: false,
            root_mode: 0o755,
            spill_dir: None,
            max_spill_bytes: 4 << 30,
        }
    }
}

/// Entry kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
}

/// Attributes of an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode.
    pub ino: u64,
    /// Kind.
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (write bits cleared when not writable).
    pub perm: u16,
    /// Owner uid.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: SystemTime,
    /// Whether the mount's owner may change it.
    pub writable: bool,
}

/// One directory listing entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode.
    pub ino: u64,
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: Vec<u8>,
}

/// Where an inode lives: its directory's selector and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    dir_sel: Vec<u8>,
    name: Vec<u8>,
}

/// Content of an open file, shared by every handle on the inode so that writes are
/// visible to other readers at once.
struct OpenFile {
    content: Content,
    dirty: bool,
    handles: usize,
    entry: Entry,
    node: Node,
    /// Store generation at which `content` was last known to match the stored entry
    /// (a clean buffer is reloaded when a newer version arrives).
    generation: u64,
    /// The name was unlinked or replaced while open: the open handles keep reading and
    /// writing this buffer (POSIX: an unlinked open file), but it is never stored.
    detached: bool,
}

/// An open handle: the inode the kernel names it by and the buffer it holds (which may
/// no longer be the one registered under that inode, after a rename or unlink).
type Handle = (u64, Option<Arc<Mutex<OpenFile>>>);

/// Resolved entries by (directory selector, name), valid for one store generation.
type LookupCache = HashMap<(Vec<u8>, Vec<u8>), Option<(Entry, Owner)>>;

/// The filesystem.
pub struct Filesystem<S: Store> {
    store: S,
    config: FsConfig,
    nodes: RwLock<HashMap<u64, Node>>,
    open: Mutex<HashMap<u64, Arc<Mutex<OpenFile>>>>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: Mutex<u64>,
    cache: Mutex<(u64, LookupCache)>,
    owners_seen: Mutex<HashSet<Owner>>,
    /// Version (mtime, size) of each file whose pages the kernel may hold.
    cached: Mutex<HashMap<u64, (u64, u64)>>,
    /// Attributes handed to the kernel recently (it caches them for the adapter's TTL):
    /// version and when, so that a newer version arriving meanwhile is invalidated at
    /// once instead of being hidden until the TTL runs out.
    attrs_out: Mutex<HashMap<u64, (FileVersion, std::time::Instant)>>,
    /// Names the kernel resolved recently (it caches the dentry for the TTL): if one
    /// disappears meanwhile (deleted or renamed on another node), the dentry is
    /// invalidated at once.
    entries_out: Mutex<HashMap<(u64, Vec<u8>), std::time::Instant>>,
    /// Unusable entries from the network, counted and logged once.
    bad: BadEntries,
    /// The bound on written, uncommitted data of open files.
    spill: Arc<SpillBudget>,
    /// The root's own entry (mode, time) as the mount's owner last stored it, for one
    /// store generation.
    root_entry: Mutex<(u64, Option<Entry>)>,
}

/// Owners remembered for `.passwd` at most (anyone can write records).
const OWNERS_SEEN_MAX: usize = 4096;

/// Chunk records of a commit are handed to the store in parts of about this size, so
/// that a big file is never held in memory whole.
const COMMIT_PART_BYTES: usize = 8 << 20;

/// What is left of a commit to put with its entry, and whether the store admitted an
/// earlier part of it already.
#[derive(Default)]
struct Commit {
    puts: Vec<Put>,
    admitted: bool,
}

/// (mtime, size) of an entry: what tells that a file changed.
type FileVersion = (u64, u64);

/// How long handed-out attributes are watched: longer than the FUSE adapter's attribute
/// TTL (1 s), after which the kernel asks again anyway.
const ATTR_WATCH: Duration = Duration::from_secs(2);

/// What identifies a version of a file's content for the kernel's page cache.
fn version(e: &Entry) -> (u64, u64) {
    let size = match &e.body {
        Body::File(FileData::Inline(d)) => d.len() as u64,
        Body::File(FileData::Chunked { size, .. }) => *size,
        _ => 0,
    };
    (e.mtime, size)
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// uid of a foreign owner: from the hash of its key, above 65535 (as the seed).
pub fn owner_uid(owner: &Owner) -> u32 {
    let h = Sha256::digest(owner.as_bytes());
    let c = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    let uid = (c & 0x7FFF_FFFF) as u32;
    if uid < 65536 { uid + 65536 } else { uid }
}

impl<S: Store> Filesystem<S> {
    /// A filesystem over `store`.
    pub fn new(store: S, config: FsConfig) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_INO,
            Node {
                dir_sel: Vec::new(),
                name: Vec::new(),
            },
        );
        Filesystem {
            store,
            nodes: RwLock::new(nodes),
            open: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: Mutex::new(1),
            cache: Mutex::new((0, HashMap::new())),
            owners_seen: Mutex::new(HashSet::new()),
            cached: Mutex::new(HashMap::new()),
            attrs_out: Mutex::new(HashMap::new()),
            entries_out: Mutex::new(HashMap::new()),
            bad: BadEntries::default(),
            spill: SpillBudget::new(config.max_spill_bytes, config.spill_dir.clone()),
            root_entry: Mutex::new((0, None)),
            config,
        }
    }

    /// Bytes of written, uncommitted data the open files hold now.
    pub fn spilled_bytes(&self) -> u64 {
        self.spill.used()
    }

    /// Whether the local user `uid` may change anything on this mount: the user(s)
    /// the mount maps to its owner (its `uid`) and root. Everyone else may only read.
    pub fn may_change(&self, uid: u32) -> Result<()> {
        if uid == 0 || uid == self.config.uid {
            Ok(())
        } else {
            Err(FsError::Access)
        }
    }

    /// The entry in `v` if it decodes and is usable under (`dir_sel`, `ordinal`);
    /// otherwise the skip is counted and `None` returned.
    fn usable(&self, v: &Version, dir_sel: &[u8], ordinal: u64) -> Option<Entry> {
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

    fn saw_owner(&self, owner: Owner) {
        let mut seen = self.owners_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() < OWNERS_SEEN_MAX {
            seen.insert(owner);
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn mask_for(&self, dir_sel: &[u8]) -> Vec<u8> {
        self.config
            .masking_key
            .clone()
            .unwrap_or_else(|| dir_sel.to_vec())
    }

    fn node(&self, ino: u64) -> Result<Node> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ino)
            .cloned()
            .ok_or(FsError::Stale)
    }

    fn remember(&self, dir_sel: &[u8], name: &[u8]) -> u64 {
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
    /// (absent or deleted). Cached until the store's generation changes.
    fn resolve(&self, dir_sel: &[u8], name: &[u8]) -> Result<Option<(Entry, Owner)>> {
        let gen_now = self.store.generation();
        {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if c.0 != gen_now {
                *c = (gen_now, HashMap::new());
            } else if let Some(hit) = c.1.get(&(dir_sel.to_vec(), name.to_vec())) {
                return Ok(hit.clone());
            }
        }
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
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.0 == gen_now {
            c.1.insert((dir_sel.to_vec(), name.to_vec()), found.clone());
        }
        Ok(found)
    }

    /// Selector of the directory at `ino`.
    fn dir_selector(&self, ino: u64) -> Result<Vec<u8>> {
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

    fn attr_of(&self, ino: u64, e: &Entry, owner: &Owner) -> Attr {
        let writable = *owner == self.store.owner() && !self.config.read_only;
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
        Attr {
            ino,
            kind,
            size,
            perm,
            uid,
            gid: self.config.gid,
            mtime: time(e.mtime),
            writable,
        }
    }

    /// Where the root's own entry (its mode and time) is stored: beside the tree, not
    /// in it, so no listing shows it.
    fn root_entry_selector(&self) -> Vec<u8> {
        let mut s = self.config.root.clone();
        s.extend_from_slice(b"/root");
        s
    }

    /// The root's entry as the mount's owner stored it (another owner's is ignored:
    /// the root's mode is its mount owner's choice).
    fn root_entry(&self) -> Result<Option<Entry>> {
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

    fn root_attr(&self) -> Attr {
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
            mtime: stored.map_or(UNIX_EPOCH, |e| time(e.mtime)),
            writable: !self.config.read_only,
        }
    }

    /// Stores the root's mode and time (chmod, touch of the mount point).
    fn set_root(&self, mode: Option<u32>, mtime: Option<SystemTime>) -> Result<Attr> {
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
        self.store.put(vec![Put {
            ordinal: 0,
            mask: self.mask_for(&sel),
            name: sel,
            value: e.encode(),
        }])?;
        Ok(self.root_attr())
    }

    fn passwd(&self) -> Vec<u8> {
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

    fn passwd_attr(&self) -> Attr {
        Attr {
            ino: PASSWD_INO,
            kind: Kind::File,
            size: self.passwd().len() as u64,
            perm: 0o444,
            uid: self.config.uid,
            gid: self.config.gid,
            mtime: UNIX_EPOCH,
            writable: false,
        }
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        if parent == ROOT_INO && name == PASSWD_NAME {
            return Ok(self.passwd_attr());
        }
        let sel = self.dir_selector(parent)?;
        let (e, owner) = self.resolve(&sel, name)?.ok_or(FsError::NotFound)?;
        let ino = self.remember(&sel, name);
        self.note_attrs_out(ino, &e);
        self.entries_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((parent, name.to_vec()), std::time::Instant::now());
        Ok(self.with_open_size(self.attr_of(ino, &e, &owner)))
    }

    fn note_attrs_out(&self, ino: u64, e: &Entry) {
        self.attrs_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ino, (version(e), std::time::Instant::now()));
    }

    /// The size of unflushed writes wins over the stored size; a clean buffer may be
    /// older than the store (a newer version arrived), so the store's size counts.
    fn with_open_size(&self, mut a: Attr) -> Attr {
        if let Some(f) = self.live_open(a.ino) {
            let g = f.lock().unwrap_or_else(|e| e.into_inner());
            if g.dirty {
                a.size = g.content.len();
            }
        }
        a
    }

    /// The open buffer registered under `ino` if it still holds the entry the inode
    /// names now (not unlinked, replaced, or of another file that had the same inode).
    fn live_open(&self, ino: u64) -> Option<Arc<Mutex<OpenFile>>> {
        let node = self.node(ino).ok()?;
        let f = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ino)
            .cloned()?;
        let live = {
            let g = f.lock().unwrap_or_else(|e| e.into_inner());
            !g.detached && g.node == node
        };
        live.then_some(f)
    }

    /// Reloads a clean buffer when a newer version of its entry arrived (records from
    /// another node). If the new version cannot be assembled yet (its chunks have not
    /// arrived), the old content stays and the check is repeated later.
    fn refresh(&self, f: &Mutex<OpenFile>) {
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

    /// Marks every open buffer of (`dir_sel`, `name`) as detached: its name was
    /// unlinked or replaced, so closing it must not write the entry back.
    fn detach(&self, dir_sel: &[u8], name: &[u8]) {
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

    /// Whether another owner's record wins `name` in `dir_sel` although nothing is
    /// visible there (they deleted it): first owner wins, even after a deletion, so an
    /// entry we wrote there would never be seen.
    fn claimed_by_other(&self, dir_sel: &[u8], name: &[u8]) -> Result<bool> {
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

    fn entry_of(&self, ino: u64) -> Result<(Node, Entry, Owner)> {
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
                let (_, e, o) = self.entry_of(ino)?;
                self.note_attrs_out(ino, &e);
                Ok(self.with_open_size(self.attr_of(ino, &e, &o)))
            }
        }
    }

    /// Lists a directory (without `.` and `..`), sorted by name.
    pub fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>> {
        let sel = self.dir_selector(ino)?;
        let mut out = Vec::new();
        for (ordinal, cands) in self.store.list(&sel, &self.mask_for(&sel))? {
            let Some((e, owner)) = cands
                .iter()
                .find_map(|v| self.usable(v, &sel, ordinal).map(|e| (e, v.owner)))
            else {
                continue;
            };
            self.saw_owner(owner);
            let kind = match e.body {
                Body::Tombstone => continue,
                Body::Dir(_) => Kind::Dir,
                Body::Symlink(_) => Kind::Symlink,
                Body::File(_) => Kind::File,
            };
            out.push(DirEntry {
                ino: self.remember(&sel, &e.name),
                kind,
                name: e.name,
            });
        }
        if ino == ROOT_INO {
            out.push(DirEntry {
                ino: PASSWD_INO,
                kind: Kind::File,
                name: PASSWD_NAME.to_vec(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn check_writable_dir(&self) -> Result<()> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        if let Some(why) = self.store.write_refused() {
            tracing::debug!("write refused: {why}");
            return Err(FsError::Access);
        }
        Ok(())
    }

    fn check_new_name(&self, parent: u64, name: &[u8]) -> Result<Vec<u8>> {
        self.check_writable_dir()?;
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

    fn put_entry(&self, dir_sel: &[u8], e: &Entry, extra: Vec<Put>) -> Result<()> {
        self.put_entry_after(
            dir_sel,
            e,
            Commit {
                puts: extra,
                admitted: false,
            },
        )
    }

    /// Puts the entry with what is left of its commit (the last part of a change the
    /// store may already have admitted).
    fn put_entry_after(&self, dir_sel: &[u8], e: &Entry, mut commit: Commit) -> Result<()> {
        let value = e.encode();
        if value.len() > self.store.max_value_size() {
            return Err(FsError::TooBig);
        }
        commit.puts.push(Put {
            name: dir_sel.to_vec(),
            ordinal: layout::name_ordinal(&e.name),
            mask: self.mask_for(dir_sel),
            value,
        });
        self.store.put_part(commit.puts, !commit.admitted)?;
        Ok(())
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
        self.put_entry(&sel, &e, Vec::new())?;
        let ino = self.remember(&sel, name);
        let fh = self.open(ino, true)?;
        Ok((self.getattr(ino)?, fh))
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
        self.lookup(parent, name)
    }

    /// Reads a symbolic link.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        match self.entry_of(ino)?.1.body {
            Body::Symlink(t) => Ok(t),
            _ => Err(FsError::InvalidName),
        }
    }

    /// The whole content of a file entry (inline or chunked), for a commit under a
    /// new name or size; reads chunks as the commit streams them.
    fn content_of(&self, e: &Entry) -> Result<Content> {
        Ok(Content::new(
            Base::of(&self.store, e, self.config.max_file_size)?,
            self.spill.clone(),
        ))
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
    /// longer exist (deleted or renamed away, by records from another node): the caller
    /// invalidates them with `notify_inval_entry`. Same rules as
    /// [`Filesystem::changed_cached_files`]: background thread only, bounded by recent use.
    pub fn vanished_cached_entries(&self) -> Vec<(u64, Vec<u8>)> {
        let recent: Vec<(u64, Vec<u8>)> = {
            let mut out = self.entries_out.lock().unwrap_or_else(|e| e.into_inner());
            out.retain(|_, at| at.elapsed() < ATTR_WATCH);
            out.keys().cloned().collect()
        };
        let mut gone = Vec::new();
        for (parent, name) in recent {
            let exists = self
                .dir_selector(parent)
                .and_then(|sel| self.resolve(&sel, &name))
                .map(|r| r.is_some());
            // On a store error, keep watching rather than drop a valid dentry.
            if let Ok(false) = exists {
                self.entries_out
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(parent, name.clone()));
                gone.push((parent, name));
            }
        }
        gone
    }

    fn changed_page_files(&self) -> Vec<u64> {
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
                if owner != self.store.owner() {
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
    fn live_in(
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
    fn share_open(&self, ino: u64, node: &Node) -> Option<Arc<Mutex<OpenFile>>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let f = Self::live_in(&open, ino, node)?;
        f.lock().unwrap_or_else(|e| e.into_inner()).handles += 1;
        Some(f)
    }

    fn new_handle(&self, ino: u64, f: Option<Arc<Mutex<OpenFile>>>) -> u64 {
        let mut next = self.next_fh.lock().unwrap_or_else(|e| e.into_inner());
        let fh = *next;
        *next += 1;
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, (ino, f));
        fh
    }

    fn open_file(&self, ino: u64) -> Result<Arc<Mutex<OpenFile>>> {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ino)
            .cloned()
            .ok_or(FsError::Stale)
    }

    /// Reads from an open file.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let data = if ino == PASSWD_INO {
            self.passwd()
        } else {
            let f = self.open_file(ino)?;
            self.refresh(&f);
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            return f.content.read(&self.store, offset, size as u64);
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

    fn flush_file(&self, ino: u64, f: &Mutex<OpenFile>) -> Result<()> {
        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
        if f.detached {
            // Unlinked or replaced while open: its data goes with its last handle.
            f.dirty = false;
            return Ok(());
        }
        if !f.dirty {
            return Ok(());
        }
        let mut e = f.entry.clone();
        e.mtime = self.store.now_nanos();
        let commit = self.store_content(&mut e, &mut f.content)?;
        // Taken before the put: a record arriving meanwhile still triggers a check.
        let generation = self.store.generation();
        self.put_entry_after(&f.node.dir_sel, &e, commit)?;
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
    /// to put with the entry. A chunked file streams through the chunker: its new
    /// chunks go to the store in parts of [`COMMIT_PART_BYTES`] as they are cut
    /// (content-addressed, so harmless before the entry names them), never the whole
    /// file in memory; chunks already stored are not written again.
    fn store_content(&self, e: &mut Entry, content: &mut Content) -> Result<Commit> {
        let max = self.store.max_value_size();
        let len = content.len();
        if Entry::inline_size(e.name.len(), len as usize) <= max {
            e.body = Body::File(FileData::Inline(content.read(&self.store, 0, len)?));
            return Ok(Commit::default());
        }
        let mut commit = Commit::default();
        let mut part_bytes = 0;
        let mut refs = Vec::new();
        let (min, avg, most) = chunk::sizes(max);
        let mut reader = content.reader(&self.store);
        let mut seen = HashSet::new();
        let mut failed = false;
        for c in fastcdc::v2020::StreamCDC::new(&mut reader, min, avg, most) {
            let Ok(c) = c else {
                failed = true;
                break;
            };
            let r = ChunkRef {
                id: chunk::chunk_id(&c.data),
                len: c.length as u32,
            };
            refs.push(r);
            let sel = layout::chunk_selector(&r.id);
            if seen.insert(r.id) && self.store.get(&sel, 0, &r.id)?.is_empty() {
                part_bytes += c.data.len();
                commit.puts.push(Put {
                    name: sel,
                    ordinal: 0,
                    mask: r.id.to_vec(),
                    value: c.data,
                });
            }
            if part_bytes >= COMMIT_PART_BYTES {
                self.store
                    .put_part(std::mem::take(&mut commit.puts), !commit.admitted)?;
                commit.admitted = true;
                part_bytes = 0;
            }
        }
        if failed {
            return Err(reader
                .failed
                .take()
                .unwrap_or_else(|| FsError::Corrupt("chunking failed".into())));
        }
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
                let sel = layout::chunk_selector(&r.id);
                if seen.insert(r.id) && self.store.get(&sel, 0, &r.id)?.is_empty() {
                    commit.puts.push(Put {
                        name: sel,
                        ordinal: 0,
                        mask: r.id.to_vec(),
                        value: data.to_vec(),
                    });
                }
                refs.push(r);
            }
            depth += 1;
        }
    }

    fn writable_entry(&self, dir_sel: &[u8], name: &[u8]) -> Result<Entry> {
        self.check_writable_dir()?;
        let (e, owner) = self.resolve(dir_sel, name)?.ok_or(FsError::NotFound)?;
        if owner != self.store.owner() {
            return Err(FsError::Access);
        }
        Ok(e)
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

    fn tombstone(&self, e: &Entry) -> Entry {
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
        let e = self.writable_entry(&sel, name)?;
        if matches!(e.body, Body::Dir(_)) {
            return Err(FsError::IsDir);
        }
        self.put_entry(&sel, &self.tombstone(&e), Vec::new())?;
        self.detach(&sel, name);
        Ok(())
    }

    fn is_empty_dir(&self, own_sel: &[u8]) -> Result<bool> {
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
        self.put_entry(&sel, &self.tombstone(&e), Vec::new())
    }

    /// Renames atomically for readers on this node: the new entry and the old name's
    /// tombstone are one store batch. A directory keeps its selector, so its contents.
    pub fn rename(&self, parent: u64, name: &[u8], newparent: u64, newname: &[u8]) -> Result<()> {
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
        if let Some((dst, owner)) = self.resolve(&dst_sel, newname)? {
            if owner != self.store.owner() {
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
        self.store.put_part(puts, !commit.admitted)?;
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

    /// The open, not detached buffers of the entry at `node`.
    fn buffers_of(&self, node: &Node) -> Vec<Arc<Mutex<OpenFile>>> {
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

    /// Whether directory selector `sel` is `dir` or below it (moving a directory into
    /// itself is refused). Walks up through the remembered inodes.
    fn is_inside(&self, sel: &[u8], dir: &[u8]) -> Result<bool> {
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
