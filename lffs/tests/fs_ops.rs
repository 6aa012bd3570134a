//! Operation-level tests of the filesystem core over `MemStore`: one test per behaviour in
//! `SEMANTICS.md` (files, attributes, directories, rename, symlinks, ownership, records that
//! arrive from other nodes, chunked files, `.passwd`, names, limits, read-only mounts).

use std::time::{Duration, UNIX_EPOCH};

use lf_record::Owner;
use lffs::layout::{self, Body, Entry, FileData, ROOT_INO};
use lffs::{Filesystem, FsConfig, FsError, Kind, MemStore, Put, Store, Unsaved};

const ROOT: &[u8] = b"com.example.lffs-test";
const MIB: usize = 1 << 20;

fn owner(tag: u8) -> Owner {
    let mut k = [tag; 49];
    k[0] = 2;
    Owner::from_bytes(&k).expect("owner")
}

fn config() -> FsConfig {
    FsConfig {
        root: ROOT.to_vec(),
        masking_key: None,
        uid: 1000,
        gid: 1000,
        max_file_size: 64 * MIB as u64,
        read_only: false,
        ..FsConfig::default()
    }
}

fn fs_with(max_value: usize) -> Filesystem<MemStore> {
    Filesystem::new(MemStore::new(owner(1), max_value), config())
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// create + write + close; returns the inode.
fn write_file(fs: &Filesystem<MemStore>, parent: u64, name: &[u8], data: &[u8]) -> u64 {
    let (attr, fh) = fs.create(parent, name, 0o644).expect("create");
    fs.write(attr.ino, 0, data).expect("write");
    fs.release(fh).expect("release");
    attr.ino
}

/// open + read everything + close.
fn read_all(fs: &Filesystem<MemStore>, ino: u64) -> Result<Vec<u8>, FsError> {
    let fh = fs.open(ino, false)?;
    let data = fs.read(ino, 0, u32::MAX);
    fs.release(fh)?;
    data
}

fn read_path(fs: &Filesystem<MemStore>, parent: u64, name: &[u8]) -> Vec<u8> {
    let ino = fs.lookup(parent, name).expect("lookup").ino;
    read_all(fs, ino).expect("read")
}

/// The entry record an owner's node would write for `e` in the directory `dir_sel`.
fn entry_put(dir_sel: &[u8], e: &Entry) -> Put {
    Put {
        name: dir_sel.to_vec(),
        ordinal: layout::name_ordinal(&e.name),
        mask: dir_sel.to_vec(),
        value: e.encode(),
    }
}

fn inline_entry(name: &[u8], data: &[u8], mtime: u64) -> Entry {
    Entry {
        name: name.to_vec(),
        mode: 0o644,
        mtime,
        body: Body::File(FileData::Inline(data.to_vec())),
    }
}

fn inline_body(data: &[u8]) -> Body {
    Body::File(FileData::Inline(data.to_vec()))
}

fn stored_entry(fs: &Filesystem<MemStore>, dir_sel: &[u8], name: &[u8]) -> Entry {
    let v = fs
        .store()
        .get(dir_sel, layout::name_ordinal(name), dir_sel)
        .expect("get");
    Entry::decode(&v[0].value).expect("decodes")
}

fn is<T: std::fmt::Debug>(r: Result<T, FsError>, want: fn(&FsError) -> bool) -> bool {
    match r {
        Err(e) => want(&e),
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
    }
}

// ---- files ----------------------------------------------------------------------------

#[test]
fn file_create_write_flush_read_back() {
    for max_value in [1024, 60_000] {
        let fs = fs_with(max_value);
        let (attr, fh) = fs.create(ROOT_INO, b"hello.txt", 0o640).unwrap();
        assert_eq!(attr.kind, Kind::File);
        assert_eq!(attr.size, 0);
        assert_eq!(attr.perm, 0o640);
        assert!(attr.writable);
        assert_eq!(fs.write(attr.ino, 0, b"hello ").unwrap(), 6);
        assert_eq!(fs.write(attr.ino, 6, b"world\n").unwrap(), 6);
        fs.flush(attr.ino).unwrap();
        // Durable: a second filesystem over the same records reads it.
        let v = stored_entry(&fs, ROOT, b"hello.txt");
        assert_eq!(
            v.body,
            Body::File(FileData::Inline(b"hello world\n".to_vec()))
        );
        fs.release(fh).unwrap();
        assert_eq!(fs.lookup(ROOT_INO, b"hello.txt").unwrap().size, 12);
        assert_eq!(read_all(&fs, attr.ino).unwrap(), b"hello world\n");
        // Partial reads and reads past the end.
        let fh = fs.open(attr.ino, false).unwrap();
        assert_eq!(fs.read(attr.ino, 6, 5).unwrap(), b"world");
        assert_eq!(fs.read(attr.ino, 100, 5).unwrap(), b"");
        fs.release(fh).unwrap();
    }
}

#[test]
fn unsaved_tells_how_much_a_flush_has_to_do() {
    // The adapter answers a flush here or on a worker by this (`fuse_workers.rs`).
    let fs = fs_with(60_000);
    let (attr, fh) = fs.create(ROOT_INO, b"f", 0o644).unwrap();
    fs.write(attr.ino, 0, b"small").unwrap();
    assert_eq!(fs.unsaved(attr.ino), Unsaved::Little);
    fs.flush(attr.ino).unwrap();
    assert_eq!(fs.unsaved(attr.ino), Unsaved::Nothing);
    fs.write(attr.ino, 0, &pseudo_random(MIB, 3)).unwrap();
    assert_eq!(fs.unsaved(attr.ino), Unsaved::Much);
    fs.flush(attr.ino).unwrap();
    assert_eq!(fs.unsaved(attr.ino), Unsaved::Nothing);
    fs.release(fh).unwrap();
    // Not open: nothing to flush.
    assert_eq!(fs.unsaved(attr.ino), Unsaved::Nothing);
    assert_eq!(fs.unsaved(9_999_999), Unsaved::Nothing);
}

#[test]
fn file_write_past_end_fills_with_zeros() {
    let fs = fs_with(1024);
    let (attr, fh) = fs.create(ROOT_INO, b"sparse", 0o644).unwrap();
    fs.write(attr.ino, 4, b"x").unwrap();
    fs.release(fh).unwrap();
    assert_eq!(read_all(&fs, attr.ino).unwrap(), b"\0\0\0\0x");
}

#[test]
fn file_two_handles_share_writes_at_once() {
    let fs = fs_with(1024);
    let (attr, writer) = fs.create(ROOT_INO, b"shared", 0o644).unwrap();
    let reader = fs.open(attr.ino, false).unwrap();
    fs.write(attr.ino, 0, b"first").unwrap();
    // Not flushed yet: the other handle sees it, and so does getattr.
    assert_eq!(fs.read(attr.ino, 0, 100).unwrap(), b"first");
    assert_eq!(fs.getattr(attr.ino).unwrap().size, 5);
    assert_eq!(fs.lookup(ROOT_INO, b"shared").unwrap().size, 5);
    fs.write(attr.ino, 5, b"!").unwrap();
    assert_eq!(fs.read(attr.ino, 0, 100).unwrap(), b"first!");
    fs.release(writer).unwrap();
    // Closing the writer made it durable; the reader still sees the same bytes.
    assert_eq!(
        stored_entry(&fs, ROOT, b"shared").body,
        inline_body(b"first!")
    );
    assert_eq!(fs.read(attr.ino, 0, 100).unwrap(), b"first!");
    fs.release(reader).unwrap();
    assert_eq!(read_path(&fs, ROOT_INO, b"shared"), b"first!");
}

#[test]
fn file_truncate_shrinks_and_grows() {
    let fs = fs_with(1024);
    let ino = write_file(&fs, ROOT_INO, b"t", b"0123456789");
    let a = fs.setattr(ino, None, None, None, Some(4), None).unwrap();
    assert_eq!(a.size, 4);
    assert_eq!(read_all(&fs, ino).unwrap(), b"0123");
    let a = fs.setattr(ino, None, None, None, Some(8), None).unwrap();
    assert_eq!(a.size, 8);
    assert_eq!(read_all(&fs, ino).unwrap(), b"0123\0\0\0\0");
    // Truncate through an open handle (O_TRUNC, ftruncate).
    let fh = fs.open(ino, true).unwrap();
    fs.setattr(ino, None, None, None, Some(0), None).unwrap();
    assert_eq!(fs.read(ino, 0, 100).unwrap(), b"");
    fs.write(ino, 0, b"new").unwrap();
    fs.release(fh).unwrap();
    assert_eq!(read_all(&fs, ino).unwrap(), b"new");
}

#[test]
fn file_truncate_across_the_chunking_threshold() {
    let fs = fs_with(1024);
    let big = pseudo_random(20_000, 3);
    let ino = write_file(&fs, ROOT_INO, b"big", &big);
    assert!(matches!(
        stored_entry(&fs, ROOT, b"big").body,
        Body::File(FileData::Chunked { .. })
    ));
    fs.setattr(ino, None, None, None, Some(100), None).unwrap();
    assert_eq!(read_all(&fs, ino).unwrap(), &big[..100]);
    assert!(matches!(
        stored_entry(&fs, ROOT, b"big").body,
        Body::File(FileData::Inline(_))
    ));
    fs.setattr(ino, None, None, None, Some(5000), None).unwrap();
    let mut want = big[..100].to_vec();
    want.resize(5000, 0);
    assert_eq!(read_all(&fs, ino).unwrap(), want);
}

// ---- attributes ------------------------------------------------------------------------

#[test]
fn attr_chmod_is_stored() {
    let fs = fs_with(1024);
    let ino = write_file(&fs, ROOT_INO, b"m", b"x");
    let a = fs
        .setattr(ino, Some(0o100600), None, None, None, None)
        .unwrap();
    assert_eq!(a.perm, 0o600);
    assert_eq!(fs.getattr(ino).unwrap().perm, 0o600);
    assert_eq!(stored_entry(&fs, ROOT, b"m").mode, 0o600);
    // Content untouched.
    assert_eq!(read_all(&fs, ino).unwrap(), b"x");
    // chmod on a directory too.
    let d = fs.mkdir(ROOT_INO, b"d", 0o755).unwrap();
    assert_eq!(d.perm, 0o755);
    assert_eq!(
        fs.setattr(d.ino, Some(0o700), None, None, None, None)
            .unwrap()
            .perm,
        0o700
    );
}

#[test]
fn attr_utimes_is_stored() {
    let fs = fs_with(1024);
    let ino = write_file(&fs, ROOT_INO, b"u", b"x");
    let t = UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    fs.setattr(ino, None, None, None, None, Some(t)).unwrap();
    assert_eq!(fs.getattr(ino).unwrap().mtime, t);
}

#[test]
fn attr_chown_is_eperm() {
    let fs = fs_with(1024);
    let ino = write_file(&fs, ROOT_INO, b"c", b"x");
    assert!(is(
        fs.setattr(ino, None, Some(0), None, None, None),
        |e| matches!(e, FsError::Perm)
    ));
    assert!(is(
        fs.setattr(ino, None, None, Some(4242), None, None),
        |e| matches!(e, FsError::Perm)
    ));
    assert_eq!(FsError::Perm.errno(), 1);
    // Setting the owner it already has changes nothing and succeeds (`chown $USER`).
    let a = fs.getattr(ino).unwrap();
    fs.setattr(ino, None, Some(a.uid), Some(a.gid), None, None)
        .unwrap();
}

// ---- directories -----------------------------------------------------------------------

#[test]
fn dir_mkdir_rmdir_and_not_empty() {
    let fs = fs_with(1024);
    let d = fs.mkdir(ROOT_INO, b"dir", 0o755).unwrap();
    assert_eq!(d.kind, Kind::Dir);
    assert!(is(fs.mkdir(ROOT_INO, b"dir", 0o755), |e| matches!(
        e,
        FsError::Exists
    )));
    write_file(&fs, d.ino, b"f", b"x");
    assert!(is(fs.rmdir(ROOT_INO, b"dir"), |e| matches!(
        e,
        FsError::NotEmpty
    )));
    assert_eq!(FsError::NotEmpty.errno(), 39);
    fs.unlink(d.ino, b"f").unwrap();
    assert!(fs.readdir(d.ino).unwrap().is_empty());
    fs.rmdir(ROOT_INO, b"dir").unwrap();
    assert!(is(fs.lookup(ROOT_INO, b"dir"), |e| matches!(
        e,
        FsError::NotFound
    )));
    // A new directory of the same name starts empty.
    let d2 = fs.mkdir(ROOT_INO, b"dir", 0o755).unwrap();
    assert!(fs.readdir(d2.ino).unwrap().is_empty());
}

#[test]
fn dir_unlink_of_a_directory_is_eisdir_and_rmdir_of_a_file_enotdir() {
    let fs = fs_with(1024);
    fs.mkdir(ROOT_INO, b"d", 0o755).unwrap();
    write_file(&fs, ROOT_INO, b"f", b"x");
    assert!(is(fs.unlink(ROOT_INO, b"d"), |e| matches!(
        e,
        FsError::IsDir
    )));
    assert!(is(fs.rmdir(ROOT_INO, b"f"), |e| matches!(
        e,
        FsError::NotDir
    )));
    assert!(is(fs.unlink(ROOT_INO, b"missing"), |e| matches!(
        e,
        FsError::NotFound
    )));
    let f = fs.lookup(ROOT_INO, b"f").unwrap();
    assert!(is(fs.lookup(f.ino, b"x"), |e| matches!(e, FsError::NotDir)));
    assert!(is(
        fs.open(fs.lookup(ROOT_INO, b"d").unwrap().ino, false),
        |e| { matches!(e, FsError::IsDir) }
    ));
}

#[test]
fn dir_readdir_is_sorted_and_lists_kinds() {
    let fs = fs_with(1024);
    write_file(&fs, ROOT_INO, b"b", b"");
    fs.mkdir(ROOT_INO, b"a", 0o755).unwrap();
    fs.symlink(ROOT_INO, b"c", b"b").unwrap();
    let names: Vec<(Vec<u8>, Kind)> = fs
        .readdir(ROOT_INO)
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    assert_eq!(
        names,
        vec![
            (b".passwd".to_vec(), Kind::File),
            (b"a".to_vec(), Kind::Dir),
            (b"b".to_vec(), Kind::File),
            (b"c".to_vec(), Kind::Symlink),
        ]
    );
    // Inodes from readdir match lookup.
    for e in fs.readdir(ROOT_INO).unwrap() {
        assert_eq!(fs.lookup(ROOT_INO, &e.name).unwrap().ino, e.ino);
    }
}

// ---- rename ----------------------------------------------------------------------------

#[test]
fn rename_file_over_existing_file_replaces_it_in_one_batch() {
    let fs = fs_with(1024);
    write_file(&fs, ROOT_INO, b"config", b"old");
    write_file(&fs, ROOT_INO, b"config.tmp", b"new contents");
    let before = fs.store().put_count();
    fs.rename(ROOT_INO, b"config.tmp", ROOT_INO, b"config")
        .unwrap();
    // The new name and the old name's tombstone: one batch of two records.
    assert_eq!(fs.store().put_count() - before, 2);
    assert_eq!(read_path(&fs, ROOT_INO, b"config"), b"new contents");
    assert!(is(fs.lookup(ROOT_INO, b"config.tmp"), |e| matches!(
        e,
        FsError::NotFound
    )));
    let names: Vec<Vec<u8>> = fs
        .readdir(ROOT_INO)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![b".passwd".to_vec(), b"config".to_vec()]);
}

