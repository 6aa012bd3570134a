//! Store behaviour on a real SQLite index and records file: put/get, synchronization
//! when links arrive out of order, weights, reputation on collisions, queries,
//! restart, and recovery of a torn records file.

use lf_record::{OwnerSecret, Record, RecordBuilder, RecordHash, RecordType, SelectorName};
use lf_store::{KeyRange, PutOutcome, Query, SortOrder, Store, StoreConfig};

const CONFIG: StoreConfig = StoreConfig { max_time_drift: 60 };

fn owner(n: u8) -> OwnerSecret {
    OwnerSecret::from_scalar_bytes(&[n; 48]).unwrap()
}

fn rec(
    o: &OwnerSecret,
    ts: u64,
    links: &[RecordHash],
    sel: Option<(&[u8], u64)>,
    v: &[u8],
) -> Record {
    let mut b = RecordBuilder::new(RecordType::Datum, ts)
        .value(v.to_vec())
        .links(links.to_vec());
    if let Some((n, ord)) = sel {
        b = b.selector(n, ord);
    }
    b.build(&o.public()).unwrap().sign_without_work(o).unwrap()
}

fn name_query(name: &[u8], first: u64, last: u64) -> Query {
    let n = SelectorName::new(name);
    let (start, end) = n.key_range(first, last);
    Query {
        ranges: vec![KeyRange { start, end }],
        ..Query::default()
    }
}

#[test]
fn put_get_duplicate_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let o = owner(1);
    let g = rec(&o, 100, &[], None, b"");
    let a = rec(&o, 101, &[g.hash()], Some((b"k", 0)), b"value");
    {
        let s = Store::open(dir.path(), CONFIG).unwrap();
        assert_eq!(s.put(&g).unwrap(), PutOutcome::Added { synced: true });
        assert_eq!(s.put(&a).unwrap(), PutOutcome::Added { synced: true });
        assert_eq!(s.put(&a).unwrap(), PutOutcome::Duplicate);
        assert_eq!(s.get(&a.hash()).unwrap().unwrap(), a);
        // A second open of the same directory is refused while this one lives.
        assert!(matches!(
            Store::open(dir.path(), CONFIG),
            Err(lf_store::StoreError::Locked(_))
        ));
    }
    let s = Store::open(dir.path(), CONFIG).unwrap();
    assert_eq!(s.get(&a.hash()).unwrap().unwrap(), a);
    let st = s.stats().unwrap();
    assert_eq!((st.records, st.synced, st.wanted), (2, 2, 0));
    let info = s.info(&g.hash()).unwrap().unwrap();
    assert_eq!(
        info.weight, 2,
        "genesis weight = own score + one descendant"
    );
    assert_eq!(s.link_candidates(1).unwrap(), vec![a.hash()]);
    assert_eq!(s.link_candidates(2).unwrap(), vec![a.hash(), g.hash()]);
}

#[test]
fn out_of_order_arrival_synchronizes_when_links_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), CONFIG).unwrap();
    let o = owner(2);
    let r1 = rec(&o, 1, &[], None, b"");
    let r2 = rec(&o, 2, &[r1.hash()], None, b"");
    let r3 = rec(&o, 3, &[r2.hash(), r1.hash()], Some((b"x", 1)), b"v");
    assert_eq!(s.put(&r3).unwrap(), PutOutcome::Added { synced: false });
    assert_eq!(s.put(&r2).unwrap(), PutOutcome::Added { synced: false });
    let mut wanted = s.wanted(10).unwrap();
    wanted.sort();
    assert_eq!(wanted, vec![r1.hash()]);
    // Not synchronized: invisible to queries.
    assert!(s.query(&name_query(b"x", 0, 10)).unwrap().is_empty());
    assert_eq!(s.put(&r1).unwrap(), PutOutcome::Added { synced: true });
    assert!(s.info(&r3.hash()).unwrap().unwrap().synced);
    assert_eq!(s.wanted(10).unwrap(), vec![]);
    assert_eq!(s.info(&r1.hash()).unwrap().unwrap().weight, 3);
    let res = s.query(&name_query(b"x", 0, 10)).unwrap();
    assert_eq!(res.len(), 1);
    assert_eq!(res[0][0].record, r3);
    drop(s);
    // Weights and sync state survive a restart (rebuilt from the index).
    let s = Store::open(dir.path(), CONFIG).unwrap();
    assert_eq!(s.info(&r1.hash()).unwrap().unwrap().weight, 3);
    assert_eq!(s.info(&r2.hash()).unwrap().unwrap().weight, 2);
}

