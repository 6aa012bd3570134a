//! The LFFS commit queue: what FUSE writes become durable in a local journal at once
//! and are published as records (links, proof of work, signature) in the background.
//!
//! Steps of a write (`submit`): (1) the batch is appended to the journal
//! (`crate::lffs_glue::journal`, `<home>/lffs-journal/`) and synced, sharing the sync with
//! concurrent writers; (2) it enters the in-memory overlay, so readers on this node see
//! it; (3) the worker thread turns each put into a record, pays its proof of work
//! (cancelled on shutdown) and hands it to `Node::accept`; (4) once every put of the
//! batch is in the store, a `Done` entry is appended and the overlay entries of that
//! batch dropped. At start, batches without `Done` are replayed into the overlay and
//! queue (and `<seq>.json` files of the older one-file-per-batch journal, if any).
//!
//! Values of more than [`IN_MEMORY_VALUE`] bytes (file chunks) stay in the journal
//! only: the overlay and the queue hold where they are, so a big file waiting for
//! publication costs disk, not memory.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use lf_record::OwnerSecret;
use lffs::{Put, Version};
use serde::{Deserialize, Serialize};

use crate::common::workers::{self, Ctx};
use crate::lffs_glue::journal::{Entry, Journal, ValueAt};
use crate::node::{Node, now};

#[derive(Serialize, Deserialize)]
struct JournalPut {
    name: String,
    ordinal: u64,
    mask: String,
    /// The value in base64, in batches written before values had frames of their
    /// own; absent now: the value is the batch's next value frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

/// Values up to this size are kept in memory while they wait; bigger ones are read
/// back from the journal when needed.
const IN_MEMORY_VALUE: usize = 4096;

/// A waiting value: in memory, or where it is in the journal.
#[derive(Clone)]
enum Val {
    Mem(Arc<Vec<u8>>),
    Disk(ValueAt),
}

impl Val {
    fn len(&self) -> usize {
        match self {
            Val::Mem(v) => v.len(),
            Val::Disk(at) => at.len as usize,
        }
    }
}

/// Which record a waiting put writes. Chunks (selector `lffs-chunk:` ‖ id, ordinal 0,
/// masked with the id) are most of what waits and are named by their id alone: a big
/// file's hundred thousand chunks cost 32 bytes of key each, not two allocations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PutKey {
    Chunk([u8; 32]),
    Other {
        name: Vec<u8>,
        ordinal: u64,
        mask: Vec<u8>,
    },
}

impl PutKey {
    fn of(name: Vec<u8>, ordinal: u64, mask: Vec<u8>) -> PutKey {
        if ordinal == 0
            && let Ok(id) = <[u8; 32]>::try_from(&mask[..])
            && name == lffs::layout::chunk_selector(&id)
        {
            return PutKey::Chunk(id);
        }
        PutKey::Other {
            name,
            ordinal,
            mask,
        }
    }

    fn name(&self) -> Vec<u8> {
        match self {
            PutKey::Chunk(id) => lffs::layout::chunk_selector(id),
            PutKey::Other { name, .. } => name.clone(),
        }
    }

    fn ordinal(&self) -> u64 {
        match self {
            PutKey::Chunk(_) => 0,
            PutKey::Other { ordinal, .. } => *ordinal,
        }
    }

    fn mask(&self) -> Vec<u8> {
        match self {
            PutKey::Chunk(id) => id.to_vec(),
            PutKey::Other { mask, .. } => mask.clone(),
        }
    }
}

/// One waiting put.
struct QueuedPut {
    key: PutKey,
    value: Val,
}

/// A waiting version as readers see it, its value not yet read.
#[derive(Clone)]
struct Pending {
    seq: u64,
    owner: lf_record::Owner,
    timestamp: u64,
    value: Val,
}

/// A journal file (JSON, mode 0600: it holds the owner key that will sign).
#[derive(Serialize, Deserialize)]
struct JournalFile {
    owner: String,
    created: u64,
    puts: Vec<JournalPut>,
}

struct Batch {
    /// Journal segment holding it.
    segment: u64,
    /// Where its journal append ends: it is published only once the journal is
    /// durable that far (0: durable when submitted, or replayed).
    end: u64,
    /// When it was submitted.
    queued: Instant,
    owner: OwnerSecret,
    created: u64,
    puts: Vec<QueuedPut>,
}

/// Waiting versions by record: chunks apart, so a directory listing scans only entries.
#[derive(Default)]
struct Overlay {
    chunks: HashMap<[u8; 32], Pending>,
    entries: HashMap<(Vec<u8>, u64, Vec<u8>), Pending>,
}

