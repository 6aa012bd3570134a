//! The node home directory and the files in it: `lf.pid` (held with an OS lock),
//! `identity-secret.pem`, `authtoken.secret`, `client.json`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lf_record::OwnerSecret;

use crate::random;

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
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(PidFile { path, _file: file })
    }
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
