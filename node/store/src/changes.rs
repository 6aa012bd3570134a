//! The store's insertion order as a change log: every record gets the next `seq` when
//! it is indexed, `seq` is never reused and records are never removed, so "everything
//! stored after position n" is exact, survives restarts, and needs no log of its own
//! (an index rebuilt from `records.lf` gives every record the same position again,
//! since the file is in insertion order). Watchers (the daemon's `/watch`) read it; so
//! does history, which lists every record stored under one selector key.

use lf_record::{Record, SelectorKey};

use crate::{Store, StoreError};

/// A stored record and its position in the store's insertion order.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Position in insertion order (1 for the first record).
    pub seq: u64,
    /// Fully synchronized (a query result).
    pub synced: bool,
    /// The record.
    pub record: Record,
}

impl Store {
    /// The position of the last record stored (0 when empty).
    pub fn head_seq(&self) -> Result<u64, StoreError> {
        let inner = self.lock();
        let n: Option<i64> = inner
            .db
            .prepare_cached("SELECT max(seq) FROM record")?
            .query_row([], |r| r.get(0))?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// Records stored after position `after`, in order, at most `limit`.
    pub fn records_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let rows: Vec<(i64, bool, i64, i64)> = {
            let inner = self.lock();
            let mut stmt = inner.db.prepare_cached(
                "SELECT seq, synced, doff, dlen FROM record WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            stmt.query_map((after.min(i64::MAX as u64) as i64, limit as i64), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?
        };
        self.read_rows(rows)
    }

    /// Every record whose first selector key is `key`, in insertion order (oldest
    /// first), at most `limit`: all versions of that key, winners and losers alike.
    pub fn records_at_key(
        &self,
        key: &SelectorKey,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let rows: Vec<(i64, bool, i64, i64)> = {
            let inner = self.lock();
            let mut stmt = inner.db.prepare_cached(
                "SELECT r.seq, r.synced, r.doff, r.dlen FROM selector s
                 JOIN record r ON r.seq = s.seq
                 WHERE s.idx = 0 AND s.key = ?1 ORDER BY s.seq LIMIT ?2",
            )?;
            stmt.query_map((&key.0[..], limit as i64), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?
        };
        self.read_rows(rows)
    }

    /// Whether a record stored before position `before` has `key` as its first
    /// selector key.
    pub fn key_seen_before(&self, key: &SelectorKey, before: u64) -> Result<bool, StoreError> {
        let inner = self.lock();
        let found = inner
            .db
            .prepare_cached("SELECT 1 FROM selector WHERE idx = 0 AND key = ?1 AND seq < ?2")?
            .exists((&key.0[..], before.min(i64::MAX as u64) as i64))?;
        Ok(found)
    }

    /// Reads the records of index rows (seq, synced, offset, length) without the lock:
    /// the index names only complete, durable frames.
    fn read_rows(&self, rows: Vec<(i64, bool, i64, i64)>) -> Result<Vec<Stored>, StoreError> {
        rows.into_iter()
            .map(|(seq, synced, off, len)| {
                Ok(Stored {
                    seq: seq as u64,
                    synced,
                    record: self.read_unlocked(off, len)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use lf_record::{OwnerSecret, RecordBuilder, RecordType};

    fn record(o: &OwnerSecret, links: Vec<lf_record::RecordHash>, v: &str, ts: u64) -> Record {
        RecordBuilder::new(RecordType::Datum, ts)
            .value(v.as_bytes().to_vec())
            .links(links)
            .selector(b"cfg", 7)
            .build(&o.public())
            .unwrap()
            .sign_without_work(o)
            .unwrap()
    }

    #[test]
    fn insertion_order_survives_reopen_and_lists_versions_of_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let o = OwnerSecret::from_scalar_bytes(&[9; 48]).unwrap();
        let ts = 1_700_000_000;
        let mut hashes = Vec::new();
        {
            let s = Store::open(dir.path(), StoreConfig { max_time_drift: 60 }).unwrap();
            assert_eq!(s.head_seq().unwrap(), 0);
            let mut links = vec![];
            for i in 0..5 {
                let r = record(&o, links, &format!("v{i}"), ts + i);
                s.put(&r).unwrap();
                links = vec![r.hash()];
                hashes.push(r.hash());
            }
            assert_eq!(s.head_seq().unwrap(), 5);
        }
        let s = Store::open(dir.path(), StoreConfig { max_time_drift: 60 }).unwrap();
        let after: Vec<_> = s.records_after(2, 10).unwrap();
        assert_eq!(
            after.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(after[0].record.hash(), hashes[2]);
        assert_eq!(s.records_after(0, 2).unwrap().len(), 2);
        let key = lf_record::SelectorName::new(b"cfg").key(7);
        let versions = s.records_at_key(&key, 100).unwrap();
        assert_eq!(
            versions.iter().map(|v| v.record.hash()).collect::<Vec<_>>(),
            hashes
        );
        assert!(!s.key_seen_before(&key, 1).unwrap());
        assert!(s.key_seen_before(&key, 2).unwrap());
        let other = lf_record::SelectorName::new(b"cfg").key(8);
        assert!(s.records_at_key(&other, 100).unwrap().is_empty());
    }
}
