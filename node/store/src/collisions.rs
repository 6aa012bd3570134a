//! Collisions: selector sets under which records of two or more owners compete. LF's
//! rule settles them locally (the first owner seen here wins, unless certificates or
//! trusted oracles say otherwise), so two nodes that saw the owners in different
//! orders may pick different winners; this module lists them so that no collision is
//! silent, each with its competitors ranked as a query ranks them and why the first
//! one wins here.
//!
//! A record that collided got reputation 0 at insert (`reputation.rs`), and only a
//! collision gives 0, so the collided selector sets are found through the partial
//! index `record_collided` (rows with reputation 0 only: as few as the collisions).

use std::sync::Arc;

use lf_record::{Owner, RecordId, SelectorKey};

use crate::query::{KeyRange, Query, QueryResult};
use crate::{Certification, Store, StoreError};

/// Why the first entry of a collision wins on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WinReason {
    /// Its owner is certified and the runner-up's is not: the same on every node with
    /// the same certificates.
    Certified,
    /// Trusted oracles' commentary flags the runner-up: the same on every node that
    /// trusts the same oracles.
    Oracles,
    /// It was seen here first (local reputation): another node that saw the other
    /// owner first picks that one.
    FirstSeenHere,
    /// Equal trust; more work built on it.
    Weight,
    /// Equal trust and weight; the earlier timestamp, then the smaller hash.
    Tie,
}

impl WinReason {
    /// A short lowercase label (JSON, status text).
    pub fn as_str(self) -> &'static str {
        match self {
            WinReason::Certified => "certified",
            WinReason::Oracles => "trusted oracles",
            WinReason::FirstSeenHere => "first seen here",
            WinReason::Weight => "weight",
            WinReason::Tie => "earlier timestamp",
        }
    }

    /// Whether every node holding the same records (and, for oracles, trusting the
    /// same ones) picks the same winner.
    pub fn same_everywhere(self) -> bool {
        !matches!(self, WinReason::FirstSeenHere)
    }
}

/// One collision: a selector set and the owners competing for it.
#[derive(Clone, Debug)]
pub struct Collision {
    /// The contested record ID (hash of the selector keys).
    pub id: RecordId,
    /// Its selector keys.
    pub selector_keys: Vec<SelectorKey>,
    /// Each owner's entry (its latest record), best first: the first wins here.
    pub entries: Vec<QueryResult>,
    /// Why the first entry wins here.
    pub reason: WinReason,
}

/// Open collisions: how many there are (counted up to a cap) and the first few in detail.
#[derive(Clone, Debug, Default)]
pub struct Collisions {
    /// Selector sets under which synchronized records of several owners compete
    /// (counted up to the cap passed to [`Store::collisions`]).
    pub count: usize,
    /// The first of them (in record ID order), each ranked.
    pub listed: Vec<Collision>,
}

/// Why `a` ranks before `b` (both from one result set sorted by trust).
fn reason(a: &QueryResult, b: &QueryResult, oracles: bool) -> WinReason {
    if a.signed != b.signed {
        WinReason::Certified
    } else if a.trust != b.trust {
        // Without oracles trust is local reputation alone. With them, a winner that
        // local reputation ranks below (or equal to) the runner-up wins by the oracles.
        let local = |r: &QueryResult| r.reputation >= crate::REPUTATION_DEFAULT;
        let by_reputation = local(a) && !local(b);
        if oracles && !by_reputation {
            WinReason::Oracles
        } else {
            WinReason::FirstSeenHere
        }
    } else if a.weight != b.weight {
        WinReason::Weight
    } else {
        WinReason::Tie
    }
}

impl Store {
    /// Open collisions: the number of collided selector sets (up to `count_cap`) and
    /// the first `limit` of them ranked as a query with `oracles` and
    /// `certification` ranks them. Sets whose competitors are not all synchronized yet
    /// are listed once they are. Cost: one index range over the collided records, and
    /// one query per listed set.
    pub fn collisions(
        &self,
        limit: usize,
        count_cap: usize,
        oracles: &[Owner],
        certification: Option<Arc<dyn Certification>>,
    ) -> Result<Collisions, StoreError> {
        // (id, first record's offset and length) of collided sets, in ID order.
        let (count, firsts) = {
            let inner = self.lock();
            let count: i64 = inner.db.query_row(
                "SELECT count(*) FROM (SELECT DISTINCT id FROM record
                   WHERE reputation = 0 AND synced = 1 AND sel_count > 0 LIMIT ?1)",
                [count_cap.min(i64::MAX as usize) as i64],
                |r| r.get(0),
            )?;
            let mut stmt = inner.db.prepare_cached(
                "SELECT id, min(doff), dlen FROM record
                 WHERE reputation = 0 AND synced = 1 AND sel_count > 0
                 GROUP BY id ORDER BY id LIMIT ?1",
            )?;
            let firsts: Vec<(Vec<u8>, i64, i64)> = stmt
                .query_map([limit.min(i64::MAX as usize) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            (count as usize, firsts)
        };
        let mut listed = Vec::with_capacity(firsts.len());
        for (id, doff, dlen) in firsts {
            let record = self.read_unlocked(doff, dlen)?;
            let keys = record.selector_keys();
            let q = Query {
                ranges: keys
                    .iter()
                    .map(|k| KeyRange { start: *k, end: *k })
                    .collect(),
                oracles: oracles.to_vec(),
                certification: certification.clone(),
                ..Query::default()
            };
            let Some(entries) = self
                .query(&q)?
                .into_iter()
                .find(|set| set[0].record.id().0[..] == id[..])
            else {
                continue;
            };
            if entries.len() < 2 {
                // The other owner's record is not synchronized yet.
                continue;
            }
            listed.push(Collision {
                id: record.id(),
                selector_keys: keys,
                reason: reason(&entries[0], &entries[1], !oracles.is_empty()),
                entries,
            });
        }
        Ok(Collisions { count, listed })
    }
}