#[test]
fn rename_file_between_directories_keeps_mode_and_content() {
    let fs = fs_with(1024);
    let a = fs.mkdir(ROOT_INO, b"a", 0o755).unwrap();
    let b = fs.mkdir(ROOT_INO, b"b", 0o755).unwrap();
    let ino = write_file(&fs, a.ino, b"f", b"payload");
    fs.setattr(ino, Some(0o600), None, None, None, None)
        .unwrap();
    fs.rename(a.ino, b"f", b.ino, b"g").unwrap();
    let g = fs.lookup(b.ino, b"g").unwrap();
    assert_eq!(g.perm, 0o600);
    assert_eq!(read_all(&fs, g.ino).unwrap(), b"payload");
    assert!(fs.readdir(a.ino).unwrap().is_empty());
    // The kernel keeps the source inode number for the moved dentry.
    assert_eq!(fs.getattr(ino).unwrap().size, 7);
}

#[test]
fn rename_directory_keeps_its_contents() {
    let fs = fs_with(1024);
    let d = fs.mkdir(ROOT_INO, b"d", 0o755).unwrap();
    write_file(&fs, d.ino, b"f", b"in d");
    let sub = fs.mkdir(d.ino, b"sub", 0o755).unwrap();
    write_file(&fs, sub.ino, b"g", b"in d/sub");
    let other = fs.mkdir(ROOT_INO, b"other", 0o755).unwrap();

    fs.rename(ROOT_INO, b"d", ROOT_INO, b"e").unwrap();
    assert!(is(fs.lookup(ROOT_INO, b"d"), |e| matches!(
        e,
        FsError::NotFound
    )));
    let e = fs.lookup(ROOT_INO, b"e").unwrap();
    assert_eq!(read_path(&fs, e.ino, b"f"), b"in d");
    let sub = fs.lookup(e.ino, b"sub").unwrap();
    assert_eq!(read_path(&fs, sub.ino, b"g"), b"in d/sub");

    // Into another directory, then write through the moved directory.
    fs.rename(ROOT_INO, b"e", other.ino, b"moved").unwrap();
    let moved = fs.lookup(other.ino, b"moved").unwrap();
    assert_eq!(read_path(&fs, moved.ino, b"f"), b"in d");
    write_file(&fs, moved.ino, b"h", b"later");
    let names: Vec<Vec<u8>> = fs
        .readdir(moved.ino)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![b"f".to_vec(), b"h".to_vec(), b"sub".to_vec()]);
}

