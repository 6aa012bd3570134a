//! Reference-model test (in the style of mountpoint-s3's `reftests`): random sequences of
//! operations run against `Filesystem<MemStore>` and against an in-memory tree; after
//! every step the results (success or errno) and the whole visible tree (every path,
//! kind, content, writability) must agree.
//!
//! Besides local operations, the sequences contain records that "arrive from another
//! node": entries written by the mount's own owner elsewhere (injected straight into the
//! store with the `lffs::layout` encoding, under the directory's selector) and entries of
//! a foreign owner, who wins every name it writes first and loses every name we wrote
//! first, even after deleting it. A name both owners wrote is contested: each owner's
//! live version is also listed under its conflict name (read-only), which the
//! comparison spells `<name>#conflict-ours` / `#conflict-foreign` (the real name holds
//! the version's time, which the model does not predict).

use std::collections::BTreeMap;

use lf_record::Owner;
use lffs::conflicts;
use lffs::layout::{self, Body, Entry, FileData, ROOT_INO};
use lffs::{Filesystem, FsConfig, FsError, Kind, MemStore, Put, Store};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

const ROOT: &[u8] = b"com.example.lffs-model";
const MAX_VALUE: usize = 1024;

fn owner(tag: u8) -> Owner {
    let mut k = [tag; 49];
    k[0] = 3;
    Owner::from_bytes(&k).expect("owner")
}

/// Names the operations pick from: short ones, `.passwd` (reserved in the root only) and
/// a long one (a file stored inline under a short name may not fit under it).
fn name(i: u8) -> Vec<u8> {
    match i % 6 {
        0 => b"a".to_vec(),
        1 => b"b".to_vec(),
        2 => b"c".to_vec(),
        3 => b"dd".to_vec(),
        4 => b".passwd".to_vec(),
        _ => vec![b'L'; 120],
    }
}

// ---- operations ------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// create + write + close.
    Create {
        dir: u8,
        name: u8,
        data: Vec<u8>,
    },
    /// open for writing + write at an offset + close.
    Overwrite {
        file: u8,
        offset: u16,
        data: Vec<u8>,
    },
    /// setattr(size).
    Truncate {
        file: u8,
        size: u16,
    },
    Mkdir {
        dir: u8,
        name: u8,
    },
    /// unlink of any entry (a directory → EISDIR).
    Unlink {
        entry: u8,
    },
    /// rmdir of any entry (a file → ENOTDIR).
    Rmdir {
        entry: u8,
    },
    /// rename of any entry into any directory.
    Rename {
        entry: u8,
        dir: u8,
        name: u8,
    },
    /// The mount's owner wrote a file on another node.
    RemoteWrite {
        dir: u8,
        name: u8,
        data: Vec<u8>,
    },
    /// The mount's owner deleted a file on another node.
    RemoteUnlink {
        file: u8,
    },
    /// Another owner wrote a file.
    ForeignWrite {
        dir: u8,
        name: u8,
        data: Vec<u8>,
    },
    /// Another owner deleted a file.
    ForeignUnlink {
        file: u8,
    },
    /// Opens a file for reading and keeps the handle across the next steps (a process
    /// holding a file open must not change what others read, and must see new versions).
    Hold {
        file: u8,
    },
    /// Closes one of the held handles.
    Release {
        handle: u8,
    },
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..40),
        // Around the inline limit of a 1 KiB record (short and long names).
        2 => proptest::collection::vec(any::<u8>(), 850..1010),
        1 => proptest::collection::vec(any::<u8>(), 1500..5000),
    ]
}

fn small() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), any::<u8>(), content()).prop_map(|(dir, name, data)| Op::Create { dir, name, data }),
        2 => (any::<u8>(), any::<u16>(), proptest::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(file, offset, data)| Op::Overwrite { file, offset, data }),
        1 => (any::<u8>(), any::<u16>()).prop_map(|(file, size)| Op::Truncate { file, size }),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(dir, name)| Op::Mkdir { dir, name }),
        1 => any::<u8>().prop_map(|entry| Op::Unlink { entry }),
        1 => any::<u8>().prop_map(|entry| Op::Rmdir { entry }),
        4 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(entry, dir, name)| Op::Rename { entry, dir, name }),
        2 => (any::<u8>(), any::<u8>(), small()).prop_map(|(dir, name, data)| Op::RemoteWrite { dir, name, data }),
        1 => any::<u8>().prop_map(|file| Op::RemoteUnlink { file }),
        2 => (any::<u8>(), any::<u8>(), small()).prop_map(|(dir, name, data)| Op::ForeignWrite { dir, name, data }),
        1 => any::<u8>().prop_map(|file| Op::ForeignUnlink { file }),
        2 => any::<u8>().prop_map(|file| Op::Hold { file }),
        1 => any::<u8>().prop_map(|handle| Op::Release { handle }),
    ]
}