#[test]
fn first_owner_wins_a_collision() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), CONFIG).unwrap();
    let (alice, mallory) = (owner(3), owner(4));
    let g = rec(&alice, 1, &[], None, b"");
    s.put(&g).unwrap();
    let original = rec(&alice, 10, &[g.hash()], Some((b"bad horse", 0)), b"alice");
    let impostor = rec(
        &mallory,
        20,
        &[g.hash()],
        Some((b"bad horse", 0)),
        b"mallory",
    );
    s.put(&original).unwrap();
    s.put(&impostor).unwrap();
    assert_eq!(s.info(&impostor.hash()).unwrap().unwrap().reputation, 0);
    assert_eq!(s.info(&original.hash()).unwrap().unwrap().reputation, 63);
    let res = s.query(&name_query(b"bad horse", 0, 0)).unwrap();
    assert_eq!(res.len(), 1, "one result set for one selector set");
    assert_eq!(res[0].len(), 2);
    assert_eq!(res[0][0].record.owner(), alice.public());
    assert_eq!(res[0][0].trust, 1.0);
    assert_eq!(res[0][1].trust, 0.0);
    // Alice updating her own record keeps her reputation.
    let update = rec(
        &alice,
        30,
        &[original.hash()],
        Some((b"bad horse", 0)),
        b"alice 2",
    );
    s.put(&update).unwrap();
    assert_eq!(s.info(&update.hash()).unwrap().unwrap().reputation, 63);
    let res = s.query(&name_query(b"bad horse", 0, 0)).unwrap();
    assert_eq!(
        res[0][0].record, update,
        "latest record of the winning owner"
    );
    // Impostors are never link candidates.
    assert!(!s.link_candidates(15).unwrap().contains(&impostor.hash()));
}

/// One owner wrote the same name on two nodes in the same second (a fleet sharing an
/// identity, on both sides of a partition): after both records arrived everywhere,
/// every node shows the same one, whatever the order they arrived in.
#[test]
fn same_owner_same_second_has_one_winner_in_any_arrival_order() {
    let o = owner(5);
    let g = rec(&o, 1, &[], None, b"");
    let left = rec(&o, 50, &[g.hash()], Some((b"fleet", 0)), b"left side");
    let right = rec(&o, 50, &[g.hash()], Some((b"fleet", 0)), b"right side");
    let shown = |order: [&Record; 2]| {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), CONFIG).unwrap();
        s.put(&g).unwrap();
        for r in order {
            s.put(r).unwrap();
        }
        let res = s.query(&name_query(b"fleet", 0, 0)).unwrap();
        assert_eq!(res[0].len(), 1, "one entry per owner");
        res[0][0].record.hash()
    };
    let a = shown([&left, &right]);
    assert_eq!(a, shown([&right, &left]));
    assert_eq!(a, left.hash().max(right.hash()));
}

#[test]
fn temporal_violation_lowers_reputation() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), CONFIG).unwrap();
    let o = owner(5);
    let future = rec(&o, 10_000, &[], None, b"");
    let past = rec(&o, 100, &[future.hash()], Some((b"t", 0)), b"");
    s.put(&future).unwrap();
    s.put(&past).unwrap();
    assert_eq!(s.info(&past.hash()).unwrap().unwrap().reputation, 48);
}

