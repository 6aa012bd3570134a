//! `lffs::Store` over the node: reads query the record store (winners first) and the
//! commit queue's overlay of writes not yet published; writes go to the commit queue
//! (durable in the journal when `put` returns). One per mount: it carries the mount's
//! owner key.

use std::collections::BTreeMap;
use std::sync::Arc;

use lf_record::{Owner, OwnerSecret, SelectorName};
use lf_store::{KeyRange, Query};
use lffs::{Put, StoreError, Version};

use crate::lffs_glue::commit_queue::CommitQueue;
use crate::node::Node;

/// Rate limit of the disk-full error line.
static DISK_FULL_LOGGED: crate::common::logfile::Every = crate::common::logfile::Every::secs(10);

/// The store of one mount.
pub struct LffsStore {
    node: Arc<Node>,
    queue: Arc<CommitQueue>,
    owner: OwnerSecret,
    keys: KeyCache,
    /// This store among the queue's submitters (see `others_generation`).
    id: u64,
}

/// The next [`LffsStore::id`].
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Most records `find` looks at unranked before it asks for the ranked candidates.
const FIND_UNRANKED: usize = 16;

/// Most selector keys a mount remembers (about 3 MiB): the chunks of a 128 MiB file.
const KEY_CACHE: usize = 16_384;

/// Most directory selector names a mount keeps derived (a few hundred bytes each).
const NAME_CACHE: usize = 1024;

/// The selector keys of names looked up or written lately. Deriving one costs an
/// Ed25519 base-point multiplication and an ordinal masking (about 10 µs), and a file's
/// chunks are looked up once when it is written and again at every read: a 64 MiB file
/// has about 8,000. Directories' names are kept derived apart: each name in a
/// directory is another ordinal of the directory's selector name, whose derivation
/// (the base-point multiplication) is the same for all (a new file's lookup, create
/// and commit each paid it).
struct KeyCache(
    std::sync::Mutex<hashlink::LruCache<(Vec<u8>, u64), lf_record::SelectorKey>>,
    std::sync::Mutex<hashlink::LruCache<Vec<u8>, SelectorName>>,
);

impl KeyCache {
    fn new() -> Self {
        KeyCache(
            std::sync::Mutex::new(hashlink::LruCache::new(KEY_CACHE)),
            std::sync::Mutex::new(hashlink::LruCache::new(NAME_CACHE)),
        )
    }

