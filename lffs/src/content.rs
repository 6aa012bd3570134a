//! The content of an open file: the stored version it started from, read by range
//! (only the chunks a read needs are fetched), and what was written since, kept in an
//! unlinked temporary file rather than in memory once it passes 64 KiB. Memory per open
//! file is its data-level manifest (bounded by the file's declared size), one cached
//! chunk and at most 64 KiB of written bytes.
//!
//! Another owner's manifest is untrusted: [`Base::of`] assembles it level by level and
//! refuses it before fetching a level that is bigger than a file of the declared size
//! could need, or whose chunks do not add up to the declared size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::chunk::{self, ChunkRef, REF_LEN};
use crate::layout::{self, Body, Entry, FileData};
use crate::{FsError, Store};

type Result<T> = std::result::Result<T, FsError>;

/// Most manifest levels an entry may declare (a 64 MiB file on a network of 1 KiB
/// records needs 5).
pub const MAX_DEPTH: u8 = 8;

/// The smallest chunk a manifest of a file of ours can hold, the last one aside, on a
/// network whose records hold `max_value` bytes: a quarter of the chunker's minimum,
/// so that files written before the record size was raised fourfold still pass.
fn min_chunk(max_value: usize) -> u64 {
    (chunk::sizes(max_value).0 as u64 / 4).max(64)
}

/// Largest data-level manifest (bytes) a file of `size` bytes can have.
pub fn manifest_bound(size: u64, max_value: usize) -> u64 {
    (size / min_chunk(max_value) + 2) * REF_LEN as u64
}

/// Whether `v` is the chunk `r` names. Its length always; its hash unless it is a
/// record the mount's owner signed (`own`): nobody else can sign one (peers' records
/// are verified on arrival), the node hashes a chunk again just before signing it,
/// and the masking's tag (keyed by the chunk's id) fails on any changed byte. A
/// stranger's record under a chunk's name is hashed: anyone who read the manifest
/// knows the id and can put other bytes under it. Hashing was a quarter of a cold
/// read's time.
fn is_chunk(r: &ChunkRef, v: &[u8], own: bool) -> bool {
    v.len() == r.len as usize && (own || chunk::chunk_id(v) == r.id)
}

/// Fetches a chunk and checks it against its reference ([`is_chunk`]).
pub fn load_chunk<S: Store>(store: &S, r: &ChunkRef) -> Result<Vec<u8>> {
    store
        .find(&layout::chunk_selector(&r.id), &r.id, &|v, own| {
            is_chunk(r, v, own)
        })?
        .ok_or_else(|| FsError::Corrupt("a chunk of the file is not (yet) in the store".into()))
}

/// Fetches chunks (looked up together) and checks each against its reference.
pub fn load_chunks<S: Store>(store: &S, refs: &[ChunkRef]) -> Result<Vec<Vec<u8>>> {
    let names: Vec<Vec<u8>> = refs.iter().map(|r| layout::chunk_selector(&r.id)).collect();
    let wanted: Vec<(&[u8], &[u8])> = names
        .iter()
        .zip(refs)
        .map(|(n, r)| (&n[..], &r.id[..]))
        .collect();
    store
        .find_many(&wanted, &|i, v, own| is_chunk(&refs[i], v, own))?
        .into_iter()
        .map(|v| {
            v.ok_or_else(|| {
                FsError::Corrupt("a chunk of the file is not (yet) in the store".into())
            })
        })
        .collect()
}

/// The stored version an open file started from.
pub enum Base {
    /// Content held in the entry.
    Inline(Vec<u8>),
    /// Data chunks and the end offset of each (prefix sums of their lengths).
    Chunked {
        /// Data-level manifest.
        refs: Vec<ChunkRef>,
        /// `ends[i]` = offset just past chunk `i`.
        ends: Vec<u64>,
    },
}

