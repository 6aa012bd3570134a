//! Convergence: two stores holding the same records answer queries the same way,
//! whatever order the records arrived in, where LF's rules are not local; collisions
//! between owners are listed with why the winner wins here.

use lf_record::{OwnerSecret, Record, RecordBuilder, RecordHash, RecordType, SelectorName};
use lf_store::{KeyRange, Query, SortOrder, Store, StoreConfig, WinReason};

const CONFIG: StoreConfig = StoreConfig { max_time_drift: 60 };

fn owner(n: u8) -> OwnerSecret {
    OwnerSecret::from_scalar_bytes(&[n; 48]).unwrap()
}

fn rec(o: &OwnerSecret, ts: u64, links: &[RecordHash], key: &[u8], v: &[u8]) -> Record {
    RecordBuilder::new(RecordType::Datum, ts)
        .value(v.to_vec())
        .links(links.to_vec())
        .selector(key, 0)
        .build(&o.public())
        .unwrap()
        .sign_without_work(o)
        .unwrap()
}

fn genesis(o: &OwnerSecret) -> Record {
    RecordBuilder::new(RecordType::Datum, 1)
        .build(&o.public())
        .unwrap()
        .sign_without_work(o)
        .unwrap()
}

fn query(key: &[u8], sort: SortOrder) -> Query {
    let (start, end) = SelectorName::new(key).key_range(0, 0);
    Query {
        ranges: vec![KeyRange { start, end }],
        sort,
        ..Query::default()
    }
}

/// The ranked hashes of the one result set under `key`.
fn ranked(s: &Store, key: &[u8], sort: SortOrder) -> Vec<RecordHash> {
    let sets = s.query(&query(key, sort)).unwrap();
    assert_eq!(sets.len(), 1);
    sets[0].iter().map(|r| r.record.hash()).collect()
}

fn store_with(records: &[&Record]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), CONFIG).unwrap();
    for r in records {
        s.put(r).unwrap();
    }
    (dir, s)
}

#[test]
fn same_owner_on_two_nodes_converges_to_the_newest_then_the_greatest_hash() {
    // A fleet sharing one key writes one selector on two nodes during a partition:
    // twice in the same second (a tie on timestamp), and once later on a third key.
    let fleet = owner(1);
    let g = genesis(&fleet);
    let a = rec(&fleet, 50, &[g.hash()], b"k", b"from node 1");
    let b = rec(&fleet, 50, &[g.hash()], b"k", b"from node 2");
    let newer = rec(&fleet, 51, &[g.hash()], b"n", b"newer");
    let older = rec(&fleet, 49, &[g.hash()], b"n", b"older");
    let tie_winner = a.hash().max(b.hash());
    // Each node stored its own record first, the other's after the heal.
    let (_d1, n1) = store_with(&[&g, &a, &older, &b, &newer]);
    let (_d2, n2) = store_with(&[&g, &b, &newer, &a, &older]);
    for s in [&n1, &n2] {
        for sort in [SortOrder::Trust, SortOrder::Weight, SortOrder::Timestamp] {
            assert_eq!(ranked(s, b"k", sort), vec![tie_winner], "{sort:?}");
            assert_eq!(ranked(s, b"n", sort), vec![newer.hash()], "{sort:?}");
        }
        // One owner is no collision.
        let c = s.collisions(10, 100, &[], None).unwrap();
        assert_eq!((c.count, c.listed.len()), (0, 0));
    }
}

#[test]
fn entries_that_tie_on_every_criterion_are_ordered_by_hash() {
    // Two owners, each first seen on a different store: trust differs per store, but
    // with weight order the tie (equal weight) is broken by hash on both.
    let (alice, bob) = (owner(2), owner(3));
    let g = genesis(&alice);
    let a = rec(&alice, 60, &[g.hash()], b"k", b"alice");
    let b = rec(&bob, 60, &[g.hash()], b"k", b"bob");
    let mut expected = vec![a.hash(), b.hash()];
    expected.sort();
    let (_d1, n1) = store_with(&[&g, &a, &b]);
    let (_d2, n2) = store_with(&[&g, &b, &a]);
    for s in [&n1, &n2] {
        assert_eq!(ranked(s, b"k", SortOrder::Weight), expected);
        assert_eq!(ranked(s, b"k", SortOrder::Timestamp), expected);
    }
}

