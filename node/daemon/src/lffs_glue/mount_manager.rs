//! The mount manager: one FUSE session per `mounts.yaml` entry, applied live.
//!
//! Lifecycle rules (mounts/README.md states them for operators):
//! - At start only a filesystem of this node's kind (fstype `fuse.lffs` or `fuse`,
//!   source `lffs`) whose daemon is gone is cleared from a listed path; anything else mounted there makes
//!   that one mount fail with an error naming it, and nothing is unmounted.
//! - A non-empty mount point is refused unless the mount sets `allow_non_empty`.
//! - A reload (content change of the file, or SIGHUP) applies [`crate::lffs_glue::mounts::plan`];
//!   an invalid file is reported and the running mounts stay as they are.
//! - A failed mount is retried with exponential backoff ([`backoff`]), not on every
//!   reload; its owner is derived once (Argon2 for a passphrase), not at each retry.
//! - Reloads, retries and shutdown are serialised by one lock that also holds the
//!   "shutting down" flag: once [`MountManager::unmount_all`] has started nothing is
//!   mounted again. The watcher thread ([`MountWatcher`]) is stopped before it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lf_record::OwnerSecret;
use lffs::{FsConfig, FuseAdapter};

use crate::common::workers::Workers;
use crate::lffs_glue::commit_queue::CommitQueue;
use crate::lffs_glue::mounts::{self, MountAction, MountSpec, OwnerSource};
use crate::lffs_glue::store::LffsStore;
use crate::node::Node;

/// First retry delay of a failed mount.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest retry delay of a failed mount.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// Quiet time after the last change of `mounts.yaml` before it is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// How long a mount's workers get to end when it is unmounted (they poll every 50 ms).
const WORKER_STOP: Duration = Duration::from_secs(5);
/// The `mounts.yaml` watcher's worker.
const RELOAD_WORKER: &str = "mounts-reload";

/// The delay before retry number `attempts` (from 1) of a failed mount: 1 s doubling
/// up to 5 min.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    (RETRY_FIRST * (1u32 << doublings)).min(RETRY_MAX)
}

/// A mount just made: its session, the flag that stops its invalidation thread, its
/// owner (`@...`) and its filesystem.
type Started = (fuser::BackgroundSession, String, String, Arc<MountFs>);

/// A derived owner: the secret and the masking key a passphrase gives.
type DerivedOwner = (OwnerSecret, Option<Vec<u8>>);

struct Running {
    spec: MountSpec,
    /// The mount's owner (`@...`).
    owner: String,
    /// When it was mounted, Unix seconds.
    since: u64,
    session: fuser::BackgroundSession,
    /// The filesystem: what it listed as contested (for the status); watch and
    /// history locate paths through it.
    fs: Arc<MountFs>,
    /// The name of the mount's cache-invalidation worker.
    inval: String,
}

/// The filesystem of a mount.
pub type MountFs = lffs::Filesystem<LffsStore>;

/// A mount of the file that could not be mounted, waiting for its next attempt.
struct Failed {
    spec: MountSpec,
    /// The owner, once derived (kept so a retry runs no Argon2).
    owner: Option<DerivedOwner>,
    /// The owner as `@...`, empty if it could not be derived.
    owner_id: String,
    error: String,
    /// Attempts so far.
    attempts: u32,
    /// When to try again.
    next: Instant,
}

/// The mount manager.
pub struct MountManager {
    node: Arc<Node>,
    queue: Arc<CommitQueue>,
    home: PathBuf,
    /// Where each mount's cache-invalidation thread runs.
    workers: Workers,
    running: Mutex<Vec<Running>>,
    /// Mounts of the file that could not be mounted, with why and when to retry.
    failed: Mutex<Vec<Failed>>,
    /// The mounts of the file as last loaded (to name a mount by its place in errors).
    wanted: Mutex<Vec<MountSpec>>,
    /// Why the last reload of `mounts.yaml` was refused, if it was.
    file_error: Mutex<Option<String>>,
    /// Held by every reload, retry and by shutdown; true once shutdown started.
    shutting_down: Mutex<bool>,
}