impl Base {
    /// The content of a file entry, manifests assembled and checked: a declared size
    /// over `max_file_size` is [`FsError::TooBig`]; a manifest level bigger than the
    /// declared size allows, deeper than [`MAX_DEPTH`], or chunks that do not add up
    /// to the declared size are [`FsError::Corrupt`] (EIO), found before any data
    /// chunk is fetched.
    pub fn of<S: Store>(store: &S, e: &Entry, max_file_size: u64) -> Result<Base> {
        let (size, depth, top) = match &e.body {
            Body::File(FileData::Inline(d)) => return Ok(Base::Inline(d.clone())),
            Body::File(FileData::Chunked { size, depth, refs }) => (*size, *depth, refs),
            Body::Dir(_) => return Err(FsError::IsDir),
            _ => return Err(FsError::Corrupt("not a file".into())),
        };
        if size > max_file_size {
            return Err(FsError::TooBig);
        }
        if depth == 0 || depth > MAX_DEPTH {
            return Err(FsError::Corrupt(format!("manifest depth {depth}")));
        }
        let max_value = store.max_value_size();
        let bound = manifest_bound(size, max_value);
        let mut refs = top.clone();
        for _ in 1..depth {
            let total = refs.iter().map(|r| r.len as u64).sum::<u64>();
            if total > bound || !total.is_multiple_of(REF_LEN as u64) {
                return Err(FsError::Corrupt(format!(
                    "a manifest level of {total} bytes for a file of {size} bytes"
                )));
            }
            let mut level = Vec::with_capacity(total as usize);
            for r in &refs {
                level.extend_from_slice(&load_chunk(store, r)?);
            }
            refs = chunk::decode_refs(&level)
                .ok_or_else(|| FsError::Corrupt("bad chunk manifest".into()))?;
        }
        let mut ends = Vec::with_capacity(refs.len());
        let mut end = 0u64;
        for r in &refs {
            if r.len == 0 || r.len as usize > max_value {
                return Err(FsError::Corrupt(format!("a chunk of {} bytes", r.len)));
            }
            end += r.len as u64;
            if end > size {
                break;
            }
            ends.push(end);
        }
        if end != size || ends.len() != refs.len() {
            return Err(FsError::Corrupt(format!(
                "declared size {size} is not the size of its chunks"
            )));
        }
        Ok(Base::Chunked { refs, ends })
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Base::Inline(d) => d.len() as u64,
            Base::Chunked { ends, .. } => ends.last().copied().unwrap_or(0),
        }
    }
}

/// Byte ranges `[start, end)`, disjoint and not touching, by start.
#[derive(Default)]
struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    /// Adds `[a, b)`; returns how many of its bytes were not covered before.
    fn insert(&mut self, a: u64, b: u64) -> u64 {
        let (mut lo, mut hi, mut covered) = (a, b, 0);
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=b)
            .rev()
            .take_while(|(_, e)| **e >= a)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            covered += e.min(b).saturating_sub(s.max(a));
            lo = lo.min(s);
            hi = hi.max(e);
            self.0.remove(&s);
        }
        self.0.insert(lo, hi);
        (b - a) - covered
    }

    /// Bytes `[a, b)` would add.
    fn uncovered(&self, a: u64, b: u64) -> u64 {
        let covered: u64 = self
            .0
            .range(..b)
            .rev()
            .take_while(|(_, e)| **e > a)
            .map(|(s, e)| (*e).min(b) - (*s).max(a))
            .sum();
        (b - a) - covered
    }

    /// Drops everything at or past `x`; returns the bytes dropped.
    fn cut(&mut self, x: u64) -> u64 {
        let mut dropped = 0;
        let past: Vec<(u64, u64)> = self
            .0
            .iter()
            .rev()
            .take_while(|(_, e)| **e > x)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in past {
            self.0.remove(&s);
            if s < x {
                self.0.insert(s, x);
                dropped += e - x;
            } else {
                dropped += e - s;
            }
        }
        dropped
    }

    /// The parts of `[a, b)` covered, in order.
    fn within(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        let first = self
            .0
            .range(..=a)
            .next_back()
            .filter(|(_, e)| **e > a)
            .map(|(s, _)| *s)
            .unwrap_or(a);
        self.0
            .range(first..b)
            .map(|(s, e)| ((*s).max(a), (*e).min(b)))
            .filter(|(s, e)| s < e)
            .collect()
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }
}