impl Overlay {
    fn get(&self, key: &PutKey) -> Option<&Pending> {
        match key {
            PutKey::Chunk(id) => self.chunks.get(id),
            PutKey::Other {
                name,
                ordinal,
                mask,
            } => self.entries.get(&(name.clone(), *ordinal, mask.clone())),
        }
    }

    fn insert(&mut self, key: PutKey, p: Pending) {
        match key {
            PutKey::Chunk(id) => {
                self.chunks.insert(id, p);
            }
            PutKey::Other {
                name,
                ordinal,
                mask,
            } => {
                self.entries.insert((name, ordinal, mask), p);
            }
        }
    }

    fn forget(&mut self, seq: u64) {
        self.chunks.retain(|_, p| p.seq != seq);
        self.entries.retain(|_, p| p.seq != seq);
    }
}

#[derive(Default)]
struct State {
    next_seq: u64,
    batches: BTreeMap<u64, Arc<Batch>>,
    /// Value bytes and records of `batches` (admitted, not yet published).
    pending: Load,
    overlay: Overlay,
    /// Timestamp last given to each entry published lately (chunks never get a second
    /// version and are not kept); pruned once `now()` has passed it.
    last_ts: HashMap<(Vec<u8>, u64), u64>,
    /// The proof of work being paid now, if any.
    pow: Option<PowState>,
    /// What changed readers' view, and who changed it (`others_changes`).
    changes: Changes,
}

/// Counts behind [`CommitQueue::others_changes`].
#[derive(Default)]
struct Changes {
    /// Batches submitted.
    submitted: u64,
    /// Of those, by submitter.
    by: HashMap<u64, u64>,
    /// Publications of batches holding entries.
    published: u64,
}

/// The record whose proof of work the worker is paying now.
struct PowState {
    name: Vec<u8>,
    started: Instant,
    tried: u64,
    expected: f64,
}

/// Proof of work in progress, for status pages.
#[derive(Clone, Debug)]
pub struct PowProgress {
    /// Selector name of the record (masked names are shown as they are stored).
    pub name: String,
    /// Seconds spent on it so far.
    pub elapsed: f64,
    /// Equi-X challenges tried so far.
    pub tried: u64,
    /// Challenges expected on average for this record's effort.
    pub expected: f64,
}

/// Queue depth for status pages.
#[derive(Clone, Debug, Default)]
pub struct QueueStats {
    /// Records waiting.
    pub records: usize,
    /// Value bytes waiting.
    pub bytes: u64,
    /// Bound of `bytes` for new writes.
    pub max_bytes: u64,
    /// Bound of `records` for new writes.
    pub max_records: u64,
    /// Batches (one per close, fsync, create, rename, ...) waiting.
    pub batches: usize,
    /// Age of the oldest batch, seconds.
    pub oldest_age: u64,
    /// The proof of work being paid now.
    pub pow: Option<PowProgress>,
}

/// How much waits for publication: the overlay holds these values in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Value bytes.
    pub bytes: u64,
    /// Records.
    pub records: u64,
}

impl Load {
    fn of(lens: impl ExactSizeIterator<Item = usize>) -> Load {
        let records = lens.len() as u64;
        Load {
            bytes: lens.map(|n| n as u64).sum(),
            records,
        }
    }
}

/// Records waiting at most (many tiny files weigh more than their bytes).
const MAX_PENDING_RECORDS: u64 = 1 << 16;

/// Whether a batch of `add` may join `pending` under the bound `max_bytes`: while the
/// queue is below its bound, any batch enters, however big (a file up to the mount's
/// `max_file_size` can always be written); once it is at or over the bound, none does.
/// So what waits stays below the bound plus one batch.
pub fn admits(pending: Load, add: Load, max_bytes: u64) -> bool {
    let _ = add;
    pending.bytes < max_bytes && pending.records < MAX_PENDING_RECORDS
}

/// A write refused because the queue is full (`lffs` turns it into ENOSPC).
#[derive(Debug, thiserror::Error)]
#[error(
    "the LFFS commit queue is full ({} records of at most {}, {} MiB of at most {} MiB \
     waiting for proof of work): try again once it drains (see lf status)",
    pending.records, MAX_PENDING_RECORDS, pending.bytes >> 20, max_bytes >> 20
)]
pub struct QueueFull {
    /// What was waiting.
    pub pending: Load,
    /// The bound.
    pub max_bytes: u64,
}

/// Most records the worker builds before storing them together (and the most it takes
/// from the queue at once, a single bigger batch aside).
const PUBLISH_GROUP: usize = 256;