/// A mount's state, for `lf status` and the status page.
#[derive(Clone, Debug)]
pub struct MountState {
    /// Mount point.
    pub path: PathBuf,
    /// Root selector name.
    pub root: String,
    /// Owner (`@...`); empty if it could not be derived.
    pub owner: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Other users (containers) may use it.
    pub allow_other: bool,
    /// Mounted since (Unix seconds), if it is up.
    pub since: Option<u64>,
    /// Why it is not mounted, if it is not.
    pub error: Option<String>,
    /// Why its owner may not write now (e.g. no certificate), if it may not.
    pub writes_refused: Option<String>,
}

impl MountState {
    fn of(spec: &MountSpec, owner: String, since: Option<u64>, error: Option<String>) -> Self {
        MountState {
            path: spec.path.clone(),
            root: spec.root.clone(),
            owner,
            read_only: spec.read_only,
            allow_other: spec.allow_other,
            since,
            error,
            writes_refused: None,
        }
    }
}

/// The path of `mounts.yaml` in a home.
pub fn mounts_file(home: &Path) -> PathBuf {
    home.join("mounts.yaml")
}

fn proc_ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Uid:"), field("Gid:"))
}

/// One mount of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount point.
    pub point: PathBuf,
    /// Filesystem type (`tmpfs`, `fuse.lffs`, ...).
    pub fstype: String,
    /// Mount source (device or FSName).
    pub source: String,
}

impl MountInfo {
    /// Whether this is an LFFS mount (of this node or another, live or dead): a FUSE
    /// filesystem with the source `lffs` (`lffs::mount_options` sets FSName and Subtype;
    /// the kernel shows the subtype, `fuse.lffs`, only when the mount(2) type carries
    /// it, and fuser mounting directly as root passes `fuse`).
    pub fn is_lffs(&self) -> bool {
        matches!(self.fstype.as_str(), "fuse" | "fuse.lffs") && self.source == "lffs"
    }
}

/// `/proc/self/mountinfo` text parsed: `id parent dev root POINT options [optional...]
/// - FSTYPE SOURCE superoptions`, with the kernel's octal escapes (`\040`) undone.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let point = fields.get(4)?;
            let dash = fields.iter().skip(6).position(|f| *f == "-")? + 6;
            Some(MountInfo {
                point: PathBuf::from(unescape_mountinfo(point)),
                fstype: unescape_mountinfo(fields.get(dash + 1)?),
                source: unescape_mountinfo(fields.get(dash + 2)?),
            })
        })
        .collect()
}

fn unescape_mountinfo(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(c) = u8::try_from(v) {
                out.push(c);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts at `path` now, bottom first (the last one is what `path` shows).
pub fn mounts_at(path: &Path) -> Vec<MountInfo> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&info)
        .into_iter()
        .filter(|m| m.point == path)
        .collect()
}

/// Lazily detaches the mount at `path` (`umount -l`, else `fusermount3 -uz`).
fn detach(path: &Path) {
    let ok = std::process::Command::new("umount")
        .arg("-l")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = std::process::Command::new("fusermount3")
            .arg("-uz")
            .arg(path)
            .status();
    }
}