    /// A directory's selector name, derived once.
    fn name(&self, name: &[u8]) -> SelectorName {
        let known = self
            .1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        if let Some(sn) = known {
            return sn;
        }
        // Derived outside the lock: other lookups need not wait for it.
        let sn = SelectorName::new(name);
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_vec(), sn.clone());
        sn
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, hashlink::LruCache<(Vec<u8>, u64), lf_record::SelectorKey>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys of (name, ordinal) pairs, derived (on every core for many) if not
    /// remembered.
    fn keys(&self, names: &[(&[u8], u64)]) -> Result<Vec<lf_record::SelectorKey>, StoreError> {
        let mut out: Vec<Option<lf_record::SelectorKey>> = {
            let mut c = self.lock();
            names
                .iter()
                .map(|(n, o)| c.get(&(n.to_vec(), *o)).copied())
                .collect()
        };
        let missing: Vec<(&[u8], u64)> = names
            .iter()
            .zip(&out)
            .filter(|(_, k)| k.is_none())
            .map(|(n, _)| *n)
            .collect();
        if missing.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        let derived = if missing.len() == 1 && !lffs::layout::is_chunk_selector(missing[0].0) {
            vec![self.name(missing[0].0).key(missing[0].1)]
        } else {
            selector_keys(&missing)?
        };
        let mut c = self.lock();
        let mut fresh = missing.iter().zip(derived);
        for k in out.iter_mut().filter(|k| k.is_none()) {
            if let Some(((n, o), key)) = fresh.next() {
                c.insert((n.to_vec(), *o), key);
                *k = Some(key);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("{e:#}"))
}

impl LffsStore {
    /// A store for a mount signing as `owner`.
    pub fn new(node: Arc<Node>, queue: Arc<CommitQueue>, owner: OwnerSecret) -> Self {
        LffsStore {
            node,
            queue,
            owner,
            keys: KeyCache::new(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Candidates from the record store for a key range of `name`, per ordinal.
    fn query(
        &self,
        name: &SelectorName,
        first: u64,
        last: u64,
        mask: &[u8],
    ) -> Result<BTreeMap<u64, Vec<Version>>, StoreError> {
        let (start, end) = name.key_range(first, last);
        // Ranked as `/query` ranks (certified owners first on a network with root
        // CAs), so the mount and `lf get` show the same winner.
        let q = Query {
            ranges: vec![KeyRange { start, end }],
            certification: self.node.certs().query_hook(),
            ..Query::default()
        };
        let mut out = BTreeMap::new();
        for set in self.node.store().query(&q).map_err(err)? {
            let Some(ordinal) = set
                .first()
                .and_then(|r| r.record.selectors().first())
                .map(|s| name.ordinal_mask().unmask(&s.ordinal))
            else {
                continue;
            };
            let versions: Vec<Version> = set
                .iter()
                .filter_map(|r| {
                    let value = r.record.value(Some(mask)).ok()?;
                    Some(Version {
                        owner: r.record.owner(),
                        timestamp: r.record.timestamp(),
                        value,
                    })
                })
                .collect();
            if !versions.is_empty() {
                out.insert(ordinal, versions);
            }
        }
        Ok(out)
    }

    /// Candidates from the record store under one selector key, best first.
    fn versions(
        &self,
        key: lf_record::SelectorKey,
        mask: &[u8],
    ) -> Result<Vec<Version>, StoreError> {
        // Ranked as `query` ranks: see there.
        let q = Query {
            ranges: vec![KeyRange {
                start: key,
                end: key,
            }],
            certification: self.node.certs().query_hook(),
            ..Query::default()
        };
        Ok(self
            .node
            .store()
            .query(&q)
            .map_err(err)?
            .into_iter()
            .next()
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                Some(Version {
                    value: r.record.value(Some(mask)).ok()?,
                    owner: r.record.owner(),
                    timestamp: r.record.timestamp(),
                })
            })
            .collect())
    }
}

/// The selector keys of (name, ordinal) pairs. Deriving one costs an Ed25519 base-point
/// multiplication (about 7 µs), so a big batch (a file's chunks at fsync) is split
/// over the cores.
fn selector_keys(names: &[(&[u8], u64)]) -> Result<Vec<lf_record::SelectorKey>, StoreError> {
    let key = |(n, o): &(&[u8], u64)| SelectorName::new(n).key(*o);
    let threads = crate::common::cores::cores();
    if names.len() < 64 || threads < 2 {
        return Ok(names.iter().map(key).collect());
    }
    let per = names.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = names
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().map(key).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for h in parts {
            out.extend(h.join().map_err(|_| err("deriving selector keys failed"))?);
        }
        Ok(out)
    })
}

/// Puts a pending write of `owner` in place of that owner's stored candidate (it is
/// newer), or after the others when the owner had none.
fn merge(mut versions: Vec<Version>, pending: Version) -> Vec<Version> {
    match versions.iter().position(|v| v.owner == pending.owner) {
        Some(i) => versions[i] = pending,
        None => versions.push(pending),
    }
    versions
}

impl LffsStore {
    /// Queues a batch for publication (`first`: the first part of a change, which a
    /// full queue may refuse; `durable`: synced before this returns).
    fn submit(&self, puts: Vec<Put>, first: bool, durable: bool) -> Result<(), StoreError> {
        self.queue
            .submit(self.id, &self.owner, puts, !first, durable)
            .map_err(|e| self.submit_error(e))
    }

    fn submit_error(&self, e: anyhow::Error) -> StoreError {
        if e.is::<crate::lffs_glue::commit_queue::QueueFull>() {
            StoreError::Full(e.to_string())
        } else if crate::common::home::is_disk_full(&e) {
            // ENOSPC for the writer; the operator hears of it here (at most every
            // 10 s: every write fails the same way until there is room).
            crate::common::metrics::error("disk_full");
            if DISK_FULL_LOGGED.should_log() {
                tracing::error!("LFFS write refused: the node's disk is full: {e:#}");
            }
            StoreError::Full(format!("the node's disk is full: {e:#}"))
        } else {
            err(e)
        }
    }
}

impl lffs::Store for LffsStore {
    fn owner(&self) -> Owner {
        self.owner.public()
    }

    fn max_value_size(&self) -> usize {
        self.node.config().record_max_value_size as usize
    }

    fn get(&self, name: &[u8], ordinal: u64, mask: &[u8]) -> Result<Vec<Version>, StoreError> {
        // The overlay first, then the store: the commit queue stores a version before
        // it drops it from the overlay, so one of the two reads always sees it (the
        // other order could miss it in between and answer ENOENT).
        let pending = self.queue.overlay_get(name, ordinal, mask);
        let key = self.keys.keys(&[(name, ordinal)])?[0];
        let mut found = self.versions(key, mask)?;
        if let Some(p) = pending {
            found = merge(found, p);
        }
        Ok(found)
    }

    fn find(
        &self,
        name: &[u8],
        mask: &[u8],
        accept: &dyn Fn(&[u8], bool) -> bool,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // One of `find_many`.
        Ok(self
            .find_many(&[(name, mask)], &|_, v, own| accept(v, own))?
            .pop()
            .flatten())
    }