/// A publication that starts within this of the previous one's end is part of a
/// stream of changes (a loop writing small files with an fsync each): it first waits
/// [`STREAM_LINGER`], so that one store transaction and one `records.lf` flush take
/// many changes. Without it every small file cost a second disk flush in the
/// background, which the writer's next journal flush queued behind. A change after a
/// quiet moment is published at once.
const STREAM_GAP: Duration = Duration::from_millis(100);
const STREAM_LINGER: Duration = Duration::from_millis(25);

/// A batch the journal holds but has not flushed yet (a create, or chunks of a big
/// file cut while it is written) is published once a flush covers it (its writer's
/// fsync or close, or anyone's), or after this long: publishing chunks while their file
/// is still being written took a core from the writer (signing is most of the work).
const LAZY_WAIT: Duration = Duration::from_secs(5);

/// Longest the worker sleeps while the oldest batch waits for a flush (a flush wakes
/// it; this is for stopping).
const LAZY_POLL: Duration = Duration::from_millis(500);

/// Fewest records a group must have to be built on several threads (a thread per
/// small change would cost more than it saves).
const PARALLEL_BUILD_MIN: usize = 8;

/// The queue; one per node, shared by every mount.
pub struct CommitQueue {
    node: Arc<Node>,
    journal: Journal,
    /// Bound of `State::pending.bytes` for new batches.
    max_pending_bytes: u64,
    state: Mutex<State>,
    wake: Condvar,
    /// Each owner's key as PEM, for journal entries: encoding it derives the public key
    /// (a P-384 scalar multiplication, about 0.4 ms), which a small file paid twice on
    /// the FUSE thread. A node signs for a handful of owners (its mounts').
    pems: Mutex<HashMap<lf_record::Owner, Arc<str>>>,
}