/// Makes `spec.path` ready to mount on: clears a dead LFFS mount left by a node that
/// was killed (and only that), refuses anything else mounted there, creates the
/// directory and refuses a non-empty one unless `allow_non_empty`. `which` names the
/// mount in errors.
fn prepare_mount_point(spec: &MountSpec, which: &str) -> anyhow::Result<()> {
    let path = &spec.path;
    // Stale mounts may be stacked (several kills in a row): clear them one by one.
    for _ in 0..16 {
        let Some(top) = mounts_at(path).pop() else {
            break;
        };
        if !top.is_lffs() {
            bail!(
                "{which}: key `path`: {} has a {} filesystem (source {}) mounted on it that \
                 is not this node's; it was left as it is: unmount it or choose another path",
                path.display(),
                top.fstype,
                top.source
            );
        }
        // A live LFFS mount answers; a dead one (its node was killed) gives ENOTCONN.
        if std::fs::metadata(path).is_ok() {
            bail!(
                "{which}: key `path`: {} is the live LFFS mount of another running node; it \
                 was left as it is",
                path.display()
            );
        }
        tracing::warn!(path = %path.display(), "clearing a stale lffs mount left by a node that was killed");
        detach(path);
    }
    if let Some(top) = mounts_at(path).pop() {
        bail!(
            "{which}: key `path`: cannot clear the stale {} mount on {}",
            top.fstype,
            path.display()
        );
    }
    std::fs::create_dir_all(path)
        .with_context(|| format!("{which}: key `path`: cannot create {}", path.display()))?;
    let non_empty = std::fs::read_dir(path)
        .with_context(|| format!("{which}: key `path`: cannot read {}", path.display()))?
        .next()
        .is_some();
    if non_empty && !spec.allow_non_empty {
        bail!(
            "{which}: key `path`: {} is a directory that is not empty (mounting would hide \
             its files): empty it, choose another path, or set `allow_non_empty: true`",
            path.display()
        );
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MountManager {
    /// Starts the manager: creates the spill directory, writes the shipped
    /// `mounts.yaml` (mode 0600) into a home without one, warns about secrets others
    /// can read, then mounts everything the file lists. An invalid file at start is an
    /// error.
    pub fn start(
        node: Arc<Node>,
        queue: Arc<CommitQueue>,
        home: &Path,
        workers: Workers,
    ) -> anyhow::Result<Arc<MountManager>> {
        crate::common::home::private_dir(&spill_dir(home))?;
        let file = mounts_file(home);
        if !file.exists() {
            crate::common::home::write_private(&file, mounts::DEFAULT_MOUNTS_YAML.as_bytes())?;
            tracing::info!(file = %file.display(), "wrote the default mounts.yaml");
        }
        let text = mounts::load_text(&file)?;
        if mounts::holds_secrets(&text) {
            crate::common::home::warn_if_exposed(&file);
        }
        let specs = mounts::load(&file)?;
        for s in &specs {
            if let OwnerSource::Private(p) = &s.owner
                && !p.contains("-----BEGIN")
            {
                crate::common::home::warn_if_exposed(&home.join(p));
            }
        }
        tracing::info!(file = %file.display(), mounts = specs.len(), "mounts loaded");
        let m = Arc::new(MountManager {
            node,
            queue,
            home: home.to_path_buf(),
            workers,
            running: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
            wanted: Mutex::new(specs.clone()),
            file_error: Mutex::new(None),
            shutting_down: Mutex::new(false),
        });
        let ops = lock(&m.shutting_down);
        m.apply(mounts::plan(&[], &specs));
        drop(ops);
        Ok(m)
    }

    /// Re-reads `mounts.yaml` and applies the difference. A mount that failed and is
    /// unchanged waits for its retry time, unless `retry_now` (SIGHUP: an operator asks).
    pub fn reload(&self, retry_now: bool) {
        let ops = lock(&self.shutting_down);
        if *ops {
            return;
        }
        let file = mounts_file(&self.home);
        match mounts::load(&file) {
            Ok(specs) => {
                tracing::info!(file = %file.display(), mounts = specs.len(), "mounts.yaml reloaded");
                *lock(&self.file_error) = None;
                *lock(&self.wanted) = specs.clone();
                let waiting: Vec<MountSpec> = {
                    let mut failed = lock(&self.failed);
                    failed.retain(|f| specs.contains(&f.spec));
                    if retry_now {
                        let now = Instant::now();
                        failed.iter_mut().for_each(|f| f.next = now);
                    }
                    failed.iter().map(|f| f.spec.clone()).collect()
                };
                let running: Vec<MountSpec> = self.lock().iter().map(|r| r.spec.clone()).collect();
                let actions: Vec<MountAction> = mounts::plan(&running, &specs)
                    .into_iter()
                    .filter(|a| !matches!(a, MountAction::Mount(s) if waiting.contains(s)))
                    .collect();
                if !actions.is_empty() {
                    tracing::info!(changes = actions.len(), "mounts.yaml changed: applying");
                }
                self.apply(actions);
                if retry_now {
                    self.retry_due_locked();
                }
            }
            Err(e) => {
                crate::common::metrics::error("mounts_yaml_invalid");
                tracing::error!("{e:#}; keeping the running mounts as they are");
                *lock(&self.file_error) = Some(format!("{e:#}"));
            }
        }
    }

    /// Retries the failed mounts whose time has come.
    pub fn retry_due(&self) {
        let ops = lock(&self.shutting_down);
        if *ops {
            return;
        }
        self.retry_due_locked();
    }

    fn retry_due_locked(&self) {
        let now = Instant::now();
        let due: Vec<Failed> = {
            let mut failed = lock(&self.failed);
            let (due, wait) = std::mem::take(&mut *failed)
                .into_iter()
                .partition(|f| f.next <= now);
            *failed = wait;
            due
        };
        for f in due {
            self.mount_now(f.spec, f.owner, f.attempts);
        }
    }

    /// When the next failed mount is due, if any.
    pub fn next_retry(&self) -> Option<Instant> {
        lock(&self.failed).iter().map(|f| f.next).min()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Running>> {
        lock(&self.running)
    }

    /// "FILE: mount N (PATH)" for a mount of the file as last loaded.
    fn which(&self, spec: &MountSpec) -> String {
        let file = mounts_file(&self.home);
        match lock(&self.wanted).iter().position(|w| w.path == spec.path) {
            Some(i) => format!(
                "{}: mount {} ({})",
                file.display(),
                i + 1,
                spec.path.display()
            ),
            None => format!("{}: mount ({})", file.display(), spec.path.display()),
        }
    }

    /// Applies a plan; the caller holds `shutting_down` (and checked it).
    fn apply(&self, actions: Vec<MountAction>) {
        for a in actions {
            match a {
                MountAction::Unmount(path) => {
                    lock(&self.failed).retain(|f| f.spec.path != path);
                    self.unmount(&path)
                }
                MountAction::Mount(spec) => {
                    lock(&self.failed).retain(|f| f.spec.path != spec.path);
                    self.mount_now(spec, None, 0);
                }
            }
        }
    }

    /// Tries to mount `spec` now; on failure schedules the next attempt.
    fn mount_now(&self, spec: MountSpec, owner: Option<DerivedOwner>, attempts: u32) {
        let mut owner = owner;
        match self.mount(&spec, &mut owner) {
            Ok((session, inval, owner_id, fs)) => {
                tracing::info!(path = %spec.path.display(), root = %spec.root, "mounted");
                self.lock().push(Running {
                    spec,
                    owner: owner_id,
                    since: crate::node::now(),
                    session,
                    fs,
                    inval,
                });
            }
            Err(e) => {
                let attempts = attempts + 1;
                let delay = backoff(attempts);
                crate::common::metrics::error("mount");
                tracing::error!(
                    path = %spec.path.display(),
                    attempt = attempts,
                    "cannot mount: {e:#}; retrying in {}s",
                    delay.as_secs()
                );
                let owner_id = owner
                    .as_ref()
                    .map(|(o, _)| o.public().to_string())
                    .unwrap_or_default();
                lock(&self.failed).push(Failed {
                    spec,
                    owner,
                    owner_id,
                    error: format!("{e:#}"),
                    attempts,
                    next: Instant::now() + delay,
                });
            }
        }
    }

    fn unmount(&self, path: &Path) {
        let taken = {
            let mut r = self.lock();
            r.iter()
                .position(|m| m.spec.path == path)
                .map(|i| r.remove(i))
        };
        if let Some(m) = taken {
            self.workers.stop(&[&m.inval], WORKER_STOP);
            match m.session.umount_and_join() {
                Ok(()) => tracing::info!(path = %path.display(), "unmounted"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "unmount failed: {e}; detaching");
                    detach(path);
                }
            }
        }
    }

    /// Unmounts everything (shutdown). From here on, reloads and retries do nothing.
    pub fn unmount_all(&self) {
        let mut ops = lock(&self.shutting_down);
        *ops = true;
        lock(&self.failed).clear();
        let paths: Vec<PathBuf> = self.lock().iter().map(|m| m.spec.path.clone()).collect();
        for p in paths {
            self.unmount(&p);
        }
    }

    /// The mount holding `path` (absolute, lexically clean) and the path inside it.
    pub fn mount_of(&self, path: &Path) -> Option<(PathBuf, Arc<MountFs>, PathBuf)> {
        self.lock().iter().find_map(|m| {
            let rel = path.strip_prefix(&m.spec.path).ok()?;
            Some((m.spec.path.clone(), m.fs.clone(), rel.to_path_buf()))
        })
    }

    /// Paths mounted now.
    pub fn mounted(&self) -> Vec<PathBuf> {
        self.lock().iter().map(|m| m.spec.path.clone()).collect()
    }

    /// The names each running mount listed as contested by several owners, by mount
    /// point.
    pub fn contested(&self) -> Vec<(PathBuf, Vec<lffs::Contested>)> {
        let fs: Vec<(PathBuf, Arc<lffs::Filesystem<LffsStore>>)> = self
            .lock()
            .iter()
            .map(|m| (m.spec.path.clone(), m.fs.clone()))
            .collect();
        fs.into_iter()
            .map(|(mount, fs)| (mount, fs.contested()))
            .collect()
    }

    /// Every mount of `mounts.yaml`: up ones first, then those that failed.
    pub fn states(&self) -> Vec<MountState> {
        let mut v: Vec<MountState> = self
            .lock()
            .iter()
            .map(|m| {
                let mut s = MountState::of(&m.spec, m.owner.clone(), Some(m.since), None);
                s.writes_refused = m
                    .owner
                    .parse::<lf_record::Owner>()
                    .ok()
                    .and_then(|o| self.node.write_refused(&o));
                s
            })
            .collect();
        v.extend(
            lock(&self.failed)
                .iter()
                .map(|f| MountState::of(&f.spec, f.owner_id.clone(), None, Some(f.error.clone()))),
        );
        v
    }

    /// Why the last edit of `mounts.yaml` was refused (the running mounts were kept).
    pub fn file_error(&self) -> Option<String> {
        lock(&self.file_error).clone()
    }

    fn owner(&self, spec: &MountSpec, which: &str) -> anyhow::Result<DerivedOwner> {
        match &spec.owner {
            OwnerSource::Passphrase(p) => {
                let (o, mask) = OwnerSecret::from_passphrase(p)
                    .with_context(|| format!("{which}: key `passphrase`"))?;
                Ok((o, Some(mask)))
            }
            OwnerSource::Private(text) if text.contains("-----BEGIN") => Ok((
                OwnerSecret::from_pem(text)
                    .with_context(|| format!("{which}: key `owner_private` (inline)"))?,
                None,
            )),
            OwnerSource::Private(path) => {
                let p = self.home.join(path);
                let pem = std::fs::read_to_string(&p).with_context(|| {
                    format!("{which}: key `owner_private`: cannot read {}", p.display())
                })?;
                Ok((
                    OwnerSecret::from_pem(&pem).with_context(|| {
                        format!("{which}: key `owner_private`: {}", p.display())
                    })?,
                    None,
                ))
            }
        }
    }

    /// Mounts `spec`; `owner` caches the derived owner across attempts.
    fn mount(&self, spec: &MountSpec, owner: &mut Option<DerivedOwner>) -> anyhow::Result<Started> {
        let which = self.which(spec);
        if self.lock().iter().any(|m| m.spec.path == spec.path) {
            bail!("{which}: {} is already mounted", spec.path.display());
        }
        let (owner, derived_mask) = match owner {
            Some(o) => o.clone(),
            None => owner.insert(self.owner(spec, &which)?).clone(),
        };
        prepare_mount_point(spec, &which)?;
        let masking_key = spec
            .masking_key
            .clone()
            .map(String::into_bytes)
            .or(derived_mask);
        let (uid, gid) = proc_ids();
        let owner_id = owner.public().to_string();
        let store = LffsStore::new(self.node.clone(), self.queue.clone(), owner);
        let fs = lffs::Filesystem::new(
            store,
            FsConfig {
                root: spec.root.clone().into_bytes(),
                masking_key,
                uid: spec.uid.unwrap_or(uid),
                gid: spec.gid.unwrap_or(gid),
                max_file_size: spec.max_file_size,
                read_only: spec.read_only,
                root_mode: spec.root_mode,
                spill_dir: Some(spill_dir(&self.home)),
                max_spill_bytes: spec.max_spill_bytes,
            },
        );
        let mut config = fuser::Config::default();
        config.mount_options = lffs::mount_options(spec.read_only);
        config.acl = if spec.allow_other {
            fuser::SessionACL::All
        } else {
            fuser::SessionACL::Owner
        };
        // One reader thread; the adapter hands requests that may take long to its
        // own workers (`lffs/src/fuse_workers.rs`).
        config.n_threads = Some(1);
        let fs = Arc::new(fs);
        let adapter = FuseAdapter::new(fs.clone(), spec.path.display().to_string());
        let session = fuser::spawn_mount(adapter, &spec.path, &config)
            .with_context(|| format!("{which}: fuse mount of {} failed", spec.path.display()))?;
        widen_readahead(&spec.path);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (notifier, flag) = (session.notifier(), stop.clone());
        let inval = fs.clone();
        let name = format!("lffs-inval {}", spec.path.display());
        self.workers.spawn_thread(
            &name,
            Some(Box::new(move || {
                stop.store(true, std::sync::atomic::Ordering::Relaxed)
            })),
            move |_| {
                lffs::invalidate_changes(inval, notifier, flag);
                Ok(())
            },
        )?;
        Ok((session, name, owner_id, fs))
    }
}

/// Readahead (KiB) asked for on an LFFS mount: the kernel's 128 KiB default keeps one
/// or two reads in flight; with more, the FUSE threads fetch chunks in parallel (a cold
/// sequential read of a 64 MiB file took 17 % less time).
const READAHEAD_KIB: u32 = 1024;

/// Sets the mount's readahead in `/sys/class/bdi/<major>:<minor>/read_ahead_kb` (FUSE
/// has no mount option for it). Best effort: without the right to write there (not
/// root, a read-only `/sys` in a container) the kernel's default stays.
fn widen_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let dev = match std::fs::metadata(mountpoint) {
        Ok(m) => m.dev(),
        Err(e) => {
            tracing::debug!("readahead of {} left as it is: {e}", mountpoint.display());
            return;
        }
    };
    let knob = PathBuf::from(format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    ));
    if let Err(e) = std::fs::write(&knob, READAHEAD_KIB.to_string()) {
        tracing::debug!(
            "readahead of {} left as it is: {}: {e}",
            mountpoint.display(),
            knob.display()
        );
    }
}

