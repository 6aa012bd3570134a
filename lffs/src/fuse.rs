//! The thin fuser adapter: one span per request, one call into the core, one reply.
//! Errors become errno in `FsError::errno`; EIO-class errors are logged once here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, MountOption,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::fuse_workers::Workers;
use crate::{Attr, FsError, Kind, Store, Unsaved, fs::Filesystem};

/// [`Filesystem::unlink`] or [`Filesystem::rmdir`].
type Removal<S> = fn(&Filesystem<S>, u64, &[u8]) -> Result<(), FsError>;

/// How long the kernel may cache entries and attributes. Short, because records from
/// other nodes can change any entry at any time.
const TTL: Duration = Duration::from_secs(1);

/// Invalidates the kernel's cached pages and attributes of files that changed under it
/// and its dentries of names that vanished (records from other nodes), until `stop`
/// is set. Runs on its own thread: the notifier must
/// never be called from inside a request on the same inode (kernel deadlock).
pub fn invalidate_changes<S: Store>(
    fs: Arc<Filesystem<S>>,
    notifier: fuser::Notifier,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut last = fs.store().external_generation();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        // A generation check is one atomic load: polling often keeps changes from
        // other nodes visible within tens of milliseconds.
        std::thread::sleep(Duration::from_millis(50));
        let now = fs.store().external_generation();
        if now == last {
            continue;
        }
        last = now;
        for (parent, name, child) in fs.vanished_cached_entries() {
            let name = OsStr::from_bytes(&name);
            // A deletion, not only an invalidation: the kernel then reports
            // IN_DELETE_SELF to inotify watches on the file (measured on 6.18; nothing
            // reaches watches on the directory, nor reports a change: SEMANTICS.md).
            // It fails on a directory the kernel still caches children of; the
            // invalidation after it covers that. ENOENT (the kernel had already dropped
            // the dentry) is harmless either way.
            if let Err(e) = notifier.delete(INodeNo(parent), INodeNo(child), name) {
                tracing::debug!(parent, "notify delete: {e}");
            }
            if let Err(e) = notifier.inval_entry(INodeNo(parent), name) {
                tracing::debug!(parent, "inval_entry: {e}");
            }
        }
        for ino in fs.changed_cached_files() {
            if let Err(e) = notifier.inval_inode(INodeNo(ino), 0, 0) {
                tracing::debug!(ino, "inval_inode: {e}");
            }
        }
    }
}

/// Adapts a [`Filesystem`] to fuser.
pub struct FuseAdapter<S: Store> {
    core: Core<S>,
    /// For the requests that may take long: see `fuse_workers.rs`.
    workers: Workers,
    /// Requests handed to the workers as slow and not finished yet: while any is
    /// under way, every request goes to the workers (it may wait for that one).
    slow: Arc<AtomicUsize>,
}

/// What a request needs, for a worker to own.
struct Core<S: Store> {
    fs: Arc<Filesystem<S>>,
    mount: Arc<str>,
}

impl<S: Store> Clone for Core<S> {
    fn clone(&self) -> Self {
        Core {
            fs: self.fs.clone(),
            mount: self.mount.clone(),
        }
    }
}

impl<S: Store> Core<S> {
    /// The errno of a failed request; counted, and logged once here.
    fn fail(&self, op: &'static str, ino: u64, e: &FsError) -> Errno {
        crate::fuse_metrics::error(op, e.errno());
        if e.is_serious() {
            tracing::error!(mount = %self.mount, op, ino, "lffs: {e}");
        } else {
            tracing::debug!(mount = %self.mount, op, ino, "lffs: {e}");
        }
        Errno::from_i32(e.errno())
    }
}

/// Workers beside the session's one reader thread.
const WORKERS: usize = 3;

