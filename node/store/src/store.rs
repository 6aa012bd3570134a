//! The store: open and recover, put (the write path), reads, link candidates, stats.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lf_record::{Owner, Record, RecordHash, SelectorKey};
use rusqlite::{Connection, OptionalExtension, Transaction};

use crate::dag::Dag;
use crate::records_file::RecordsFile;
use crate::{StoreError, reputation, schema};

/// Settings from the network configuration that the store needs.
#[derive(Clone, Copy, Debug)]
pub struct StoreConfig {
    /// Network's `record_max_time_drift`: linking to records newer than this many
    /// seconds after one's own timestamp lowers reputation.
    pub max_time_drift: u64,
}

/// What [`Store::put`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored; `synced` tells whether it is already fully synchronized.
    Added {
        /// Fully synchronized now (everything it links to, transitively, is present).
        synced: bool,
    },
    /// Already stored; nothing changed.
    Duplicate,
}

/// What the store knows about one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Insertion sequence number.
    pub seq: u32,
    /// Local reputation.
    pub reputation: i64,
    /// Fully synchronized.
    pub synced: bool,
    /// Weight (own score plus descendants' within the horizon).
    pub weight: u64,
    /// How many stored records link to it.
    pub linked_count: u32,
}

/// Counters for status pages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Records stored.
    pub records: u64,
    /// Of which fully synchronized.
    pub synced: u64,
    /// Bytes of `records.lf`.
    pub bytes: u64,
    /// Hashes linked to but not stored.
    pub wanted: u64,
    /// Current tips.
    pub tips: u64,
}

pub(crate) struct Inner {
    pub(crate) db: Connection,
    pub(crate) file: RecordsFile,
    pub(crate) dag: Dag,
    config: StoreConfig,
    /// Rows in `record`, kept here so that `stats` (polled by `/status` and metrics)
    /// does not scan the table under the store lock: 12 ms at 100k records, taken
    /// from every put waiting for the lock.
    records: u64,
}

