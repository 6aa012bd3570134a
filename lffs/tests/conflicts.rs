//! Collisions between owners on the mount, over `MemStore` (which ranks owners by who
//! wrote a key first, as local reputation does): two stores that saw the owners in
//! opposite orders show different winners under the name but list the same names,
//! every version under a conflict name; conflict copies are read-only, and unlinking
//! one's own withdraws that version.

use lf_record::Owner;
use lffs::conflicts;
use lffs::layout::{self, Body, Entry, FileData, ROOT_INO};
use lffs::{Filesystem, FsConfig, MemStore, Put};

const EACCES: i32 = 13;
const EEXIST: i32 = 17;
const ENOENT: i32 = 2;

const ROOT: &[u8] = b"com.example.conflicts";

fn owner(tag: u8) -> Owner {
    lf_record::OwnerSecret::from_scalar_bytes(&[tag; 48])
        .unwrap()
        .public()
}

fn config() -> FsConfig {
    FsConfig {
        root: ROOT.to_vec(),
        uid: 1000,
        gid: 1000,
        ..FsConfig::default()
    }
}

fn file(name: &[u8], data: &[u8], mtime: u64) -> Entry {
    Entry {
        name: name.to_vec(),
        mode: 0o644,
        mtime,
        body: Body::File(FileData::Inline(data.to_vec())),
    }
}

/// Publishes `e` in the root as `by`, as if it had arrived from a peer.
fn publish(fs: &Filesystem<MemStore>, by: Owner, e: &Entry) {
    fs.store().put_as(
        by,
        Put {
            name: ROOT.to_vec(),
            ordinal: layout::name_ordinal(&e.name),
            mask: ROOT.to_vec(),
            value: e.encode(),
        },
    );
}

fn names(fs: &Filesystem<MemStore>) -> Vec<String> {
    fs.readdir(ROOT_INO)
        .unwrap()
        .into_iter()
        .map(|d| String::from_utf8(d.name).unwrap())
        .filter(|n| n != ".passwd")
        .collect()
}

fn read(fs: &Filesystem<MemStore>, name: &str) -> Vec<u8> {
    let ino = fs.lookup(ROOT_INO, name.as_bytes()).unwrap().ino;
    let fh = fs.open(ino, false).unwrap();
    let data = fs.read(ino, 0, 1 << 16).unwrap();
    fs.release(fh).unwrap();
    data
}

// 2026-12-07 04:05:06 and 04:05:09 UTC.
const T_ALICE: u64 = 1_796_616_306_000_000_000;
const T_BOB: u64 = 1_796_616_309_000_000_000;

/// Node 1 (Alice's mount) saw Alice's part.txt first, node 2 (Bob's) Bob's.
fn two_nodes() -> (Filesystem<MemStore>, Filesystem<MemStore>, Owner, Owner) {
    let (alice, bob) = (owner(1), owner(2));
    let a = file(b"part.txt", b"alice's", T_ALICE);
    let b = file(b"part.txt", b"bob's", T_BOB);
    let n1 = Filesystem::new(MemStore::new(alice, 60_000), config());
    let n2 = Filesystem::new(MemStore::new(bob, 60_000), config());
    publish(&n1, alice, &a);
    publish(&n1, bob, &b);
    publish(&n2, bob, &b);
    publish(&n2, alice, &a);
    (n1, n2, alice, bob)
}

#[test]
fn every_node_lists_the_same_names_with_its_own_winner_under_the_name() {
    let (n1, n2, alice, bob) = two_nodes();
    let ca = format!(
        "part.sync-conflict-{}-20261207-040506.txt",
        conflicts::owner_short(&alice)
    );
    let cb = format!(
        "part.sync-conflict-{}-20261207-040509.txt",
        conflicts::owner_short(&bob)
    );
    let mut expected = vec!["part.txt".to_string(), ca.clone(), cb.clone()];
    expected.sort();
    assert_eq!(names(&n1), expected);
    assert_eq!(names(&n2), expected);
    // The local winner under the name; every version under its conflict name.
    assert_eq!(read(&n1, "part.txt"), b"alice's");
    assert_eq!(read(&n2, "part.txt"), b"bob's");
    for fs in [&n1, &n2] {
        assert_eq!(read(fs, &ca), b"alice's");
        assert_eq!(read(fs, &cb), b"bob's");
    }
    // A lookup needs no listing first (a fresh mount, a path typed by hand).
    let (fresh, _, _, _) = two_nodes();
    let a = fresh.lookup(ROOT_INO, cb.as_bytes()).unwrap();
    assert_eq!(a.size, 5);
    assert!(!a.writable);
    // The mount reports the contested name with its path.
    let seen = n1.contested();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path.as_deref(), Some(&b"/part.txt"[..]));
    assert_eq!(seen[0].ordinal, layout::name_ordinal(b"part.txt"));
}