impl<S: Store> FuseAdapter<S> {
    /// Wraps a filesystem; `name` labels log lines (the mount path). The session must
    /// read requests on one thread (`fuser::Config::n_threads` 1): this adapter sends
    /// the slow ones to its own workers.
    pub fn new(fs: Arc<Filesystem<S>>, name: String) -> Self {
        FuseAdapter {
            core: Core {
                fs,
                mount: name.into(),
            },
            workers: Workers::new(WORKERS, "lffs-io"),
            slow: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether a request may run here: nothing slow is under way that it could wait
    /// for (a commit holding a file's buffer, a journal flush, a big backlog to flush).
    fn quiet(&self) -> bool {
        self.slow.load(Ordering::Acquire) == 0 && !self.core.fs.store().flush_busy()
    }

    /// Runs a quick request here, or on a worker when something slow is under way.
    fn route(&self, job: impl FnOnce(&Core<S>) + Send + 'static) {
        let core = self.core.clone();
        if self.quiet() {
            job(&core);
        } else {
            self.workers.run(move || job(&core));
        }
    }

    /// Runs a request that may take long on a worker, counted as slow until it ends.
    fn run_slow(&self, job: impl FnOnce(&Core<S>) + Send + 'static) {
        struct Done(Arc<AtomicUsize>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.slow.fetch_add(1, Ordering::AcqRel);
        let (core, done) = (self.core.clone(), Done(self.slow.clone()));
        self.workers.run(move || {
            let _done = done; // also when the job panics
            job(&core)
        });
    }

    /// A request that may commit `ino`: slow when the commit may take long; a small
    /// file's commit (one short journal flush) is answered here, where the caller's
    /// other requests ran (on a worker it took half as long again).
    fn by_commit_size(&self, ino: INodeNo, job: impl FnOnce(&Core<S>) + Send + 'static) {
        match self.core.fs.unsaved(ino.0) {
            Unsaved::Much => self.run_slow(job),
            Unsaved::Little | Unsaved::Nothing => self.route(job),
        }
    }

    /// An unlink or rmdir of `name` in `parent`, by the caller if it may change the mount.
    fn remove(
        &self,
        op: &'static str,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEmpty,
        remove: Removal<S>,
    ) {
        let (caller, name) = (req.uid(), name.to_owned());
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start(op);
            match c
                .fs
                .may_change(caller)
                .and_then(|()| remove(&c.fs, parent.0, name.as_bytes()))
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(c.fail(op, parent.0, &e)),
            }
        });
    }

    /// A flush or fsync: commits the file's unsaved data.
    fn commit(&self, op: &'static str, ino: INodeNo, reply: ReplyEmpty) {
        self.by_commit_size(ino, move |c| {
            let _t = crate::fuse_metrics::OpTimer::start(op);
            match c.fs.flush(ino.0) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(c.fail(op, ino.0, &e)),
            }
        });
    }
}