impl CommitQueue {
    /// Opens the journal directory and replays what a previous run left (all of it,
    /// whatever the bound: it was acknowledged). New batches are refused while more
    /// than `max_pending_bytes` wait.
    pub fn open(
        node: Arc<Node>,
        home: &std::path::Path,
        max_pending_bytes: u64,
    ) -> anyhow::Result<Arc<Self>> {
        let dir = home.join("lffs-journal");
        let (journal, entries) = Journal::open::<JournalFile>(&dir)?;
        let mut pending: BTreeMap<u64, (u64, JournalFile, Vec<ValueAt>)> = BTreeMap::new();
        let mut next_seq = 1;
        for (segment, e, values) in entries {
            match e {
                Entry::Batch(seq, f) => {
                    next_seq = next_seq.max(seq + 1);
                    pending.insert(seq, (segment, f, values));
                }
                Entry::Done(seq) => {
                    pending.remove(&seq);
                }
            }
        }
        // Batches of the older journal (one JSON file each): moved into the log.
        let mut legacy: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                let seq = p.file_stem()?.to_str()?.parse::<u64>().ok()?;
                (p.extension()? == "json").then_some((seq, p))
            })
            .collect();
        legacy.sort();
        for (_, path) in &legacy {
            let f: JournalFile = std::fs::read(path)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice(&b)?))
                .with_context(|| format!("journal file {} is unreadable", path.display()))?;
            let seq = next_seq;
            next_seq += 1;
            let segment = journal.append_durable(&Entry::Batch(seq, &f))?;
            pending.insert(seq, (segment, f, Vec::new()));
        }
        for (_, path) in &legacy {
            let _ = std::fs::remove_file(path);
        }
        let mut state = State {
            next_seq,
            ..State::default()
        };
        for (seq, (segment, f, values)) in pending {
            let batch = decode(segment, f, values)
                .with_context(|| format!("LFFS journal batch {seq} is unreadable"))?;
            for p in &batch.puts {
                let v = Pending {
                    seq,
                    owner: batch.owner.public(),
                    timestamp: batch.created,
                    value: p.value.clone(),
                };
                state.overlay.insert(p.key.clone(), v);
            }
            let load = Load::of(batch.puts.iter().map(|p| p.value.len()));
            state.pending.bytes += load.bytes;
            state.pending.records += load.records;
            state.batches.insert(seq, Arc::new(batch));
        }
        if !state.batches.is_empty() {
            tracing::info!(
                batches = state.batches.len(),
                dir = %dir.display(),
                "replaying the LFFS commit journal"
            );
        }
        Ok(Arc::new(CommitQueue {
            node,
            journal,
            max_pending_bytes,
            state: Mutex::new(state),
            wake: Condvar::new(),
            pems: Mutex::default(),
        }))
    }

    /// `owner`'s key as PEM (see `pems`).
    fn pem_of(&self, owner: &OwnerSecret) -> Arc<str> {
        let mut pems = self.pems.lock().unwrap_or_else(|e| e.into_inner());
        if pems.len() >= 64 && !pems.contains_key(&owner.public()) {
            pems.clear();
        }
        pems.entry(owner.public())
            .or_insert_with(|| owner.to_pem().into())
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every batch submitted so far durable (those submitted not `durable`).
    pub fn sync(&self) -> anyhow::Result<()> {
        if !self.journal.unsynced() {
            // Nothing lazy waits for a flush: no worker to wake (a close after an
            // fsync, every small file's).
            return Ok(());
        }
        self.journal.sync()?;
        // What waited for it may be published now. The lock first: the worker looks
        // at the journal and waits under it, so the wake-up cannot fall in between.
        drop(self.lock());
        self.wake.notify_all();
        Ok(())
    }

    /// Whether a lazily submitted batch is not yet durable.
    pub fn unsynced(&self) -> bool {
        self.journal.unsynced()
    }

    /// Whether a durable submit or a sync now would be long or wait (see
    /// [`Journal::flush_busy`]).
    pub fn flush_busy(&self) -> bool {
        self.journal.flush_busy()
    }

    /// Makes a batch durable and visible, then queues it for publication; refuses it
    /// with [`QueueFull`] (keeping nothing) when the queue is over its bound, unless
    /// `admitted` (a later part of a change whose first part was admitted: a big file
    /// is submitted in parts, and refusing its last part would strand the others).
    /// Not `durable`: visible at once, durable with the next durable submit or
    /// [`CommitQueue::sync`] (a create, which POSIX makes durable only with an fsync).
    /// Never waits for the worker.
    pub fn submit(
        &self,
        submitter: u64,
        owner: &OwnerSecret,
        puts: Vec<Put>,
        admitted: bool,
        durable: bool,
    ) -> anyhow::Result<()> {
        let load = Load::of(puts.iter().map(|p| p.value.len()));
        let created = now();
        let file = JournalFile {
            owner: self.pem_of(owner).to_string(),
            created,
            puts: puts
                .iter()
                .map(|p| JournalPut {
                    name: B64.encode(&p.name),
                    ordinal: p.ordinal,
                    mask: B64.encode(&p.mask),
                    value: None,
                })
                .collect(),
        };
        let seq = {
            let mut st = self.lock();
            if !admitted && !admits(st.pending, load, self.max_pending_bytes) {
                crate::common::metrics::error("commit_queue_full");
                let full = QueueFull {
                    pending: st.pending,
                    max_bytes: self.max_pending_bytes,
                };
                tracing::warn!("LFFS write refused: {full}");
                return Err(full.into());
            }
            // Reserved now, so that concurrent writers cannot all pass the check.
            st.pending.bytes += load.bytes;
            st.pending.records += load.records;
            st.next_seq += 1;
            st.next_seq - 1
        };
        // No lock held while syncing: readers of the overlay never wait for the disk.
        let values: Vec<&[u8]> = puts.iter().map(|p| &p.value[..]).collect();
        let entry = Entry::Batch(seq, &file);
        let appended = if durable {
            self.journal
                .append_durable_with(&entry, &values)
                .map(|(s, at)| (s, at, 0))
        } else {
            self.journal.append_lazy_with(&entry, &values)
        };
        let (segment, at, end) = match appended {
            Ok(s) => s,
            Err(e) => {
                let mut st = self.lock();
                st.pending.bytes -= load.bytes;
                st.pending.records -= load.records;
                return Err(e);
            }
        };
        let queued: Vec<QueuedPut> = puts
            .into_iter()
            .zip(at)
            .map(|(p, at)| QueuedPut {
                value: if p.value.len() <= IN_MEMORY_VALUE {
                    Val::Mem(Arc::new(p.value))
                } else {
                    Val::Disk(at)
                },
                key: PutKey::of(p.name, p.ordinal, p.mask),
            })
            .collect();
        let mut st = self.lock();
        for p in &queued {
            let v = Pending {
                seq,
                owner: owner.public(),
                timestamp: created,
                value: p.value.clone(),
            };
            // Concurrent submits may finish out of order: the later batch wins.
            if st.overlay.get(&p.key).is_none_or(|o| o.seq < seq) {
                st.overlay.insert(p.key.clone(), v);
            }
        }
        // Counted with the overlay change, under the same lock (`others_changes`).
        st.changes.submitted += 1;
        *st.changes.by.entry(submitter).or_insert(0) += 1;
        st.batches.insert(
            seq,
            Arc::new(Batch {
                segment,
                end,
                queued: Instant::now(),
                owner: owner.clone(),
                created,
                puts: queued,
            }),
        );
        drop(st);
        // Pending now: the worker's next rotation keeps the segment for it.
        self.journal.unpin(segment);
        self.node.bump_generation();
        self.wake.notify_all();
        Ok(())
    }

    /// A waiting value's bytes (read from the journal if they are not in memory).
    fn value(&self, v: &Val) -> anyhow::Result<Vec<u8>> {
        match v {
            Val::Mem(b) => Ok(b.to_vec()),
            Val::Disk(at) => self.journal.read(*at),
        }
    }

    /// The version readers see for a pending put. `None` if its value cannot be read:
    /// its segment is gone because it was published meanwhile (the store has it:
    /// callers read the overlay before the store), or the journal failed (logged).
    fn version(&self, p: Pending) -> Option<Version> {
        match self.value(&p.value) {
            Ok(value) => Some(Version {
                owner: p.owner,
                timestamp: p.timestamp,
                value,
            }),
            Err(e) => {
                if self.lock().batches.contains_key(&p.seq) {
                    tracing::error!(seq = p.seq, "cannot read a waiting LFFS value: {e:#}");
                }
                None
            }
        }
    }

    /// A pending value for exactly (name, ordinal, mask), if any.
    pub fn overlay_get(&self, name: &[u8], ordinal: u64, mask: &[u8]) -> Option<Version> {
        let key = PutKey::of(name.to_vec(), ordinal, mask.to_vec());
        let p = self.lock().overlay.get(&key).cloned()?;
        self.version(p)
    }

    /// Whether `owner` has a pending value for exactly (name, ordinal, mask); the
    /// value is not read.
    pub fn overlay_has(
        &self,
        owner: &lf_record::Owner,
        name: &[u8],
        ordinal: u64,
        mask: &[u8],
    ) -> bool {
        let key = PutKey::of(name.to_vec(), ordinal, mask.to_vec());
        self.lock()
            .overlay
            .get(&key)
            .is_some_and(|p| p.owner == *owner)
    }

    /// Pending values under `name` with `mask`.
    pub fn overlay_list(&self, name: &[u8], mask: &[u8]) -> Vec<(u64, Version)> {
        let found: Vec<(u64, Pending)> = self
            .lock()
            .overlay
            .entries
            .iter()
            .filter(|((n, _, m), _)| n == name && m == mask)
            .map(|((_, o, _), p)| (*o, p.clone()))
            .collect();
        found
            .into_iter()
            .filter_map(|(o, p)| Some((o, self.version(p)?)))
            .collect()
    }

    /// A count that changes whenever what readers see changes other than by the
    /// batches `submitter` submits: another submitter's batch, or a publication of
    /// entries (a stored version may rank otherwise than a waiting one, and a waiting
    /// version hides another owner's waiting one). Never goes down.
    pub fn others_changes(&self, submitter: u64) -> u64 {
        let st = self.lock();
        let mine = st.changes.by.get(&submitter).copied().unwrap_or(0);
        st.changes.submitted - mine + st.changes.published
    }

    /// Depth and age.
    pub fn stats(&self) -> QueueStats {
        let st = self.lock();
        QueueStats {
            records: st.pending.records as usize,
            bytes: st.pending.bytes,
            max_bytes: self.max_pending_bytes,
            max_records: MAX_PENDING_RECORDS,
            batches: st.batches.len(),
            pow: st.pow.as_ref().map(|p| PowProgress {
                name: printable(&p.name),
                elapsed: p.started.elapsed().as_secs_f64(),
                tried: p.tried,
                expected: p.expected,
            }),
            oldest_age: st
                .batches
                .values()
                .next()
                .map_or(0, |b| now().saturating_sub(b.created)),
        }
    }

    /// Publishes batches until the node stops. Runs on its own thread: proof of work
    /// never runs on the async runtime or in a FUSE callback.
    pub fn run(self: Arc<Self>, ctx: &Ctx) {
        crate::common::priority::background_thread();
        // After a failure, publish one batch at a time so that one bad batch does not
        // hold back the others.
        let mut one_at_a_time = false;
        let mut last_end: Option<Instant> = None;
        while !self.node.is_stopping() && !ctx.stopping() {
            let next: Vec<(u64, Arc<Batch>)> = {
                let mut st = self.lock();
                if st.batches.is_empty() {
                    st = self
                        .wake
                        .wait_timeout(st, Duration::from_millis(500))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                // The oldest batch is published once the journal is durable past it
                // (see `LAZY_WAIT`); a durable submit or a sync wakes this (they take
                // the lock before they notify, so the wake-up is not lost).
                let synced = self.journal.synced();
                if let Some(b) = st.batches.values().next()
                    && b.end > synced
                {
                    let waited = b.queued.elapsed();
                    // A durable batch behind it (appended before it, numbered after):
                    // flush now rather than hold that one back.
                    let durable_behind = st.batches.values().any(|b| b.end <= synced);
                    ctx.set_state(workers::State::Idle);
                    if waited >= LAZY_WAIT || durable_behind {
                        drop(st);
                        if let Err(e) = self.journal.sync() {
                            tracing::warn!("cannot sync the LFFS journal: {e:#}");
                            ctx.sleep(Duration::from_secs(1));
                        }
                    } else {
                        drop(
                            self.wake
                                .wait_timeout(st, (LAZY_WAIT - waited).min(LAZY_POLL))
                                .unwrap_or_else(|e| e.into_inner()),
                        );
                    }
                    continue;
                }
                let streaming = last_end.is_some_and(|t| t.elapsed() < STREAM_GAP);
                if streaming && !st.batches.is_empty() && st.pending.records < PUBLISH_GROUP as u64
                {
                    drop(st);
                    ctx.sleep(STREAM_LINGER);
                    st = self.lock();
                }
                let mut records = 0;
                st.batches
                    .iter()
                    .take_while(|(_, b)| b.end <= synced)
                    .take_while(|(_, b)| {
                        records += b.puts.len();
                        records <= PUBLISH_GROUP || records == b.puts.len()
                    })
                    .take(if one_at_a_time { 1 } else { usize::MAX })
                    .map(|(s, b)| (*s, b.clone()))
                    .collect()
            };
            if next.is_empty() {
                ctx.set_state(workers::State::Idle);
                continue;
            }
            ctx.set_state(workers::State::Busy);
            let published = self.publish(&next);
            last_end = Some(Instant::now());
            match published {
                Ok(()) => {
                    one_at_a_time = false;
                    for (seq, _) in &next {
                        self.finish(*seq);
                    }
                }
                Err(e) if self.node.is_stopping() => {
                    tracing::info!("commit queue stopped: {e:#}");
                    return;
                }
                Err(e) => {
                    // Keep the batches (acknowledged data); retry after a pause.
                    crate::common::metrics::error("commit_publish");
                    tracing::warn!(seq = next[0].0, "cannot publish an LFFS change yet: {e:#}");
                    one_at_a_time = true;
                    ctx.sleep(Duration::from_secs(2));
                }
            }
        }
    }

    /// Builds (links, proof of work, signature) every record of `batches`, then stores
    /// them together: one store transaction and one `records.lf` fsync for the group,
    /// so the store is locked once rather than once per record (readers on FUSE wait
    /// for that lock).
    fn publish(&self, batches: &[(u64, Arc<Batch>)]) -> anyhow::Result<()> {
        let mut records = Vec::new();
        for (seq, batch) in batches {
            self.build(*seq, batch, &mut records)?;
        }
        self.store(&mut records)
    }

    fn store(&self, records: &mut Vec<lf_record::Record>) -> anyhow::Result<()> {
        if !records.is_empty() {
            self.node
                .accept_local_many(records)
                .context("storing published records")?;
            records.clear();
        }
        Ok(())
    }

    /// Builds the records of `batch` into `out`, storing `out` whenever it holds
    /// [`PUBLISH_GROUP`] records (a big file's chunks are not all held in memory).
    /// Timestamps are given in order; the records of a group are then built (links,
    /// signature, proof of work) on every core: signing bounds how fast a big file
    /// is published.
    fn build(
        &self,
        seq: u64,
        batch: &Batch,
        out: &mut Vec<lf_record::Record>,
    ) -> anyhow::Result<()> {
        for group in batch.puts.chunks(PUBLISH_GROUP) {
            let jobs: Vec<(&QueuedPut, u64)> = group
                .iter()
                .filter(|p| !self.superseded(seq, batch, &p.key))
                .map(|p| (p, self.timestamp(batch, p)))
                .collect();
            if jobs.len() < PARALLEL_BUILD_MIN {
                for (p, ts) in jobs {
                    let Some(r) = self.build_one(batch, p, ts)? else {
                        continue;
                    };
                    if out.len() >= PUBLISH_GROUP {
                        self.store(out)?;
                    }
                    out.push(r);
                }
                continue;
            }
            let threads = crate::common::cores::cores().min(jobs.len()).max(1);
            let per = jobs.len().div_ceil(threads);
            let built: Vec<anyhow::Result<Vec<lf_record::Record>>> = std::thread::scope(|s| {
                let parts: Vec<_> = jobs
                    .chunks(per)
                    .map(|part| {
                        s.spawn(move || {
                            crate::common::priority::background_thread();
                            part.iter()
                                .filter_map(|(p, ts)| self.build_one(batch, p, *ts).transpose())
                                .collect::<anyhow::Result<Vec<_>>>()
                        })
                    })
                    .collect();
                parts
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("a record builder panicked")))
                    })
                    .collect()
            });
            for part in built {
                for r in part? {
                    if out.len() >= PUBLISH_GROUP {
                        self.store(out)?;
                    }
                    out.push(r);
                }
            }
        }
        Ok(())
    }

    /// Whether a later batch of the same owner waits with a newer version of `key`: this
    /// one is then never published (a file created, then written and closed, is one
    /// record, not two). Its data is not lost: the newer version replaces it.
    fn superseded(&self, seq: u64, batch: &Batch, key: &PutKey) -> bool {
        self.lock()
            .overlay
            .get(key)
            .is_some_and(|p| p.seq > seq && p.owner == batch.owner.public())
    }

    /// The timestamp of the record for `p`: later versions of one entry carry later
    /// timestamps.
    fn timestamp(&self, batch: &Batch, p: &QueuedPut) -> u64 {
        if matches!(p.key, PutKey::Chunk(_)) {
            // Content-addressed: every version is the same bytes.
            return now();
        }
        let key = (p.key.name(), p.key.ordinal());
        let known = self.lock().last_ts.get(&key).copied();
        // The first version of an entry since start goes after what is stored:
        // a version published just before a restart (or a kill -9) may carry
        // this very second, and a tie would let the older version win.
        let last = match known {
            Some(t) => t,
            None => self.stored_ts(&batch.owner.public(), &key.0, key.1),
        };
        let mut st = self.lock();
        let slot = st.last_ts.entry(key).or_insert(0);
        let ts = now().max(last + 1).max(*slot + 1);
        *slot = ts;
        ts
    }

    /// Builds (links, proof of work, signature) the record for `p`; `None` for a chunk
    /// the owner has in the store already (a file's chunks cut while it was written are
    /// journaled unchecked, see `LffsStore::has_pending_own`: checked here, where the
    /// key derivation is needed for the record anyway).
    fn build_one(
        &self,
        batch: &Batch,
        p: &QueuedPut,
        ts: u64,
    ) -> anyhow::Result<Option<lf_record::Record>> {
        let (name, ordinal) = (p.key.name(), p.key.ordinal());
        let selector = lf_record::SelectorName::new(&name);
        if matches!(p.key, PutKey::Chunk(_))
            && self
                .node
                .store()
                .owner_has(&batch.owner.public(), &[selector.key(0)])?
                .first()
                .copied()
                .unwrap_or(false)
        {
            ::metrics::counter!("lf_commit_queue_chunks_known_total").increment(1);
            return Ok(None);
        }
        let mask = Some(p.key.mask());
        self.lock().pow = Some(PowState {
            name: name.clone(),
            started: Instant::now(),
            tried: 0,
            expected: 0.0,
        });
        let progress = |pr: lf_pow::Progress| {
            if let Some(s) = self.lock().pow.as_mut() {
                s.tried = pr.challenges_tried;
                s.expected = pr.expected_challenges;
            }
        };
        let value = self
            .value(&p.value)
            .context("reading a waiting value from the LFFS journal")?;
        // Readers trust the owner's own chunk records without hashing them again
        // (lffs `content::is_chunk`): this is where they are made, so the bytes read
        // back from the journal are checked here. A mismatch stays pending, retried
        // and reported, never signed.
        if let PutKey::Chunk(id) = &p.key
            && lffs::chunk::chunk_id(&value) != *id
        {
            anyhow::bail!(
                "a waiting chunk read back from the LFFS journal does not match its hash \
                 (the journal's bytes changed): not published"
            );
        }
        let made = self.node.build_record_named(
            &batch.owner,
            vec![(selector, ordinal)],
            value,
            mask,
            ts,
            &progress,
        );
        self.lock().pow = None;
        made.context("building a record").map(Some)
    }

    /// Timestamp of `owner`'s newest stored record under (name, ordinal), 0 if none.
    fn stored_ts(&self, owner: &lf_record::Owner, name: &[u8], ordinal: u64) -> u64 {
        let (start, end) = lf_record::SelectorName::new(name).key_range(ordinal, ordinal);
        let q = lf_store::Query {
            ranges: vec![lf_store::KeyRange { start, end }],
            owners: vec![*owner],
            ..lf_store::Query::default()
        };
        match self.node.store().query(&q) {
            Ok(sets) => sets
                .iter()
                .flatten()
                .map(|r| r.record.timestamp())
                .max()
                .unwrap_or(0),
            Err(e) => {
                // Publishing goes on with the clock alone (the old behaviour).
                tracing::warn!("cannot read the stored version of an LFFS entry: {e}");
                0
            }
        }
    }

    fn finish(&self, seq: u64) {
        if let Err(e) = self.journal.append_lazy(&Entry::<()>::Done(seq)) {
            // Harmless: the batch is published again after a restart.
            tracing::warn!(seq, "cannot mark an LFFS batch as published: {e:#}");
        }
        let mut st = self.lock();
        if let Some(b) = st.batches.remove(&seq) {
            if b.puts.iter().any(|p| !matches!(p.key, PutKey::Chunk(_))) {
                st.changes.published += 1;
            }
            let load = Load::of(b.puts.iter().map(|p| p.value.len()));
            st.pending.bytes -= load.bytes;
            st.pending.records -= load.records;
            ::metrics::counter!("lf_commit_queue_published_total").increment(1);
            ::metrics::histogram!("lf_commit_queue_publish_delay_seconds")
                .record(now().saturating_sub(b.created) as f64);
        }
        st.overlay.forget(seq);
        // Past entries' slots: once the clock is past them, `now()` alone orders the
        // next version (and a restart asks the store).
        let t = now();
        st.last_ts.retain(|_, ts| *ts >= t);
        let oldest = st.batches.values().next().map(|b| b.segment);
        let idle = st.batches.is_empty();
        drop(st);
        if let Err(e) = self.journal.rotate(idle, oldest) {
            tracing::warn!("cannot rotate the LFFS journal: {e:#}");
        }
        self.node.bump_generation();
    }
}