/// The bound on written, uncommitted data of one mount's open files, and where it goes.
pub struct SpillBudget {
    used: AtomicU64,
    max: u64,
    dir: Option<PathBuf>,
}

impl SpillBudget {
    /// A budget of `max` bytes in `dir` (the system's temporary directory if `None`).
    pub fn new(max: u64, dir: Option<PathBuf>) -> Arc<SpillBudget> {
        Arc::new(SpillBudget {
            used: AtomicU64::new(0),
            max,
            dir,
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn reserve(&self, n: u64) -> Result<()> {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            if cur.saturating_add(n) > self.max {
                return Err(FsError::NoSpace);
            }
            match self.used.compare_exchange_weak(
                cur,
                cur + n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    metrics::gauge!("lf_lffs_spill_bytes").increment(n as f64);
                    return Ok(());
                }
                Err(now) => cur = now,
            }
        }
    }

    fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::Relaxed);
        metrics::gauge!("lf_lffs_spill_bytes").decrement(n as f64);
    }
}

/// Written bytes and which of their ranges hold data.
struct Spill {
    bytes: SpillBytes,
    ranges: Ranges,
    budget: Arc<SpillBudget>,
}

/// Written bytes of a file up to this offset stay in memory.
const IN_MEMORY_SPILL: u64 = 64 << 10;

/// Where written bytes are: in memory while they all lie below [`IN_MEMORY_SPILL`]
/// (a config file or any small file: creating and deleting a temporary file for each
/// added journal work to the fsync that follows), else in an unlinked temporary file
/// (gone with the process, even after `kill -9`).
enum SpillBytes {
    Mem(Vec<u8>),
    File(File),
}

impl Spill {
    fn read_at(&self, out: &mut [u8], offset: u64) -> Result<()> {
        match &self.bytes {
            SpillBytes::Mem(v) => {
                // Ranges lie within what was written, so within `v`.
                let s = offset as usize;
                out.copy_from_slice(&v[s..s + out.len()]);
                Ok(())
            }
            SpillBytes::File(f) => f.read_exact_at(out, offset).map_err(io),
        }
    }

    fn write_at(&mut self, data: &[u8], offset: u64) -> Result<()> {
        let end = offset + data.len() as u64;
        if let SpillBytes::Mem(v) = &mut self.bytes {
            if end <= IN_MEMORY_SPILL {
                if v.len() < end as usize {
                    v.resize(end as usize, 0);
                }
                v[offset as usize..end as usize].copy_from_slice(data);
                return Ok(());
            }
            let file = match &self.budget.dir {
                Some(d) => tempfile::tempfile_in(d),
                None => tempfile::tempfile(),
            }
            .map_err(io)?;
            file.write_all_at(v, 0).map_err(io)?;
            self.bytes = SpillBytes::File(file);
        }
        match &self.bytes {
            SpillBytes::File(f) => f.write_all_at(data, offset).map_err(io),
            SpillBytes::Mem(_) => unreachable!("moved to a file above"),
        }
    }

    fn set_len(&mut self, size: u64) -> Result<()> {
        match &mut self.bytes {
            SpillBytes::Mem(v) => {
                v.truncate(size as usize);
                Ok(())
            }
            SpillBytes::File(f) => f.set_len(size).map_err(io),
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        self.budget.release(self.ranges.total());
    }
}

fn io(e: std::io::Error) -> FsError {
    // (tempfile wraps its errors: the kind survives, the OS number may not.)
    if matches!(e.raw_os_error(), Some(28 | 122))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    {
        // The disk holding the spill files is full: ENOSPC, as a full disk gives, and
        // a line for the operator (at most one per 10 s: every write fails alike).
        static LOGGED: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = LOGGED.load(Ordering::Relaxed);
        if now >= last + 10
            && LOGGED
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!("lffs: write refused, the node's disk is full: spill file: {e}");
        }
        return FsError::NoSpace;
    }
    FsError::Store(crate::StoreError::Failed(format!("spill file: {e}")))
}