#[test]
fn rename_directory_rules() {
    let fs = fs_with(1024);
    let d = fs.mkdir(ROOT_INO, b"d", 0o755).unwrap();
    let inner = fs.mkdir(d.ino, b"inner", 0o755).unwrap();
    fs.mkdir(ROOT_INO, b"empty", 0o755).unwrap();
    let full = fs.mkdir(ROOT_INO, b"full", 0o755).unwrap();
    write_file(&fs, full.ino, b"x", b"x");
    write_file(&fs, ROOT_INO, b"file", b"f");

    // Into itself or below itself: EINVAL.
    assert!(is(fs.rename(ROOT_INO, b"d", d.ino, b"d2"), |e| matches!(
        e,
        FsError::InvalidName
    )));
    assert!(is(
        fs.rename(ROOT_INO, b"d", inner.ino, b"d2"),
        |e| matches!(e, FsError::InvalidName)
    ));
    // Over a non-empty directory, over a file, a file over a directory.
    assert!(is(fs.rename(ROOT_INO, b"d", ROOT_INO, b"full"), |e| {
        matches!(e, FsError::NotEmpty)
    }));
    assert!(is(fs.rename(ROOT_INO, b"d", ROOT_INO, b"file"), |e| {
        matches!(e, FsError::NotDir)
    }));
    assert!(is(fs.rename(ROOT_INO, b"file", ROOT_INO, b"d"), |e| {
        matches!(e, FsError::IsDir)
    }));
    // Over an empty directory: replaced.
    fs.rename(ROOT_INO, b"d", ROOT_INO, b"empty").unwrap();
    let e = fs.lookup(ROOT_INO, b"empty").unwrap();
    assert_eq!(fs.readdir(e.ino).unwrap()[0].name, b"inner");
    // Onto itself: nothing happens.
    fs.rename(ROOT_INO, b"file", ROOT_INO, b"file").unwrap();
    assert_eq!(read_path(&fs, ROOT_INO, b"file"), b"f");
    // Missing source.
    assert!(is(fs.rename(ROOT_INO, b"nope", ROOT_INO, b"x"), |e| {
        matches!(e, FsError::NotFound)
    }));
}

