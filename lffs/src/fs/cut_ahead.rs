//! Cutting a file into chunks while it is written. A big file written from its start
//! (a copy, a download, a log) is cut, hashed and handed to the store (journaled, not
//! yet flushed) in the background as its bytes arrive, a few MiB at a time, on another
//! core than the writer's: its fsync or close then cuts only the tail and waits for one
//! flush, whose data the disk has partly written back already. Done at the commit
//! alone, the cutting, hashing and journal writes of a 64 MiB file came after its last
//! write, in one thread, and its fsync took three times the disk's own.
//!
//! The chunks are the ones cutting the whole file at its commit would make (a cut point
//! depends only on the bytes since the one before; the last chunk a job cuts may end
//! where the written bytes end rather than at a cut point, so it is left for later).
//! A write below what was cut, or a truncation, forgets the chunks from there (see
//! `Content::cut_job`). Chunks cut from bytes that are then overwritten, or of a file
//! unlinked before its close, stay stored: content-addressed records no manifest
//! names, masked with their hash, so readable by no one who does not hold the bytes.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::content::CutJob;

/// New bytes past what is cut that start a job.
const CUT_LEAST: u64 = 2 << 20;

/// Most bytes one job cuts (and holds in memory, twice: read and handed to the store).
const CUT_MOST: u64 = 8 << 20;

/// Most jobs out at once, every mount together: each holds up to twice `CUT_MOST`
/// in memory, and cutting is CPU work that must leave the writers a core.
const MAX_JOBS: usize = 2;

static JOBS: AtomicUsize = AtomicUsize::new(0);

/// A job thread's place in [`JOBS`], given back when the thread ends, however.
struct JobSlot;

impl Drop for JobSlot {
    fn drop(&mut self) {
        JOBS.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S: Store> Filesystem<S> {
    /// After a write to `ino`: starts a job cutting what was written since the last
    /// one, if there is enough of it (on its own thread; nothing is waited for).
    pub fn cut_ahead(self: &Arc<Self>, ino: u64) {
        let Some(f) = self.live_open(ino) else {
            return;
        };
        let Some(job) = self.take_job(&f) else {
            return;
        };
        if JOBS.fetch_add(1, Ordering::AcqRel) >= MAX_JOBS {
            // Every job slot is taken: a later write (or the commit) cuts it.
            JOBS.fetch_sub(1, Ordering::AcqRel);
            drop(job);
            f.lock()
                .unwrap_or_else(|e| e.into_inner())
                .content
                .cut_abandoned();
            return;
        }
        let slot = JobSlot;
        let fs = Arc::clone(self);
        let f2 = f.clone();
        let spawned = std::thread::Builder::new()
            .name("lffs-cut".into())
            .spawn(move || {
                let _slot = slot;
                // One job after another while the writer keeps ahead: waiting for its
                // next write to start the next would leave more for the commit.
                let jobs = std::panic::AssertUnwindSafe(|| {
                    let mut job = job;
                    loop {
                        fs.run_cut(&f2, job);
                        match fs.take_job(&f2) {
                            Some(next) => job = next,
                            None => break,
                        }
                    }
                });
                if std::panic::catch_unwind(jobs).is_err() {
                    // A bug, not the writer's: its commit cuts the file and must not
                    // wait for a job that will never end.
                    tracing::error!("a job cutting a file ahead of its commit panicked");
                    f2.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .content
                        .cut_lost();
                    fs.notify_cut();
                }
            });
        if spawned.is_err() {
            // No thread now: the commit cuts it. (The job and the slot went with the
            // closure.)
            f.lock()
                .unwrap_or_else(|e| e.into_inner())
                .content
                .cut_abandoned();
        }
    }

    /// [`Filesystem::cut_ahead`] in the calling thread (tests; a caller that has a
    /// thread to spare). Whether a job ran.
    pub fn cut_ahead_now(&self, ino: u64) -> bool {
        let Some(f) = self.live_open(ino) else {
            return false;
        };
        let Some(job) = self.take_job(&f) else {
            return false;
        };
        self.run_cut(&f, job);
        true
    }

    fn take_job(&self, f: &Mutex<OpenFile>) -> Option<CutJob> {
        let mut g = f.lock().unwrap_or_else(|e| e.into_inner());
        if g.detached || !g.dirty {
            return None;
        }
        g.content
            .cut_job(self.store.max_value_size(), CUT_LEAST, CUT_MOST)
    }

    /// Runs a job and hands its chunks to the file's content.
    pub(super) fn run_cut(&self, f: &Mutex<OpenFile>, job: CutJob) {
        let cut = match self.cut(&job) {
            Ok(c) => Some(c),
            Err(e) => {
                // The commit cuts it all again, and reports what fails then.
                tracing::debug!("cutting a file ahead of its commit failed: {e}");
                None
            }
        };
        f.lock()
            .unwrap_or_else(|e| e.into_inner())
            .content
            .cut_done(job, cut);
        self.notify_cut();
    }

    fn notify_cut(&self) {
        let (lock, done) = &self.cut_idle;
        let _g = lock.lock().unwrap_or_else(|e| e.into_inner());
        done.notify_all();
    }

    /// Waits a moment for a job to finish (a commit waits for the job out on its file
    /// rather than cutting the same bytes again).
    pub(super) fn wait_for_cut(&self) {
        let (lock, done) = &self.cut_idle;
        let g = lock.lock().unwrap_or_else(|e| e.into_inner());
        // Timed: a job may have finished between the caller's look and this wait.
        drop(
            done.wait_timeout(g, std::time::Duration::from_millis(2))
                .unwrap_or_else(|e| e.into_inner()),
        );
    }

    /// Cuts a job's bytes, stores the new chunks (not flushed: the commit's last part
    /// is) and returns the chunks but the last, with the offset they end at.
    fn cut(&self, job: &CutJob) -> Result<(Vec<ChunkRef>, u64)> {
        let data = job.read()?;
        let max = self.store.max_value_size();
        let mut cuts = chunk::cut(&data, max);
        cuts.pop(); // may end where the written bytes end: cut again with what follows
        let mut refs = Vec::with_capacity(cuts.len());
        let mut part = Vec::with_capacity(cuts.len());
        let mut seen = HashSet::new();
        for (off, n) in cuts {
            let bytes = &data[off..off + n];
            let r = ChunkRef {
                id: chunk::chunk_id(bytes),
                len: n as u32,
            };
            refs.push(r);
            if seen.insert(r.id) {
                part.push((r, bytes.to_vec()));
            }
        }
        let upto = job.from + refs.iter().map(|r| r.len as u64).sum::<u64>();
        let puts = self.chunk_puts(part, true)?;
        if !puts.is_empty() {
            // A part of its own: a full queue refuses it (the commit then fails alike).
            self.store.put_part(puts, true)?;
        }
        Ok((refs, upto))
    }
}
