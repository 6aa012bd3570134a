//! The LFFS commit journal: an append-only log in `<home>/lffs-journal/`, framed like
//! `records.lf` (length, CRC-32, bytes; a torn tail is cut at replay), made of
//! segments `<n>.log` (mode 0600: entries hold the owner key that will sign).
//!
//! A `Batch` entry is durable when [`Journal::append_durable`] returns. Concurrent
//! writers share one `fdatasync` (group commit): appends take a short lock, the sync
//! runs outside it, and whoever syncs covers every append made before it started.
//! `Done` entries (a batch was published) are appended without a sync: if one is lost
//! in a crash the batch is published again, which only adds an identical newer version.
//! A new segment starts when the queue empties or the current one passes
//! [`SEGMENT_BYTES`]; older segments are deleted once none of their batches is pending.
//!
//! Frames are of two kinds, told apart by their first byte: entries (JSON, so `{`) and
//! values (a [`VALUE_TAG`] byte, then the value's bytes as they are). A batch's values
//! are appended in the same write as its entry and just before it, so a torn write
//! leaves values without an entry, which replay ignores. Values stay on disk: readers
//! fetch them by [`ValueAt`] ([`Journal::read`]), so what waits for publication is not
//! held in memory.
//!
//! Writeback starts as the journal grows: every [`WRITEBACK_BYTES`] appended, a
//! thread of the journal's flushes what is there (an `fdatasync` that makes nothing
//! count as durable: only [`Journal::sync`] does). A big file's chunks are on disk by
//! the time its fsync comes, which then flushes only the last few MiB instead of the
//! whole file (the kernel's own writeback waits for 10 % of memory or 30 s).
//!
//! A failed flush poisons the journal: the kernel reports a write error once per open
//! file and may drop the pages that failed, so a later flush that succeeds says nothing
//! of them. Every later [`Journal::sync`] fails (LFFS answers EIO) until the node
//! restarts and replays what the disk really holds.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use lf_store::RecordsFile;
use serde::{Deserialize, Serialize};

/// Size past which the next rotation check starts a new segment.
pub const SEGMENT_BYTES: u64 = 8 << 20;

/// One journal entry.
#[derive(Serialize, Deserialize)]
pub enum Entry<B> {
    /// A batch of puts, with its sequence number.
    Batch(u64, B),
    /// The batch with this sequence number is published.
    Done(u64),
}

/// First byte of a value frame (an entry frame is JSON and starts with `{`).
const VALUE_TAG: u8 = 0;

/// Where a value is: its segment, the offset of its bytes, and their length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueAt {
    /// Segment number.
    pub segment: u64,
    /// Offset of the value's bytes in the segment.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
}

/// The entries found at open, each with the number of its segment and the values
/// appended with it (in order).
pub type Replay<B> = Vec<(u64, Entry<B>, Vec<ValueAt>)>;

struct Segment {
    no: u64,
    file: RecordsFile,
    /// A second handle on the same file, synced outside the append lock.
    sync: std::sync::Arc<File>,
    /// A third, for writeback only: a write error is reported once per open file
    /// description, and must reach `sync`'s, which acknowledges writes.
    writeback: std::sync::Arc<File>,
}

struct Appender {
    current: Segment,
    /// Segment files on disk (numbers), the current one included.
    segments: BTreeSet<u64>,
    /// Bytes appended over all segments since open: the group-commit clock.
    appended: u64,
    /// Segments holding a batch appended but not yet registered as pending by the
    /// commit queue (see [`Journal::unpin`]), with how many: rotation never deletes
    /// them. Without this, a rotation between a batch's append and its registration
    /// saw nothing pending and deleted the segment holding an acknowledged batch.
    pinned: std::collections::BTreeMap<u64, usize>,
    /// `appended` when the last writeback was asked for.
    written_back: u64,
}