/// Chunks of a file cut ahead of its commit (see `fs::cut_ahead`): bytes `[0, upto)`
/// are cut, into `refs`, exactly as cutting the whole file would cut them (a cut point
/// depends only on the bytes since the one before it).
#[derive(Default)]
struct CutAhead {
    upto: u64,
    refs: Vec<ChunkRef>,
    /// The record size the chunks were cut for.
    max_value: usize,
    /// Bumped whenever written bytes change or go (an overwrite, a truncation, a
    /// commit): a job that read older bytes is dropped.
    epoch: u64,
    /// A job is out.
    busy: bool,
    /// A commit waits for the job out: no other starts (a writer that keeps ahead
    /// would otherwise hold the commit off for as long as it writes).
    held: bool,
    /// A job failed (the store refused a part): the commit does it all.
    off: bool,
}

/// A cutting job: the written bytes `[from, to)` of a file, in `file` (a duplicate of
/// the spill file's descriptor, read without the content's lock).
pub struct CutJob {
    /// First byte to cut: a cut point.
    pub from: u64,
    /// End of the bytes to cut (the last chunk up to it is left for later).
    pub to: u64,
    file: File,
    epoch: u64,
}

impl CutJob {
    /// The job's bytes.
    pub fn read(&self) -> Result<Vec<u8>> {
        let mut b = vec![0u8; (self.to - self.from) as usize];
        self.file.read_exact_at(&mut b, self.from).map_err(io)?;
        Ok(b)
    }
}

/// An open file's content.
pub struct Content {
    base: Base,
    /// Bytes of `base` still part of the file (a truncation hides the rest for good).
    base_len: u64,
    len: u64,
    spill: Option<Spill>,
    budget: Arc<SpillBudget>,
    /// The last chunk fetched, by index: sequential reads fetch each chunk once.
    cached: Option<(usize, Vec<u8>)>,
    cut: CutAhead,
}

impl Content {
    /// The content of a stored version.
    pub fn new(base: Base, budget: Arc<SpillBudget>) -> Content {
        let len = base.len();
        Content {
            base,
            base_len: len,
            len,
            spill: None,
            budget,
            cached: None,
            cut: CutAhead::default(),
        }
    }

    /// A job cutting at most `most` of the written bytes not cut yet, if at least
    /// `least` wait, no job is out, and the file is written from its start with no
    /// hole (a new or truncated file written in order: a big copy, a download, a log):
    /// other files are cut at their commit.
    pub fn cut_job(&mut self, max_value: usize, least: u64, most: u64) -> Option<CutJob> {
        let c = &self.cut;
        if c.busy || c.held || c.off || self.base_len != 0 || self.len - c.upto < least {
            return None;
        }
        let Some(Spill {
            bytes: SpillBytes::File(f),
            ranges,
            ..
        }) = &self.spill
        else {
            return None;
        };
        if ranges.0.len() != 1 || ranges.0.first_key_value() != Some((&0, &self.len)) {
            return None;
        }
        if c.upto > 0 && c.max_value != max_value {
            return None;
        }
        let file = f.try_clone().ok()?;
        self.cut.busy = true;
        self.cut.max_value = max_value;
        Some(CutJob {
            from: self.cut.upto,
            to: self.len.min(self.cut.upto + most),
            file,
            epoch: self.cut.epoch,
        })
    }

    /// Takes a job's outcome: the chunks it cut and where they end, or `None` if it
    /// failed. Dropped if the bytes changed meanwhile.
    pub fn cut_done(&mut self, job: CutJob, cut: Option<(Vec<ChunkRef>, u64)>) {
        self.cut.busy = false;
        match cut {
            None => self.cut.off = true,
            Some((refs, upto)) if job.epoch == self.cut.epoch && job.from == self.cut.upto => {
                self.cut.refs.extend(refs);
                self.cut.upto = upto;
            }
            Some(_) => {}
        }
    }

