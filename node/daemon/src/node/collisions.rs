//! Open collisions for `/status`, `lf status` and `lf_collisions_open`: the store's
//! collided selector sets ranked as this node's mounts and `/query` rank them (with
//! its certificates), each with the file a mount showed it as, where one did. A
//! collision between owners is settled locally ("first seen here"), so it is never
//! left silent.

use std::collections::HashMap;
use std::path::PathBuf;

use lf_record::{SelectorKey, SelectorName};

use crate::common::api_json as json;
use crate::node::Node;

/// Collisions listed in detail at most (each costs a query).
pub const LISTED_MAX: usize = 100;
/// Collisions counted at most.
pub const COUNT_CAP: usize = 100_000;

/// The contested names each mount listed: (mount point, names).
pub type MountContested = (PathBuf, Vec<lffs::Contested>);

/// The open collisions (blocking: run it on the blocking pool).
pub fn gather(node: &Node, mounts: &[MountContested]) -> anyhow::Result<json::CollisionsStatus> {
    let found = node
        .store
        .collisions(LISTED_MAX, COUNT_CAP, &[], node.certs.query_hook())?;
    // Each contested name's selector key, once (not once per collision).
    let mut paths: HashMap<SelectorKey, String> = HashMap::new();
    for (mount, contested) in mounts {
        for c in contested {
            let Some(rel) = &c.path else { continue };
            let mut p = mount.clone().into_os_string();
            p.push(String::from_utf8_lossy(rel).as_ref());
            let key = SelectorName::new(&c.dir_selector).key(c.ordinal);
            paths
                .entry(key)
                .or_insert_with(|| PathBuf::from(p).display().to_string());
        }
    }
    let path_of = |key: &SelectorKey| paths.get(key).cloned();
    let listed = found
        .listed
        .iter()
        .map(|c| json::CollisionStatus {
            selector_key: c
                .selector_keys
                .first()
                .map(|k| hex::encode(k.0))
                .unwrap_or_default(),
            path: c.selector_keys.first().and_then(path_of),
            winner: c.entries[0].record.owner().to_string(),
            reason: c.reason.as_str().to_string(),
            same_everywhere: c.reason.same_everywhere(),
            owners: c
                .entries
                .iter()
                .map(|e| json::CollisionOwner {
                    owner: e.record.owner().to_string(),
                    hash: e.record.hash().to_string(),
                    timestamp: e.record.timestamp(),
                    trust: e.trust,
                    weight: e.weight,
                    signed: e.signed,
                })
                .collect(),
        })
        .collect();
    Ok(json::CollisionsStatus {
        open: found.count as u64,
        listed,
    })
}

/// The count alone, for the metric (no query per collision).
pub fn count(node: &Node) -> anyhow::Result<u64> {
    Ok(node.store.collisions(0, COUNT_CAP, &[], None)?.count as u64)
}
