//! What the store knows about certificates: listing the certificate and CRL records it
//! holds (the node rebuilds its certificate registry from them at start), and the hook
//! through which queries learn which records are certified (reference §9.6: when the
//! network has root CAs, an uncertified record's trust is multiplied by 0.9).
//!
//! The store verifies no certificate itself: X.509 checking lives in `lf-record`
//! (`CertRegistry`) and the node owns the registry; a query only asks it.

use lf_record::{Owner, Record, RecordType};

use crate::{Store, StoreError};

/// Trust multiplier for records whose owner is not certified at their timestamp, on a
/// network that has root CAs (reference §9.6).
pub const UNCERTIFIED_TRUST_FACTOR: f64 = 0.9;

/// Answers "was this owner certified at this time" for queries (implemented by the
/// node over its certificate registry).
pub trait Certification: Send + Sync + std::fmt::Debug {
    /// Whether `owner` held a valid, unrevoked certificate at `timestamp`.
    fn is_certified(&self, owner: &Owner, timestamp: u64) -> bool;
}

impl Store {
    /// Every stored record of type `t`, in insertion order (synchronized or not). Meant
    /// for the few certificate and CRL records; callers must not ask for `Datum`.
    pub fn records_of_type(&self, t: RecordType) -> Result<Vec<Record>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner.db.prepare_cached(
            // `rtype != 0` lets SQLite use the partial index of non-datum records.
            "SELECT doff, dlen FROM record WHERE rtype = ?1 AND rtype != 0 ORDER BY seq",
        )?;
        let at: Vec<(i64, i64)> = stmt
            .query_map([t.to_byte() as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        at.into_iter().map(|(o, l)| inner.read(o, l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lf_record::{OwnerSecret, RecordBuilder, SelectorName};

    use super::*;
    use crate::{KeyRange, Query, StoreConfig};

    #[derive(Debug)]
    struct Only(Owner);
    impl Certification for Only {
        fn is_certified(&self, owner: &Owner, _: u64) -> bool {
            *owner == self.0
        }
    }

    fn rec(o: &OwnerSecret, ts: u64, t: RecordType, value: &[u8]) -> Record {
        let mut b = RecordBuilder::new(t, ts).value(value.to_vec());
        if t == RecordType::Datum {
            b = b.selector(b"name", 0);
        }
        b.build(&o.public()).unwrap().sign_without_work(o).unwrap()
    }

    #[test]
    fn records_of_type_reads_the_partial_index_not_the_whole_table() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreConfig { max_time_drift: 60 }).unwrap();
        let inner = s.lock();
        let plan: Vec<String> = inner
            .db
            .prepare(
                "EXPLAIN QUERY PLAN SELECT doff, dlen FROM record
                 WHERE rtype = ?1 AND rtype != 0 ORDER BY seq",
            )
            .unwrap()
            .query_map([3], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("record_special")),
            "{plan:?}"
        );
    }

    #[test]
    fn certified_entries_rank_first_and_certificate_records_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreConfig { max_time_drift: 60 }).unwrap();
        let early = OwnerSecret::from_scalar_bytes(&[1; 48]).unwrap();
        let certified = OwnerSecret::from_scalar_bytes(&[2; 48]).unwrap();
        let first = rec(&early, 100, RecordType::Datum, b"impostor");
        let second = rec(&certified, 101, RecordType::Datum, b"original");
        let cert = rec(
            &certified,
            99,
            RecordType::Certificate,
            b"certificate bytes",
        );
        s.put_many(&[first.clone(), second.clone(), cert.clone()])
            .unwrap();
        let (start, end) = SelectorName::new(b"name").key_range(0, 0);
        let plain = Query {
            ranges: vec![KeyRange { start, end }],
            ..Query::default()
        };
        // Without certification the earlier claim wins locally.
        let res = s.query(&plain).unwrap();
        assert_eq!(res[0][0].record, first);
        assert!(res[0].iter().all(|r| !r.signed));
        let q = Query {
            certification: Some(Arc::new(Only(certified.public()))),
            ..plain
        };
        let res = s.query(&q).unwrap();
        assert_eq!(res[0][0].record, second);
        assert!(res[0][0].signed);
        assert_eq!(res[0][1].record, first);
        assert!(!res[0][1].signed);
        assert_eq!(res[0][1].trust, UNCERTIFIED_TRUST_FACTOR);
        assert_eq!(
            s.records_of_type(RecordType::Certificate).unwrap(),
            vec![cert]
        );
        assert!(s.records_of_type(RecordType::Crl).unwrap().is_empty());
    }
}