// ---- the reference model ---------------------------------------------------------------

type Path = Vec<Vec<u8>>;

#[derive(Clone, Debug)]
enum MNode {
    File {
        data: Vec<u8>,
        foreign: bool,
    },
    Dir {
        id: u64,
        children: BTreeMap<Vec<u8>, MNode>,
    },
}

/// Expected failures, by errno class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fail {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    Access,
    InvalidName,
    TooBig,
}

fn class(e: &FsError) -> Fail {
    match e {
        FsError::NotFound => Fail::NotFound,
        FsError::Exists => Fail::Exists,
        FsError::NotDir => Fail::NotDir,
        FsError::IsDir => Fail::IsDir,
        FsError::NotEmpty => Fail::NotEmpty,
        FsError::Access => Fail::Access,
        FsError::InvalidName => Fail::InvalidName,
        FsError::TooBig => Fail::TooBig,
        other => panic!("unexpected error class: {other:?}"),
    }
}

/// Which owner first wrote a name in a directory (directories are identified by the id
/// the model gives them, which a rename keeps, like the selector in the filesystem).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    Ours,
    Foreign,
}

struct Model {
    root: MNode,
    next_id: u64,
    claims: BTreeMap<(u64, Vec<u8>), Claim>,
    /// Names both owners wrote: the latest version (`None`: deleted) of the owner that
    /// did not claim the name first, which the name does not show.
    hidden: BTreeMap<(u64, Vec<u8>), Option<Vec<u8>>>,
}

impl Model {
    fn new() -> Self {
        Model {
            root: MNode::Dir {
                id: 0,
                children: BTreeMap::new(),
            },
            next_id: 1,
            claims: BTreeMap::new(),
            hidden: BTreeMap::new(),
        }
    }

    fn get(&self, path: &[Vec<u8>]) -> Option<&MNode> {
        let mut n = &self.root;
        for c in path {
            match n {
                MNode::Dir { children, .. } => n = children.get(c)?,
                MNode::File { .. } => return None,
            }
        }
        Some(n)
    }

    fn get_mut(&mut self, path: &[Vec<u8>]) -> Option<&mut MNode> {
        let mut n = &mut self.root;
        for c in path {
            match n {
                MNode::Dir { children, .. } => n = children.get_mut(c)?,
                MNode::File { .. } => return None,
            }
        }
        Some(n)
    }

    fn dir_id(&self, path: &[Vec<u8>]) -> u64 {
        match self.get(path) {
            Some(MNode::Dir { id, .. }) => *id,
            _ => panic!("not a directory: {path:?}"),
        }
    }

    fn children_mut(&mut self, path: &[Vec<u8>]) -> &mut BTreeMap<Vec<u8>, MNode> {
        match self.get_mut(path) {
            Some(MNode::Dir { children, .. }) => children,
            _ => panic!("not a directory: {path:?}"),
        }
    }

    fn claim(&self, dir: &[Vec<u8>], name: &[u8]) -> Option<Claim> {
        self.claims.get(&(self.dir_id(dir), name.to_vec())).copied()
    }

    fn claim_if_free(&mut self, dir: &[Vec<u8>], name: &[u8], who: Claim) {
        let id = self.dir_id(dir);
        self.claims.entry((id, name.to_vec())).or_insert(who);
    }

