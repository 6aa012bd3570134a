//! Names this mount has listed as contested by several owners (it showed conflict
//! copies for them), with their paths: what the node's status reports beside the
//! store's collisions, so a user sees which file a collision is about.

use super::*;

/// Contested names listed: (directory selector, ordinal) → name.
pub(super) type ContestedNames = std::collections::BTreeMap<(Vec<u8>, u64), Vec<u8>>;

/// Directories whose place (parent, name) is remembered at most (then forgotten at once).
const DIR_PARENTS_MAX: usize = 65_536;

/// Where each directory seen was: selector → (parent's selector, name).
pub(super) type DirParents = HashMap<Vec<u8>, (Vec<u8>, Vec<u8>)>;

/// Contested names remembered at most (the first ones listed; a directory listed
/// again replaces its own).
const CONTESTED_MAX: usize = 1024;

/// A contested name this mount has listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contested {
    /// Selector name of its directory.
    pub dir_selector: Vec<u8>,
    /// Its ordinal there (CRC-64 of the name).
    pub ordinal: u64,
    /// Its path from the mount's root (`/dir/name`), if the directory's path is known.
    pub path: Option<Vec<u8>>,
}

impl<S: Store> Filesystem<S> {
    /// Forgets what the directory `sel` held: it is being listed again.
    pub(super) fn forget_contested_in(&self, sel: &[u8]) {
        self.contested
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(s, _), _| s != sel);
    }

    /// The name `name` (ordinal `ordinal`) in directory `sel` has conflict copies.
    pub(super) fn note_conflict(&self, sel: &[u8], name: &[u8], ordinal: u64) {
        let mut c = self.contested.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() < CONTESTED_MAX {
            c.insert((sel.to_vec(), ordinal), name.to_vec());
        }
    }

    /// The contested names this mount listed (in directories as last listed).
    pub fn contested(&self) -> Vec<Contested> {
        let found: ContestedNames = self
            .contested
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        found
            .into_iter()
            .map(|((sel, ordinal), name)| {
                let path = self.dir_path(&sel).map(|mut p| {
                    p.push(b'/');
                    p.extend_from_slice(&name);
                    p
                });
                Contested {
                    dir_selector: sel,
                    ordinal,
                    path,
                }
            })
            .collect()
    }

    /// Directory `sel` was seen as `name` in the directory `parent` (a listing or a
    /// lookup): how a contested name's path is found without walking the tree.
    pub(super) fn note_dir(&self, sel: &[u8], parent: &[u8], name: &[u8]) {
        let mut d = self.dir_parents.lock().unwrap_or_else(|e| e.into_inner());
        if d.get(sel).is_some_and(|(p, n)| p == parent && n == name) {
            return;
        }
        if d.len() >= DIR_PARENTS_MAX {
            d.clear();
        }
        d.insert(sel.to_vec(), (parent.to_vec(), name.to_vec()));
    }

    /// The path of the directory with selector `sel` from the mount's root (empty for
    /// the root), from where its directories were last seen; `None` if a step is
    /// unknown.
    fn dir_path(&self, sel: &[u8]) -> Option<Vec<u8>> {
        let d = self.dir_parents.lock().unwrap_or_else(|e| e.into_inner());
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut current: &[u8] = sel;
        for _ in 0..256 {
            if current == self.config.root.as_slice() {
                let mut p = Vec::new();
                for part in parts.iter().rev() {
                    p.push(b'/');
                    p.extend_from_slice(part);
                }
                return Some(p);
            }
            let (parent, name) = d.get(current)?;
            parts.push(name);
            current = parent;
        }
        None
    }
}