/// The directory where LFFS spills dirty data of open files (`<home>/lffs-spill`).
pub fn spill_dir(home: &Path) -> PathBuf {
    home.join("lffs-spill")
}

/// Whether a notify event is a change of the file's content (written, closed after
/// writing, created, renamed into place) rather than a read of it (open, access,
/// close without writing), a removal or a metadata change.
pub fn is_content_change(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// Whether `event` changes the content of the file named `name` (for a rename, the
/// name it ends with).
fn changes_file(event: &notify::Event, name: &std::ffi::OsStr) -> bool {
    use notify::EventKind;
    use notify::event::{ModifyKind, RenameMode};
    if !is_content_change(&event.kind) {
        return false;
    }
    match event.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            event.paths.last().and_then(|p| p.file_name()) == Some(name)
        }
        _ => event.paths.iter().any(|p| p.file_name() == Some(name)),
    }
}

enum WatchMsg {
    Changed,
    Stop,
}

/// Watches `mounts.yaml` for content changes (reload, debounced) and runs the retry
/// timer of failed mounts. Stop it before unmounting.
pub struct MountWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    workers: Workers,
}

impl MountWatcher {
    /// Starts watching the home of `mounts`. Without inotify the retry timer still runs
    /// (and SIGHUP still reloads).
    pub fn start(
        home: &Path,
        mounts: Arc<MountManager>,
        workers: &Workers,
    ) -> anyhow::Result<MountWatcher> {
        use notify::Watcher;
        let (tx, rx) = std::sync::mpsc::channel::<WatchMsg>();
        let name = mounts_file(home)
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let events = tx.clone();
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev
                && changes_file(&ev, &name)
            {
                let _ = events.send(WatchMsg::Changed);
            }
        })
        .and_then(|mut w| {
            w.watch(home, notify::RecursiveMode::NonRecursive)
                .map(|()| w)
        })
        .map_err(|e| {
            tracing::warn!(
                "cannot watch {} (SIGHUP still reloads mounts.yaml): {e}",
                home.display()
            )
        })
        .ok();
        let stop = std::sync::Mutex::new(tx);
        workers
            .spawn_thread(
                RELOAD_WORKER,
                Some(Box::new(move || {
                    let _ = lock(&stop).send(WatchMsg::Stop);
                })),
                move |ctx| {
                    watch_loop(&rx, &mounts, &ctx);
                    Ok(())
                },
            )
            .context("cannot start the mounts.yaml watcher")?;
        Ok(MountWatcher {
            watcher,
            workers: workers.clone(),
        })
    }

    /// Stops watching and waits for a reload or retry in progress to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.watcher.take());
        // A reload in progress (a mount, an owner's Argon2) finishes first.
        self.workers.stop(&[RELOAD_WORKER], Duration::from_secs(30));
    }
}

