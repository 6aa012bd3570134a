//! The `Store` trait LFFS is written against, and an in-memory implementation for
//! tests and the reference model.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lf_record::Owner;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// I/O, database or journal failure.
    #[error("{0}")]
    Failed(String),
    /// Too many writes wait for publication (proof of work is slower than the writer):
    /// this write was refused, nothing of it was kept; it can be retried later.
    #[error("{0}")]
    Full(String),
}

/// One candidate value for a (selector name, ordinal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Who wrote it.
    pub owner: Owner,
    /// Record timestamp (seconds).
    pub timestamp: u64,
    /// Unmasked value.
    pub value: Vec<u8>,
}

/// One write: a value under (name, ordinal), masked with `mask`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    /// Selector name.
    pub name: Vec<u8>,
    /// Ordinal.
    pub ordinal: u64,
    /// Masking key.
    pub mask: Vec<u8>,
    /// Plain value.
    pub value: Vec<u8>,
}

/// What LFFS needs from LF. Implementations must make [`Store::put`] durable and
/// visible to `get`/`list` before returning, and must never wait for proof of work
/// or the network inside it.
pub trait Store: Send + Sync + 'static {
    /// The mount's owner: entries it wrote are writable.
    fn owner(&self) -> Owner;
    /// Largest record value on this network.
    fn max_value_size(&self) -> usize;
    /// Candidates under (name, ordinal), best first (trust, then weight).
    fn get(&self, name: &[u8], ordinal: u64, mask: &[u8]) -> Result<Vec<Version>, StoreError>;
    /// The value of the first candidate under (name, 0, mask) that `accept` takes: for
    /// content-addressed chunks, where any candidate with the right bytes will do, so
    /// an implementation may look where it is cheapest first (a chunk still waiting to
    /// be published need not wait for the store). `accept` is also told whether the
    /// candidate is a record the mount's owner signed (see
    /// [`load_chunk`](crate::content::load_chunk) for why that matters); an
    /// implementation may always say no.
    fn find(
        &self,
        name: &[u8],
        mask: &[u8],
        accept: &dyn Fn(&[u8], bool) -> bool,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let me = self.owner();
        Ok(self
            .get(name, 0, mask)?
            .into_iter()
            .find(|v| accept(&v.value, v.owner == me))
            .map(|v| v.value))
    }
    /// [`Store::find`] of several values at once (`accept` is given the index of the
    /// one it judges): the chunks one read needs, looked up together.
    fn find_many(
        &self,
        wanted: &[(&[u8], &[u8])],
        accept: &dyn Fn(usize, &[u8], bool) -> bool,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        wanted
            .iter()
            .enumerate()
            .map(|(i, (name, mask))| self.find(name, mask, &|v, own| accept(i, v, own)))
            .collect()
    }
    /// Every ordinal under `name` with its candidates, best first, in ordinal order.
    fn list(&self, name: &[u8], mask: &[u8]) -> Result<Vec<(u64, Vec<Version>)>, StoreError>;
    /// For each (name, ordinal, mask), whether the mount's owner already has a version
    /// there (stored or waiting to be published). Content-addressed chunks that it has
    /// are not written again. Only the owner's own versions count: another owner's
    /// record under a chunk's name is not checked here, and trusting it would let a
    /// stranger who guessed the content keep a chunk of ours from being stored.
    fn has_own(&self, keys: &[(&[u8], u64, &[u8])]) -> Result<Vec<bool>, StoreError> {
        let me = self.owner();
        keys.iter()
            .map(|(n, o, m)| Ok(self.get(n, *o, m)?.iter().any(|v| v.owner == me)))
            .collect()
    }
    /// Like [`Store::has_own`], but may answer `false` for a chunk the owner has in
    /// the store when checking there costs more than writing it again: a store that
    /// answers so must not publish the chunk a second time (the node's commit queue
    /// checks before it signs, where the selector key is derived anyway). For the
    /// chunks of a file cut while it is written, on the writer's time.
    fn has_pending_own(&self, keys: &[(&[u8], u64, &[u8])]) -> Result<Vec<bool>, StoreError> {
        self.has_own(keys)
    }
    /// Writes a batch; all of it is visible at once, and durable, when this returns.
    fn put(&self, puts: Vec<Put>) -> Result<(), StoreError>;
    /// Writes one part of a change that is stored in several batches (a big file's
    /// chunks ahead of its entry, so it is never held in memory whole): visible at
    /// once, durable with the change's [`Store::put_last`] (one disk flush for the
    /// change: a flush per part made a big file's fsync wait for each in turn). Only
    /// the change's `first` part may be refused for a full queue
    /// ([`StoreError::Full`]); later parts belong to a change already admitted.
    fn put_part(&self, puts: Vec<Put>, first: bool) -> Result<(), StoreError> {
        let _ = first;
        self.put_lazy(puts)
    }
    /// Writes the last part of a change (or all of it, `first`): like [`Store::put`],
    /// durable with every part before it when this returns; refused for a full queue
    /// only if `first`.
    fn put_last(&self, puts: Vec<Put>, first: bool) -> Result<(), StoreError> {
        let _ = first;
        self.put(puts)
    }
    /// Like [`Store::put`], but durable only with the next `put` or [`Store::sync`]:
    /// for a change POSIX makes durable only with a later fsync (a create). It is
    /// visible at once all the same.
    fn put_lazy(&self, puts: Vec<Put>) -> Result<(), StoreError> {
        self.put(puts)
    }
    /// Makes every `put_lazy` so far durable.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether a `put_lazy` is not yet durable ([`Store::sync`] would wait for the
    /// disk). May say true when it is not.
    fn unsynced(&self) -> bool {
        false
    }
    /// Whether a durable put or a sync now would be long or wait for another flush.
    /// Never blocks (the FUSE adapter asks before every request).
    fn flush_busy(&self) -> bool {
        false
    }
    /// Changes whenever anything readable may have changed (local writes, records
    /// from peers): caches compare it to know they are stale.
    fn generation(&self) -> u64;
    /// Changes whenever what readers see may have changed other than by this store's
    /// own puts (records from peers or other clients, another mount's writes): the
    /// filesystem forgets what it resolved then, and after its own puts only the names
    /// they touch. The default, [`Store::generation`], forgets all after every put.
    fn others_generation(&self) -> u64 {
        self.generation()
    }
    /// Changes whenever records arrive that were not written through this store
    /// (records from peers, other clients): the kernel's caches of files are checked
    /// against the store then, not after this store's own writes are published.
    fn external_generation(&self) -> u64 {
        self.generation()
    }
    /// Current time in nanoseconds since the epoch (a parameter so tests are
    /// deterministic).
    fn now_nanos(&self) -> u64;
    /// Why this mount's owner may not write now, if it may not (e.g. a network that
    /// requires a certificate the owner lacks): every change then fails with EACCES
    /// instead of being accepted locally and never published.
    fn write_refused(&self) -> Option<String> {
        None
    }
}

