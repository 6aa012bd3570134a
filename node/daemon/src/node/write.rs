//! The one write path into the store. Every record that reaches `records.lf` — LFFS
//! commits, `/post` and `/makerecord`, the oracle's commentary, batches from peers and
//! records released from limbo — goes through [`Node::store_verified`], which stores it
//! and then does what a stored record entails, in one place:
//!
//! 1. the put (one transaction and one fsync for the batch);
//! 2. `lf_records_added_total` and the generation counters (LFFS caches compare them;
//!    `external_generation` is not bumped for LFFS's own commits, whose mounts know
//!    about them);
//! 3. announcements to peers through the hook P2P sets ([`Node::set_announce`]), for
//!    records that did not come from a peer (P2P already tells its peers about those);
//! 4. the watch wake-up ([`Node::stored`]): watchers read the store's insertion order
//!    from where they were, so they see every origin alike;
//! 5. limbo release (certificates among the records) and genesis amendments
//!    ([`Node::after_stored`]).
//!
//! Callers verify first ([`Node::check`]); this path checks nothing.

use std::sync::atomic::Ordering;

use lf_record::{Record, RecordHash};
use lf_store::PutOutcome;

use super::Node;

/// Where records to store come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Built by this node's LFFS commit queue for a mount.
    Lffs,
    /// A client of this node (`/post`, `/makerecord`) or the node's oracle.
    Client,
    /// A batch from peers.
    Peer,
    /// Records from peers that waited in limbo for their owner's certificate.
    Limbo,
}

impl Node {
    /// Stores verified records and does everything a stored record entails (steps in
    /// the module doc). Returns one outcome per record. Blocking.
    pub fn store_verified(
        &self,
        records: &[Record],
        origin: Origin,
    ) -> Result<Vec<PutOutcome>, lf_store::StoreError> {
        let outcomes = self.put_verified(records, origin)?;
        self.after_stored(records);
        Ok(outcomes)
    }

    /// Steps 1–4 of [`Node::store_verified`], without limbo release and amendments:
    /// for the peer batch's store lane, which runs [`Node::after_stored`] off the lane
    /// (a released limbo is verified record by record, and later batches need not wait
    /// behind it).
    pub fn put_verified(
        &self,
        records: &[Record],
        origin: Origin,
    ) -> Result<Vec<PutOutcome>, lf_store::StoreError> {
        let outcomes = if records.len() == 1 {
            vec![self.store.put(&records[0])?]
        } else {
            self.store.put_many(records)?
        };
        let added: Vec<RecordHash> = records
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o != PutOutcome::Duplicate)
            .map(|(r, _)| r.hash())
            .collect();
        if added.is_empty() {
            return Ok(outcomes);
        }
        ::metrics::counter!("lf_records_added_total").increment(added.len() as u64);
        self.generation.fetch_add(1, Ordering::Relaxed);
        if origin != Origin::Lffs {
            self.external_generation.fetch_add(1, Ordering::Relaxed);
        }
        if origin != Origin::Peer {
            self.announce_local(added);
        }
        self.stored.send_modify(|n| *n += 1);
        Ok(outcomes)
    }

    /// Step 5 of [`Node::store_verified`]: releases the records in limbo that
    /// certificates among `stored` certify, and applies genesis amendments among them.
    pub fn after_stored(&self, stored: &[Record]) {
        self.release_limbo(stored);
        self.apply_amendments_in(stored);
    }
}