#[test]
fn conflict_copies_are_read_only_and_unlinking_ones_own_withdraws_it() {
    let (n1, _n2, alice, bob) = two_nodes();
    let ca = conflicts::conflict_name(b"part.txt", &alice, T_ALICE).unwrap();
    let cb = conflicts::conflict_name(b"part.txt", &bob, T_BOB).unwrap();
    // Even the mount owner's own version is read-only under its conflict name.
    let own = n1.lookup(ROOT_INO, &ca).unwrap();
    assert!(!own.writable);
    assert_eq!(own.perm & 0o222, 0);
    assert_eq!(n1.open(own.ino, true).unwrap_err().errno(), EACCES);
    assert_eq!(
        n1.setattr(own.ino, Some(0o600), None, None, None, None)
            .unwrap_err()
            .errno(),
        EACCES
    );
    assert_eq!(
        n1.rename(ROOT_INO, &ca, ROOT_INO, b"elsewhere")
            .unwrap_err()
            .errno(),
        EACCES
    );
    // Nothing is renamed or created over a conflict copy either.
    n1.create(ROOT_INO, b"mine", 0o644).unwrap();
    assert_eq!(
        n1.rename(ROOT_INO, b"mine", ROOT_INO, &cb)
            .unwrap_err()
            .errno(),
        EACCES
    );
    assert_eq!(n1.create(ROOT_INO, &cb, 0o644).unwrap_err().errno(), EEXIST);
    // Another owner's version cannot be removed.
    assert_eq!(n1.unlink(ROOT_INO, &cb).unwrap_err().errno(), EACCES);
    // One's own is withdrawn: a deletion of part.txt by Alice, on every node.
    n1.unlink(ROOT_INO, &ca).unwrap();
    let left = names(&n1);
    assert!(!left.contains(&String::from_utf8(ca.clone()).unwrap()));
    assert!(left.contains(&String::from_utf8(cb.clone()).unwrap()));
    assert_eq!(read(&n1, std::str::from_utf8(&cb).unwrap()), b"bob's");
    // Alice's deletion still holds the name here (first owner wins, even deleted),
    // and Bob's version stays visible under its conflict name.
    assert_eq!(
        n1.lookup(ROOT_INO, b"part.txt").unwrap_err().errno(),
        ENOENT
    );
}

#[test]
fn one_owner_alone_has_no_conflict_copies_and_a_real_name_wins_over_a_copy() {
    let alice = owner(1);
    let fs = Filesystem::new(MemStore::new(alice, 60_000), config());
    publish(&fs, alice, &file(b"solo.txt", b"x", T_ALICE));
    assert_eq!(names(&fs), vec!["solo.txt"]);
    assert!(fs.contested().is_empty());
    // A real file whose name looks like a conflict name is listed once, as itself.
    let bob = owner(2);
    publish(&fs, bob, &file(b"solo.txt", b"y", T_BOB));
    let cb = conflicts::conflict_name(b"solo.txt", &bob, T_BOB).unwrap();
    publish(&fs, alice, &file(&cb, b"real", T_ALICE));
    let listed = names(&fs);
    let cbs = String::from_utf8(cb).unwrap();
    assert_eq!(listed.iter().filter(|n| **n == cbs).count(), 1);
    assert_eq!(read(&fs, &cbs), b"real");
    assert!(fs.lookup(ROOT_INO, cbs.as_bytes()).unwrap().writable);
}

#[test]
fn contested_names_in_subdirectories_are_reported_with_their_paths() {
    let (alice, bob) = (owner(1), owner(2));
    let fs = Filesystem::new(MemStore::new(alice, 60_000), config());
    let top = fs.mkdir(ROOT_INO, b"top", 0o755).unwrap();
    let sub = fs.mkdir(top.ino, b"sub", 0o755).unwrap();
    let (fh_ino, fh) = {
        let (a, fh) = fs.create(sub.ino, b"notes.md", 0o644).unwrap();
        (a.ino, fh)
    };
    fs.write(fh_ino, 0, b"alice").unwrap();
    fs.release(fh).unwrap();
    // Bob writes notes.md in the same directory (found through the records, as his
    // node would).
    let sel_of = |dir: &[u8], name: &[u8]| {
        let v = lffs::Store::get(fs.store(), dir, layout::name_ordinal(name), dir).unwrap();
        match Entry::decode(&v[0].value).unwrap().body {
            Body::Dir(s) => s,
            other => panic!("{other:?}"),
        }
    };
    let top_sel = sel_of(ROOT, b"top");
    let sub_sel = sel_of(&top_sel, b"sub");
    let theirs = file(b"notes.md", b"bob", T_BOB);
    fs.store().put_as(
        bob,
        Put {
            name: sub_sel.clone(),
            ordinal: layout::name_ordinal(b"notes.md"),
            mask: sub_sel.clone(),
            value: theirs.encode(),
        },
    );
    assert!(fs.contested().is_empty(), "nothing listed yet");
    let listed: Vec<Vec<u8>> = fs
        .readdir(sub.ino)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(listed.len(), 3, "notes.md and two conflict copies");
    let seen = fs.contested();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].dir_selector, sub_sel);
    assert_eq!(seen[0].path.as_deref(), Some(&b"/top/sub/notes.md"[..]));
}