#[test]
fn ranges_intersections_time_owner_and_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), CONFIG).unwrap();
    let (a, b) = (owner(6), owner(7));
    let g = rec(&a, 1, &[], None, b"");
    s.put(&g).unwrap();
    for i in 0..10u64 {
        s.put(&rec(
            &a,
            10 + i,
            &[g.hash()],
            Some((b"series", i)),
            &[i as u8],
        ))
        .unwrap();
    }
    let two = RecordBuilder::new(RecordType::Datum, 50)
        .value(b"two".to_vec())
        .selector(b"series", 3)
        .selector(b"tag", 1)
        .links([g.hash()])
        .build(&b.public())
        .unwrap()
        .sign_without_work(&b)
        .unwrap();
    s.put(&two).unwrap();
    let q = name_query(b"series", 2, 5);
    let res = s.query(&q).unwrap();
    assert_eq!(res.len(), 4);
    let ords: Vec<u8> = res
        .iter()
        .map(|set| set[0].record.value(Some(b"series")).unwrap()[0])
        .collect();
    assert_eq!(ords, vec![2, 3, 4, 5], "result sets in ordinal order");
    let open = s
        .query(&Query {
            open: true,
            ..q.clone()
        })
        .unwrap();
    assert_eq!(open.len(), 5, "open also returns the two-selector record");
    let tag = SelectorName::new(b"tag");
    let (ts, te) = tag.key_range(0, 9);
    let mut both = name_query(b"series", 0, 9);
    both.ranges.push(KeyRange { start: ts, end: te });
    let res = s.query(&both).unwrap();
    assert_eq!(res.len(), 1);
    assert_eq!(res[0][0].record, two);
    let timed = s
        .query(&Query {
            time_range: Some((12, 13)),
            ..q.clone()
        })
        .unwrap();
    assert_eq!(timed.len(), 2);
    let only_b = s
        .query(&Query {
            owners: vec![b.public()],
            open: true,
            ..q.clone()
        })
        .unwrap();
    assert_eq!(only_b.len(), 1);
    let newest = s
        .query(&Query {
            sort: SortOrder::Timestamp,
            limit: Some(1),
            ..name_query(b"series", 0, 9)
        })
        .unwrap();
    assert!(newest.iter().all(|set| set.len() == 1));
    assert!(s.query(&Query::default()).unwrap().is_empty());
}

#[test]
fn torn_tail_is_cut_and_index_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let o = owner(8);
    let r1 = rec(&o, 1, &[], Some((b"a", 0)), b"one");
    let r2 = rec(&o, 2, &[r1.hash()], Some((b"a", 1)), b"two");
    {
        let s = Store::open(dir.path(), CONFIG).unwrap();
        s.put(&r1).unwrap();
        s.put(&r2).unwrap();
    }
    // Simulate a crash mid-append: half a frame at the end.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("records.lf"))
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
    }
    // And an index that lost its last commit: remove it so everything is re-indexed.
    std::fs::remove_file(dir.path().join("node.db")).unwrap();
    let _ = std::fs::remove_file(dir.path().join("node.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("node.db-shm"));
    let s = Store::open(dir.path(), CONFIG).unwrap();
    assert_eq!(s.stats().unwrap().records, 2);
    assert_eq!(s.get(&r2.hash()).unwrap().unwrap(), r2);
    assert!(s.info(&r2.hash()).unwrap().unwrap().synced);
    let len = std::fs::metadata(dir.path().join("records.lf"))
        .unwrap()
        .len();
    assert_eq!(len, s.stats().unwrap().bytes);
}

fn commentary(o: &OwnerSecret, ts: u64, links: &[RecordHash], suspects: &[RecordHash]) -> Record {
    let comments: Vec<_> = suspects
        .iter()
        .map(|h| lf_record::commentary::Comment::collision(*h))
        .collect();
    RecordBuilder::new(RecordType::Commentary, ts)
        .value(lf_record::commentary::encode_comments(&comments))
        .links(links.to_vec())
        .build(&o.public())
        .unwrap()
        .sign_without_work(o)
        .unwrap()
}

#[test]
fn oracle_commentary_ranks_the_impostor_below_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), CONFIG).unwrap();
    let (alice, mallory, oracle) = (owner(10), owner(11), owner(12));
    let g = rec(&alice, 1, &[], None, b"");
    let late = rec(&alice, 2, &[g.hash()], None, b"");
    s.put(&g).unwrap();
    // Both claims arrive before the record they link to: neither is synchronized when
    // they collide, so this node gives both reputation 0 and cannot tell them apart.
    let original = rec(&alice, 10, &[late.hash()], Some((b"name", 0)), b"alice");
    let impostor = rec(&mallory, 11, &[late.hash()], Some((b"name", 0)), b"mallory");
    s.put(&original).unwrap();
    s.put(&impostor).unwrap();
    s.put(&late).unwrap();
    let plain = s.query(&name_query(b"name", 0, 0)).unwrap();
    assert!(plain[0].iter().all(|r| r.trust == 0.0));
    // An oracle that saw the collision in order says the impostor is one.
    s.put(&commentary(&oracle, 20, &[g.hash()], &[impostor.hash()]))
        .unwrap();
    let q = Query {
        oracles: vec![oracle.public()],
        ..name_query(b"name", 0, 0)
    };
    let res = s.query(&q).unwrap();
    assert_eq!(res[0][0].record, original);
    assert_eq!(res[0][0].trust, 0.5);
    assert_eq!(res[0][1].record, impostor);
    assert_eq!(res[0][1].trust, 0.0);
    // Commentary from an owner the query does not trust changes nothing.
    let q = Query {
        oracles: vec![mallory.public()],
        ..name_query(b"name", 0, 0)
    };
    assert!(s.query(&q).unwrap()[0].iter().all(|r| r.trust == 0.5));
}