type Key = (Vec<u8>, u64);
/// Versions under one key, each with the masking key it was written with.
type Slot = Vec<(Version, Vec<u8>)>;

/// An in-memory store: the latest write per (name, ordinal, owner) wins for that
/// owner; owners are ranked by who wrote a key first, like local reputation.
pub struct MemStore {
    owner: Owner,
    max_value: usize,
    data: Mutex<BTreeMap<Key, Slot>>,
    generation: AtomicU64,
    clock: AtomicU64,
    puts: AtomicU64,
    largest_batch: AtomicU64,
    checked: AtomicU64,
    others: AtomicU64,
}

impl MemStore {
    /// An empty store for `owner` with a value limit.
    pub fn new(owner: Owner, max_value: usize) -> Self {
        MemStore {
            owner,
            max_value,
            data: Mutex::new(BTreeMap::new()),
            generation: AtomicU64::new(1),
            clock: AtomicU64::new(1_700_000_000_000_000_000),
            puts: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            others: AtomicU64::new(1),
        }
    }

    /// Keys asked about through `has_own` and `has_pending_own` so far (how many
    /// chunks commits looked up).
    pub fn checked_count(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }

    /// Number of values written so far (to count chunk records in tests).
    pub fn put_count(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }

    /// Value bytes of the biggest batch written so far (commits of big files come in
    /// parts: what one part holds is what a commit holds in memory).
    pub fn largest_batch_bytes(&self) -> u64 {
        self.largest_batch.load(Ordering::Relaxed)
    }