#[test]
fn collisions_between_owners_are_listed_with_the_local_winner_and_why() {
    let (alice, bob) = (owner(4), owner(5));
    let g = genesis(&alice);
    let a = rec(&alice, 70, &[g.hash()], b"part", b"alice");
    let b = rec(&bob, 71, &[g.hash()], b"part", b"bob");
    let quiet = rec(&alice, 72, &[g.hash()], b"alone", b"no rival");
    // Node 1 saw Alice first, node 2 Bob: each lists the collision, with its own
    // winner, "first seen here" (local reputation: nodes may disagree).
    let (_d1, n1) = store_with(&[&g, &a, &quiet, &b]);
    let (_d2, n2) = store_with(&[&g, &b, &quiet, &a]);
    for (s, winner, loser) in [(&n1, &a, &b), (&n2, &b, &a)] {
        let c = s.collisions(10, 100, &[], None).unwrap();
        assert_eq!(c.count, 1);
        assert_eq!(c.listed.len(), 1);
        let col = &c.listed[0];
        assert_eq!(col.id, a.id());
        assert_eq!(col.selector_keys, a.selector_keys());
        let owners: Vec<_> = col.entries.iter().map(|e| e.record.hash()).collect();
        assert_eq!(owners, vec![winner.hash(), loser.hash()]);
        assert_eq!(col.reason, WinReason::FirstSeenHere);
        assert!(!col.reason.same_everywhere());
    }
    // Bob's update keeps the collision one set, with his latest record.
    let b2 = rec(&bob, 80, &[b.hash()], b"part", b"bob 2");
    n1.put(&b2).unwrap();
    let c = n1.collisions(10, 100, &[], None).unwrap();
    assert_eq!(c.count, 1);
    assert_eq!(c.listed[0].entries[1].record.hash(), b2.hash());
    // The listing is bounded; the count is capped.
    let c2 = rec(&bob, 81, &[g.hash()], b"alone", b"rival");
    n1.put(&c2).unwrap();
    let c = n1.collisions(1, 100, &[], None).unwrap();
    assert_eq!((c.count, c.listed.len()), (2, 1));
    let c = n1.collisions(5, 1, &[], None).unwrap();
    assert_eq!((c.count, c.listed.len()), (1, 2));
}

#[test]
fn trusted_oracles_settle_a_collision_the_same_way_on_every_node() {
    use lf_record::commentary::Comment;
    let (alice, mallory, o1, o2) = (owner(6), owner(7), owner(8), owner(9));
    let g = genesis(&alice);
    let a = rec(&alice, 70, &[g.hash()], b"name", b"alice");
    let m = rec(&mallory, 71, &[g.hash()], b"name", b"mallory");
    // Two oracles that saw Alice first flag Mallory's record.
    let comments: Vec<Comment> = vec![Comment::collision(m.hash())];
    let flag = |o: &OwnerSecret, ts| {
        RecordBuilder::new(RecordType::Commentary, ts)
            .value(lf_record::commentary::encode_comments(&comments))
            .links(vec![g.hash()])
            .build(&o.public())
            .unwrap()
            .sign_without_work(o)
            .unwrap()
    };
    let (f1, f2) = (flag(&o1, 72), flag(&o2, 73));
    let (_d1, n1) = store_with(&[&g, &a, &m, &f1, &f2]);
    let (_d2, n2) = store_with(&[&g, &m, &a, &f1, &f2]);
    let oracles = [o1.public(), o2.public()];
    for s in [&n1, &n2] {
        let c = s.collisions(10, 100, &oracles, None).unwrap();
        assert_eq!(c.listed.len(), 1);
        assert_eq!(c.listed[0].entries[0].record.hash(), a.hash());
    }
    // Node 2 saw Mallory first: only the oracles make Alice win there.
    let c = n2.collisions(10, 100, &oracles, None).unwrap();
    assert_eq!(c.listed[0].reason, WinReason::Oracles);
    assert!(c.listed[0].reason.same_everywhere());
}