#[test]
fn rename_of_an_open_file_keeps_its_handle_working() {
    // Bug found by this test: renaming an open file deadlocked (the open-files lock was
    // taken again while held); past that, the buffer moved to the new name's inode while
    // the kernel keeps using the source inode, so later writes failed (ESTALE) and close
    // neither stored them nor dropped the buffer.
    let fs = fs_with(1024);
    let (attr, fh) = fs.create(ROOT_INO, b"log", 0o644).unwrap();
    fs.write(attr.ino, 0, b"one\n").unwrap();
    fs.rename(ROOT_INO, b"log", ROOT_INO, b"log.1").unwrap();
    fs.write(attr.ino, 4, b"two\n").unwrap();
    assert_eq!(fs.read(attr.ino, 0, 100).unwrap(), b"one\ntwo\n");
    fs.release(fh).unwrap();
    assert_eq!(read_path(&fs, ROOT_INO, b"log.1"), b"one\ntwo\n");
    assert!(is(fs.lookup(ROOT_INO, b"log"), |e| matches!(
        e,
        FsError::NotFound
    )));
}

#[test]
fn rename_over_a_file_another_handle_holds_open_shows_the_new_content() {
    // Bug found by this test: a process holding the old file open made every later
    // open on this node read the replaced content (temp-file-then-rename is how config
    // tools write).
    let fs = fs_with(1024);
    let old = write_file(&fs, ROOT_INO, b"app.conf", b"old config");
    let daemon = fs.open(old, false).unwrap();
    assert_eq!(fs.read(old, 0, 100).unwrap(), b"old config");
    write_file(&fs, ROOT_INO, b"app.conf.tmp", b"new");
    fs.rename(ROOT_INO, b"app.conf.tmp", ROOT_INO, b"app.conf")
        .unwrap();
    let a = fs.lookup(ROOT_INO, b"app.conf").unwrap();
    assert_eq!(a.size, 3);
    let fh = fs.open(a.ino, false).unwrap();
    assert_eq!(fs.read(a.ino, 0, 100).unwrap(), b"new");
    fs.release(fh).unwrap();
    fs.release(daemon).unwrap();
    assert_eq!(read_path(&fs, ROOT_INO, b"app.conf"), b"new");
}

#[test]
fn rename_to_a_longer_name_rechunks_a_file_that_no_longer_fits_inline() {
    // Bug found by this test: a file stored inline just under the record limit could not
    // be renamed to a longer name (EFBIG).
    let fs = fs_with(1024);
    let data = pseudo_random(1024 - 17 - 1, 9);
    write_file(&fs, ROOT_INO, b"a", &data);
    assert!(matches!(
        stored_entry(&fs, ROOT, b"a").body,
        Body::File(FileData::Inline(_))
    ));
    let long = vec![b'n'; 200];
    fs.rename(ROOT_INO, b"a", ROOT_INO, &long).unwrap();
    assert_eq!(read_path(&fs, ROOT_INO, &long), data);
}

#[test]
fn unlink_of_an_open_file_is_not_undone_by_close() {
    // Bug found by this test: closing a handle with unflushed writes after unlink wrote
    // the entry again (the file came back).
    let fs = fs_with(1024);
    let (attr, fh) = fs.create(ROOT_INO, b"scratch", 0o600).unwrap();
    fs.write(attr.ino, 0, b"temp data").unwrap();
    fs.unlink(ROOT_INO, b"scratch").unwrap();
    // The open handle still reads and writes its (now nameless) file.
    fs.write(attr.ino, 9, b"!").unwrap();
    assert_eq!(fs.read(attr.ino, 0, 100).unwrap(), b"temp data!");
    fs.flush(attr.ino).unwrap();
    fs.release(fh).unwrap();
    assert!(is(fs.lookup(ROOT_INO, b"scratch"), |e| matches!(
        e,
        FsError::NotFound
    )));
    // A new file of the same name starts empty.
    let (attr, fh) = fs.create(ROOT_INO, b"scratch", 0o600).unwrap();
    assert_eq!(fs.read(attr.ino, 0, 100).unwrap(), b"");
    fs.release(fh).unwrap();
}

// ---- symlinks --------------------------------------------------------------------------

#[test]
fn symlink_and_readlink() {
    let fs = fs_with(1024);
    let a = fs.symlink(ROOT_INO, b"link", b"../some/target").unwrap();
    assert_eq!(a.kind, Kind::Symlink);
    assert_eq!(a.size, 14);
    assert_eq!(fs.readlink(a.ino).unwrap(), b"../some/target");
    assert!(is(fs.symlink(ROOT_INO, b"link", b"x"), |e| matches!(
        e,
        FsError::Exists
    )));
    let f = write_file(&fs, ROOT_INO, b"f", b"x");
    assert!(is(fs.readlink(f), |e| matches!(e, FsError::InvalidName)));
    fs.rename(ROOT_INO, b"link", ROOT_INO, b"link2").unwrap();
    let l2 = fs.lookup(ROOT_INO, b"link2").unwrap();
    assert_eq!(fs.readlink(l2.ino).unwrap(), b"../some/target");
    fs.unlink(ROOT_INO, b"link2").unwrap();
    assert!(is(fs.lookup(ROOT_INO, b"link2"), |e| matches!(
        e,
        FsError::NotFound
    )));
}

// ---- ownership -------------------------------------------------------------------------

