//! The filesystem core: POSIX operations over a [`Store`], FUSE-free and synchronous.
//! Every operation waits only on the local store (never on proof of work or peers).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lf_record::Owner;
use sha2::{Digest, Sha256};

use crate::chunk::{self, ChunkRef};
use crate::conflicts;
use crate::content::{Base, Content, SpillBudget};
use crate::layout::{self, Body, Entry, FileData, PASSWD_INO, PASSWD_NAME, ROOT_INO};
use crate::untrusted::{self, BadEntries};
use crate::{FsError, Put, Store, Version};

mod changes;
mod contested;
mod cut_ahead;
mod entries;
mod kernel_cache;
mod locate;
mod open_files;

pub use contested::Contested;
pub use locate::Location;
pub use open_files::Unsaved;

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
    /// Links: 2 for a directory, 1 for a file, 0 for a file unlinked while open.
    pub nlink: u32,
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

/// Resolved entries by (directory selector, name), valid for one generation of
/// others' changes ([`Store::others_generation`]); this mount's own changes forget
/// the names of the directories they touch and bump `epoch`.
#[derive(Default)]
struct LookupCache {
    generation: u64,
    epoch: u64,
    /// By directory selector, then name.
    dirs: HashMap<Vec<u8>, HashMap<Vec<u8>, Resolved>>,
    /// Names in `dirs`, all directories together (bounded by [`LOOKUP_CACHE_MAX`]).
    names: usize,
}

/// Most resolved names kept (then all are forgotten at once): names looked up that do
/// not exist are kept too, and anyone may ask for any.
const LOOKUP_CACHE_MAX: usize = 65_536;

/// What a name resolves to: its winning entry and owner, or nothing.
type Resolved = Option<(Entry, Owner)>;

/// The filesystem.
///
/// Lock order: `open` before any `OpenFile` mutex, never the other way (an `OpenFile`
/// mutex is held across store calls, `open` only for map lookups). Every other lock
/// here (`nodes`, `handles`, `next_fh`, `cache`, `owners_seen`, `cached`, `attrs_out`,
/// `entries_out`, `root_entry`, `contested`, `dir_parents`) is a leaf: taken alone, for a map operation, and
/// released before any other lock is taken; it may be taken while `open` or an
/// `OpenFile` mutex is held.
pub struct Filesystem<S: Store> {
    store: S,
    config: FsConfig,
    nodes: RwLock<HashMap<u64, Node>>,
    open: Mutex<HashMap<u64, Arc<Mutex<OpenFile>>>>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: Mutex<u64>,
    cache: Mutex<LookupCache>,
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
    /// Directory times derived from their entries, by selector.
    dir_times: Mutex<HashMap<Vec<u8>, DirTime>>,
    /// When this filesystem was made (ns): the time of a root with nothing in it yet,
    /// and of `.passwd`, rather than 1970.
    started: u64,
    /// Names listed with conflict copies: (directory selector, ordinal) → name.
    contested: Mutex<contested::ContestedNames>,
    /// Where each directory seen was, for the paths of contested names.
    dir_parents: Mutex<contested::DirParents>,
    /// Signalled when a job cutting a file ahead of its commit ends (`cut_ahead`).
    cut_idle: (Mutex<()>, std::sync::Condvar),
}

/// A directory's derived mtime and what it was derived from.
#[derive(Clone, Copy)]
struct DirTime {
    /// When the directory was last listed for it.
    checked: std::time::Instant,
    /// XOR of the ordinals of the directory's live names (kept up to date by this
    /// mount's own changes between listings).
    names: u64,
    /// Its mtime, nanoseconds.
    mtime: u64,
}

/// How long a directory's derived time is trusted before it is listed again (the
/// kernel caches attributes as long): changes made through this mount update it at
/// once; others' changes show within this. Listing on every change made creating
/// n files in one directory O(n²).
const DIR_TIME_RECHECK: Duration = Duration::from_secs(1);

/// Directories whose derived times are remembered at most (then forgotten at once).
const DIR_TIMES_MAX: usize = 65_536;

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
    /// A chunked file's data chunks, in order (stored once the commit is).
    cut: Vec<ChunkRef>,
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
        let started = store.now_nanos();
        Filesystem {
            store,
            nodes: RwLock::new(nodes),
            open: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: Mutex::new(1),
            cache: Mutex::new(LookupCache::default()),
            owners_seen: Mutex::new(HashSet::new()),
            cached: Mutex::new(HashMap::new()),
            attrs_out: Mutex::new(HashMap::new()),
            entries_out: Mutex::new(HashMap::new()),
            bad: BadEntries::default(),
            spill: SpillBudget::new(config.max_spill_bytes, config.spill_dir.clone()),
            root_entry: Mutex::new((0, None)),
            dir_times: Mutex::new(HashMap::new()),
            started,
            contested: Mutex::new(std::collections::BTreeMap::new()),
            dir_parents: Mutex::new(HashMap::new()),
            cut_idle: Default::default(),
            config,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}