/// The journal.
pub struct Journal {
    dir: PathBuf,
    appender: Mutex<Appender>,
    /// Read handles on segments, for [`Journal::read`]; dropped with their segment.
    readers: Mutex<std::collections::HashMap<u64, std::sync::Arc<File>>>,
    /// Bytes of `appended` known durable; also serializes the syncs.
    synced: Mutex<u64>,
    /// The value of `synced`, readable while a flush holds its lock.
    synced_to: std::sync::atomic::AtomicU64,
    /// Where the last batch append (values and entry) ends, in `appended` units:
    /// what [`Journal::sync`] must make durable (a `Done` mark after it need not be).
    /// Set under the appender's lock, read without it (an append or a rotation holds
    /// that lock through a write or a flush).
    batches_end: std::sync::atomic::AtomicU64,
    /// Segments to write back, to the writeback thread (which ends when this drops).
    /// Absent if its thread could not start (flushes then write everything).
    writeback: Option<std::sync::mpsc::SyncSender<std::sync::Arc<File>>>,
    /// Why a flush failed, once one has: no flush after it acknowledges anything.
    poisoned: Mutex<Option<String>>,
    /// Tests: the next flush fails as if the disk had.
    #[cfg(test)]
    fail_next_flush: std::sync::atomic::AtomicBool,
    /// Writebacks done (the metric counts them too; read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    written_backs: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Bytes appended between two writebacks (see the module's doc).
const WRITEBACK_BYTES: u64 = 4 << 20;

/// Unsynced bytes past which [`Journal::flush_busy`] says a flush would be long.
const FLUSH_BACKLOG: u64 = 1 << 20;

fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:020}.log"))
}

fn open_segment(dir: &Path, no: u64) -> anyhow::Result<Segment> {
    let path = segment_path(dir, no);
    // Create with 0600 first (RecordsFile opens without a mode).
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // The mode above applies only to a new file, through the umask.
    crate::common::home::private_file(&path)?;
    let file = RecordsFile::open(&path)?;
    let handle = || File::open(&path).with_context(|| format!("cannot open {}", path.display()));
    Ok(Segment {
        no,
        file,
        sync: std::sync::Arc::new(handle()?),
        writeback: std::sync::Arc::new(handle()?),
    })
}

