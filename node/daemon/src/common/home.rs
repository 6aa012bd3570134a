//! The node home directory and the files in it: `lf.pid` (held with an OS lock),
//! `identity-secret.pem`, `authtoken.secret`, `client.json`; and the permission rules
//! for secrets: the home and the node's private directories are created 0700, secret
//! files 0600, whatever the umask, and secret files others can read are warned about.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lf_record::OwnerSecret;

use crate::common::random;

/// Default home: `$HOME/.lf`, or `/var/lib/lf` for root.
pub fn default_home() -> PathBuf {
    // The effective uid, from /proc (no libc binding needed for one number).
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2).is_some_and(|uid| uid == "0"))
        })
        .unwrap_or(false);
    if is_root {
        return "/var/lib/lf".into();
    }
    match std::env::var_os("HOME") {
        Some(h) => Path::new(&h).join(".lf"),
        None => PathBuf::from("./lf"),
    }
}

/// Resolves `-home` or the default.
pub fn resolve(home: Option<&Path>) -> PathBuf {
    home.map(Path::to_path_buf).unwrap_or_else(default_home)
}

/// Creates the home (mode 0700 whatever the umask) if it does not exist. An existing
/// home keeps its mode: the operator chose it, and every secret in it is 0600.
pub fn create_home(home: &Path) -> anyhow::Result<()> {
    if home.exists() {
        return Ok(());
    }
    if let Some(parent) = home.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    private_dir(home).with_context(|| format!("cannot create home {}", home.display()))
}

/// Creates a directory only the node's user may enter (0700), or sets an existing one
/// to 0700 (the node owns these directories: the LFFS journal and spill directory).
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    // The umask may have removed bits from the mode given at creation; an older node
    // may have made it with the umask's mode.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set the mode of {} to 0700", dir.display()))
}

/// Sets a file the node owns to 0600 (a journal segment an older node made with the
/// umask's mode).
pub fn private_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {} to 0600", path.display()))
}

/// Warns, naming the file, when a file holding secrets can be read (or written) by
/// group or others. Nothing happens for a file that does not exist.
pub fn warn_if_exposed(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return false;
    }
    tracing::warn!(
        file = %path.display(),
        mode = %format!("{mode:04o}"),
        "a file holding secrets is accessible by group or others: chmod 600 it"
    );
    true
}

/// Writes a file readable only by its owner, atomically (temp file + rename).
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The pid file, locked for as long as the node runs; removed on drop.
pub struct PidFile {
    path: PathBuf,
    _file: File,
}

impl PidFile {
    /// Takes `lf.pid`; fails clearly if another node holds it.
    pub fn acquire(home: &Path) -> anyhow::Result<PidFile> {
        let path = home.join("lf.pid");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if file.try_lock().is_err() {
            let other = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another node is already running on {} (pid {})",
                home.display(),
                other.trim()
            );
        }
        let write = |file: &mut std::fs::File| -> std::io::Result<()> {
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()
        };
        write(&mut file).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(PidFile { path, _file: file })
    }
}

/// Bytes the start-up check writes: room for the first records, journal entries and
/// logs. A start on a disk that has less fails before any port is bound.
const WRITE_CHECK_BYTES: usize = 1 << 20;

/// Checks that the home's disk takes writes (writes, syncs and removes a file), so a
/// node on a full disk fails at once, naming the file, rather than half started.
pub fn check_writable(home: &Path) -> anyhow::Result<()> {
    let path = home.join(".write-check");
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&vec![0u8; WRITE_CHECK_BYTES])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    r.with_context(|| {
        format!(
            "cannot write {} ({} KiB): the disk holding the node's home must have room",
            path.display(),
            WRITE_CHECK_BYTES >> 10
        )
    })
}

/// Whether an error comes from a full disk: ENOSPC or EDQUOT anywhere in its chain,
/// or SQLite's "database or disk is full" (the daemon reaches SQLite only through
/// lf-store, whose errors carry SQLite's message).
pub fn is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c.downcast_ref::<std::io::Error>().or_else(|| {
            match c.downcast_ref::<lf_store::StoreError>() {
                Some(lf_store::StoreError::Io { source, .. }) => Some(source),
                _ => None,
            }
        });
        io.is_some_and(|e| {
            matches!(e.raw_os_error(), Some(28 | 122))
                || matches!(
                    e.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
        }) || c.to_string().contains("database or disk is full")
    })
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Loads `identity-secret.pem` or creates it (mode 0600).
pub fn identity(home: &Path) -> anyhow::Result<OwnerSecret> {
    let path = home.join("identity-secret.pem");
    match std::fs::read_to_string(&path) {
        Ok(pem) => OwnerSecret::from_pem(&pem).with_context(|| format!("{}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let o = random::new_owner();
            write_private(&path, o.to_pem().as_bytes())?;
            Ok(o)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Loads `authtoken.secret` or creates it (24 random bytes, base62, mode 0600).
pub fn auth_token(home: &Path) -> anyhow::Result<String> {
    let path = home.join("authtoken.secret");
    if path.exists() {
        let t = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let mut b = [0u8; 24];
    random::fill(&mut b);
    let t = lf_record::base62_encode(&b);
    write_private(&path, t.as_bytes())?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn home_and_private_dirs_are_0700_and_secrets_0600_under_a_loose_umask() {
        // nextest runs each test in its own process: the umask is this test's alone.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("a").join("home");
        create_home(&home).unwrap();
        assert_eq!(mode(&home), 0o700);
        let journal = home.join("lffs-journal");
        std::fs::create_dir(&journal).unwrap();
        assert_eq!(mode(&journal), 0o755, "the umask applies to plain creation");
        private_dir(&journal).unwrap();
        assert_eq!(mode(&journal), 0o700);
        private_dir(&home.join("lffs-spill")).unwrap();
        assert_eq!(mode(&home.join("lffs-spill")), 0o700);
        write_private(&home.join("mounts.yaml"), b"[]").unwrap();
        assert_eq!(mode(&home.join("mounts.yaml")), 0o600);
        identity(&home).unwrap();
        assert_eq!(mode(&home.join("identity-secret.pem")), 0o600);
        assert!(!warn_if_exposed(&home.join("identity-secret.pem")));
        std::fs::set_permissions(
            home.join("identity-secret.pem"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        assert!(warn_if_exposed(&home.join("identity-secret.pem")));
        assert!(!warn_if_exposed(&home.join("absent")));
        rustix::process::umask(old);
    }
}