/// A selector name for humans: its printable prefix, then the rest in hex (chunk
/// selectors end in a binary SHA-256), shortened.
fn printable(name: &[u8]) -> String {
    let cut = name
        .iter()
        .position(|b| !b.is_ascii_graphic() && *b != b' ')
        .unwrap_or(name.len());
    let mut s = String::from_utf8_lossy(&name[..cut]).into_owned();
    if cut < name.len() {
        let rest = &name[cut..];
        s.push_str(&hex::encode(&rest[..rest.len().min(8)]));
        if rest.len() > 8 {
            s.push('…');
        }
    }
    s
}

/// A replayed batch: its puts' values are inline (older journals) or the value
/// frames appended with it, in order.
fn decode(segment: u64, f: JournalFile, values: Vec<ValueAt>) -> anyhow::Result<Batch> {
    let owner = OwnerSecret::from_pem(&f.owner)?;
    let mut frames = values.into_iter();
    let puts = f
        .puts
        .into_iter()
        .map(|p| {
            let value = match p.value {
                Some(v) => Val::Mem(Arc::new(B64.decode(v)?)),
                None => Val::Disk(
                    frames
                        .next()
                        .context("a batch lists more values than the journal holds")?,
                ),
            };
            Ok(QueuedPut {
                key: PutKey::of(B64.decode(p.name)?, p.ordinal, B64.decode(p.mask)?),
                value,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Batch {
        segment,
        end: 0, // on disk before this run
        queued: Instant::now(),
        owner,
        created: f.created,
        puts,
    })
}

#[cfg(test)]
mod tests {
    use super::{Load, MAX_PENDING_RECORDS, admits, printable};

    fn load(bytes: u64, records: u64) -> Load {
        Load { bytes, records }
    }

    #[test]
    fn queue_bound_from_data() {
        let max = 1000;
        // Below the bound any batch enters, even one bigger than the bound.
        assert!(admits(load(0, 0), load(5000, 9), max));
        assert!(admits(load(24, 1), load(5000, 9), max));
        assert!(admits(load(999, 1), load(600, 1), max));
        // At or over it, none does.
        assert!(!admits(load(1000, 1), load(1, 1), max));
        assert!(!admits(load(6000, 3), load(0, 1), max));
        // Many tiny records count too.
        assert!(admits(load(0, MAX_PENDING_RECORDS - 1), load(0, 1), max));
        assert!(!admits(load(0, MAX_PENDING_RECORDS), load(0, 1), max));
    }

    #[test]
    fn printable_names_keep_text_and_shorten_binary() {
        assert_eq!(printable(b"lf.shared/dir"), "lf.shared/dir");
        let mut chunk = b"lffs-chunk:".to_vec();
        chunk.extend_from_slice(&[0xab; 32]);
        assert_eq!(printable(&chunk), "lffs-chunk:abababababababab…");
        assert_eq!(printable(&[1, 2]), "0102");
    }
}
