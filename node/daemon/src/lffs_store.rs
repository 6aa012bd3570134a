//! `lffs::Store` over the node: reads query the record store (winners first) and the
//! commit queue's overlay of writes not yet published; writes go to the commit queue
//! (durable in the journal when `put` returns). One per mount: it carries the mount's
//! owner key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use lf_record::{Owner, OwnerSecret, SelectorName};
use lf_store::{KeyRange, Query};
use lffs::{Put, StoreError, Version};

use crate::commit_queue::CommitQueue;
use crate::node::Node;

/// Rate limit of the disk-full error line.
static DISK_FULL_LOGGED: crate::logfile::Every = crate::logfile::Every::secs(10);

/// The store of one mount.
pub struct LffsStore {
    node: Arc<Node>,
    queue: Arc<CommitQueue>,
    owner: OwnerSecret,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("{e:#}"))
}

impl LffsStore {
    /// A store for a mount signing as `owner`.
    pub fn new(node: Arc<Node>, queue: Arc<CommitQueue>, owner: OwnerSecret) -> Self {
        LffsStore { node, queue, owner }
    }

    /// Candidates from the record store for a key range of `name`, per ordinal.
    fn query(
        &self,
        name: &SelectorName,
        first: u64,
        last: u64,
        mask: &[u8],
    ) -> Result<BTreeMap<u64, Vec<Version>>, StoreError> {
        let (start, end) = name.key_range(first, last);
        // Ranked as `/query` ranks (certified owners first on a network with root
        // CAs), so the mount and `lf get` show the same winner.
        let q = Query {
            ranges: vec![KeyRange { start, end }],
            certification: self.node.certs.query_hook(),
            ..Query::default()
        };
        let mut out = BTreeMap::new();
        for set in self.node.store.query(&q).map_err(err)? {
            let Some(ordinal) = set
                .first()
                .and_then(|r| r.record.selectors().first())
                .map(|s| name.ordinal_mask().unmask(&s.ordinal))
            else {
                continue;
            };
            let versions: Vec<Version> = set
                .iter()
                .filter_map(|r| {
                    let value = r.record.value(Some(mask)).ok()?;
                    Some(Version {
                        owner: r.record.owner(),
                        timestamp: r.record.timestamp(),
                        value,
                    })
                })
                .collect();
            if !versions.is_empty() {
                out.insert(ordinal, versions);
            }
        }
        Ok(out)
    }
}

/// Puts a pending write of `owner` in place of that owner's stored candidate (it is
/// newer), or after the others when the owner had none.
fn merge(mut versions: Vec<Version>, pending: Version) -> Vec<Version> {
    match versions.iter().position(|v| v.owner == pending.owner) {
        Some(i) => versions[i] = pending,
        None => versions.push(pending),
    }
    versions
}

impl lffs::Store for LffsStore {
    fn owner(&self) -> Owner {
        self.owner.public()
    }

    fn max_value_size(&self) -> usize {
        self.node.config().record_max_value_size as usize
    }

    fn get(&self, name: &[u8], ordinal: u64, mask: &[u8]) -> Result<Vec<Version>, StoreError> {
        // The overlay first, then the store: the commit queue stores a version before
        // it drops it from the overlay, so one of the two reads always sees it (the
        // other order could miss it in between and answer ENOENT).
        let pending = self.queue.overlay_get(name, ordinal, mask);
        let n = SelectorName::new(name);
        let mut found = self
            .query(&n, ordinal, ordinal, mask)?
            .remove(&ordinal)
            .unwrap_or_default();
        if let Some(p) = pending {
            found = merge(found, p);
        }
        Ok(found)
    }

    fn list(&self, name: &[u8], mask: &[u8]) -> Result<Vec<(u64, Vec<Version>)>, StoreError> {
        let pending = self.queue.overlay_list(name, mask); // first: see `get`
        let n = SelectorName::new(name);
        let mut all = self.query(&n, 0, u64::MAX, mask)?;
        for (ordinal, p) in pending {
            let v = all.remove(&ordinal).unwrap_or_default();
            all.insert(ordinal, merge(v, p));
        }
        Ok(all.into_iter().collect())
    }

    fn put(&self, puts: Vec<Put>) -> Result<(), StoreError> {
        self.put_part(puts, true)
    }

    fn put_part(&self, puts: Vec<Put>, first: bool) -> Result<(), StoreError> {
        self.queue.submit(&self.owner, puts, !first).map_err(|e| {
            if e.is::<crate::commit_queue::QueueFull>() {
                StoreError::Full(e.to_string())
            } else if crate::home::is_disk_full(&e) {
                // ENOSPC for the writer; the operator hears of it here (at most every
                // 10 s: every write fails the same way until there is room).
                crate::metrics::error("disk_full");
                if DISK_FULL_LOGGED.should_log() {
                    tracing::error!("LFFS write refused: the node's disk is full: {e:#}");
                }
                StoreError::Full(format!("the node's disk is full: {e:#}"))
            } else {
                err(e)
            }
        })
    }

    fn write_refused(&self) -> Option<String> {
        self.node.write_refused(&self.owner.public())
    }

    fn generation(&self) -> u64 {
        self.node.generation.load(Ordering::Relaxed)
    }

    fn external_generation(&self) -> u64 {
        self.node.external_generation.load(Ordering::Relaxed)
    }

    fn now_nanos(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}