impl Drop for MountWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn watch_loop(
    rx: &std::sync::mpsc::Receiver<WatchMsg>,
    mounts: &MountManager,
    ctx: &crate::common::workers::Ctx,
) {
    use crate::common::workers::State;
    use std::sync::mpsc::RecvTimeoutError;
    while !ctx.stopping() {
        ctx.set_state(State::Idle);
        // Sleep until a change, or the next retry (checked at least every second, for
        // retries scheduled by a SIGHUP reload).
        let wait = mounts
            .next_retry()
            .map_or(RETRY_FIRST, |t| t.saturating_duration_since(Instant::now()))
            .min(RETRY_FIRST);
        match rx.recv_timeout(wait) {
            Ok(WatchMsg::Changed) => {
                // Editors write in several steps: wait for DEBOUNCE of quiet (at most
                // 2 s in all).
                let end = Instant::now() + Duration::from_secs(2);
                loop {
                    match rx.recv_timeout(DEBOUNCE) {
                        Ok(WatchMsg::Changed) if Instant::now() < end => continue,
                        Ok(WatchMsg::Changed) | Err(RecvTimeoutError::Timeout) => break,
                        Ok(WatchMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                ctx.set_state(State::Busy);
                mounts.reload(false);
            }
            Ok(WatchMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                if mounts.next_retry().is_some_and(|t| t <= Instant::now()) {
                    ctx.set_state(State::Busy);
                    mounts.retry_due();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let secs: Vec<u64> = (1..=12).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn mountinfo_fields_and_escapes() {
        let text = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - tmpfs tmpfs rw\n\
                    40 35 0:52 / /tmp/m rw,nosuid,nodev shared:3 master:2 - fuse.lffs lffs rw,user_id=0\n\
                    41 35 0:53 / /tmp/n rw - ext4 /dev/sda1 rw\n\
                    42 35 0:54 / /tmp/o rw - fuse lffs rw\n\
                    43 35 0:55 / /tmp/p rw - fuse sshfs rw\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].point, PathBuf::from("/mnt/a b"));
        assert_eq!(
            (m[0].fstype.as_str(), m[0].source.as_str()),
            ("tmpfs", "tmpfs")
        );
        assert!(!m[0].is_lffs());
        assert_eq!(m[1].point, PathBuf::from("/tmp/m"));
        assert!(m[1].is_lffs());
        assert_eq!(m[2].source, "/dev/sda1");
        assert!(m[3].is_lffs() && !m[4].is_lffs() && !m[2].is_lffs());
    }

    #[test]
    fn only_content_changes_reload() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode,
        };
        use notify::{Event, EventKind};
        let name = std::ffi::OsStr::new("mounts.yaml");
        let ev = |kind, paths: &[&str]| {
            let mut e = Event::new(kind);
            for p in paths {
                e = e.add_path(PathBuf::from(p));
            }
            e
        };
        let f = "/h/mounts.yaml";
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
        ] {
            assert!(changes_file(&ev(kind, &[f]), name), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Remove(notify::event::RemoveKind::File),
        ] {
            assert!(!changes_file(&ev(kind, &[f]), name), "{kind:?}");
        }
        // Another file of the home; an editor's temp file renamed into place.
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(!changes_file(&ev(data, &["/h/node.log"]), name));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert!(changes_file(&ev(both, &["/h/.mounts.yaml.swp", f]), name));
        assert!(!changes_file(&ev(both, &[f, "/h/mounts.yaml.bak"]), name));
    }
}