#[test]
fn ownership_another_owners_entry_is_read_only() {
    let fs = fs_with(1024);
    let other = owner(7);
    let now = fs.store().now_nanos();
    fs.store().put_as(
        other,
        entry_put(ROOT, &inline_entry(b"theirs", b"by 7", now)),
    );
    let a = fs.lookup(ROOT_INO, b"theirs").unwrap();
    assert!(!a.writable);
    assert_eq!(a.perm, 0o444);
    assert_ne!(a.uid, 1000);
    assert!(a.uid >= 65536);
    assert_eq!(read_all(&fs, a.ino).unwrap(), b"by 7");
    assert!(is(fs.open(a.ino, true), |e| matches!(e, FsError::Access)));
    assert_eq!(FsError::Access.errno(), 13);
    assert!(is(fs.unlink(ROOT_INO, b"theirs"), |e| matches!(
        e,
        FsError::Access
    )));
    assert!(is(
        fs.setattr(a.ino, Some(0o666), None, None, None, None),
        |e| matches!(e, FsError::Access)
    ));
    assert!(is(
        fs.setattr(a.ino, None, None, None, Some(0), None),
        |e| matches!(e, FsError::Access)
    ));
    assert!(is(
        fs.rename(ROOT_INO, b"theirs", ROOT_INO, b"mine"),
        |e| matches!(e, FsError::Access)
    ));
    write_file(&fs, ROOT_INO, b"mine", b"x");
    assert!(is(
        fs.rename(ROOT_INO, b"mine", ROOT_INO, b"theirs"),
        |e| matches!(e, FsError::Access)
    ));
    assert!(is(fs.create(ROOT_INO, b"theirs", 0o644), |e| matches!(
        e,
        FsError::Exists
    )));
    assert_eq!(read_path(&fs, ROOT_INO, b"mine"), b"x");
}

#[test]
fn ownership_first_owner_wins_a_name() {
    let fs = fs_with(1024);
    let other = owner(7);
    write_file(&fs, ROOT_INO, b"ours", b"ours first");
    let now = fs.store().now_nanos();
    fs.store()
        .put_as(other, entry_put(ROOT, &inline_entry(b"ours", b"late", now)));
    let a = fs.lookup(ROOT_INO, b"ours").unwrap();
    assert!(a.writable);
    assert_eq!(read_all(&fs, a.ino).unwrap(), b"ours first");

    let now = fs.store().now_nanos();
    fs.store().put_as(
        other,
        entry_put(ROOT, &inline_entry(b"theirs", b"first", now)),
    );
    assert!(is(fs.create(ROOT_INO, b"theirs", 0o644), |e| matches!(
        e,
        FsError::Exists
    )));
    assert_eq!(read_path(&fs, ROOT_INO, b"theirs"), b"first");
    let listed = fs.readdir(ROOT_INO).unwrap();
    assert_eq!(listed.iter().filter(|e| e.name == b"ours").count(), 1);
    assert_eq!(listed.iter().filter(|e| e.name == b"theirs").count(), 1);
}

#[test]
fn ownership_a_name_another_owner_deleted_stays_theirs() {
    // Bug found by this test: create and rename onto a name whose winning record is
    // another owner's tombstone wrote an entry nobody can see; rename also deleted the
    // source, so the file was lost.
    let fs = fs_with(1024);
    let other = owner(7);
    let now = fs.store().now_nanos();
    fs.store()
        .put_as(other, entry_put(ROOT, &inline_entry(b"gone", b"x", now)));
    let stone = Entry {
        name: b"gone".to_vec(),
        mode: 0,
        mtime: now + 1,
        body: Body::Tombstone,
    };
    fs.store().put_as(other, entry_put(ROOT, &stone));
    assert!(is(fs.lookup(ROOT_INO, b"gone"), |e| matches!(
        e,
        FsError::NotFound
    )));
    assert!(is(fs.create(ROOT_INO, b"gone", 0o644), |e| matches!(
        e,
        FsError::Access
    )));
    assert!(is(fs.mkdir(ROOT_INO, b"gone", 0o755), |e| matches!(
        e,
        FsError::Access
    )));
    write_file(&fs, ROOT_INO, b"precious", b"keep me");
    assert!(is(
        fs.rename(ROOT_INO, b"precious", ROOT_INO, b"gone"),
        |e| matches!(e, FsError::Access)
    ));
    assert_eq!(read_path(&fs, ROOT_INO, b"precious"), b"keep me");
}

// ---- records from other nodes -----------------------------------------------------------

#[test]
fn remote_newer_record_is_seen_by_lookup_and_read() {
    let fs = fs_with(1024);
    let me = fs.store().owner();
    let ino = write_file(&fs, ROOT_INO, b"cfg", b"v1");
    // Warm every cache: lookup, getattr, read.
    assert_eq!(fs.lookup(ROOT_INO, b"cfg").unwrap().size, 2);
    assert_eq!(read_all(&fs, ino).unwrap(), b"v1");
    let gen_before = fs.store().generation();

    // The same owner wrote a newer version on another node; it arrives by sync.
    let now = fs.store().now_nanos();
    fs.store().put_as(
        me,
        entry_put(ROOT, &inline_entry(b"cfg", b"version 2", now)),
    );
    assert_ne!(fs.store().generation(), gen_before);
    assert_eq!(fs.lookup(ROOT_INO, b"cfg").unwrap().size, 9);
    assert_eq!(fs.getattr(ino).unwrap().size, 9);
    assert_eq!(read_all(&fs, ino).unwrap(), b"version 2");

    // A new name and a deletion from another node.
    let now = fs.store().now_nanos();
    fs.store()
        .put_as(me, entry_put(ROOT, &inline_entry(b"new", b"n", now)));
    let stone = Entry {
        name: b"cfg".to_vec(),
        mode: 0,
        mtime: now,
        body: Body::Tombstone,
    };
    fs.store().put_as(me, entry_put(ROOT, &stone));
    assert!(is(fs.lookup(ROOT_INO, b"cfg"), |e| matches!(
        e,
        FsError::NotFound
    )));
    assert_eq!(read_path(&fs, ROOT_INO, b"new"), b"n");
}