    /// Every path below the root, depth first in name order, with whether it is a file.
    fn paths(&self) -> Vec<(Path, bool)> {
        fn walk(n: &MNode, prefix: &mut Path, out: &mut Vec<(Path, bool)>) {
            if let MNode::Dir { children, .. } = n {
                for (name, c) in children {
                    prefix.push(name.clone());
                    out.push((prefix.clone(), matches!(c, MNode::File { .. })));
                    walk(c, prefix, out);
                    prefix.pop();
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut Vec::new(), &mut out);
        out
    }

    fn pick_file(&self, i: u8) -> Option<Path> {
        let files: Vec<Path> = self
            .paths()
            .into_iter()
            .filter(|p| p.1)
            .map(|p| p.0)
            .collect();
        (!files.is_empty()).then(|| files[i as usize % files.len()].clone())
    }

    fn pick_entry(&self, i: u8) -> Option<Path> {
        let all = self.paths();
        (!all.is_empty()).then(|| all[i as usize % all.len()].0.clone())
    }

    fn pick_dir(&self, i: u8) -> Path {
        let mut dirs: Vec<Path> = vec![Vec::new()];
        dirs.extend(self.paths().into_iter().filter(|p| !p.1).map(|p| p.0));
        dirs[i as usize % dirs.len()].clone()
    }

    fn is_foreign(&self, path: &[Vec<u8>]) -> bool {
        matches!(self.get(path), Some(MNode::File { foreign: true, .. }))
    }

    /// The owner that did not claim `name` in `dir` first wrote it anyway.
    fn hide(&mut self, dir: &[Vec<u8>], name: &[u8], version: Option<Vec<u8>>) {
        let id = self.dir_id(dir);
        self.hidden.insert((id, name.to_vec()), version);
    }

    /// The flat view compared with the filesystem: path → (is dir, content, writable),
    /// conflict copies included.
    fn flat(&self) -> BTreeMap<Path, (bool, Vec<u8>, bool)> {
        let mut out = BTreeMap::new();
        self.flat_in(&self.root, &mut Vec::new(), &mut out, true);
        out
    }

    fn flat_in(
        &self,
        n: &MNode,
        prefix: &mut Path,
        out: &mut BTreeMap<Path, (bool, Vec<u8>, bool)>,
        writable_dir: bool,
    ) {
        let MNode::Dir { id, children } = n else {
            return;
        };
        let mut shown: Vec<(Vec<u8>, MNode, bool)> = children
            .iter()
            .map(|(name, c)| (name.clone(), c.clone(), writable_dir))
            .collect();
        for ((dir, name), other) in self.hidden.range((*id, Vec::new())..) {
            if dir != id {
                break;
            }
            let claimant = self.claims[&(*id, name.clone())];
            let tag = |who: Claim| {
                let mut n = name.clone();
                n.extend_from_slice(match who {
                    Claim::Ours => b"#conflict-ours".as_slice(),
                    Claim::Foreign => b"#conflict-foreign".as_slice(),
                });
                n
            };
            if let Some(c) = children.get(name) {
                shown.push((tag(claimant), c.clone(), false));
            }
            if let Some(data) = other {
                let (who, foreign) = match claimant {
                    Claim::Ours => (Claim::Foreign, true),
                    Claim::Foreign => (Claim::Ours, false),
                };
                let file = MNode::File {
                    data: data.clone(),
                    foreign,
                };
                shown.push((tag(who), file, false));
            }
        }
        for (name, c, writable) in shown {
            prefix.push(name);
            match &c {
                MNode::File { data, foreign } => {
                    out.insert(prefix.clone(), (false, data.clone(), !foreign && writable));
                }
                MNode::Dir { .. } => {
                    out.insert(prefix.clone(), (true, Vec::new(), writable));
                    self.flat_in(&c, prefix, out, true);
                }
            }
            prefix.pop();
        }
    }
}

fn reserved(dir: &[Vec<u8>], name: &[u8]) -> bool {
    dir.is_empty() && name == layout::PASSWD_NAME
}

// ---- the filesystem side ---------------------------------------------------------------

struct Harness {
    fs: Filesystem<MemStore>,
    model: Model,
    foreigner: Owner,
    /// Handles held open across steps: (inode, handle).
    held: Vec<(u64, u64)>,
}

impl Harness {
    fn new() -> Self {
        let fs = Filesystem::new(
            MemStore::new(owner(1), MAX_VALUE),
            FsConfig {
                root: ROOT.to_vec(),
                masking_key: None,
                uid: 1000,
                gid: 1000,
                max_file_size: 1 << 20,
                read_only: false,
                ..FsConfig::default()
            },
        );
        Harness {
            fs,
            model: Model::new(),
            foreigner: owner(2),
            held: Vec::new(),
        }
    }

    fn ino(&self, path: &[Vec<u8>]) -> u64 {
        let mut ino = ROOT_INO;
        for c in path {
            ino = self
                .fs
                .lookup(ino, c)
                .unwrap_or_else(|e| panic!("lookup {path:?}: {e}"))
                .ino;
        }
        ino
    }

    /// A directory's selector, found the way another node would: through the records.
    fn selector(&self, path: &[Vec<u8>]) -> Vec<u8> {
        let mut sel = ROOT.to_vec();
        for c in path {
            let cands = self
                .fs
                .store()
                .get(&sel, layout::name_ordinal(c), &sel)
                .expect("get");
            let e = cands
                .iter()
                .find_map(|v| Entry::decode(&v.value).filter(|e| e.name == *c))
                .expect("directory entry");
            let Body::Dir(s) = e.body else {
                panic!("not a directory: {path:?}")
            };
            sel = s;
        }
        sel
    }

    /// Writes an entry record as `who` on "another node".
    fn inject(&self, who: Owner, dir: &[Vec<u8>], name: &[u8], body: Body) {
        let sel = self.selector(dir);
        let e = Entry {
            name: name.to_vec(),
            mode: 0o644,
            mtime: self.fs.store().now_nanos(),
            body,
        };
        self.fs.store().put_as(
            who,
            Put {
                name: sel.clone(),
                ordinal: layout::name_ordinal(name),
                mask: sel,
                value: e.encode(),
            },
        );
    }

    /// Applies `op` to both sides; returns the filesystem's and the model's outcome.
    fn apply(&mut self, op: &Op) -> (Result<(), Fail>, Result<(), Fail>) {
        let fs = &self.fs;
        match op {
            Op::Create { dir, name: n, data } => {
                let dir = self.model.pick_dir(*dir);
                let name = name(*n);
                let got = fs
                    .create(self.ino(&dir), &name, 0o644)
                    .and_then(|(a, fh)| {
                        fs.write(a.ino, 0, data)?;
                        fs.release(fh)
                    })
                    .map_err(|e| class(&e));
                let m = &mut self.model;
                let exists = matches!(m.get(&dir), Some(MNode::Dir { children, .. }) if children.contains_key(&name));
                let want = if reserved(&dir, &name) {
                    Err(Fail::InvalidName)
                } else if exists {
                    Err(Fail::Exists)
                } else if m.claim(&dir, &name) == Some(Claim::Foreign) {
                    Err(Fail::Access)
                } else {
                    m.claim_if_free(&dir, &name, Claim::Ours);
                    m.children_mut(&dir).insert(
                        name,
                        MNode::File {
                            data: data.clone(),
                            foreign: false,
                        },
                    );
                    Ok(())
                };
                (got, want)
            }
            Op::Overwrite { file, offset, data } => {
                let Some(path) = self.model.pick_file(*file) else {
                    return (Ok(()), Ok(()));
                };
                let ino = self.ino(&path);
                let Some(MNode::File { data: old, .. }) = self.model.get(&path) else {
                    unreachable!()
                };
                let offset = *offset as usize % (old.len() + 8);
                let got = fs
                    .open(ino, true)
                    .and_then(|fh| {
                        fs.write(ino, offset as u64, data)?;
                        fs.release(fh)
                    })
                    .map_err(|e| class(&e));
                let want = match self.model.get_mut(&path) {
                    Some(MNode::File { foreign: true, .. }) => Err(Fail::Access),
                    Some(MNode::File { data: d, .. }) => {
                        if d.len() < offset + data.len() {
                            d.resize(offset + data.len(), 0);
                        }
                        d[offset..offset + data.len()].copy_from_slice(data);
                        Ok(())
                    }
                    _ => unreachable!(),
                };
                (got, want)
            }
            Op::Truncate { file, size } => {
                let Some(path) = self.model.pick_file(*file) else {
                    return (Ok(()), Ok(()));
                };
                let size = *size as usize % 3000;
                let got = fs
                    .setattr(self.ino(&path), None, None, None, Some(size as u64), None)
                    .map(|_| ())
                    .map_err(|e| class(&e));
                let want = match self.model.get_mut(&path) {
                    Some(MNode::File { foreign: true, .. }) => Err(Fail::Access),
                    Some(MNode::File { data, .. }) => {
                        data.resize(size, 0);
                        Ok(())
                    }
                    _ => unreachable!(),
                };
                (got, want)
            }
            Op::Mkdir { dir, name: n } => {
                let dir = self.model.pick_dir(*dir);
                let name = name(*n);
                let got = fs
                    .mkdir(self.ino(&dir), &name, 0o755)
                    .map(|_| ())
                    .map_err(|e| class(&e));
                let m = &mut self.model;
                let exists = matches!(m.get(&dir), Some(MNode::Dir { children, .. }) if children.contains_key(&name));
                let want = if reserved(&dir, &name) {
                    Err(Fail::InvalidName)
                } else if exists {
                    Err(Fail::Exists)
                } else if m.claim(&dir, &name) == Some(Claim::Foreign) {
                    Err(Fail::Access)
                } else {
                    m.claim_if_free(&dir, &name, Claim::Ours);
                    let id = m.next_id;
                    m.next_id += 1;
                    m.children_mut(&dir).insert(
                        name,
                        MNode::Dir {
                            id,
                            children: BTreeMap::new(),
                        },
                    );
                    Ok(())
                };
                (got, want)
            }
            Op::Unlink { entry } => {
                let Some(path) = self.model.pick_entry(*entry) else {
                    return (Ok(()), Ok(()));
                };
                let (dir, name) = (&path[..path.len() - 1], &path[path.len() - 1]);
                let got = fs.unlink(self.ino(dir), name).map_err(|e| class(&e));
                let want = match self.model.get(&path) {
                    Some(MNode::File { foreign: true, .. }) => Err(Fail::Access),
                    Some(MNode::Dir { .. }) => Err(Fail::IsDir),
                    _ => {
                        self.model.children_mut(dir).remove(name);
                        Ok(())
                    }
                };
                (got, want)
            }
            Op::Rmdir { entry } => {
                let Some(path) = self.model.pick_entry(*entry) else {
                    return (Ok(()), Ok(()));
                };
                let (dir, name) = (&path[..path.len() - 1], &path[path.len() - 1]);
                let got = fs.rmdir(self.ino(dir), name).map_err(|e| class(&e));
                let want = match self.model.get(&path) {
                    Some(MNode::File { foreign: true, .. }) => Err(Fail::Access),
                    Some(MNode::File { .. }) => Err(Fail::NotDir),
                    Some(MNode::Dir { children, .. }) if !children.is_empty() => {
                        Err(Fail::NotEmpty)
                    }
                    _ => {
                        self.model.children_mut(dir).remove(name);
                        Ok(())
                    }
                };
                (got, want)
            }
            Op::Rename {
                entry,
                dir: d,
                name: n,
            } => {
                let Some(src) = self.model.pick_entry(*entry) else {
                    return (Ok(()), Ok(()));
                };
                let dst_dir = self.model.pick_dir(*d);
                let new_name = name(*n);
                let (src_dir, src_name) = (&src[..src.len() - 1], &src[src.len() - 1]);
                let got = fs
                    .rename(self.ino(src_dir), src_name, self.ino(&dst_dir), &new_name)
                    .map_err(|e| class(&e));
                let mut dst = dst_dir.clone();
                dst.push(new_name.clone());
                let m = &mut self.model;
                let src_node = m.get(&src).cloned().expect("source");
                let src_is_dir = matches!(src_node, MNode::Dir { .. });
                let want = if reserved(&dst_dir, &new_name) {
                    Err(Fail::InvalidName)
                } else if m.is_foreign(&src) {
                    Err(Fail::Access)
                } else if src == dst {
                    Ok(())
                } else if let Some(target) = m.get(&dst) {
                    match (target, src_is_dir) {
                        (MNode::File { foreign: true, .. }, _) => Err(Fail::Access),
                        (MNode::Dir { children, .. }, true) if !children.is_empty() => {
                            Err(Fail::NotEmpty)
                        }
                        (MNode::File { .. }, true) => Err(Fail::NotDir),
                        (MNode::Dir { .. }, false) => Err(Fail::IsDir),
                        _ => Ok(()),
                    }
                } else if m.claim(&dst_dir, &new_name) == Some(Claim::Foreign) {
                    Err(Fail::Access)
                } else {
                    Ok(())
                };
                let want = match want {
                    Ok(()) if src_is_dir && dst_dir.starts_with(&src) => Err(Fail::InvalidName),
                    Ok(()) if src != dst => {
                        m.children_mut(src_dir).remove(src_name);
                        m.claim_if_free(&dst_dir, &new_name, Claim::Ours);
                        m.children_mut(&dst_dir).insert(new_name, src_node);
                        Ok(())
                    }
                    other => other,
                };
                (got, want)
            }
            Op::RemoteWrite { dir, name: n, data } => {
                let dir = self.model.pick_dir(*dir);
                let name = name(*n);
                let m = &self.model;
                let existing = m.get(&dir).and_then(|d| match d {
                    MNode::Dir { children, .. } => children.get(&name),
                    MNode::File { .. } => None,
                });
                if reserved(&dir, &name) || matches!(existing, Some(MNode::Dir { .. })) {
                    return (Ok(()), Ok(()));
                }
                let me = fs.store().owner();
                self.inject(me, &dir, &name, Body::File(FileData::Inline(data.clone())));
                if self.model.claim(&dir, &name) != Some(Claim::Foreign) {
                    self.model.claim_if_free(&dir, &name, Claim::Ours);
                    self.model.children_mut(&dir).insert(
                        name,
                        MNode::File {
                            data: data.clone(),
                            foreign: false,
                        },
                    );
                } else {
                    self.model.hide(&dir, &name, Some(data.clone()));
                }
                (Ok(()), Ok(()))
            }
            Op::RemoteUnlink { file } => {
                let Some(path) = self.model.pick_file(*file) else {
                    return (Ok(()), Ok(()));
                };
                let (dir, name) = (&path[..path.len() - 1], &path[path.len() - 1]);
                let me = fs.store().owner();
                self.inject(me, dir, name, Body::Tombstone);
                if !self.model.is_foreign(&path) {
                    self.model.children_mut(dir).remove(name);
                } else {
                    self.model.hide(dir, name, None);
                }
                (Ok(()), Ok(()))
            }
            Op::ForeignWrite { dir, name: n, data } => {
                let dir = self.model.pick_dir(*dir);
                let name = name(*n);
                if reserved(&dir, &name) {
                    return (Ok(()), Ok(()));
                }
                self.inject(
                    self.foreigner,
                    &dir,
                    &name,
                    Body::File(FileData::Inline(data.clone())),
                );
                self.model.claim_if_free(&dir, &name, Claim::Foreign);
                if self.model.claim(&dir, &name) == Some(Claim::Foreign) {
                    self.model.children_mut(&dir).insert(
                        name,
                        MNode::File {
                            data: data.clone(),
                            foreign: true,
                        },
                    );
                } else {
                    self.model.hide(&dir, &name, Some(data.clone()));
                }
                (Ok(()), Ok(()))
            }
            Op::Hold { file } => {
                let Some(path) = self.model.pick_file(*file) else {
                    return (Ok(()), Ok(()));
                };
                let ino = self.ino(&path);
                let fh = fs.open(ino, false).expect("open for reading");
                self.held.push((ino, fh));
                (Ok(()), Ok(()))
            }
            Op::Release { handle } => {
                if self.held.is_empty() {
                    return (Ok(()), Ok(()));
                }
                let (_, fh) = self.held.remove(*handle as usize % self.held.len());
                (fs.release(fh).map_err(|e| class(&e)), Ok(()))
            }
            Op::ForeignUnlink { file } => {
                let Some(path) = self.model.pick_file(*file) else {
                    return (Ok(()), Ok(()));
                };
                if !self.model.is_foreign(&path) {
                    return (Ok(()), Ok(()));
                }
                let (dir, name) = (&path[..path.len() - 1], &path[path.len() - 1]);
                self.inject(self.foreigner, dir, name, Body::Tombstone);
                self.model.children_mut(dir).remove(name);
                (Ok(()), Ok(()))
            }
        }
    }

    /// The whole visible tree: readdir recursively, stat and read every file.
    fn flat(&self) -> BTreeMap<Path, (bool, Vec<u8>, bool)> {
        fn walk(
            fs: &Filesystem<MemStore>,
            ino: u64,
            prefix: &mut Path,
            out: &mut BTreeMap<Path, (bool, Vec<u8>, bool)>,
        ) {
            let listing = fs.readdir(ino).expect("readdir");
            for w in listing.windows(2) {
                assert!(
                    w[0].name < w[1].name,
                    "readdir not sorted or has duplicates"
                );
            }
            for e in listing {
                if ino == ROOT_INO && e.name == layout::PASSWD_NAME {
                    continue;
                }
                let a = fs.lookup(ino, &e.name).expect("lookup of a listed name");
                assert_eq!(a.kind, e.kind, "kind of {:?}", e.name);
                prefix.push(canonical(fs, &e.name));
                match a.kind {
                    Kind::Dir => {
                        out.insert(prefix.clone(), (true, Vec::new(), a.writable));
                        walk(fs, a.ino, prefix, out);
                    }
                    Kind::File => {
                        let fh = fs.open(a.ino, false).expect("open");
                        let data = fs.read(a.ino, 0, u32::MAX).expect("read");
                        fs.release(fh).expect("release");
                        assert_eq!(a.size, data.len() as u64, "size of {prefix:?}");
                        out.insert(prefix.clone(), (false, data, a.writable));
                    }
                    Kind::Symlink => panic!("no symlinks in this model"),
                }
                prefix.pop();
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.fs, ROOT_INO, &mut Vec::new(), &mut out);
        out
    }
}

/// A conflict copy's name as the model spells it (`<name>#conflict-ours` or
/// `#conflict-foreign`); any other name as it is.
fn canonical(fs: &Filesystem<MemStore>, listed: &[u8]) -> Vec<u8> {
    let Some(original) = conflicts::originals(listed).pop() else {
        return listed.to_vec();
    };
    let at = original
        .iter()
        .zip(listed)
        .take_while(|(a, b)| a == b)
        .count()
        + conflicts::MARK.len();
    let short = &listed[at..at + 8];
    let ours = conflicts::owner_short(&fs.store().owner());
    let mut n = original;
    n.extend_from_slice(if short == ours.as_bytes() {
        b"#conflict-ours".as_slice()
    } else {
        b"#conflict-foreign".as_slice()
    });
    n
}

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    for (i, op) in ops.iter().enumerate() {
        let (got, want) = h.apply(op);
        prop_assert_eq!(got, want, "step {}: {:?}", i, op);
        let fs_tree = h.flat();
        let model_tree = h.model.flat();
        if fs_tree != model_tree {
            let show = |t: &BTreeMap<Path, (bool, Vec<u8>, bool)>| -> Vec<String> {
                t.iter()
                    .map(|(p, (dir, data, w))| {
                        let p: Vec<String> = p
                            .iter()
                            .map(|c| String::from_utf8_lossy(c).into())
                            .collect();
                        format!("{} dir={dir} len={} writable={w}", p.join("/"), data.len())
                    })
                    .collect()
            };
            prop_assert!(
                false,
                "step {}: {:?}\nfs:    {:#?}\nmodel: {:#?}",
                i,
                op,
                show(&fs_tree),
                show(&model_tree)
            );
        }
    }
    for (_, fh) in std::mem::take(&mut h.held) {
        prop_assert!(h.fs.release(fh).is_ok());
    }
    prop_assert_eq!(h.flat(), h.model.flat(), "after closing every handle");
    Ok(())
}

/// 64 cases from a fixed seed, so CI is deterministic and quick; proptest's own
/// `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override both to search further locally.
fn config() -> ProptestConfig {
    let from_env = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            from_env.cases
        } else {
            64
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            from_env.rng_seed
        } else {
            RngSeed::Fixed(0x1ff5_2026)
        },
        failure_persistence: None,
        ..from_env
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn proptest_fs_matches_reference_model(ops in proptest::collection::vec(op(), 1..30)) {
        check(&ops)?;
    }
}