    /// Whether nothing of the stored version is left (a new file, or one truncated
    /// to nothing since it was opened).
    pub fn started_empty(&self) -> bool {
        self.base_len == 0
    }

    /// Whether a cutting job is out.
    pub fn cut_busy(&self) -> bool {
        self.cut.busy
    }

    /// Forgets the job out: it was not run (a later write or the commit cuts it).
    pub fn cut_abandoned(&mut self) {
        self.cut.busy = false;
    }

    /// The bytes cut ahead so far for records of `max_value` bytes: `[0, upto)`, into
    /// the chunks returned.
    pub fn cut_so_far(&self, max_value: usize) -> (u64, &[ChunkRef]) {
        if self.cut.max_value != max_value {
            return (0, &[]);
        }
        (self.cut.upto, &self.cut.refs)
    }

    /// Records the chunks a commit cut: all but the last (which later writes may
    /// extend) stay valid until the bytes under them change.
    pub fn commit_cut(&mut self, max_value: usize, mut refs: Vec<ChunkRef>) {
        self.cut.epoch += 1;
        let last = refs.pop();
        self.cut.upto = self.len - last.map_or(0, |r| r.len as u64);
        self.cut.refs = refs;
        self.cut.max_value = max_value;
        self.cut.off = false;
    }

    /// Forgets the cut chunks that bytes from `offset` on decide (they change). A cut
    /// point is decided by the bytes before it and the first byte after it: a chunk
    /// ending at `offset` goes too.
    fn uncut(&mut self, offset: u64) {
        if offset < self.len {
            self.cut.epoch += 1;
        }
        if offset <= self.cut.upto {
            let mut end = 0;
            let keep = self
                .cut
                .refs
                .iter()
                .take_while(|r| {
                    end += r.len as u64;
                    end < offset
                })
                .count();
            self.cut.refs.truncate(keep);
            self.cut.upto = self.cut.refs.iter().map(|r| r.len as u64).sum();
        }
    }

    /// Keeps jobs from starting while a commit waits for the one out (`true`), or lets
    /// them start again.
    pub fn hold_cuts(&mut self, held: bool) {
        self.cut.held = held;
    }