/// Starts the thread that writes segments back (see the module's doc).
fn start_writeback(
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> anyhow::Result<std::sync::mpsc::SyncSender<std::sync::Arc<File>>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<File>>(1);
    std::thread::Builder::new()
        .name("lffs-writeback".into())
        .spawn(move || {
            for segment in rx {
                // Only a head start: a failure here is the next sync's to report (on
                // its own handle, which the kernel tells too).
                if let Err(e) = segment.sync_data() {
                    tracing::debug!("writeback of the LFFS journal failed: {e}");
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ::metrics::counter!("lf_commit_journal_writebacks_total").increment(1);
            }
        })
        .context("cannot start the LFFS journal's writeback thread")?;
    Ok(tx)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

impl Journal {
    /// Opens the journal in `dir` and replays it: returns the entries of every segment in
    /// order, each with the number of the segment it is in.
    pub fn open<B: for<'de> Deserialize<'de>>(dir: &Path) -> anyhow::Result<(Journal, Replay<B>)> {
        // 0700 whatever the umask: the entries hold owner keys.
        crate::common::home::private_dir(dir)?;
        let mut segments: BTreeSet<u64> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                (p.extension()? == "log")
                    .then(|| p.file_stem()?.to_str()?.parse::<u64>().ok())
                    .flatten()
            })
            .collect();
        let mut entries = Vec::new();
        let mut last = None;
        for &no in &segments {
            let mut seg = open_segment(dir, no)?;
            let mut values = Vec::new();
            for (offset, bytes) in seg.file.recover_tail(0)? {
                if bytes.first() == Some(&VALUE_TAG) {
                    values.push(ValueAt {
                        segment: no,
                        offset: offset + 1,
                        len: (bytes.len() - 1) as u32,
                    });
                    continue;
                }
                let e: Entry<B> = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "journal segment {} holds an entry that is not readable",
                        segment_path(dir, no).display()
                    )
                })?;
                entries.push((no, e, std::mem::take(&mut values)));
            }
            last = Some(seg);
        }
        let current = match last {
            Some(s) => s,
            None => {
                let s = open_segment(dir, 1)?;
                sync_dir(dir)?;
                segments.insert(1);
                s
            }
        };
        let written_backs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                appender: Mutex::new(Appender {
                    current,
                    segments,
                    appended: 0,
                    pinned: Default::default(),
                    written_back: 0,
                }),
                synced: Mutex::new(0),
                synced_to: Default::default(),
                batches_end: Default::default(),
                readers: Mutex::new(std::collections::HashMap::new()),
                writeback: start_writeback(written_backs.clone())
                    .map_err(|e| tracing::warn!("{e:#}; fsyncs of big files will be slower"))
                    .ok(),
                written_backs,
                poisoned: Mutex::new(None),
                #[cfg(test)]
                fail_next_flush: Default::default(),
            },
            entries,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Appender> {
        self.appender.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append<B: Serialize>(
        &self,
        e: &Entry<B>,
        values: &[&[u8]],
        pin: bool,
    ) -> anyhow::Result<(u64, u64, Vec<ValueAt>)> {
        let bytes = serde_json::to_vec(e)?;
        // Tag and value as two parts of one frame: the value is not copied.
        let tag = [VALUE_TAG];
        let parts: Vec<[&[u8]; 2]> = values.iter().map(|v| [&tag[..], v]).collect();
        let mut frames: Vec<&[&[u8]]> = parts.iter().map(|p| &p[..]).collect();
        let entry = [&bytes[..]];
        frames.push(&entry);
        let mut a = self.lock();
        let start = a.current.file.end();
        let offsets = match a.current.file.append_parts(&frames) {
            Ok(o) => o,
            Err(err) => {
                // Never leave half a frame for a later append to follow.
                let _ = a.current.file.truncate(start);
                return Err(err.into());
            }
        };
        a.appended += a.current.file.end() - start;
        if a.appended - a.written_back >= WRITEBACK_BYTES
            && let Some(w) = &self.writeback
            && w.try_send(a.current.writeback.clone()).is_ok()
        {
            // Not when one is queued already: it may be of a segment rotated since.
            a.written_back = a.appended;
        }
        if pin {
            // Under the appender's lock: stores of `batches_end` are in append order.
            self.batches_end
                .store(a.appended, std::sync::atomic::Ordering::Release);
            let no = a.current.no;
            *a.pinned.entry(no).or_default() += 1;
        }
        let at = offsets
            .iter()
            .zip(values)
            .map(|(o, v)| ValueAt {
                segment: a.current.no,
                offset: o + 1,
                len: v.len() as u32,
            })
            .collect();
        Ok((a.current.no, a.appended, at))
    }

    /// Appends `e` and returns once it is durable (and with it everything appended
    /// before). Returns the segment it went to.
    pub fn append_durable<B: Serialize>(&self, e: &Entry<B>) -> anyhow::Result<u64> {
        let (segment, mine, _) = self.append(e, &[], false)?;
        self.sync_upto(mine)?;
        Ok(segment)
    }

    /// Appends a batch's `values`, then `e`, and returns once they are durable: the
    /// segment and where each value is. The segment stays pinned until
    /// [`Journal::unpin`] (on success only).
    pub fn append_durable_with<B: Serialize>(
        &self,
        e: &Entry<B>,
        values: &[&[u8]],
    ) -> anyhow::Result<(u64, Vec<ValueAt>)> {
        let (segment, mine, at) = self.append(e, values, true)?;
        if let Err(err) = self.sync_upto(mine) {
            self.unpin(segment);
            return Err(err);
        }
        Ok((segment, at))
    }

    /// Appends a batch's `values`, then `e`, without waiting for them to be durable:
    /// the next durable append or [`Journal::sync`] covers them (and rotation syncs a
    /// segment before leaving it). The segment stays pinned until [`Journal::unpin`].
    /// Also returns where the append ends: it is durable once [`Journal::synced`]
    /// reaches that.
    pub fn append_lazy_with<B: Serialize>(
        &self,
        e: &Entry<B>,
        values: &[&[u8]],
    ) -> anyhow::Result<(u64, Vec<ValueAt>, u64)> {
        let (segment, end, at) = self.append(e, values, true)?;
        Ok((segment, at, end))
    }

    /// How far the journal is durable (in the units [`Journal::append_lazy_with`]
    /// returns).
    pub fn synced(&self) -> u64 {
        // A copy of `synced`, whose lock is held through a flush.
        self.synced_to.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Releases a segment pinned by a batch append, once the batch is registered as
    /// pending (from then on the caller's `oldest_pending` keeps it).
    pub fn unpin(&self, segment: u64) {
        let mut a = self.lock();
        if let std::collections::btree_map::Entry::Occupied(mut e) = a.pinned.entry(segment) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// Makes every batch appended so far durable; nothing to do when they are. `Done`
    /// marks appended since may stay unsynced (a lost one means its batch is published
    /// again after a restart): a file closed after its fsync paid a second flush when
    /// a publication's mark fell between the two.
    pub fn sync(&self) -> anyhow::Result<()> {
        self.sync_upto(self.batches_end.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Whether a batch appended is not yet durable (`sync` would wait for the disk).
    pub fn unsynced(&self) -> bool {
        self.unsynced_bytes() > 0
    }

    fn unsynced_bytes(&self) -> u64 {
        use std::sync::atomic::Ordering::Acquire;
        let end = self.batches_end.load(Acquire);
        end.saturating_sub(self.synced_to.load(Acquire))
    }

    /// Whether a flush now would be long or wait: one is under way (a flush holds
    /// its lock), or more than [`FLUSH_BACKLOG`] waits to be flushed. Never blocks.
    pub fn flush_busy(&self) -> bool {
        self.synced.try_lock().is_err() || self.unsynced_bytes() > FLUSH_BACKLOG
    }

    /// Returns once everything appended up to `mine` is durable. Concurrent writers
    /// share one `fdatasync` (group commit).
    fn sync_upto(&self, mine: u64) -> anyhow::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *synced >= mine {
            return Ok(()); // another writer's sync covered this append
        }
        let (upto, file) = {
            let a = self.lock();
            (a.appended, a.current.sync.clone())
        };
        self.flush(&file)?;
        *synced = upto;
        self.synced_to
            .store(upto, std::sync::atomic::Ordering::Release);
        ::metrics::counter!("lf_commit_journal_syncs_total").increment(1);
        Ok(())
    }

    /// `fdatasync` of a segment, unless the journal is poisoned (see the module's doc);
    /// poisons it on failure.
    fn flush(&self, file: &File) -> anyhow::Result<()> {
        let mut poisoned = self.poisoned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &*poisoned {
            anyhow::bail!(
                "the LFFS journal could not be flushed earlier ({why}): nothing written \
                 since can be made durable until the node restarts"
            );
        }
        drop(poisoned);
        #[cfg(test)]
        let failed = self
            .fail_next_flush
            .swap(false, std::sync::atomic::Ordering::Relaxed)
            .then(|| std::io::Error::other("injected"));
        #[cfg(not(test))]
        let failed: Option<std::io::Error> = None;
        match failed.map_or_else(|| file.sync_data(), Err) {
            Ok(()) => Ok(()),
            Err(e) => {
                poisoned = self.poisoned.lock().unwrap_or_else(|e| e.into_inner());
                *poisoned = Some(e.to_string());
                Err(e).context("cannot sync the LFFS journal")
            }
        }
    }

    /// Reads a value appended with [`Journal::append_durable_with`]. Fails once its
    /// segment is deleted (every batch in it published).
    pub fn read(&self, at: ValueAt) -> anyhow::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = {
            let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
            match readers.get(&at.segment) {
                Some(f) => f.clone(),
                None => {
                    let path = segment_path(&self.dir, at.segment);
                    let f = std::sync::Arc::new(
                        File::open(&path)
                            .with_context(|| format!("cannot open {}", path.display()))?,
                    );
                    readers.insert(at.segment, f.clone());
                    f
                }
            }
        };
        let mut b = vec![0u8; at.len as usize];
        file.read_exact_at(&mut b, at.offset)
            .with_context(|| format!("cannot read LFFS journal segment {}", at.segment))?;
        Ok(b)
    }

    /// Appends `e` without waiting for it to be durable.
    pub fn append_lazy<B: Serialize>(&self, e: &Entry<B>) -> anyhow::Result<()> {
        self.append(e, &[], false).map(|_| ())
    }

    /// Starts a new segment if `idle` (nothing pending) and the current one holds
    /// anything, or if it passed [`SEGMENT_BYTES`]; then deletes every segment older
    /// than `oldest_pending` (the segment of the oldest pending batch, if any).
    pub fn rotate(&self, idle: bool, oldest_pending: Option<u64>) -> anyhow::Result<()> {
        // Lock order: `synced`, then the appender (as in `append_durable`).
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        let mut a = self.lock();
        let size = a.current.file.end();
        if (idle && size > 0) || size > SEGMENT_BYTES {
            // Everything in the old segment is durable before the new one is used:
            // a sync of the new segment must never be taken to cover the old one.
            self.flush(&a.current.sync)?;
            *synced = a.appended;
            self.synced_to
                .store(a.appended, std::sync::atomic::Ordering::Release);
            let no = a.current.no + 1;
            a.current = open_segment(&self.dir, no)?;
            sync_dir(&self.dir)?;
            a.segments.insert(no);
        }
        drop(synced);
        let pinned = a.pinned.keys().next().copied().unwrap_or(a.current.no);
        let keep_from = oldest_pending
            .unwrap_or(a.current.no)
            .min(a.current.no)
            .min(pinned);
        let old: Vec<u64> = a.segments.range(..keep_from).copied().collect();
        for no in old {
            self.readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&no);
            let p = segment_path(&self.dir, no);
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    a.segments.remove(&no);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    a.segments.remove(&no);
                }
                Err(e) => tracing::warn!("cannot delete {}: {e}", p.display()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type E = Entry<String>;

    fn replay(dir: &Path) -> Vec<(u64, String)> {
        let (_, entries) = Journal::open::<String>(dir).unwrap();
        entries
            .into_iter()
            .map(|(seg, e, _)| match e {
                Entry::Batch(seq, b) => (seg, format!("batch {seq} {b}")),
                Entry::Done(seq) => (seg, format!("done {seq}")),
            })
            .collect()
    }

    #[test]
    fn entries_replay_in_order_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, e) = Journal::open::<String>(dir.path()).unwrap();
            assert!(e.is_empty());
            j.append_durable(&E::Batch(1, "a".into())).unwrap();
            j.append_durable(&E::Batch(2, "b".into())).unwrap();
            j.append_lazy(&E::Done(1)).unwrap();
        }
        let seg = segment_path(dir.path(), 1);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&seg).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path()).unwrap().permissions(),
        );
        assert_eq!(dir_mode & 0o777, 0o700);
        // A torn frame at the end (a crash mid-append).
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
            f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        }
        assert_eq!(
            replay(dir.path()),
            vec![
                (1, "batch 1 a".to_string()),
                (1, "batch 2 b".to_string()),
                (1, "done 1".to_string())
            ]
        );
    }

    #[test]
    fn values_stay_on_disk_and_a_torn_batch_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let seg = segment_path(dir.path(), 1);
        let at = {
            let (j, _) = Journal::open::<String>(dir.path()).unwrap();
            let (s, at) = j
                .append_durable_with(&E::Batch(1, "a".into()), &[b"one", b"{two}", b""])
                .unwrap();
            assert_eq!(s, 1);
            assert_eq!(j.read(at[0]).unwrap(), b"one");
            assert_eq!(j.read(at[1]).unwrap(), b"{two}");
            assert_eq!(j.read(at[2]).unwrap(), b"");
            at
        };
        // A crash after a value frame of the next batch, before its entry.
        let before = std::fs::metadata(&seg).unwrap().len();
        RecordsFile::open(&seg)
            .unwrap()
            .append(&[&[VALUE_TAG, 9, 9]])
            .unwrap();
        assert!(std::fs::metadata(&seg).unwrap().len() > before);
        let (j, entries) = Journal::open::<String>(dir.path()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].2, at);
        assert_eq!(j.read(entries[0].2[1]).unwrap(), b"{two}");
    }

    #[test]
    fn rotation_deletes_segments_without_pending_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open::<String>(dir.path()).unwrap();
        assert_eq!(j.append_durable(&E::Batch(1, "a".into())).unwrap(), 1);
        // Batch 1 still pending: a rotation for size keeps segment 1.
        j.rotate(false, Some(1)).unwrap();
        assert_eq!(j.append_durable(&E::Batch(2, "b".into())).unwrap(), 1);
        j.append_lazy(&E::Done(1)).unwrap();
        j.append_lazy(&E::Done(2)).unwrap();
        // Idle: a new segment, the old one deleted.
        j.rotate(true, None).unwrap();
        assert!(!segment_path(dir.path(), 1).exists());
        assert!(segment_path(dir.path(), 2).exists());
        assert_eq!(j.append_durable(&E::Batch(3, "c".into())).unwrap(), 2);
        drop(j);
        assert_eq!(replay(dir.path()), vec![(2, "batch 3 c".to_string())]);
    }

    /// A batch appended but not yet registered by the commit queue is not deleted by
    /// a rotation that saw nothing pending (the worker finishing the previous batch).
    #[test]
    fn rotation_keeps_a_segment_pinned_by_a_batch_not_yet_registered() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open::<String>(dir.path()).unwrap();
        let (segment, _) = j
            .append_durable_with(&E::Batch(1, "acknowledged".into()), &[])
            .unwrap();
        j.rotate(true, None).unwrap();
        assert!(segment_path(dir.path(), segment).exists());
        j.unpin(segment);
        j.append_lazy(&E::Done(1)).unwrap();
        j.rotate(true, None).unwrap();
        assert!(!segment_path(dir.path(), segment).exists());
    }

    #[test]
    fn a_growing_journal_is_written_back_without_counting_as_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open::<String>(dir.path()).unwrap();
        let value = vec![7u8; 1 << 20];
        for i in 0..WRITEBACK_BYTES / (1 << 20) - 1 {
            j.append_lazy_with(&E::Batch(i, "part".into()), &[&value])
                .unwrap();
        }
        let written_back = || j.written_backs.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            j.lock().written_back,
            0,
            "less than WRITEBACK_BYTES appended"
        );
        j.append_lazy_with(&E::Batch(99, "part".into()), &[&value])
            .unwrap();
        assert!(
            j.lock().written_back >= WRITEBACK_BYTES,
            "no writeback asked for"
        );
        let t = std::time::Instant::now();
        while written_back() == 0 {
            assert!(t.elapsed().as_secs() < 10, "no writeback started");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Durable only through `sync`: a writeback acknowledges nothing.
        assert_eq!(j.synced(), 0);
        assert!(j.unsynced());
        j.sync().unwrap();
        assert!(!j.unsynced());
    }

    /// After a failed flush, no later flush acknowledges anything (the kernel may have
    /// dropped the pages that failed, and reports the error only once).
    #[test]
    fn a_failed_flush_fails_every_later_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open::<String>(dir.path()).unwrap();
        j.append_durable(&E::Batch(1, "before".into())).unwrap();
        j.fail_next_flush
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let e = j.append_durable(&E::Batch(2, "lost".into())).unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot sync the LFFS journal"),
            "{e:#}"
        );
        for _ in 0..2 {
            let e = j.append_durable(&E::Batch(3, "after".into())).unwrap_err();
            assert!(
                format!("{e:#}").contains("until the node restarts"),
                "{e:#}"
            );
        }
        // A lazily appended batch (a create) is not made durable by a later sync.
        j.append_lazy_with(&E::Batch(5, "lazy".into()), &[b"v"])
            .unwrap();
        assert!(j.sync().is_err());
        assert!(j.unsynced());
        assert!(
            j.rotate(true, None).is_err(),
            "a rotation must not flush either"
        );
        // A restart starts clean: what the disk holds is replayed and syncs work.
        drop(j);
        let (j, entries) = Journal::open::<String>(dir.path()).unwrap();
        assert!(!entries.is_empty());
        j.append_durable(&E::Batch(4, "restarted".into())).unwrap();
    }

    #[test]
    fn concurrent_writers_share_syncs_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open::<String>(dir.path()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let j = &j;
                s.spawn(move || {
                    for i in 0..50 {
                        j.append_durable(&E::Batch(t * 100 + i, format!("{t}/{i}")))
                            .unwrap();
                    }
                });
            }
        });
        drop(j);
        let mut seqs: Vec<String> = replay(dir.path()).into_iter().map(|(_, e)| e).collect();
        seqs.sort();
        assert_eq!(seqs.len(), 200);
        seqs.dedup();
        assert_eq!(seqs.len(), 200);
    }
}