    fn find_many(
        &self,
        wanted: &[(&[u8], &[u8])],
        accept: &dyn Fn(usize, &[u8], bool) -> bool,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        // A chunk still waiting in the overlay is read from the journal without the
        // store's lock, which the commit queue holds while it stores a group: reading
        // a file right after writing it is not paced by its publication. Overlay first,
        // then the store, for the reason given in `get`. The store's lookups for all
        // in one go: unranked (see `records_at`), the ranked query only when strangers
        // put more records under a name than the unranked look takes.
        let me = self.owner.public();
        let mut out: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
        let mut rest = Vec::new();
        for (i, (name, mask)) in wanted.iter().enumerate() {
            // A waiting value comes from the journal as plain bytes (no tag to fail
            // on a changed byte): never taken as the owner's own, so it is hashed.
            match self.queue.overlay_get(name, 0, mask) {
                Some(v) if accept(i, &v.value, false) => out[i] = Some(v.value),
                _ => rest.push(i),
            }
        }
        if rest.is_empty() {
            return Ok(out);
        }
        let names: Vec<(&[u8], u64)> = rest.iter().map(|i| (wanted[*i].0, 0)).collect();
        let keys = self.keys.keys(&names)?;
        let found = self
            .node
            .store()
            .records_at_many(&keys, FIND_UNRANKED)
            .map_err(err)?;
        for ((i, key), (records, more)) in rest.into_iter().zip(keys).zip(found) {
            let mask = wanted[i].1;
            out[i] = records
                .iter()
                .filter_map(|r| Some((r.value(Some(mask)).ok()?, r.owner() == me)))
                .find(|(v, own)| accept(i, v, *own))
                .map(|(v, _)| v);
            if out[i].is_none() && more {
                out[i] = self
                    .versions(key, mask)?
                    .into_iter()
                    .find(|v| accept(i, &v.value, v.owner == me))
                    .map(|v| v.value);
            }
        }
        Ok(out)
    }

    fn list(&self, name: &[u8], mask: &[u8]) -> Result<Vec<(u64, Vec<Version>)>, StoreError> {
        let pending = self.queue.overlay_list(name, mask); // first: see `get`
        let n = self.keys.name(name);
        let mut all = self.query(&n, 0, u64::MAX, mask)?;
        for (ordinal, p) in pending {
            let v = all.remove(&ordinal).unwrap_or_default();
            all.insert(ordinal, merge(v, p));
        }
        Ok(all.into_iter().collect())
    }

    fn has_own(&self, keys: &[(&[u8], u64, &[u8])]) -> Result<Vec<bool>, StoreError> {
        let owner = self.owner.public();
        // The overlay first: see `get`.
        let pending: Vec<bool> = keys
            .iter()
            .map(|(n, o, m)| self.queue.overlay_has(&owner, n, *o, m))
            .collect();
        let to_check: Vec<(&[u8], u64)> = keys
            .iter()
            .zip(&pending)
            .filter(|(_, p)| !**p)
            .map(|((n, o, _), _)| (*n, *o))
            .collect();
        let stored = self
            .node
            .store()
            .owner_has(&owner, &self.keys.keys(&to_check)?)
            .map_err(err)?;
        let mut stored = stored.into_iter();
        Ok(pending
            .into_iter()
            .map(|p| p || stored.next().unwrap_or(false))
            .collect())
    }

    fn has_pending_own(&self, keys: &[(&[u8], u64, &[u8])]) -> Result<Vec<bool>, StoreError> {
        // The overlay only: deriving a selector key (about 10 µs) per chunk of a file
        // being written took a third of its writer's time. The commit queue drops a
        // chunk the owner has stored already before signing it.
        let owner = self.owner.public();
        Ok(keys
            .iter()
            .map(|(n, o, m)| self.queue.overlay_has(&owner, n, *o, m))
            .collect())
    }

    fn put(&self, puts: Vec<Put>) -> Result<(), StoreError> {
        self.put_last(puts, true)
    }

    fn put_part(&self, puts: Vec<Put>, first: bool) -> Result<(), StoreError> {
        self.submit(puts, first, false)
    }

    fn put_last(&self, puts: Vec<Put>, first: bool) -> Result<(), StoreError> {
        self.submit(puts, first, true)
    }

    fn put_lazy(&self, puts: Vec<Put>) -> Result<(), StoreError> {
        self.submit(puts, true, false)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.queue.sync().map_err(|e| self.submit_error(e))
    }

    fn unsynced(&self) -> bool {
        self.queue.unsynced()
    }

    fn flush_busy(&self) -> bool {
        self.queue.flush_busy()
    }

    fn write_refused(&self) -> Option<String> {
        self.node.write_refused(&self.owner.public())
    }

    fn generation(&self) -> u64 {
        self.node.generation()
    }

    fn external_generation(&self) -> u64 {
        self.node.external_generation()
    }

    fn others_generation(&self) -> u64 {
        // Both never go down: a value seen before never comes back.
        self.node
            .external_generation()
            .wrapping_add(self.queue.others_changes(self.id))
    }

    fn now_nanos(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}