#[test]
fn collision_suspects_are_what_an_oracle_flags_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), CONFIG).unwrap();
    let (alice, mallory, oracle) = (owner(13), owner(14), owner(15));
    let g = rec(&alice, 1, &[], None, b"");
    s.put(&g).unwrap();
    let original = rec(&alice, 10, &[g.hash()], Some((b"n", 0)), b"a");
    let impostor = rec(&mallory, 11, &[g.hash()], Some((b"n", 0)), b"m");
    s.put(&original).unwrap();
    s.put(&impostor).unwrap();
    assert_eq!(
        s.collision_suspects(&oracle.public(), 10).unwrap(),
        vec![impostor.hash()]
    );
    s.put(&commentary(&oracle, 20, &[g.hash()], &[impostor.hash()]))
        .unwrap();
    assert!(
        s.collision_suspects(&oracle.public(), 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.collision_suspects(&alice.public(), 10).unwrap(),
        vec![impostor.hash()]
    );
}

#[test]
fn regression_limit_zero_returns_no_sets() {
    // A query with Limit 0 over several result sets used to panic while sorting them.
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), CONFIG).unwrap();
    let o = owner(16);
    let g = rec(&o, 1, &[], None, b"");
    s.put(&g).unwrap();
    for i in 0..3 {
        s.put(&rec(&o, 2 + i, &[g.hash()], Some((b"z", i)), b"v"))
            .unwrap();
    }
    let q = Query {
        limit: Some(0),
        ..name_query(b"z", 0, 9)
    };
    assert!(s.query(&q).unwrap().is_empty());
    assert_eq!(
        s.query(&Query {
            limit: Some(1),
            ..q
        })
        .unwrap()
        .len(),
        3
    );
}

#[test]
fn hash_ranges_page_in_order_owner_totals_and_an_older_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (o1, o2) = (owner(1), owner(2));
    let mut all = Vec::new();
    let mut bytes = [0u64; 2];
    {
        let s = Store::open(dir.path(), CONFIG).unwrap();
        let mut prev = rec(&o1, 100, &[], None, b"");
        s.put(&prev).unwrap();
        all.push(prev.hash());
        bytes[0] += prev.to_bytes().len() as u64;
        for i in 0..60u64 {
            let (o, k) = if i % 3 == 0 { (&o2, 1) } else { (&o1, 0) };
            let r = rec(o, 101 + i, &[prev.hash()], Some((b"k", i)), b"v");
            assert_eq!(s.put(&r).unwrap(), PutOutcome::Added { synced: true });
            bytes[k] += r.to_bytes().len() as u64;
            all.push(r.hash());
            prev = r;
        }
        // Storage order: pages of 7 continue after the last position, in insertion
        // order (parents first here), and end with an empty page.
        let mut stored = Vec::new();
        let mut after = 0;
        loop {
            let (page, next) = s.hashes_after_seq(after, 7).unwrap();
            if page.is_empty() {
                assert_eq!(next, after);
                break;
            }
            assert!(page.len() <= 7 && next > after);
            stored.extend(page);
            after = next;
        }
        assert_eq!(stored, all, "every record once, in the order stored");
        assert!(s.hashes_after_seq(u64::MAX, 7).unwrap().0.is_empty());
        all.sort();
        let (lo, hi) = (RecordHash([0; 32]), RecordHash([0xff; 32]));
        assert_eq!(s.hashes_in_range(&lo, &hi, 1000).unwrap(), all);
        // Paging with a small limit visits every hash once, in order.
        let mut paged = Vec::new();
        let mut start = lo;
        loop {
            let page = s.hashes_in_range(&start, &hi, 7).unwrap();
            paged.extend_from_slice(&page);
            let Some(last) = page.last() else { break };
            let mut next = last.0;
            if next == [0xff; 32] {
                break;
            }
            for b in next.iter_mut().rev() {
                *b = b.wrapping_add(1);
                if *b != 0 {
                    break;
                }
            }
            start = RecordHash(next);
        }
        assert_eq!(paged, all);
        // A sub-range between two stored hashes holds exactly those in between.
        let sub = s.hashes_in_range(&all[10], &all[20], 1000).unwrap();
        assert_eq!(sub, all[10..=20].to_vec());
        assert_eq!(s.owner_stats(&o1.public()).unwrap(), (41, bytes[0]));
        assert_eq!(s.owner_stats(&o2.public()).unwrap(), (20, bytes[1]));
    }
    // An index written by an older schema version is rebuilt from records.lf.
    rusqlite::Connection::open(dir.path().join("node.db"))
        .unwrap()
        .execute_batch("PRAGMA user_version = 1; DROP TABLE owner_stat;")
        .unwrap();
    let s = Store::open(dir.path(), CONFIG).unwrap();
    let st = s.stats().unwrap();
    assert_eq!((st.records, st.synced), (61, 61));
    assert_eq!(s.owner_stats(&o2.public()).unwrap(), (20, bytes[1]));
    let (lo, hi) = (RecordHash([0; 32]), RecordHash([0xff; 32]));
    assert_eq!(s.hashes_in_range(&lo, &hi, 1000).unwrap(), all);
}