/// An open store. All methods take `&self`; a mutex serializes access.
pub struct Store {
    pub(crate) inner: Mutex<Inner>,
    /// A read-only handle on `records.lf` for reads outside the lock: the index only
    /// names frames that are complete and durable, and those never change.
    reader: File,
    /// Held through a put: see [`Store::put_many`].
    writer: Mutex<()>,
    dir: PathBuf,
    _lock: File,
    /// Called by a put just before its flush (tests of what runs meanwhile).
    #[cfg(test)]
    before_flush: Mutex<Option<Box<dyn Fn() + Send>>>,
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("store.lock");
    let f = File::create(&path).map_err(|e| StoreError::io(&path, e))?;
    // An OS advisory lock: released by the kernel when the process dies, even by kill -9.
    f.try_lock()
        .map_err(|_| StoreError::Locked(dir.to_path_buf()))?;
    Ok(f)
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, then recovers: re-indexes any
    /// complete records at the end of `records.lf` that the index lacks, cuts a torn
    /// tail, and rebuilds the in-memory DAG and weights from the index.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let lock = lock_dir(dir)?;
        let mut file = RecordsFile::open(&dir.join("records.lf"))?;
        let db = schema::open(&dir.join("node.db"))?;
        // Make the files' names durable: without this, power lost soon after a new
        // store's first put could leave node.db without the records.lf it indexes.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io(dir, e))?;
        let indexed_end = schema::meta(&db, "indexed_end")? as u64;
        if indexed_end > file.end() {
            return Err(StoreError::Corrupt(format!(
                "records.lf has {} bytes but the index covers {indexed_end}; \
                 remove node.db to rebuild the index from records.lf",
                file.end()
            )));
        }
        let tail = file.recover_tail(indexed_end)?;
        let mut inner = Inner {
            db,
            file,
            dag: Dag::default(),
            config,
            records: 0,
        };
        inner.load_dag()?;
        if !tail.is_empty() {
            tracing::info!(
                records = tail.len(),
                "re-indexing records.lf tail after a crash"
            );
            let end = inner.file.end();
            let tx = inner.db.transaction()?;
            for (off, bytes) in &tail {
                let r = Record::from_bytes(bytes)?;
                if !exists(&tx, &r.hash())? {
                    index_one(&tx, &mut inner.dag, &config, &r, *off, bytes.len())?;
                    inner.records += 1;
                }
            }
            schema::set_meta(&tx, "indexed_end", end as i64)?;
            tx.commit()?;
        }
        let path = dir.join("records.lf");
        let reader = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        Ok(Store {
            inner: Mutex::new(inner),
            reader,
            writer: Mutex::new(()),
            #[cfg(test)]
            before_flush: Mutex::new(None),
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the record at (`off`, `len`) as the index gives them, without the lock.
    pub(crate) fn read_unlocked(&self, off: i64, len: i64) -> Result<Record, StoreError> {
        use std::os::unix::fs::FileExt;
        let mut b = vec![0u8; len as usize];
        self.reader
            .read_exact_at(&mut b, off as u64)
            .map_err(|e| StoreError::io(&self.dir.join("records.lf"), e))?;
        Ok(Record::from_vec(b)?)
    }

    /// Stores one verified record. Durable when this returns.
    pub fn put(&self, record: &Record) -> Result<PutOutcome, StoreError> {
        Ok(self.put_many(std::slice::from_ref(record))?[0])
    }

    /// Stores verified records with one fsync and one index transaction. Durable when
    /// this returns (steps in README.md). The store's lock is not held through the
    /// fsync: queries and reads (a mount's lookups) go on while the disk flushes, since
    /// nothing indexed names the new frames yet; puts wait for each other (`writer`),
    /// so the file's tail is this put's until it is indexed or cut back.
    pub fn put_many(&self, records: &[Record]) -> Result<Vec<PutOutcome>, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut outcomes = vec![PutOutcome::Duplicate; records.len()];
        // 1-3: which are new, and their frames appended.
        let (fresh, start, offsets) = {
            let mut inner = self.lock();
            let mut fresh: Vec<usize> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (i, r) in records.iter().enumerate() {
                if seen.insert(r.hash()) && !exists(&inner.db, &r.hash())? {
                    fresh.push(i);
                }
            }
            if fresh.is_empty() {
                return Ok(outcomes);
            }
            let start = inner.file.end();
            let bytes: Vec<&[u8]> = fresh.iter().map(|&i| records[i].to_bytes()).collect();
            match inner.file.append(&bytes) {
                Ok(offsets) => (fresh, start, offsets),
                Err(e) => {
                    inner.undo_batch(start);
                    return Err(e);
                }
            }
        };
        // 4: durable before they are indexed.
        #[cfg(test)]
        if let Some(hook) = &*self.before_flush.lock().unwrap() {
            hook();
        }
        if let Err(e) = self.reader.sync_data() {
            self.lock().undo_batch(start);
            return Err(StoreError::io(&self.dir.join("records.lf"), e));
        }
        // 5-6: indexed in one transaction.
        let mut inner = self.lock();
        if let Err(e) = inner.index_appended(records, &fresh, &offsets, &mut outcomes) {
            inner.undo_batch(start);
            return Err(e);
        }
        Ok(outcomes)
    }

    /// Whether a record is stored.
    pub fn contains(&self, hash: &RecordHash) -> Result<bool, StoreError> {
        Ok(exists(&self.lock().db, hash)?)
    }

    /// The hashes of `hashes` that are not stored, in order (one lock for all).
    pub fn missing(&self, hashes: &[RecordHash]) -> Result<Vec<RecordHash>, StoreError> {
        let inner = self.lock();
        let mut out = Vec::new();
        for h in hashes {
            if !exists(&inner.db, h)? {
                out.push(*h);
            }
        }
        Ok(out)
    }

    /// For each key, whether `owner` has a stored record whose first selector is that
    /// key (one lock for all; no record is read). Two single-table lookups, not a join:
    /// see `reputation::at_insert`.
    pub fn owner_has(&self, owner: &Owner, keys: &[SelectorKey]) -> Result<Vec<bool>, StoreError> {
        let inner = self.lock();
        // One read transaction for all the lookups: a statement outside one takes and
        // drops the WAL read lock by itself (fcntl calls and a shared-memory lock),
        // which was most of the cost of checking a big file's chunks at its fsync.
        let _read = inner.db.unchecked_transaction()?;
        let mut seqs = inner
            .db
            .prepare_cached("SELECT seq FROM selector WHERE idx = 0 AND key = ?1")?;
        let mut owner_of = inner
            .db
            .prepare_cached("SELECT 1 FROM record WHERE seq = ?1 AND owner = ?2")?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let found: Vec<u32> = seqs
                .query_map([&k.0[..]], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut has = false;
            for seq in found {
                if owner_of.exists((seq, &owner.as_bytes()[..]))? {
                    has = true;
                    break;
                }
            }
            out.push(has);
        }
        Ok(out)
    }

    /// The records among the first `limit` whose first selector is `key`, unranked,
    /// those a query skips left out (not yet synced, negative reputation), and whether
    /// there may be more (`limit` were looked at): for values the caller checks by
    /// their content (LFFS chunks, named by their hash), where any record with the
    /// right bytes will do. One indexed lookup: a ranked query costs about three times
    /// as much, most of a cold read of a big file.
    pub fn records_at(
        &self,
        key: &SelectorKey,
        limit: usize,
    ) -> Result<(Vec<Record>, bool), StoreError> {
        Ok(self
            .records_at_many(std::slice::from_ref(key), limit)?
            .pop()
            .unwrap_or_default())
    }

    /// [`Store::records_at`] for several keys under one lock and read transaction (a
    /// read of a file fetches its chunks a request at a time: taking the lock and a
    /// transaction per chunk was a third of a cold read).
    pub fn records_at_many(
        &self,
        keys: &[SelectorKey],
        limit: usize,
    ) -> Result<Vec<(Vec<Record>, bool)>, StoreError> {
        let found: Vec<(Vec<(i64, i64)>, bool)> = {
            let inner = self.lock();
            let _read = inner.db.unchecked_transaction()?; // see `owner_has`
            // Two plain lookups (as `owner_has`): the same as one join, this one
            // was prepared again by SQLite at every execution, most of its cost.
            let mut seqs = inner
                .db
                .prepare_cached("SELECT seq FROM selector WHERE idx = 0 AND key = ?1 LIMIT ?2")?;
            let mut record = inner.db.prepare_cached(
                "SELECT doff, dlen FROM record WHERE seq = ?1 AND synced = 1
                 AND reputation >= 0",
            )?;
            let limit = limit.min(i64::MAX as usize) as i64;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let found: Vec<i64> = seqs
                    .query_map(rusqlite::params![&key.0[..], limit], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let more = found.len() as i64 >= limit;
                let mut at = Vec::with_capacity(found.len());
                for seq in found {
                    if let Some(loc) = record
                        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?
                    {
                        at.push(loc);
                    }
                }
                out.push((at, more));
            }
            out
        };
        found
            .into_iter()
            .map(|(at, more)| {
                let records = at
                    .into_iter()
                    .map(|(off, len)| self.read_unlocked(off, len))
                    .collect::<Result<_, _>>()?;
                Ok((records, more))
            })
            .collect()
    }

    /// Reads a stored record.
    pub fn get(&self, hash: &RecordHash) -> Result<Option<Record>, StoreError> {
        let inner = self.lock();
        let row: Option<(i64, i64)> = inner
            .db
            .prepare_cached("SELECT doff, dlen FROM record WHERE h8 = lf_h8(?1) AND hash = ?1")?
            .query_row([&hash.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            None => Ok(None),
            Some((off, len)) => Ok(Some(inner.read(off, len)?)),
        }
    }

    /// Reputation, sync state and weight of a stored record.
    pub fn info(&self, hash: &RecordHash) -> Result<Option<RecordInfo>, StoreError> {
        let inner = self.lock();
        let row: Option<(u32, i64, bool)> = inner
            .db
            .prepare_cached(
                "SELECT seq, reputation, synced FROM record WHERE h8 = lf_h8(?1) AND hash = ?1",
            )?
            .query_row([&hash.0[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(row.map(|(seq, reputation, synced)| RecordInfo {
            seq,
            reputation,
            synced,
            weight: inner.dag.weight(seq),
            linked_count: inner.dag.linked_count(seq),
        }))
    }

    /// Up to `n` hashes to link a new record to (tips first).
    pub fn link_candidates(&self, n: usize) -> Result<Vec<RecordHash>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner
            .db
            .prepare_cached("SELECT hash FROM record WHERE seq = ?1")?;
        let mut out = Vec::new();
        for seq in inner.dag.link_candidates(n) {
            let h: Vec<u8> = stmt.query_row([seq], |r| r.get(0))?;
            out.push(hash_from(&h)?);
        }
        Ok(out)
    }

    /// Hashes that stored records link to but that are not stored (to fetch from peers).
    pub fn wanted(&self, limit: usize) -> Result<Vec<RecordHash>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner.db.prepare_cached(
            "SELECT DISTINCT target FROM pending
             WHERE NOT EXISTS (SELECT 1 FROM record WHERE h8 = lf_h8(pending.target) AND hash = pending.target) LIMIT ?1",
        )?;
        let rows: Vec<Vec<u8>> = stmt
            .query_map([limit as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        rows.iter().map(|h| hash_from(h)).collect()
    }

    /// Stored hashes `h` with `start <= h <= end`, ascending, at most `limit` (P2P set
    /// reconciliation pages through hash ranges; a range scan of the hash index).
    pub fn hashes_in_range(
        &self,
        start: &RecordHash,
        end: &RecordHash,
        limit: usize,
    ) -> Result<Vec<RecordHash>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner.db.prepare_cached(
            "SELECT hash FROM record WHERE h8 BETWEEN lf_h8(?1) AND lf_h8(?2)
             AND hash >= ?1 AND hash <= ?2 ORDER BY h8, hash LIMIT ?3",
        )?;
        let rows: Vec<Vec<u8>> = stmt
            .query_map((&start.0[..], &end.0[..], limit as i64), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        rows.iter().map(|h| hash_from(h)).collect()
    }

    /// The position (`seq`) of the last record stored, 0 when none is: where a peer
    /// following this node's new records starts.
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let inner = self.lock();
        let seq: Option<i64> = inner
            .db
            .prepare_cached("SELECT MAX(seq) FROM record")?
            .query_row([], |r| r.get(0))?;
        Ok(seq.unwrap_or(0).max(0) as u64)
    }

    /// Hashes in insertion order (`seq`) after position `after`, at most `limit`, and
    /// the position of the last one (`after` if none): a peer far behind pulls records
    /// in this order, so that it receives parents before the records linking to them.
    pub fn hashes_after_seq(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<RecordHash>, u64), StoreError> {
        let inner = self.lock();
        let mut stmt = inner
            .db
            .prepare_cached("SELECT seq, hash FROM record WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows: Vec<(i64, Vec<u8>)> = stmt
            .query_map((after.min(i64::MAX as u64) as i64, limit as i64), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let last = rows.last().map_or(after, |(s, _)| *s as u64);
        let hashes = rows
            .iter()
            .map(|(_, h)| hash_from(h))
            .collect::<Result<_, _>>()?;
        Ok((hashes, last))
    }

    /// Records that lost a collision here (reputation 0 while another owner holds a
    /// synchronized record with the same ID at the default reputation) and that
    /// `oracle` has not commented on yet: what an oracle node flags.
    pub fn collision_suspects(
        &self,
        oracle: &Owner,
        limit: usize,
    ) -> Result<Vec<RecordHash>, StoreError> {
        let inner = self.lock();
        // Records with reputation 0 are few (collisions); for each, the winner is looked
        // up through its first selector key (records with one ID share it).
        let mut stmt = inner.db.prepare_cached(
            "SELECT r.hash, r.id, r.owner, r.doff, r.dlen FROM record r
             WHERE r.reputation = 0 AND r.synced = 1 AND r.sel_count > 0
               AND NOT EXISTS (SELECT 1 FROM comment c WHERE c.subject = r.hash
                               AND c.by_owner = ?1 AND c.assertion = 1)
             ORDER BY r.seq",
        )?;
        type Row = (Vec<u8>, Vec<u8>, Vec<u8>, i64, i64);
        let rows: Vec<Row> = stmt
            .query_map([&oracle.as_bytes()[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut winner = inner.db.prepare_cached(
            "SELECT 1 FROM selector s JOIN record w ON w.seq = s.seq
             WHERE s.idx = 0 AND s.key = ?1 AND w.id = ?2 AND w.owner != ?3
               AND w.synced = 1 AND w.reputation >= 63 LIMIT 1",
        )?;
        let mut out = Vec::new();
        for (hash, id, owner, off, len) in rows {
            if out.len() >= limit {
                break;
            }
            let r = inner.read(off, len)?;
            let Some(key0) = r.selector_keys().into_iter().next() else {
                continue;
            };
            if winner.exists((&key0.0[..], &id, &owner))? {
                out.push(hash_from(&hash)?);
            }
        }
        Ok(out)
    }

    /// Counters.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let inner = self.lock();
        let wanted: i64 = inner.db.query_row(
            "SELECT count(DISTINCT target) FROM pending
             WHERE NOT EXISTS (SELECT 1 FROM record WHERE h8 = lf_h8(pending.target) AND hash = pending.target)",
            [],
            |r| r.get(0),
        )?;
        Ok(StoreStats {
            records: inner.records,
            synced: inner.dag.synced_count(),
            bytes: inner.file.end(),
            wanted: wanted as u64,
            tips: inner.dag.tip_count() as u64,
        })
    }

    /// Number of records and bytes stored for one owner.
    pub fn owner_stats(&self, owner: &Owner) -> Result<(u64, u64), StoreError> {
        let inner = self.lock();
        let (n, bytes): (i64, i64) = inner.db.query_row(
            "SELECT coalesce(sum(records), 0), coalesce(sum(bytes), 0) FROM owner_stat WHERE owner = ?1",
            [&owner.as_bytes()[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((n as u64, bytes as u64))
    }

    /// Every record in storage order (for export and tests).
    pub fn all_hashes(&self) -> Result<Vec<RecordHash>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner.db.prepare("SELECT hash FROM record ORDER BY seq")?;
        let rows: Vec<Vec<u8>> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        rows.iter().map(|h| hash_from(h)).collect()
    }
}

impl Inner {
    /// Steps 3–6 of the write path (README) for the records `fresh` of `records`.
    /// Indexes records whose frames were appended (at `offsets`) and made durable, in
    /// one transaction that also records how far the index reaches.
    fn index_appended(
        &mut self,
        records: &[Record],
        fresh: &[usize],
        offsets: &[u64],
        outcomes: &mut [PutOutcome],
    ) -> Result<(), StoreError> {
        let end = self.file.end();
        let tx = self.db.transaction()?;
        for (k, &i) in fresh.iter().enumerate() {
            let r = &records[i];
            let seq = index_one(
                &tx,
                &mut self.dag,
                &self.config,
                r,
                offsets[k],
                r.to_bytes().len(),
            )?;
            outcomes[i] = PutOutcome::Added {
                synced: self.dag.is_synced(seq),
            };
        }
        schema::set_meta(&tx, "indexed_end", end as i64)?;
        tx.commit()?;
        self.records += fresh.len() as u64;
        Ok(())
    }

    /// Undoes a batch that failed before its commit (nothing of it was acknowledged; the
    /// transaction rolled back when dropped): cuts `records.lf` back to `start`, so a
    /// retry does not frame the records twice and no frame is left behind below a later
    /// `indexed_end`, and rebuilds the graph, which indexing had already updated.
    fn undo_batch(&mut self, start: u64) {
        if let Err(e) = self.file.truncate(start) {
            tracing::error!(error = %e, "cannot cut records.lf back after a failed put");
        }
        self.dag = Dag::default();
        if let Err(e) = self.load_dag() {
            tracing::error!(error = %e, "cannot rebuild the graph after a failed put");
        }
    }

    pub(crate) fn read(&self, off: i64, len: i64) -> Result<Record, StoreError> {
        Ok(Record::from_vec(self.file.read(off as u64, len as usize)?)?)
    }

    /// Rebuilds the DAG (parents, linked counts, tips, weights) and the record count
    /// from the index.
    fn load_dag(&mut self) -> Result<(), StoreError> {
        self.records = self
            .db
            .query_row("SELECT count(*) FROM record", [], |r| r.get::<_, i64>(0))?
            as u64;
        let parents: Vec<(u32, u32)> = self
            .db
            .prepare(
                "SELECT l.seq, t.seq FROM link l
                 JOIN record t ON t.h8 = lf_h8(l.target) AND t.hash = l.target
                 JOIN record s ON s.seq = l.seq WHERE s.synced = 1
                 ORDER BY l.seq, l.target",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        // Parents in target-hash order, as at insert: the weight walk stops after
        // `WEIGHT_VISIT_CAP` visits, so its order decides which ancestors get weight,
        // and every node (and this one after a restart) must walk in the same order.
        let nodes: Vec<(u32, i64, i64)> = self
            .db
            .prepare("SELECT seq, score, reputation FROM record WHERE synced = 1 ORDER BY seq")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut p = 0;
        let mut entries = Vec::with_capacity(nodes.len());
        for (seq, score, rep) in nodes {
            let mut ps = Vec::new();
            while p < parents.len() && parents[p].0 < seq {
                p += 1;
            }
            while p < parents.len() && parents[p].0 == seq {
                ps.push(parents[p].1);
                p += 1;
            }
            entries.push((seq, ps, score as u64, rep >= reputation::REPUTATION_DEFAULT));
        }
        self.dag.load(entries);
        Ok(())
    }
}

fn hash_from(b: &[u8]) -> Result<RecordHash, StoreError> {
    b.try_into()
        .map(RecordHash)
        .map_err(|_| StoreError::Corrupt(format!("record hash of {} bytes in index", b.len())))
}

fn exists(db: &Connection, hash: &RecordHash) -> rusqlite::Result<bool> {
    db.prepare_cached("SELECT 1 FROM record WHERE h8 = lf_h8(?1) AND hash = ?1")?
        .query_row([&hash.0[..]], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
}

/// Step 3 of the write path for one record: index row, selectors, links, reputation,
/// then synchronization (this record and any records that were waiting for it).
fn index_one(
    tx: &Transaction<'_>,
    dag: &mut Dag,
    config: &StoreConfig,
    r: &Record,
    doff: u64,
    dlen: usize,
) -> Result<u32, StoreError> {
    let id = r.id();
    let (rep, dropped) = reputation::at_insert(tx, r)?;
    for s in dropped {
        dag.set_good(s, false);
    }
    let score = lf_record::lf_pow::score(r.work().map(|w| w.effort));
    tx.prepare_cached(
        "INSERT INTO record (hash, h8, id, owner, ts, rtype, doff, dlen, score, reputation,
                             synced, sel_count)
         VALUES (?1, lf_h8(?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)",
    )?
    .execute((
        &r.hash().0[..],
        &id.0[..],
        &r.owner().as_bytes()[..],
        r.timestamp() as i64,
        r.record_type().to_byte(),
        doff as i64,
        dlen as i64,
        score as i64,
        rep,
        r.selectors().len() as i64,
    ))?;
    let seq = tx.last_insert_rowid() as u32;
    tx.prepare_cached(
        "INSERT INTO owner_stat (owner, records, bytes) VALUES (?1, 1, ?2)
         ON CONFLICT(owner) DO UPDATE SET records = records + 1, bytes = bytes + ?2",
    )?
    .execute((&r.owner().as_bytes()[..], dlen as i64))?;
    if r.record_type() == lf_record::RecordType::Commentary {
        index_comments(tx, r, seq)?;
    }
    for (i, k) in r.selector_keys().iter().enumerate() {
        tx.prepare_cached("INSERT OR IGNORE INTO selector (idx, key, seq) VALUES (?1, ?2, ?3)")?
            .execute((i as i64, &k.0[..], seq))?;
    }
    let mut waiting = false;
    // (target, seq, ts) of each synchronized parent: when all are, the record is
    // synchronized at once with what is known here, without reading it back.
    let mut parents: Vec<(RecordHash, u32, i64)> = Vec::with_capacity(r.links().len());
    for l in r.links() {
        tx.prepare_cached("INSERT OR IGNORE INTO link (seq, target) VALUES (?1, ?2)")?
            .execute((seq, &l.0[..]))?;
        let target: Option<(u32, i64, bool)> = tx
            .prepare_cached(
                "SELECT seq, ts, synced FROM record WHERE h8 = lf_h8(?1) AND hash = ?1",
            )?
            .query_row([&l.0[..]], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        match target {
            Some((pseq, pts, true)) => parents.push((*l, pseq, pts)),
            _ => {
                tx.prepare_cached("INSERT OR IGNORE INTO pending (target, seq) VALUES (?1, ?2)")?
                    .execute((&l.0[..], seq))?;
                waiting = true;
            }
        }
    }
    if !waiting {
        // In the order `SELECT target FROM link` returns them (by target hash), which
        // the weight walk depends on.
        parents.sort_unstable_by_key(|p| p.0);
        parents.dedup_by_key(|p| p.0);
        let s = Syncing {
            seq,
            hash: r.hash(),
            ts: r.timestamp() as i64,
            score: score as i64,
            rep,
            parents: parents.into_iter().map(|(_, s, t)| (s, t)).collect(),
        };
        mark_synced(tx, dag, config, s)?;
    }
    Ok(seq)
}

/// Indexes the comments of a commentary record (from anyone: which oracles to trust
/// is decided per query).
fn index_comments(tx: &Transaction<'_>, r: &Record, seq: u32) -> Result<(), StoreError> {
    let Ok(value) = r.value(None) else {
        return Ok(());
    };
    for c in lf_record::commentary::decode_comments(&value) {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO comment (subject, by_owner, assertion, by_seq)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute((&c.subject[..], &r.owner().as_bytes()[..], c.assertion, seq))?;
    }
    Ok(())
}

/// A record about to be marked synchronized, with what that needs.
struct Syncing {
    seq: u32,
    hash: RecordHash,
    ts: i64,
    score: i64,
    rep: i64,
    /// (seq, ts) of its parents, by target hash.
    parents: Vec<(u32, i64)>,
}

impl Syncing {
    /// Reads what marking `seq` synchronized needs from the index.
    fn load(tx: &Transaction<'_>, seq: u32, hash: RecordHash) -> Result<Syncing, StoreError> {
        let (ts, score, rep): (i64, i64, i64) = tx
            .prepare_cached("SELECT ts, score, reputation FROM record WHERE seq = ?1")?
            .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        // Two single-table lookups, not a join: SQLite marks a join's `?1` as
        // plan-relevant, and such a statement is re-prepared every time it comes back
        // from rusqlite's cache (which clears bindings): ~15% of insert time.
        let targets: Vec<Vec<u8>> = tx
            .prepare_cached("SELECT target FROM link WHERE seq = ?1")?
            .query_map([seq], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut parents: Vec<(u32, i64)> = Vec::with_capacity(targets.len());
        for t in &targets {
            let mut stmt =
                tx.prepare_cached("SELECT seq, ts FROM record WHERE h8 = lf_h8(?1) AND hash = ?1")?;
            if let Some(p) = stmt
                .query_row([&t[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
            {
                parents.push(p);
            }
        }
        Ok(Syncing {
            seq,
            hash,
            ts,
            score,
            rep,
            parents,
        })
    }
}

/// Marks a record fully synchronized, adds it to the DAG, then does the same for every
/// record that was waiting only for it (iteratively, no recursion depth limit).
fn mark_synced(
    tx: &Transaction<'_>,
    dag: &mut Dag,
    config: &StoreConfig,
    first: Syncing,
) -> Result<(), StoreError> {
    let mut next = Some(first);
    let mut queue: Vec<(u32, RecordHash)> = Vec::new();
    loop {
        let s = match next.take() {
            Some(s) => s,
            None => match queue.pop() {
                Some((seq, hash)) => Syncing::load(tx, seq, hash)?,
                None => return Ok(()),
            },
        };
        let mut rep = s.rep;
        let drift = config.max_time_drift as i64;
        if rep > reputation::REPUTATION_TEMPORAL
            && s.parents
                .iter()
                .any(|&(_, pts)| pts > s.ts.saturating_add(drift))
        {
            rep = reputation::REPUTATION_TEMPORAL;
        }
        tx.prepare_cached("UPDATE record SET synced = 1, reputation = ?2 WHERE seq = ?1")?
            .execute((s.seq, rep))?;
        dag.add_synced(
            s.seq,
            s.parents.iter().map(|p| p.0).collect(),
            s.score as u64,
            rep >= reputation::REPUTATION_DEFAULT,
        );
        // SELECT then DELETE rather than DELETE ... RETURNING: RETURNING builds a
        // temporary table on every run, and almost always nothing is waiting.
        let waiters: Vec<u32> = tx
            .prepare_cached("SELECT seq FROM pending WHERE target = ?1")?
            .query_map([&s.hash.0[..]], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !waiters.is_empty() {
            tx.prepare_cached("DELETE FROM pending WHERE target = ?1")?
                .execute([&s.hash.0[..]])?;
        }
        for w in waiters {
            let still: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM pending WHERE seq = ?1)")?
                .query_row([w], |r| r.get(0))?;
            if !still {
                let h: Vec<u8> = tx
                    .prepare_cached("SELECT hash FROM record WHERE seq = ?1")?
                    .query_row([w], |r| r.get(0))?;
                queue.push((w, hash_from(&h)?));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lf_record::{OwnerSecret, RecordBuilder, RecordType};
    use std::sync::Arc;

    #[test]
    fn queries_go_on_while_a_put_flushes_and_see_it_only_once_indexed() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open(tmp.path(), StoreConfig { max_time_drift: 60 }).unwrap());
        let o = OwnerSecret::from_scalar_bytes(&[7; 48]).unwrap();
        let r = RecordBuilder::new(RecordType::Datum, 1)
            .value(b"v".to_vec())
            .build(&o.public())
            .unwrap()
            .sign_without_work(&o)
            .unwrap();
        let (h, other) = (r.hash(), s.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        *s.before_flush.lock().unwrap() = Some(Box::new(move || {
            // Another thread's lookup, while this put is between append and flush:
            // it must not wait for the put (the lock is free), and must not see it.
            let (other, (done_tx, done_rx)) = (other.clone(), std::sync::mpsc::channel());
            std::thread::spawn(move || {
                let _ = done_tx.send(other.contains(&h).unwrap());
            });
            let waited = done_rx.recv_timeout(std::time::Duration::from_secs(10));
            let _ = tx.send(waited.ok());
        }));
        s.put(&r).unwrap();
        *s.before_flush.lock().unwrap() = None;
        let seen = rx.recv().unwrap();
        assert_eq!(
            seen,
            Some(false),
            "answered during the flush, without the record"
        );
        assert!(s.contains(&h).unwrap());
    }
}