    /// Writes as another owner, as if the record had arrived from a peer.
    pub fn put_as(&self, owner: Owner, p: Put) {
        self.insert(owner, p);
        // After: a resolution of what was there before must not be kept under it.
        self.others.fetch_add(1, Ordering::Relaxed);
    }

    fn insert(&self, owner: Owner, p: Put) {
        let ts = self.now_nanos() / 1_000_000_000;
        let mut d = self.data.lock().unwrap_or_else(|e| e.into_inner());
        let slot = d.entry((p.name, p.ordinal)).or_default();
        let v = Version {
            owner,
            timestamp: ts,
            value: p.value,
        };
        match slot.iter_mut().find(|(x, _)| x.owner == owner) {
            Some(existing) => *existing = (v, p.mask),
            None => slot.push((v, p.mask)),
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn visible(slot: &[(Version, Vec<u8>)], mask: &[u8]) -> Vec<Version> {
        slot.iter()
            .filter(|(_, m)| m == mask)
            .map(|(v, _)| v.clone())
            .collect()
    }
}

impl Store for MemStore {
    fn owner(&self) -> Owner {
        self.owner
    }
    fn max_value_size(&self) -> usize {
        self.max_value
    }
    fn get(&self, name: &[u8], ordinal: u64, mask: &[u8]) -> Result<Vec<Version>, StoreError> {
        let d = self.data.lock().unwrap_or_else(|e| e.into_inner());
        Ok(d.get(&(name.to_vec(), ordinal))
            .map(|s| Self::visible(s, mask))
            .unwrap_or_default())
    }
    fn list(&self, name: &[u8], mask: &[u8]) -> Result<Vec<(u64, Vec<Version>)>, StoreError> {
        let d = self.data.lock().unwrap_or_else(|e| e.into_inner());
        Ok(d.range((name.to_vec(), 0)..=(name.to_vec(), u64::MAX))
            .map(|((_, o), s)| (*o, Self::visible(s, mask)))
            .filter(|(_, v)| !v.is_empty())
            .collect())
    }
    fn put(&self, puts: Vec<Put>) -> Result<(), StoreError> {
        let bytes = puts.iter().map(|p| p.value.len() as u64).sum();
        self.largest_batch.fetch_max(bytes, Ordering::Relaxed);
        for p in puts {
            if p.value.len() > self.max_value {
                return Err(StoreError::Failed(format!(
                    "value of {} bytes over the limit",
                    p.value.len()
                )));
            }
            self.puts.fetch_add(1, Ordering::Relaxed);
            self.insert(self.owner, p);
        }
        Ok(())
    }
    fn has_own(&self, keys: &[(&[u8], u64, &[u8])]) -> Result<Vec<bool>, StoreError> {
        self.checked.fetch_add(keys.len() as u64, Ordering::Relaxed);
        let me = self.owner;
        keys.iter()
            .map(|(n, o, m)| Ok(self.get(n, *o, m)?.iter().any(|v| v.owner == me)))
            .collect()
    }
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
    fn others_generation(&self) -> u64 {
        self.others.load(Ordering::Relaxed)
    }
    fn now_nanos(&self) -> u64 {
        self.clock.fetch_add(1_000_000, Ordering::Relaxed)
    }
}
