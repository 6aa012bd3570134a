//! The one write path into the store. Every record that reaches `records.lf` — LFFS
//! commits, `/post` and `/makerecord`, the oracle's commentary, batches from peers and
//! records released from limbo — goes through [`Node::store_verified`], which stores it
//! and then does what a stored record entails, in one place:
//!
//! 1. the put (one transaction and one fsync for the batch);
//! 2. `lf_records_added_total` and the generation counters (LFFS caches compare them;
//!    `external_generation` is not bumped for LFFS's own commits, whose mounts know
//!    about them);
//! 3. announcements to peers through the hook given at construction
//!    (`NodeParts::announce`, wired to P2P at boot), for records that did not come from
//!    a peer (P2P already tells its peers about those);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::testing::{node_announcing, record};
    use lf_record::RecordType;
    use std::sync::{Arc, Mutex};

    #[test]
    fn every_origin_counts_and_wakes_watchers_and_only_local_ones_are_announced() {
        let dir = tempfile::tempdir().unwrap();
        let announced = Arc::new(Mutex::new(Vec::new()));
        let a = announced.clone();
        let (node, ca) =
            node_announcing(dir.path(), Box::new(move |h| a.lock().unwrap().extend(h)));
        let req = lf_record::CertificateRequest::from_der(
            &crate::common::certs::make_request(&ca.key, "ca").unwrap(),
        )
        .unwrap();
        let der = ca.sign(&req, 1, crate::node::now() - 5).unwrap();
        node.accept(&record(&node, &ca.key, RecordType::Certificate, der))
            .unwrap();
        let mut woken = node.stored.subscribe();
        for origin in [Origin::Lffs, Origin::Client, Origin::Peer, Origin::Limbo] {
            announced.lock().unwrap().clear();
            let (g, e) = (
                node.generation.load(Ordering::Relaxed),
                node.external_generation.load(Ordering::Relaxed),
            );
            woken.mark_unchanged();
            let r = record(
                &node,
                &ca.key,
                RecordType::Datum,
                format!("{origin:?}").into(),
            );
            let out = node
                .store_verified(std::slice::from_ref(&r), origin)
                .unwrap();
            assert!(matches!(out[0], PutOutcome::Added { .. }), "{origin:?}");
            assert_eq!(node.generation.load(Ordering::Relaxed), g + 1, "{origin:?}");
            let external = node.external_generation.load(Ordering::Relaxed) - e;
            assert_eq!(external, u64::from(origin != Origin::Lffs), "{origin:?}");
            let told = announced.lock().unwrap().clone();
            let want = if origin == Origin::Peer {
                vec![]
            } else {
                vec![r.hash()]
            };
            assert_eq!(told, want, "{origin:?}");
            assert!(woken.has_changed().unwrap(), "{origin:?} wakes watchers");
            // Stored again: a duplicate changes nothing.
            woken.mark_unchanged();
            let again = node.store_verified(&[r], origin).unwrap();
            assert_eq!(again[0], PutOutcome::Duplicate);
            assert!(!woken.has_changed().unwrap());
        }
    }
}