/// Weights depend only on the DAG: the same records give the same weights in storage
/// order, in another arrival order (records waiting for parents, then a cascade), and
/// after a reopen rebuilds them from the index. The DAG is wide enough that the walk
/// from the newest records stops at `WEIGHT_VISIT_CAP`, where the order in which
/// parents are walked decides which ancestors get weight.
#[test]
fn weights_are_the_same_in_any_arrival_order_and_after_reopen() {
    use lf_store::{WEIGHT_HORIZON, WEIGHT_VISIT_CAP};
    const N: usize = 4800;
    const WINDOW: usize = 128;
    let o = owner(9);
    let mut records: Vec<Record> = vec![rec(&o, 1000, &[], None, b"g")];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 1..N {
        let mut links = Vec::new();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let back = 1 + (x as usize) % WINDOW.min(i);
            let h = records[i - back].hash();
            if !links.contains(&h) {
                links.push(h);
            }
        }
        records.push(rec(&o, 1000 + i as u64, &links, None, b""));
    }
    // The newest record has more ancestors within the horizon than the cap.
    let index: std::collections::HashMap<RecordHash, &Record> =
        records.iter().map(|r| (r.hash(), r)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut frontier = vec![records[N - 1].hash()];
    for _ in 0..WEIGHT_HORIZON {
        frontier = frontier
            .iter()
            .flat_map(|h| index[h].links().to_vec())
            .filter(|p| seen.insert(*p))
            .collect();
    }
    assert!(seen.len() > WEIGHT_VISIT_CAP, "{} ancestors", seen.len());

    let weights = |s: &Store| -> Vec<u64> {
        records
            .iter()
            .map(|r| s.info(&r.hash()).unwrap().unwrap().weight)
            .collect()
    };
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let in_order = {
        let s = Store::open(d1.path(), CONFIG).unwrap();
        for batch in records.chunks(500) {
            s.put_many(batch).unwrap();
        }
        weights(&s)
    };
    // Children before parents: blocks of 100 in reverse, each block in order, then the
    // genesis last (everything waits for it, then one cascade).
    let s2 = Store::open(d2.path(), CONFIG).unwrap();
    for block in records[1..].chunks(100).rev() {
        s2.put_many(block).unwrap();
    }
    assert_eq!(s2.stats().unwrap().synced, 0);
    s2.put(&records[0]).unwrap();
    assert_eq!(s2.stats().unwrap().synced, N as u64);
    assert_eq!(
        weights(&s2),
        in_order,
        "weights differ with another arrival order"
    );
    let reopened = weights(&Store::open(d1.path(), CONFIG).unwrap());
    assert_eq!(reopened, in_order, "weights differ after a reopen");
}
