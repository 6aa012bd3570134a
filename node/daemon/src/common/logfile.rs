//! `node.log`, size-capped: when a write would take the file past its cap, the file is
//! renamed to `node.log.1` (replacing the previous one) and a new `node.log` begins. At
//! most twice the cap is ever on disk, and the newest lines are always in `node.log`.
//! The logger writes one whole event per `write` call, so files split between lines.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Default cap of `node.log` (and of `node.log.1`).
pub const DEFAULT_MAX_BYTES: u64 = 10 << 20;

/// A rate limit for a log line that would repeat on every attempt (a full disk, a
/// peer that keeps failing): `should_log` is true at most once per period.
pub struct Every {
    period_ms: u64,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Every {
    /// Once per `secs` seconds.
    pub const fn secs(secs: u64) -> Every {
        Every {
            period_ms: secs * 1000,
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether to log now (and, if so, not again for a period).
    pub fn should_log(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = self.last_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= self.period_ms
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// An append-only log file that rotates to `<name>.1` at `max_bytes`.
pub struct LogFile {
    path: PathBuf,
    max_bytes: u64,
    file: File,
    size: u64,
}

fn open(path: &Path) -> anyhow::Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, size))
}

impl LogFile {
    /// Opens (appends to) `path`, rotating at `max_bytes`.
    pub fn open(path: &Path, max_bytes: u64) -> anyhow::Result<LogFile> {
        let (file, size) = open(path)?;
        Ok(LogFile {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1),
            file,
            size,
        })
    }

    /// The rotated file's path (`node.log.1`).
    pub fn rotated_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        p.into()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        std::fs::rename(&self.path, self.rotated_path())?;
        let (file, size) = open(&self.path).map_err(std::io::Error::other)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            // A failed rotation must not stop logging: keep appending to the old file.
            if let Err(e) = self.rotate() {
                eprintln!("lf: cannot rotate {}: {e}", self.path.display());
            }
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_to_dot_one_at_the_cap_and_keeps_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        std::fs::write(&path, "old line\n").unwrap();
        let mut f = LogFile::open(&path, 100).unwrap();
        let line = [b'x'; 39];
        for i in 0..10u8 {
            let mut l = line.to_vec();
            l[0] = b'0' + i;
            l.push(b'\n');
            f.write_all(&l).unwrap();
        }
        let cur = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(f.rotated_path()).unwrap();
        // 40-byte lines, 100-byte cap: two lines per file, whole lines only.
        assert!(cur.len() <= 100 && old.len() <= 100, "{cur:?} {old:?}");
        assert!(cur.starts_with('8') && cur.ends_with('\n'), "{cur:?}");
        assert!(old.starts_with('6'), "{old:?}");
        assert_eq!(cur.lines().count(), 2);
        assert!(!cur.contains("old line") && !old.contains("old line"));
        // Exactly two files: nothing else was created beside them.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn reopening_counts_what_is_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        std::fs::write(&path, vec![b'a'; 90]).unwrap();
        let mut f = LogFile::open(&path, 100).unwrap();
        f.write_all(&[b'b'; 20]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), vec![b'b'; 20]);
        assert_eq!(std::fs::read(f.rotated_path()).unwrap(), vec![b'a'; 90]);
    }

    #[test]
    fn a_line_longer_than_the_cap_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        let mut f = LogFile::open(&path, 10).unwrap();
        f.write_all(&[b'z'; 30]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 30);
    }
}