    /// Forgets a job that ended without handing its outcome back (it panicked): no
    /// more jobs for this content, the commit cuts it all.
    pub fn cut_lost(&mut self) {
        self.cut.busy = false;
        self.cut.off = true;
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bytes `[offset, offset + size)`, clamped to the size.
    pub fn read<S: Store>(&mut self, store: &S, offset: u64, size: u64) -> Result<Vec<u8>> {
        self.read_with(store, offset, size, &mut Vec::new())
    }

    /// The stored chunks a read of `[offset, offset + size)` would fetch, the one
    /// cached aside: the caller fetches them ([`load_chunk`]) without holding the
    /// lock that guards this content, then hands them to [`Content::read_with`].
    /// Readers of one file then fetch in parallel: fetching (an index lookup, a record
    /// read, unmasking, a hash check) is most of a read's time when the file is not in
    /// the kernel's cache, and the kernel sends a sequential reader's readahead as
    /// several requests at once. Empty when the file was written since it was opened
    /// (such reads are rare and stay as they were).
    pub fn chunks_to_fetch(&self, offset: u64, size: u64) -> Vec<ChunkRef> {
        let Base::Chunked { refs, ends } = &self.base else {
            return Vec::new();
        };
        if self.spill.is_some() {
            return Vec::new();
        }
        let a = offset.min(self.base_len);
        let b = a.saturating_add(size).min(self.base_len);
        if a >= b {
            return Vec::new();
        }
        // The chunks holding bytes `a` and `b - 1` (b <= base_len = the last end).
        let first = ends.partition_point(|e| *e <= a);
        let last = ends.partition_point(|e| *e < b);
        (first..=last)
            .filter(|i| self.cached.as_ref().is_none_or(|(c, _)| c != i))
            .map(|i| refs[i])
            .collect()
    }

    /// [`Content::read`], taking the chunks it needs from `fetched` (chunks with
    /// their data, from [`Content::chunks_to_fetch`]) before the store.
    pub fn read_with<S: Store>(
        &mut self,
        store: &S,
        offset: u64,
        size: u64,
        fetched: &mut Vec<(ChunkRef, Vec<u8>)>,
    ) -> Result<Vec<u8>> {
        let a = offset.min(self.len);
        let b = a.saturating_add(size).min(self.len);
        // Filled in order, not zeroed first (zeroing was a tenth of a cold read): the
        // stored version, the written ranges, zeros where neither reaches (past a
        // stored version that a truncate lengthened).
        let mut out = Vec::with_capacity((b - a) as usize);
        let written = self
            .spill
            .as_ref()
            .map(|s| s.ranges.within(a, b))
            .unwrap_or_default();
        let mut at = a;
        for (s, e) in written.iter().copied().chain([(b, b)]) {
            // The gap before this written range comes from the stored version.
            let gap_end = s.min(self.base_len);
            if at < gap_end {
                self.read_base(store, at, gap_end - at, &mut out, fetched)?;
            }
            out.resize((s - a) as usize, 0);
            if s < e {
                let spill = self.spill.as_ref().expect("ranges come from the spill");
                out.resize((e - a) as usize, 0);
                spill.read_at(&mut out[(s - a) as usize..], s)?;
            }
            at = e;
        }
        Ok(out)
    }

    /// Appends bytes `[offset, offset + len)` of the stored version to `out`.
    fn read_base<S: Store>(
        &mut self,
        store: &S,
        offset: u64,
        len: u64,
        out: &mut Vec<u8>,
        fetched: &mut Vec<(ChunkRef, Vec<u8>)>,
    ) -> Result<()> {
        let (refs, ends) = match &self.base {
            Base::Inline(d) => {
                let s = offset as usize;
                out.extend_from_slice(&d[s..s + len as usize]);
                return Ok(());
            }
            Base::Chunked { refs, ends } => (refs, ends),
        };
        let end = offset + len;
        let mut i = ends.partition_point(|e| *e <= offset);
        let mut at = offset;
        while at < end {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            if self.cached.as_ref().is_none_or(|(c, _)| *c != i) {
                let data = match fetched.iter().position(|(r, _)| *r == refs[i]) {
                    Some(k) => fetched.swap_remove(k).1,
                    None => load_chunk(store, &refs[i])?,
                };
                self.cached = Some((i, data));
            }
            let data = &self.cached.as_ref().expect("just cached").1;
            let stop = ends[i].min(end);
            out.extend_from_slice(&data[(at - start) as usize..(stop - start) as usize]);
            at = stop;
            i += 1;
        }
        Ok(())
    }

    /// Writes `data` at `offset` (into the spill; refused with ENOSPC when the
    /// mount's budget is spent).
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset + data.len() as u64;
        self.uncut(offset);
        let spill = self.spill.get_or_insert_with(|| Spill {
            bytes: SpillBytes::Mem(Vec::new()),
            ranges: Ranges::default(),
            budget: self.budget.clone(),
        });
        let add = spill.ranges.uncovered(offset, end);
        self.budget.reserve(add)?;
        if let Err(e) = spill.write_at(data, offset) {
            self.budget.release(add);
            return Err(e);
        }
        spill.ranges.insert(offset, end);
        self.len = self.len.max(end);
        Ok(())
    }

    /// Sets the size: shorter drops what was past it, longer reads as zeros.
    pub fn truncate(&mut self, size: u64) -> Result<()> {
        self.uncut(size.min(self.len));
        if size < self.len {
            if let Some(s) = self.spill.as_mut() {
                let dropped = s.ranges.cut(size);
                s.budget.release(dropped);
                s.set_len(size)?;
            }
            self.base_len = self.base_len.min(size);
        }
        self.len = size;
        Ok(())
    }