#[test]
fn attributes_handed_out_are_invalidated_when_a_newer_version_arrives() {
    // Another node's file: an empty create, then its content. A reader here looked it
    // up (the kernel caches that size-0 attribute) but never opened it; the content's
    // arrival must still be reported for invalidation, not wait for the kernel's TTL.
    let fs = fs_with(1024);
    let me = fs.store().owner();
    let t0 = fs.store().now_nanos();
    fs.store()
        .put_as(me, entry_put(ROOT, &inline_entry(b"remote", b"", t0)));
    let a = fs.lookup(ROOT_INO, b"remote").unwrap();
    assert_eq!(a.size, 0);
    assert!(fs.changed_cached_files().is_empty(), "nothing changed yet");
    fs.store().put_as(
        me,
        entry_put(ROOT, &inline_entry(b"remote", b"content", t0 + 1)),
    );
    assert_eq!(fs.changed_cached_files(), vec![a.ino]);
    assert!(fs.changed_cached_files().is_empty(), "reported once");
    // A local write to a looked-up file is not reported (the kernel has its pages).
    let ino = write_file(&fs, ROOT_INO, b"local", b"v1");
    fs.getattr(ino).unwrap();
    let fh = fs.open(ino, true).unwrap();
    fs.write(ino, 0, b"v2 longer").unwrap();
    fs.flush(ino).unwrap();
    fs.release(fh).unwrap();
    assert!(!fs.changed_cached_files().contains(&ino));
}

#[test]
fn names_looked_up_and_then_deleted_elsewhere_are_reported_once() {
    // The kernel caches a dentry for the TTL: a name deleted (or renamed away) by
    // another node must be reported for notify_inval_entry, names still there not.
    let fs = fs_with(1024);
    let me = fs.store().owner();
    let t0 = fs.store().now_nanos();
    let mut goes_ino = 0;
    for name in [&b"stays"[..], b"goes"] {
        fs.store()
            .put_as(me, entry_put(ROOT, &inline_entry(name, b"x", t0)));
        goes_ino = fs.lookup(ROOT_INO, name).unwrap().ino;
    }
    let d = fs.mkdir(ROOT_INO, b"d", 0o755).unwrap();
    let Body::Dir(d_sel) = stored_entry(&fs, ROOT, b"d").body else {
        panic!("d is a directory")
    };
    fs.store()
        .put_as(me, entry_put(&d_sel, &inline_entry(b"inner", b"y", t0)));
    let inner_ino = fs.lookup(d.ino, b"inner").unwrap().ino;
    assert!(
        fs.vanished_cached_entries().is_empty(),
        "nothing vanished yet"
    );
    for (dir, name) in [(ROOT.to_vec(), &b"goes"[..]), (d_sel.clone(), b"inner")] {
        let stone = Entry {
            name: name.to_vec(),
            mode: 0,
            mtime: t0 + 1,
            body: Body::Tombstone,
        };
        fs.store().put_as(me, entry_put(&dir, &stone));
    }
    let mut gone = fs.vanished_cached_entries();
    gone.sort();
    assert_eq!(
        gone,
        vec![
            (ROOT_INO, b"goes".to_vec(), goes_ino),
            (d.ino, b"inner".to_vec(), inner_ino)
        ]
    );
    assert!(fs.vanished_cached_entries().is_empty(), "reported once");
}

#[test]
fn remote_newer_record_is_seen_through_a_handle_held_open() {
    // Bug found by this test: while any handle kept the file open, its buffer was never
    // reloaded, so the kernel (after invalidation) and new opens kept reading the old
    // version.
    let fs = fs_with(1024);
    let me = fs.store().owner();
    let ino = write_file(&fs, ROOT_INO, b"cfg", b"v1");
    let held = fs.open(ino, false).unwrap();
    assert_eq!(fs.read(ino, 0, 100).unwrap(), b"v1");
    let now = fs.store().now_nanos();
    fs.store().put_as(
        me,
        entry_put(ROOT, &inline_entry(b"cfg", b"v2 longer", now)),
    );
    assert_eq!(fs.getattr(ino).unwrap().size, 9);
    assert_eq!(fs.read(ino, 0, 100).unwrap(), b"v2 longer");
    let fh = fs.open(ino, false).unwrap();
    assert_eq!(fs.read(ino, 0, 100).unwrap(), b"v2 longer");
    fs.release(fh).unwrap();
    fs.release(held).unwrap();
}

// ---- chunked files ---------------------------------------------------------------------

#[test]
fn chunked_10_mib_round_trips_and_a_1_byte_edit_writes_few_records() {
    let fs = fs_with(60_000);
    let mut data = pseudo_random(10 * MIB, 11);
    let (attr, fh) = fs.create(ROOT_INO, b"big.bin", 0o644).unwrap();
    for (i, part) in data.chunks(MIB).enumerate() {
        fs.write(attr.ino, (i * MIB) as u64, part).unwrap();
    }
    fs.release(fh).unwrap();
    let e = stored_entry(&fs, ROOT, b"big.bin");
    let Body::File(FileData::Chunked { size, depth, .. }) = e.body else {
        panic!("not chunked: {:?}", e.mode);
    };
    assert_eq!((size, depth), (10 * MIB as u64, 1));
    assert_eq!(
        fs.lookup(ROOT_INO, b"big.bin").unwrap().size,
        10 * MIB as u64
    );
    assert!(read_all(&fs, attr.ino).unwrap() == data);

    let before = fs.store().put_count();
    let fh = fs.open(attr.ino, true).unwrap();
    data[5 * MIB + 123] ^= 0x55;
    fs.write(
        attr.ino,
        (5 * MIB + 123) as u64,
        &data[5 * MIB + 123..5 * MIB + 124],
    )
    .unwrap();
    fs.flush(attr.ino).unwrap();
    fs.release(fh).unwrap();
    let new_records = fs.store().put_count() - before;
    assert!(
        new_records <= 4,
        "{new_records} records written for a 1-byte edit"
    );
    assert!(read_all(&fs, attr.ino).unwrap() == data);
}