/// Certifies one owner (from any time).
#[derive(Debug)]
struct Certified(lf_record::Owner);

impl lf_store::Certification for Certified {
    fn is_certified(&self, owner: &lf_record::Owner, _timestamp: u64) -> bool {
        *owner == self.0
    }
}

#[test]
fn a_certified_owner_wins_on_every_node_whichever_it_saw_first() {
    let (corp, stranger) = (owner(10), owner(11));
    let g = genesis(&corp);
    let c = rec(&corp, 90, &[g.hash()], b"motd", b"certified");
    let s = rec(&stranger, 80, &[g.hash()], b"motd", b"earlier, uncertified");
    let (_d1, n1) = store_with(&[&g, &c, &s]);
    let (_d2, n2) = store_with(&[&g, &s, &c]);
    let hook: std::sync::Arc<dyn lf_store::Certification> =
        std::sync::Arc::new(Certified(corp.public()));
    for st in [&n1, &n2] {
        let mut q = query(b"motd", SortOrder::Trust);
        q.certification = Some(hook.clone());
        let set = &st.query(&q).unwrap()[0];
        assert_eq!(set[0].record.hash(), c.hash());
        let col = st.collisions(10, 100, &[], Some(hook.clone())).unwrap();
        assert_eq!(col.listed[0].entries[0].record.hash(), c.hash());
        assert_eq!(col.listed[0].reason, WinReason::Certified);
        assert!(col.listed[0].reason.same_everywhere());
    }
    // Without the hook, each node ranks its first-seen owner first.
    assert_eq!(ranked(&n1, b"motd", SortOrder::Trust)[0], c.hash());
    assert_eq!(ranked(&n2, b"motd", SortOrder::Trust)[0], s.hash());
}

/// `records_at` (the unranked look LFFS uses for content-addressed chunks) finds what a
/// ranked query finds under the key, whoever wrote it, up to its limit.
#[test]
fn unranked_lookup_finds_every_owner_record_under_a_key() {
    let (a, b) = (owner(1), owner(2));
    let (ga, gb) = (genesis(&a), genesis(&b));
    let ra = rec(&a, 10, &[ga.hash()], b"chunk", b"from a");
    let rb = rec(&b, 11, &[gb.hash()], b"chunk", b"from b");
    let other = rec(&a, 12, &[ra.hash()], b"other", b"x");
    let (_dir, s) = store_with(&[&ga, &gb, &ra, &rb, &other]);
    let key = SelectorName::new(b"chunk").key(0);
    let (records, more) = s.records_at(&key, 16).unwrap();
    assert!(!more);
    let mut found: Vec<RecordHash> = records.iter().map(|r| r.hash()).collect();
    found.sort();
    let mut ranked = ranked(&s, b"chunk", SortOrder::Trust);
    ranked.sort();
    assert_eq!(found, ranked);
    let mut both = vec![ra.hash(), rb.hash()];
    both.sort();
    assert_eq!(found, both);
    let (one, more) = s.records_at(&key, 1).unwrap();
    assert_eq!(one.len(), 1);
    assert!(more, "a look that took the limit says there may be more");
    let (none, more) = s
        .records_at(&SelectorName::new(b"absent").key(0), 16)
        .unwrap();
    assert!(none.is_empty() && !more);
    // Several keys at once: each key's records, in the order of the keys.
    let many = s
        .records_at_many(
            &[
                SelectorName::new(b"other").key(0),
                SelectorName::new(b"absent").key(0),
                key,
            ],
            16,
        )
        .unwrap();
    assert_eq!(many.len(), 3);
    assert_eq!(
        many[0].0.iter().map(|r| r.hash()).collect::<Vec<_>>(),
        vec![other.hash()]
    );
    assert!(many[1].0.is_empty());
    let mut third: Vec<RecordHash> = many[2].0.iter().map(|r| r.hash()).collect();
    third.sort();
    assert_eq!(third, both);
}
