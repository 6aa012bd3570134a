//! The mount manager: one FUSE session per `mounts.yaml` entry, applied live. On start
//! it clears stale mounts a killed node left behind; on reload (file change or SIGHUP)
//! it applies [`crate::mounts::plan`]; an invalid file is reported and the running
//! mounts stay as they are; on shutdown everything is unmounted cleanly.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use lf_record::OwnerSecret;
use lffs::{FsConfig, FuseAdapter};

use crate::commit_queue::CommitQueue;
use crate::lffs_store::LffsStore;
use crate::mounts::{self, MountAction, MountSpec, OwnerSource};
use crate::node::Node;

struct Running {
    spec: MountSpec,
    /// The mount's owner (`@...`).
    owner: String,
    /// When it was mounted, Unix seconds.
    since: u64,
    session: fuser::BackgroundSession,
    /// Stops the mount's cache-invalidation thread.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// The mount manager.
pub struct MountManager {
    node: Arc<Node>,
    queue: Arc<CommitQueue>,
    home: PathBuf,
    running: Mutex<Vec<Running>>,
    /// Mounts of the file that could not be mounted, with why (retried at each reload).
    failed: Mutex<Vec<MountState>>,
    /// Why the last reload of `mounts.yaml` was refused, if it was.
    file_error: Mutex<Option<String>>,
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

/// Whether `path` is a mount point now (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

/// Lazily unmounts a mount left by a node that was killed.
fn clear_stale(path: &Path) {
    if !is_mounted(path) {
        return;
    }
    tracing::warn!(path = %path.display(), "clearing a stale mount left by an earlier node");
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

impl MountManager {
    /// Starts the manager: writes the shipped `mounts.yaml` into a home without one,
    /// then mounts everything it lists. An invalid file at start is an error.
    pub fn start(
        node: Arc<Node>,
        queue: Arc<CommitQueue>,
        home: &Path,
    ) -> anyhow::Result<Arc<MountManager>> {
        let file = mounts_file(home);
        if !file.exists() {
            std::fs::write(&file, mounts::DEFAULT_MOUNTS_YAML)
                .with_context(|| format!("cannot write {}", file.display()))?;
            tracing::info!(file = %file.display(), "wrote the default mounts.yaml");
        }
        let specs = mounts::load(&file)?;
        tracing::info!(file = %file.display(), mounts = specs.len(), "mounts loaded");
        let m = Arc::new(MountManager {
            node,
            queue,
            home: home.to_path_buf(),
            running: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
            file_error: Mutex::new(None),
        });
        m.apply(mounts::plan(&[], &specs));
        Ok(m)
    }

    /// Re-reads `mounts.yaml` and applies the difference.
    pub fn reload(&self) {
        let file = mounts_file(&self.home);
        match mounts::load(&file) {
            Ok(specs) => {
                *self.file_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                self.failed_lock()
                    .retain(|f| specs.iter().any(|s| s.path == f.path));
                let running: Vec<MountSpec> = self.lock().iter().map(|r| r.spec.clone()).collect();
                let actions = mounts::plan(&running, &specs);
                if !actions.is_empty() {
                    tracing::info!(changes = actions.len(), "mounts.yaml changed: applying");
                }
                self.apply(actions);
            }
            Err(e) => {
                crate::metrics::error("mounts_yaml_invalid");
                tracing::error!("{e:#}; keeping the running mounts as they are");
                *self.file_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{e:#}"));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed_lock(&self) -> std::sync::MutexGuard<'_, Vec<MountState>> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, actions: Vec<MountAction>) {
        for a in actions {
            match a {
                MountAction::Unmount(path) => {
                    self.failed_lock().retain(|f| f.path != path);
                    self.unmount(&path)
                }
                MountAction::Mount(spec) => {
                    self.failed_lock().retain(|f| f.path != spec.path);
                    match self.mount(&spec) {
                        Ok((session, stop, owner)) => {
                            tracing::info!(path = %spec.path.display(), root = %spec.root, "mounted");
                            self.lock().push(Running {
                                spec,
                                owner,
                                since: crate::node::now(),
                                session,
                                stop,
                            });
                        }
                        Err(e) => {
                            crate::metrics::error("mount");
                            tracing::error!(path = %spec.path.display(), "cannot mount: {e:#}");
                            let owner = self
                                .owner(&spec)
                                .map(|(o, _)| o.public().to_string())
                                .unwrap_or_default();
                            self.failed_lock().push(MountState::of(
                                &spec,
                                owner,
                                None,
                                Some(format!("{e:#}")),
                            ));
                        }
                    }
                }
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
            m.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            match m.session.umount_and_join() {
                Ok(()) => tracing::info!(path = %path.display(), "unmounted"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "unmount failed: {e}; detaching");
                    clear_stale(path);
                }
            }
        }
    }

    /// Unmounts everything (shutdown).
    pub fn unmount_all(&self) {
        let paths: Vec<PathBuf> = self.lock().iter().map(|m| m.spec.path.clone()).collect();
        for p in paths {
            self.unmount(&p);
        }
    }

    /// Paths mounted now.
    pub fn mounted(&self) -> Vec<PathBuf> {
        self.lock().iter().map(|m| m.spec.path.clone()).collect()
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
        v.extend(self.failed_lock().iter().cloned());
        v
    }

    /// Why the last edit of `mounts.yaml` was refused (the running mounts were kept).
    pub fn file_error(&self) -> Option<String> {
        self.file_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn owner(&self, spec: &MountSpec) -> anyhow::Result<(OwnerSecret, Option<Vec<u8>>)> {
        match &spec.owner {
            OwnerSource::Passphrase(p) => {
                let (o, mask) = OwnerSecret::from_passphrase(p)?;
                Ok((o, Some(mask)))
            }
            OwnerSource::Private(text) if text.contains("-----BEGIN") => {
                Ok((OwnerSecret::from_pem(text).context("owner_private")?, None))
            }
            OwnerSource::Private(path) => {
                let p = self.home.join(path);
                let pem = std::fs::read_to_string(&p)
                    .with_context(|| format!("owner_private: cannot read {}", p.display()))?;
                Ok((
                    OwnerSecret::from_pem(&pem).with_context(|| p.display().to_string())?,
                    None,
                ))
            }
        }
    }

    fn mount(
        &self,
        spec: &MountSpec,
    ) -> anyhow::Result<(
        fuser::BackgroundSession,
        Arc<std::sync::atomic::AtomicBool>,
        String,
    )> {
        if self.lock().iter().any(|m| m.spec.path == spec.path) {
            bail!("{} is already mounted", spec.path.display());
        }
        let (owner, derived_mask) = self.owner(spec)?;
        let masking_key = spec
            .masking_key
            .clone()
            .map(String::into_bytes)
            .or(derived_mask);
        clear_stale(&spec.path);
        std::fs::create_dir_all(&spec.path)
            .with_context(|| format!("cannot create {}", spec.path.display()))?;
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
                root_mode: 0o755,
                spill_dir: Some(self.home.join("lffs-spill")),
                ..FsConfig::default()
            },
        );
        let mut config = fuser::Config::default();
        config.mount_options = lffs::mount_options(spec.read_only);
        config.acl = if spec.allow_other {
            fuser::SessionACL::All
        } else {
            fuser::SessionACL::Owner
        };
        config.n_threads = Some(4);
        config.clone_fd = true;
        let fs = Arc::new(fs);
        let adapter = FuseAdapter::new(fs.clone(), spec.path.display().to_string());
        let session = fuser::spawn_mount(adapter, &spec.path, &config)
            .with_context(|| format!("fuse mount of {} failed", spec.path.display()))?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (notifier, flag) = (session.notifier(), stop.clone());
        std::thread::Builder::new()
            .name("lffs-inval".into())
            .spawn(move || lffs::invalidate_changes(fs, notifier, flag))?;
        Ok((session, stop, owner_id))
    }
}