    /// A reader of the content from `pos` to the end (for committing it).
    pub fn reader<'a, S: Store>(&'a mut self, store: &'a S, pos: u64) -> ContentReader<'a, S> {
        ContentReader {
            content: self,
            store,
            pos,
            failed: None,
        }
    }
}

/// Reads a [`Content`] in order; a failure is kept in `failed` (the `io::Error`
/// handed to the chunker only says that something failed).
pub struct ContentReader<'a, S: Store> {
    content: &'a mut Content,
    store: &'a S,
    pos: u64,
    /// The error that stopped the reader.
    pub failed: Option<FsError>,
}

impl<S: Store> Read for ContentReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(1 << 20);
        match self.content.read(self.store, self.pos, n) {
            Ok(d) => {
                buf[..d.len()].copy_from_slice(&d);
                self.pos += d.len() as u64;
                Ok(d.len())
            }
            Err(e) => {
                let msg = e.to_string();
                self.failed = Some(e);
                Err(std::io::Error::other(msg))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_count_and_cut() {
        let mut r = Ranges::default();
        assert_eq!(r.insert(10, 20), 10);
        assert_eq!(r.insert(15, 25), 5);
        assert_eq!(r.insert(30, 40), 10);
        assert_eq!(r.uncovered(0, 50), 50 - 25);
        assert_eq!(r.insert(20, 30), 5);
        assert_eq!(r.0.len(), 1);
        assert_eq!(r.within(0, 100), vec![(10, 40)]);
        assert_eq!(r.within(12, 14), vec![(12, 14)]);
        assert_eq!(r.insert(50, 60), 10);
        assert_eq!(r.within(35, 55), vec![(35, 40), (50, 55)]);
        assert_eq!(r.cut(55), 5);
        assert_eq!(r.cut(15), 25 + 5);
        assert_eq!(r.total(), 5);
    }

    /// Written bytes stay in memory below 64 KiB and move to a temporary file past it,
    /// and reads, overwrites and truncation give the same bytes either way.
    #[test]
    fn spill_moves_from_memory_to_a_file_and_keeps_the_bytes() {
        let budget = SpillBudget::new(1 << 30, Some(std::env::temp_dir()));
        let base: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut c = Content::new(Base::Inline(base.clone()), budget.clone());
        let mut model = base;
        let write = |c: &mut Content, model: &mut Vec<u8>, at: usize, data: &[u8]| {
            c.write(at as u64, data).unwrap();
            if model.len() < at + data.len() {
                model.resize(at + data.len(), 0);
            }
            model[at..at + data.len()].copy_from_slice(data);
        };
        write(&mut c, &mut model, 10, b"small");
        assert!(matches!(
            c.spill.as_ref().unwrap().bytes,
            SpillBytes::Mem(_)
        ));
        // A hole from 5,000 to 60,000 that reads as zeros.
        write(&mut c, &mut model, 60_000, &[7; 1000]);
        assert!(matches!(
            c.spill.as_ref().unwrap().bytes,
            SpillBytes::Mem(_)
        ));
        let owner = lf_record::OwnerSecret::from_scalar_bytes(&[5; 48]).unwrap();
        let store = crate::store::MemStore::new(owner.public(), 1000);
        assert_eq!(c.read(&store, 0, 1 << 20).unwrap(), model);
        // Past 64 KiB: to a file, what was in memory with it.
        write(&mut c, &mut model, 70_000, &[9; 3000]);
        assert!(matches!(
            c.spill.as_ref().unwrap().bytes,
            SpillBytes::File(_)
        ));
        write(&mut c, &mut model, 8, b"overwrite");
        assert_eq!(c.read(&store, 0, 1 << 20).unwrap(), model);
        assert_eq!(c.read(&store, 59_990, 30).unwrap(), model[59_990..60_020]);
        c.truncate(65_000).unwrap();
        model.truncate(65_000);
        assert_eq!(c.read(&store, 0, 1 << 20).unwrap(), model);
        // Every window, across the stored bytes, the written ranges and the hole.
        for (at, len) in [
            (0, 7),
            (5, 20),
            (4990, 30),
            (4999, 2),
            (59_999, 3),
            (64_990, 50),
        ] {
            let end = (at + len).min(model.len());
            assert_eq!(
                c.read(&store, at as u64, len as u64).unwrap(),
                model[at..end],
                "read of {len} at {at}"
            );
        }
        // "small", the 1,000 bytes, the 4 bytes "overwrite" added; the 3,000 cut.
        assert_eq!(budget.used(), 5 + 1000 + 4);
        // Shorter than the stored version, then longer: zeros past the cut.
        c.truncate(3000).unwrap();
        c.truncate(9000).unwrap();
        model.truncate(3000);
        model.resize(9000, 0);
        assert_eq!(c.read(&store, 0, 1 << 20).unwrap(), model);
        assert_eq!(c.read(&store, 2990, 20).unwrap(), model[2990..3010]);
        drop(c);
        assert_eq!(budget.used(), 0);
    }

    /// A cutting job's outcome is dropped when the bytes it read change while it runs;
    /// a write or truncation below what was cut keeps only the chunks whose cut point
    /// the changed bytes do not decide (a cut point is decided by the bytes before it
    /// and the first one after it).
    #[test]
    fn cut_jobs_are_dropped_or_trimmed_when_the_bytes_under_them_change() {
        let budget = SpillBudget::new(1 << 30, Some(std::env::temp_dir()));
        let mut c = Content::new(Base::Inline(Vec::new()), budget);
        let max = 60_000;
        c.write(0, &[1; 300_000]).unwrap();
        let job = c.cut_job(max, 100_000, 1 << 20).unwrap();
        assert_eq!((job.from, job.to), (0, 300_000));
        assert!(c.cut_job(max, 1, 1 << 20).is_none(), "one job at a time");
        let r = |n: u8| ChunkRef {
            id: [n; 32],
            len: 10_000,
        };
        // A write into the job's bytes while it runs: its outcome is dropped.
        c.write(1000, &[2]).unwrap();
        c.cut_done(job, Some((vec![r(1), r(2), r(3)], 30_000)));
        assert_eq!(c.cut_so_far(max).0, 0);
        let job = c.cut_job(max, 100_000, 1 << 20).unwrap();
        c.cut_done(job, Some((vec![r(1), r(2), r(3)], 30_000)));
        assert_eq!(c.cut_so_far(max), (30_000, &[r(1), r(2), r(3)][..]));
        // A commit waiting: no job starts.
        c.hold_cuts(true);
        assert!(c.cut_job(max, 1, 1 << 20).is_none());
        c.hold_cuts(false);
        // Appending leaves what was cut alone.
        c.write(300_000, &[3; 10]).unwrap();
        assert_eq!(c.cut_so_far(max).0, 30_000);
        // The byte just past the last cut chunk decided its cut point: that chunk goes.
        c.write(30_000, &[4]).unwrap();
        assert_eq!(c.cut_so_far(max), (20_000, &[r(1), r(2)][..]));
        c.truncate(15_000).unwrap();
        assert_eq!(c.cut_so_far(max), (10_000, &[r(1)][..]));
        // Chunks cut for another record size do not count.
        assert_eq!(c.cut_so_far(1000).0, 0);
    }

    #[test]
    fn manifest_bound_follows_the_chunker_minimum() {
        // 60,000-byte records: chunks of 2 KiB at least, so a quarter of that.
        assert_eq!(min_chunk(60_000), 512);
        assert_eq!(
            manifest_bound(64 << 20, 60_000),
            ((64 << 20) / 512 + 2) * 36
        );
        assert_eq!(min_chunk(100), 64);
    }
}