/// A file cut while it is written (`cut_ahead`) is stored with exactly the chunks that
/// cutting it whole at its commit makes, whatever the writes do meanwhile: in order,
/// overwriting a byte that was cut, truncating below what was cut and writing again,
/// an fsync halfway; its chunks reach the store before the commit.
#[test]
fn chunked_cut_ahead_while_writing_stores_the_chunks_of_a_whole_file_cut() {
    for seed in 1..=5u64 {
        let fs = fs_with(60_000);
        let size = 12 * MIB + seed as usize * 7919;
        let mut data = pseudo_random(size, seed);
        let (attr, fh) = fs.create(ROOT_INO, b"f", 0o644).unwrap();
        let (mut at, mut step, mut jobs) = (0, 0, 0);
        while at < size {
            let n = (300_000 + (seed as usize * 104_729 * (step + 1)) % 900_000).min(size - at);
            fs.write(attr.ino, at as u64, &data[at..at + n]).unwrap();
            at += n;
            step += 1;
            if fs.cut_ahead_now(attr.ino) {
                jobs += 1;
            }
            match (seed, step) {
                (2, 8) => {
                    data[1000] ^= 1;
                    fs.write(attr.ino, 1000, &data[1000..1001]).unwrap();
                }
                (3, 10) => {
                    assert!(fs.truncate_open(attr.ino, 3 * MIB as u64).unwrap());
                    at = 3 * MIB;
                }
                (4, 9) => fs.flush(attr.ino).unwrap(),
                _ => {}
            }
        }
        let stored_ahead = fs.store().put_count();
        let checked_ahead = fs.store().checked_count();
        fs.release(fh).unwrap();
        // The commit looked up only what was not cut yet (the cut chunks are reused).
        let checked = fs.store().checked_count() - checked_ahead;
        assert!(
            checked < 600,
            "seed {seed}: the commit looked up {checked} chunks"
        );
        let whole = fs_with(60_000);
        write_file(&whole, ROOT_INO, b"f", &data);
        assert_eq!(
            stored_entry(&fs, ROOT, b"f").body,
            stored_entry(&whole, ROOT, b"f").body,
            "seed {seed}: other chunks than a whole-file cut"
        );
        assert!(jobs >= 3, "seed {seed}: {jobs} jobs");
        assert!(
            stored_ahead > 600,
            "seed {seed}: {stored_ahead} chunks stored ahead"
        );
        assert!(read_path(&fs, ROOT_INO, b"f") == data, "seed {seed}");
    }
}

#[test]
fn chunked_identical_content_is_deduplicated() {
    let fs = fs_with(60_000);
    let data = pseudo_random(MIB, 12);
    write_file(&fs, ROOT_INO, b"one", &data);
    let before = fs.store().put_count();
    write_file(&fs, ROOT_INO, b"two", &data);
    // create (empty entry) + the final entry: no chunk written again.
    assert_eq!(fs.store().put_count() - before, 2);
    assert!(read_path(&fs, ROOT_INO, b"two") == data);
}

#[test]
fn chunked_multi_level_manifest_on_1_kib_values_round_trips() {
    let fs = fs_with(1024);
    for (name, len, min_depth) in [(&b"two"[..], 20_000, 2u8), (b"three", 300_000, 3)] {
        let data = pseudo_random(len, len as u64);
        let ino = write_file(&fs, ROOT_INO, name, &data);
        let Body::File(FileData::Chunked { size, depth, .. }) = stored_entry(&fs, ROOT, name).body
        else {
            panic!("not chunked");
        };
        assert_eq!(size, len as u64);
        assert!(depth >= min_depth, "depth {depth} for {len} bytes");
        assert!(read_all(&fs, ino).unwrap() == data);
        // Every record fits the network's limit (MemStore refuses bigger ones anyway).
        assert!(stored_entry(&fs, ROOT, name).encode().len() <= 1024);
    }
}

// ---- .passwd ---------------------------------------------------------------------------

#[test]
fn passwd_lists_owners() {
    let fs = fs_with(1024);
    let me = fs.store().owner();
    let other = owner(9);
    let now = fs.store().now_nanos();
    fs.store()
        .put_as(other, entry_put(ROOT, &inline_entry(b"x", b"", now)));
    fs.readdir(ROOT_INO).unwrap();
    let a = fs.lookup(ROOT_INO, b".passwd").unwrap();
    assert_eq!(a.ino, layout::PASSWD_INO);
    assert_eq!(a.perm, 0o444);
    let text = String::from_utf8(read_all(&fs, a.ino).unwrap()).unwrap();
    assert_eq!(a.size as usize, text.len());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(text.contains(&format!("lf1000:x:1000:1000:{me}:/:/usr/bin/false")));
    let uid_other = fs.lookup(ROOT_INO, b"x").unwrap().uid;
    assert!(text.contains(&format!("lf{uid_other}:x:{uid_other}:1000:{other}:")));
    assert!(is(fs.open(a.ino, true), |e| matches!(e, FsError::Access)));
    assert!(is(fs.create(ROOT_INO, b".passwd", 0o644), |e| matches!(
        e,
        FsError::InvalidName
    )));
    assert!(is(
        fs.setattr(a.ino, Some(0o666), None, None, None, None),
        |e| matches!(e, FsError::Perm)
    ));
    // Only the root reserves the name.
    let d = fs.mkdir(ROOT_INO, b"d", 0o755).unwrap();
    write_file(&fs, d.ino, b".passwd", b"ordinary");
    assert_eq!(read_path(&fs, d.ino, b".passwd"), b"ordinary");
}

// ---- names and limits ------------------------------------------------------------------

#[test]
fn names_invalid_are_einval_and_too_long_enametoolong() {
    let fs = fs_with(1024);
    write_file(&fs, ROOT_INO, b"ok", b"");
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        let invalid = |e: &FsError| matches!(e, FsError::InvalidName);
        assert!(is(fs.create(ROOT_INO, bad, 0o644), invalid), "{bad:?}");
        assert!(is(fs.mkdir(ROOT_INO, bad, 0o755), invalid));
        assert!(is(fs.symlink(ROOT_INO, bad, b"t"), invalid));
        assert!(is(fs.rename(ROOT_INO, b"ok", ROOT_INO, bad), invalid));
    }
    assert_eq!(FsError::InvalidName.errno(), 22);
    // Over 255 bytes: ENAMETOOLONG from every call that takes the name.
    let long = vec![b'x'; 256];
    let too_long = |e: &FsError| matches!(e, FsError::NameTooLong);
    assert!(is(fs.create(ROOT_INO, &long, 0o644), too_long));
    assert!(is(fs.mkdir(ROOT_INO, &long, 0o755), too_long));
    assert!(is(fs.symlink(ROOT_INO, &long, b"t"), too_long));
    assert!(is(fs.rename(ROOT_INO, b"ok", ROOT_INO, &long), too_long));
    assert!(is(fs.lookup(ROOT_INO, &long), too_long));
    assert_eq!(FsError::NameTooLong.errno(), 36);
    let longest = vec![b'y'; 255];
    write_file(&fs, ROOT_INO, &longest, b"fits");
    assert_eq!(read_path(&fs, ROOT_INO, &longest), b"fits");
}