/// Mount options LFFS uses: fsname/subtype `lffs`, kernel permission checks.
pub fn mount_options(read_only: bool) -> Vec<MountOption> {
    let mut o = vec![
        MountOption::FSName("lffs".into()),
        MountOption::Subtype("lffs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if read_only {
        o.push(MountOption::RO);
    }
    o
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: match a.kind {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
            Kind::Symlink => FileType::Symlink,
        },
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn time_of(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl<S: Store> fuser::Filesystem for FuseAdapter<S> {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_owned();
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("lookup");
            match c.fs.lookup(parent.0, name.as_bytes()) {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
                Err(e) => reply.error(c.fail("lookup", parent.0, &e)),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("getattr");
            match c.fs.getattr(ino.0) {
                Ok(a) => reply.attr(&TTL, &file_attr(&a)),
                Err(e) => reply.error(c.fail("getattr", ino.0, &e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let caller = req.uid();
        let mtime = mtime.map(time_of);
        let job = move |c: &Core<S>| {
            let _t = crate::fuse_metrics::OpTimer::start("setattr");
            match c.fs.may_change(caller).and_then(|()| {
                // Through a handle, a truncate waits in the open file's buffer for its
                // close.
                let size = match (fh, size) {
                    (Some(_), Some(sz)) if c.fs.truncate_open(ino.0, sz)? => None,
                    (_, size) => size,
                };
                c.fs.setattr(ino.0, mode, uid, gid, size, mtime)
            }) {
                Ok(a) => reply.attr(&TTL, &file_attr(&a)),
                Err(e) => reply.error(c.fail("setattr", ino.0, &e)),
            }
        };
        // A truncate may cut a stored file again.
        if size.is_some() {
            self.run_slow(job);
        } else {
            self.route(job);
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("readlink");
            match c.fs.readlink(ino.0) {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(c.fail("readlink", ino.0, &e)),
            }
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (caller, name) = (req.uid(), name.to_owned());
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("mkdir");
            match c
                .fs
                .may_change(caller)
                .and_then(|()| c.fs.mkdir(parent.0, name.as_bytes(), mode & !umask))
            {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
                Err(e) => reply.error(c.fail("mkdir", parent.0, &e)),
            }
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove("unlink", req, parent, name, reply, Filesystem::unlink);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove("rmdir", req, parent, name, reply, Filesystem::rmdir);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (caller, name, target) = (req.uid(), link_name.to_owned(), target.to_owned());
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("symlink");
            match c.fs.may_change(caller).and_then(|()| {
                c.fs.symlink(parent.0, name.as_bytes(), target.as_os_str().as_bytes())
            }) {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
                Err(e) => reply.error(c.fail("symlink", parent.0, &e)),
            }
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            // RENAME_EXCHANGE / RENAME_NOREPLACE are not supported: say so.
            reply.error(Errno::EINVAL);
            return;
        }
        let (caller, name, newname) = (req.uid(), name.to_owned(), newname.to_owned());
        // Slow: a rename commits a file still open with unsaved data first.
        self.run_slow(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("rename");
            match c.fs.may_change(caller).and_then(|()| {
                c.fs.rename(parent.0, name.as_bytes(), newparent.0, newname.as_bytes())
            }) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(c.fail("rename", parent.0, &e)),
            }
        });
    }

    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // Big writes mean fewer requests; the kernel caps what it accepts.
        let _ = config.set_max_write(1 << 20);
        Ok(())
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let caller = req.uid();
        let write = !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY);
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("open");
            let allowed = if write {
                c.fs.may_change(caller)
            } else {
                Ok(())
            };
            match allowed.and_then(|()| c.fs.open_keep_cache(ino.0, write)) {
                Ok((fh, keep)) => {
                    let flags = if keep {
                        FopenFlags::FOPEN_KEEP_CACHE
                    } else {
                        FopenFlags::empty()
                    };
                    reply.opened(FileHandle(fh), flags)
                }
                Err(e) => reply.error(c.fail("open", ino.0, &e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Data may come from the disk: on a worker, beside the other reads.
        let core = self.core.clone();
        self.workers.run(move || {
            let _t = crate::fuse_metrics::OpTimer::start("read");
            match core.fs.read(ino.0, offset, size) {
                Ok(d) => reply.data(&d),
                Err(e) => reply.error(core.fail("read", ino.0, &e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        fn write<S: Store>(c: &Core<S>, ino: INodeNo, offset: u64, data: &[u8], reply: ReplyWrite) {
            let _t = crate::fuse_metrics::OpTimer::start("write");
            match c.fs.write(ino.0, offset, data) {
                Ok(n) => {
                    reply.written(n);
                    // After the reply: the writer goes on while a job starts.
                    c.fs.cut_ahead(ino.0);
                }
                Err(e) => reply.error(c.fail("write", ino.0, &e)),
            }
        }
        if self.quiet() {
            write(&self.core, ino, offset, data, reply);
        } else {
            // The data is the request's: a worker needs its own copy.
            let data = data.to_vec();
            let core = self.core.clone();
            self.workers
                .run(move || write(&core, ino, offset, &data, reply));
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.commit("flush", ino, reply);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // The last close commits what no flush did (rare: the kernel flushes first).
        self.by_commit_size(ino, move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("release");
            match c.fs.release(fh.0) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(c.fail("release", ino.0, &e)),
            }
        });
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        self.commit("fsync", ino, reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("readdir");
            let entries = match c.fs.readdir(ino.0) {
                Ok(e) => e,
                Err(e) => return reply.error(c.fail("readdir", ino.0, &e)),
            };
            let dots = [
                (ino.0, FileType::Directory, &b"."[..]),
                (ino.0, FileType::Directory, b".."),
            ];
            let all = dots.into_iter().chain(entries.iter().map(|e| {
                let kind = match e.kind {
                    Kind::File => FileType::RegularFile,
                    Kind::Dir => FileType::Directory,
                    Kind::Symlink => FileType::Symlink,
                };
                (e.ino, kind, &e.name[..])
            }));
            for (i, (ino, kind, name)) in all.enumerate().skip(offset as usize) {
                if reply.add(INodeNo(ino), (i + 1) as u64, kind, OsStr::from_bytes(name)) {
                    break;
                }
            }
            reply.ok();
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let (caller, name) = (req.uid(), name.to_owned());
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("mknod");
            // A regular file is a create without an open handle; device nodes, FIFOs
            // and sockets have no meaning in records shared across machines: EPERM,
            // as on filesystems that cannot hold them (SEMANTICS.md).
            const S_IFMT: u32 = 0o170000;
            const S_IFREG: u32 = 0o100000;
            if mode & S_IFMT != S_IFREG {
                reply.error(c.fail("mknod", parent.0, &FsError::Perm));
                return;
            }
            let made = c.fs.may_change(caller).and_then(|()| {
                let (a, fh) =
                    c.fs.create(parent.0, name.as_bytes(), mode & !umask & 0o7777)?;
                c.fs.release(fh)?;
                Ok(a)
            });
            match made {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
                Err(e) => reply.error(c.fail("mknod", parent.0, &e)),
            }
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _t = crate::fuse_metrics::OpTimer::start("link");
        // One entry per file: a second name would be a second, independent copy on
        // other nodes. EPERM, as on filesystems without hard links (SEMANTICS.md).
        reply.error(self.core.fail("link", ino.0, &FsError::Perm));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _t = crate::fuse_metrics::OpTimer::start("statfs");
        reply.statfs(1 << 30, 1 << 29, 1 << 29, 1 << 30, 1 << 29, 4096, 255, 4096);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let (caller, name) = (req.uid(), name.to_owned());
        self.route(move |c| {
            let _t = crate::fuse_metrics::OpTimer::start("create");
            match c
                .fs
                .may_change(caller)
                .and_then(|()| c.fs.create(parent.0, name.as_bytes(), mode & !umask))
            {
                Ok((a, fh)) => reply.created(
                    &TTL,
                    &file_attr(&a),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(c.fail("create", parent.0, &e)),
            }
        });
    }
}
