//! The thin fuser adapter: one span per request, one call into the core, one reply.
//! Errors become errno in `FsError::errno`; EIO-class errors are logged once here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, MountOption,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::fuse_workers::Workers;
use crate::{Attr, FsError, Kind, Store, Unsaved, fs::Filesystem};

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
    fs: Arc<Filesystem<S>>,
    name: Arc<str>,
    /// For the requests that may take long: see `fuse_workers.rs`.
    workers: Workers,
}

/// Workers beside the session's one reader thread.
const WORKERS: usize = 3;

impl<S: Store> FuseAdapter<S> {
    /// Wraps a filesystem; `name` labels log lines (the mount path). The session must
    /// read requests on one thread (`fuser::Config::n_threads` 1): this adapter sends
    /// the slow ones to its own workers.
    pub fn new(fs: Arc<Filesystem<S>>, name: String) -> Self {
        FuseAdapter {
            fs,
            name: name.into(),
            workers: Workers::new(WORKERS, "lffs-io"),
        }
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

impl<S: Store> FuseAdapter<S> {
    fn fail(&self, op: &'static str, ino: u64, e: &FsError) -> Errno {
        fail(&self.name, op, ino, e)
    }
}

/// The errno of a failed request; counted, and logged once here.
fn fail(mount: &str, op: &'static str, ino: u64, e: &FsError) -> Errno {
    crate::fuse_metrics::error(op, e.errno());
    if e.is_serious() {
        tracing::error!(mount, op, ino, "lffs: {e}");
    } else {
        tracing::debug!(mount, op, ino, "lffs: {e}");
    }
    Errno::from_i32(e.errno())
}

impl<S: Store> FuseAdapter<S> {
    /// Runs a request that may commit `ino` here, or on a worker when the commit may
    /// take long.
    fn by_commit_size(&self, ino: INodeNo, job: impl FnOnce() + Send + 'static) {
        match self.fs.unsaved(ino.0) {
            Unsaved::Much => self.workers.run(job),
            Unsaved::Little | Unsaved::Nothing => job(),
        }
    }

    /// A flush or fsync: commits the file's unsaved data, on a worker when that may
    /// take long; a small file's commit (one journal flush) is answered here, where
    /// the caller's other requests ran (on a worker it took half as long again).
    fn commit(&self, op: &'static str, ino: INodeNo, reply: ReplyEmpty) {
        let (fs, mount) = (self.fs.clone(), self.name.clone());
        let job = move || {
            let _t = crate::fuse_metrics::OpTimer::start(op);
            match fs.flush(ino.0) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fail(&mount, op, ino.0, &e)),
            }
        };
        self.by_commit_size(ino, job);
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
        let _t = crate::fuse_metrics::OpTimer::start("lookup");
        match self.fs.lookup(parent.0, name.as_bytes()) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(self.fail("lookup", parent.0, &e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _t = crate::fuse_metrics::OpTimer::start("getattr");
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(self.fail("getattr", ino.0, &e)),
        }
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
        let _t = crate::fuse_metrics::OpTimer::start("setattr");
        match self.fs.may_change(req.uid()).and_then(|()| {
            // Through a handle, a truncate waits in the open file's buffer for its close.
            let size = match (fh, size) {
                (Some(_), Some(sz)) if self.fs.truncate_open(ino.0, sz)? => None,
                (_, size) => size,
            };
            self.fs
                .setattr(ino.0, mode, uid, gid, size, mtime.map(time_of))
        }) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(self.fail("setattr", ino.0, &e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _t = crate::fuse_metrics::OpTimer::start("readlink");
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(self.fail("readlink", ino.0, &e)),
        }
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
        let _t = crate::fuse_metrics::OpTimer::start("mkdir");
        match self
            .fs
            .may_change(req.uid())
            .and_then(|()| self.fs.mkdir(parent.0, name.as_bytes(), mode & !umask))
        {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(self.fail("mkdir", parent.0, &e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = crate::fuse_metrics::OpTimer::start("unlink");
        match self
            .fs
            .may_change(req.uid())
            .and_then(|()| self.fs.unlink(parent.0, name.as_bytes()))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("unlink", parent.0, &e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = crate::fuse_metrics::OpTimer::start("rmdir");
        match self
            .fs
            .may_change(req.uid())
            .and_then(|()| self.fs.rmdir(parent.0, name.as_bytes()))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("rmdir", parent.0, &e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _t = crate::fuse_metrics::OpTimer::start("symlink");
        match self.fs.may_change(req.uid()).and_then(|()| {
            self.fs.symlink(
                parent.0,
                link_name.as_bytes(),
                target.as_os_str().as_bytes(),
            )
        }) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(self.fail("symlink", parent.0, &e)),
        }
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
        let _t = crate::fuse_metrics::OpTimer::start("rename");
        if !flags.is_empty() {
            // RENAME_EXCHANGE / RENAME_NOREPLACE are not supported: say so.
            reply.error(Errno::EINVAL);
            return;
        }
        match self.fs.may_change(req.uid()).and_then(|()| {
            self.fs
                .rename(parent.0, name.as_bytes(), newparent.0, newname.as_bytes())
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("rename", parent.0, &e)),
        }
    }

    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // Big writes mean fewer requests; the kernel caps what it accepts.
        let _ = config.set_max_write(1 << 20);
        Ok(())
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _t = crate::fuse_metrics::OpTimer::start("open");
        let write = !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY);
        let allowed = if write {
            self.fs.may_change(req.uid())
        } else {
            Ok(())
        };
        match allowed.and_then(|()| self.fs.open_keep_cache(ino.0, write)) {
            Ok((fh, keep)) => {
                let flags = if keep {
                    FopenFlags::FOPEN_KEEP_CACHE
                } else {
                    FopenFlags::empty()
                };
                reply.opened(FileHandle(fh), flags)
            }
            Err(e) => reply.error(self.fail("open", ino.0, &e)),
        }
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
        // Data may come from the disk: on a worker.
        let (fs, mount) = (self.fs.clone(), self.name.clone());
        self.workers.run(move || {
            let _t = crate::fuse_metrics::OpTimer::start("read");
            match fs.read(ino.0, offset, size) {
                Ok(d) => reply.data(&d),
                Err(e) => reply.error(fail(&mount, "read", ino.0, &e)),
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
        let _t = crate::fuse_metrics::OpTimer::start("write");
        match self.fs.write(ino.0, offset, data) {
            Ok(n) => {
                reply.written(n);
                // After the reply: the writer goes on while a job starts.
                self.fs.cut_ahead(ino.0);
            }
            Err(e) => reply.error(self.fail("write", ino.0, &e)),
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
        let (fs, mount) = (self.fs.clone(), self.name.clone());
        let job = move || {
            let _t = crate::fuse_metrics::OpTimer::start("release");
            match fs.release(fh.0) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fail(&mount, "release", ino.0, &e)),
            }
        };
        self.by_commit_size(ino, job);
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
        let _t = crate::fuse_metrics::OpTimer::start("readdir");
        let entries = match self.fs.readdir(ino.0) {
            Ok(e) => e,
            Err(e) => return reply.error(self.fail("readdir", ino.0, &e)),
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
        let _t = crate::fuse_metrics::OpTimer::start("mknod");
        // A regular file is a create without an open handle; device nodes, FIFOs and
        // sockets have no meaning in records shared across machines: EPERM, as on
        // filesystems that cannot hold them (SEMANTICS.md).
        const S_IFMT: u32 = 0o170000;
        const S_IFREG: u32 = 0o100000;
        if mode & S_IFMT != S_IFREG {
            reply.error(self.fail("mknod", parent.0, &FsError::Perm));
            return;
        }
        let made = self.fs.may_change(req.uid()).and_then(|()| {
            let (a, fh) = self
                .fs
                .create(parent.0, name.as_bytes(), mode & !umask & 0o7777)?;
            self.fs.release(fh)?;
            Ok(a)
        });
        match made {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(self.fail("mknod", parent.0, &e)),
        }
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
        reply.error(self.fail("link", ino.0, &FsError::Perm));
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
        let _t = crate::fuse_metrics::OpTimer::start("create");
        match self
            .fs
            .may_change(req.uid())
            .and_then(|()| self.fs.create(parent.0, name.as_bytes(), mode & !umask))
        {
            Ok((a, fh)) => reply.created(
                &TTL,
                &file_attr(&a),
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(self.fail("create", parent.0, &e)),
        }
    }
}