#[test]
fn limits_max_file_size_is_efbig() {
    let fs = Filesystem::new(
        MemStore::new(owner(1), 1024),
        FsConfig {
            max_file_size: 1000,
            ..config()
        },
    );
    let (attr, fh) = fs.create(ROOT_INO, b"f", 0o644).unwrap();
    fs.write(attr.ino, 0, &[1; 1000]).unwrap();
    assert!(is(fs.write(attr.ino, 990, &[2; 11]), |e| matches!(
        e,
        FsError::TooBig
    )));
    assert!(is(fs.write(attr.ino, u64::MAX, b"x"), |e| matches!(
        e,
        FsError::TooBig
    )));
    fs.release(fh).unwrap();
    assert!(is(
        fs.setattr(attr.ino, None, None, None, Some(1001), None),
        |e| matches!(e, FsError::TooBig)
    ));
    assert_eq!(FsError::TooBig.errno(), 27);
    assert_eq!(read_all(&fs, attr.ino).unwrap(), vec![1; 1000]);
}

#[test]
fn limits_read_only_mount_refuses_every_change() {
    let store = MemStore::new(owner(1), 1024);
    let me = store.owner();
    store.put_as(me, entry_put(ROOT, &inline_entry(b"f", b"data", 5)));
    let fs = Filesystem::new(
        store,
        FsConfig {
            read_only: true,
            ..config()
        },
    );
    let root = fs.getattr(ROOT_INO).unwrap();
    assert_eq!(root.perm, 0o555);
    let a = fs.lookup(ROOT_INO, b"f").unwrap();
    assert!(!a.writable);
    assert_eq!(a.perm, 0o444);
    assert_eq!(read_all(&fs, a.ino).unwrap(), b"data");
    let ro = |e: &FsError| matches!(e, FsError::ReadOnly);
    assert!(is(fs.open(a.ino, true), ro));
    assert!(is(fs.create(ROOT_INO, b"g", 0o644), ro));
    assert!(is(fs.mkdir(ROOT_INO, b"d", 0o755), ro));
    assert!(is(fs.symlink(ROOT_INO, b"l", b"f"), ro));
    assert!(is(fs.unlink(ROOT_INO, b"f"), ro));
    assert!(is(fs.rmdir(ROOT_INO, b"f"), ro));
    assert!(is(fs.rename(ROOT_INO, b"f", ROOT_INO, b"g"), ro));
    assert!(is(
        fs.setattr(a.ino, Some(0o600), None, None, None, None),
        ro
    ));
    assert!(is(fs.setattr(a.ino, None, None, None, Some(0), None), ro));
    assert_eq!(FsError::ReadOnly.errno(), 30);
    assert_eq!(fs.store().put_count(), 0);
}

#[test]
fn errno_table_matches_semantics_md() {
    // The rows of SEMANTICS.md's error table, as written there: "| what | NAME (n) ... |".
    let doc = include_str!("../SEMANTICS.md");
    let section = doc
        .split("## Errors")
        .nth(1)
        .expect("SEMANTICS.md has an Errors section");
    let rows: Vec<(String, i32)> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let n = cells.get(2)?.split('(').nth(1)?.split(')').next()?;
            Some((cells[1].to_string(), n.parse().ok()?))
        })
        .collect();
    // Every error, by the row that documents it.
    let errors = [
        ("not found", FsError::NotFound),
        ("exists", FsError::Exists),
        ("not a directory", FsError::NotDir),
        ("is a directory", FsError::IsDir),
        ("directory not empty", FsError::NotEmpty),
        ("owned by another owner", FsError::Access),
        ("chown/chgrp", FsError::Perm),
        ("invalid name", FsError::InvalidName),
        ("name over 255 bytes", FsError::NameTooLong),
        (
            "hard link; mknod of a device, FIFO or socket",
            FsError::Perm,
        ),
        (
            "over `max_file_size` (a write, a truncate, or another owner's file declaring more)",
            FsError::TooBig,
        ),
        (
            "a user other than the mount's `uid` and root changing anything",
            FsError::Access,
        ),
        (
            "a change to a conflict copy (other than unlinking one's own version)",
            FsError::Access,
        ),
        ("read-only mount", FsError::ReadOnly),
        ("stale inode or handle", FsError::Stale),
        (
            "corrupt entry, manifest over its bound or not matching its size, missing chunk, store failure",
            FsError::Corrupt("x".into()),
        ),
        (
            "corrupt entry, manifest over its bound or not matching its size, missing chunk, store failure",
            FsError::Store(lffs::StoreError::Failed("x".into())),
        ),
        (
            "commit queue full",
            FsError::Store(lffs::StoreError::Full("x".into())),
        ),
        (
            "the mount's open files hold `max_spill_bytes` of unflushed data",
            FsError::NoSpace,
        ),
        ("not supported", FsError::NotSupported),
    ];
    for (row, e) in &errors {
        let documented = rows
            .iter()
            .find(|(r, _)| r == row)
            .unwrap_or_else(|| panic!("SEMANTICS.md has no error row {row:?}: {rows:?}"));
        assert_eq!(e.errno(), documented.1, "{row}: {e}");
        assert_eq!(e.is_serious(), documented.1 == 5, "{row}: {e}");
    }
    for (row, _) in &rows {
        assert!(
            errors.iter().any(|(r, _)| r == row),
            "SEMANTICS.md documents {row:?}, which no error here maps to"
        );
    }
}

#[test]
fn a_truncate_through_a_handle_is_stored_with_the_writes_at_close() {
    let fs = fs_with(60_000);
    let ino = write_file(&fs, ROOT_INO, b"app.conf", b"port=1\n");
    // What storing one new version costs: a write in place, then close.
    let before = fs.store().put_count();
    let fh = fs.open(ino, true).unwrap();
    fs.write(ino, 0, b"port=0\n").unwrap();
    fs.release(fh).unwrap();
    let version = fs.store().put_count() - before;
    let before = fs.store().put_count();
    // `echo port=2 > app.conf`: open, truncate through the handle, write, close.
    let fh = fs.open(ino, true).unwrap();
    assert!(fs.truncate_open(ino, 0).unwrap());
    assert_eq!(
        fs.store().put_count(),
        before,
        "the truncate stored a version"
    );
    // Readers on this node see the truncate at once (a reader's own close would
    // flush the shared buffer, as it does after any write).
    assert_eq!(fs.read(ino, 0, 4096).unwrap(), b"");
    assert_eq!(fs.getattr(ino).unwrap().size, 0);
    fs.write(ino, 0, b"port=2\n").unwrap();
    fs.release(fh).unwrap();
    assert_eq!(fs.store().put_count(), before + version, "one new version");
    assert_eq!(read_path(&fs, ROOT_INO, b"app.conf"), b"port=2\n");
    // A file that is not open here is truncated by setattr, and stored at once.
    assert!(!fs.truncate_open(ino, 0).unwrap());
    // Not the root, and not another owner's file.
    assert!(!fs.truncate_open(ROOT_INO, 0).unwrap());
}
