//! Faults injected into the write path: a `put_many` whose index transaction fails
//! returns the error and leaves no trace, so `records.lf`, the index and the in-memory
//! graph still agree and a retry stores the batch once (README, write path).
//!
//! The fault is a trigger that a second SQLite connection adds to `node.db`: it aborts
//! the write of `meta.indexed_end`, the last statement of the batch's transaction, after
//! every record of the batch went through indexing and the graph.

use std::path::Path;

use lf_record::{OwnerSecret, Record, RecordBuilder, RecordHash, RecordType};
use lf_store::{PutOutcome, Store, StoreConfig, StoreError};

const CONFIG: StoreConfig = StoreConfig { max_time_drift: 60 };

fn rec(o: &OwnerSecret, ts: u64, links: &[RecordHash], selector: Option<&[u8]>) -> Record {
    let mut b = RecordBuilder::new(RecordType::Datum, ts)
        .value(format!("record {ts}").into_bytes())
        .links(links.to_vec());
    if let Some(name) = selector {
        b = b.selector(name, ts);
    }
    b.build(&o.public()).unwrap().sign_without_work(o).unwrap()
}

/// Number of frames in `records.lf`; panics unless the file is exactly whole frames.
fn frames(dir: &Path) -> usize {
    let data = std::fs::read(dir.join("records.lf")).unwrap();
    let (mut pos, mut n) = (0, 0);
    while pos < data.len() {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap());
        assert_eq!(crc32fast::hash(&data[pos + 8..pos + 8 + len]), crc);
        pos += 8 + len;
        n += 1;
    }
    n
}

fn file_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("records.lf")).unwrap().len()
}

/// Weight and link count of `h`.
fn weight(s: &Store, h: &RecordHash) -> (u64, u32) {
    let i = s.info(h).unwrap().unwrap();
    (i.weight, i.linked_count)
}

#[test]
fn failed_index_transaction_leaves_no_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = OwnerSecret::from_scalar_bytes(&[21; 48]).unwrap();
    let g = rec(&o, 1, &[], None);
    let a = rec(&o, 2, &[g.hash()], Some(b"k"));
    let b = rec(&o, 3, &[a.hash()], None);
    let s = Store::open(dir, CONFIG).unwrap();
    s.put(&g).unwrap();
    let before = file_len(dir);

    let db = rusqlite::Connection::open(dir.join("node.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER inject_fault BEFORE INSERT ON meta
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    let err = s.put_many(&[a.clone(), b.clone()]).unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err}");
    assert!(format!("{err:#}").contains("injected fault"), "{err:#}");
    // Nothing of the failed batch is left: not in the file, the index or the graph.
    assert!(!s.contains(&a.hash()).unwrap());
    assert_eq!(file_len(dir), before);
    let st = s.stats().unwrap();
    assert_eq!(
        (st.records, st.synced, st.bytes, st.tips),
        (1, 1, before, 1)
    );
    assert_eq!(weight(&s, &g.hash()), (1, 0));
    assert_eq!(s.link_candidates(3).unwrap(), vec![g.hash()]);

    // Once the fault is gone the same batch is stored, once.
    db.execute_batch("DROP TRIGGER inject_fault").unwrap();
    drop(db);
    assert_eq!(
        s.put_many(&[a.clone(), b.clone()]).unwrap(),
        vec![PutOutcome::Added { synced: true }; 2]
    );
    let check = |s: &Store| {
        assert_eq!(weight(s, &g.hash()), (3, 1));
        assert_eq!(weight(s, &a.hash()), (2, 1));
        assert_eq!(s.link_candidates(1).unwrap(), vec![b.hash()]);
        let st = s.stats().unwrap();
        assert_eq!((st.records, st.synced), (3, 3));
        assert_eq!(frames(dir), 3, "a record was framed twice");
        assert_eq!(st.bytes, file_len(dir));
    };
    check(&s);
    drop(s);
    let s = Store::open(dir, CONFIG).unwrap();
    check(&s);
    assert_eq!(s.get(&b.hash()).unwrap().unwrap(), b);
}
