//! Names this mount has listed as contested by several owners (it showed conflict
//! copies for them), with their paths: what the node's status reports beside the
//! store's collisions, so a user sees which file a collision is about.

use super::*;

/// Contested names listed: (directory selector, ordinal) → name.
pub(super) type ContestedNames = std::collections::BTreeMap<(Vec<u8>, u64), Vec<u8>>;

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

    /// The path of the directory with selector `sel` from the mount's root (empty for
    /// the root), walking up through the remembered inodes; `None` if a step is unknown.
    fn dir_path(&self, sel: &[u8]) -> Option<Vec<u8>> {
        let nodes: Vec<Node> = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut current = sel.to_vec();
        for _ in 0..256 {
            if current == self.config.root {
                let mut p = Vec::new();
                for part in parts.iter().rev() {
                    p.push(b'/');
                    p.extend_from_slice(part);
                }
                return Some(p);
            }
            let parent = nodes.iter().find(|n| {
                matches!(self.resolve(&n.dir_sel, &n.name),
                    Ok(Some((Entry { body: Body::Dir(ref s), ref name, .. }, _)))
                        if *s == current && *name == n.name)
            })?;
            parts.push(parent.name.clone());
            current = parent.dir_sel.clone();
        }
        None
    }
}
