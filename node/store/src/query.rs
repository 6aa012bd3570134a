//! Queries (reference §9.5–9.6): key ranges per selector index, intersected; filters on
//! time, owners and selector count; results grouped per selector set (record ID), one
//! entry per owner carrying its latest record, ordered by trust then weight.

use std::collections::HashMap;

use lf_record::{Owner, Record, SelectorKey};

use crate::reputation::REPUTATION_DEFAULT;
use crate::{Store, StoreError};

/// An inclusive range of selector keys at one selector position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// First key.
    pub start: SelectorKey,
    /// Last key.
    pub end: SelectorKey,
}

/// How entries of one result set are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Trust, then weight (default).
    #[default]
    Trust,
    /// Weight only.
    Weight,
    /// Newest first.
    Timestamp,
}

/// A query: range `i` constrains selector `i`.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// One range per selector position (at least one).
    pub ranges: Vec<KeyRange>,
    /// Inclusive timestamp bounds (default: everything).
    pub time_range: Option<(u64, u64)>,
    /// Only these owners (empty: anyone).
    pub owners: Vec<Owner>,
    /// Also match records with more selectors than ranges.
    pub open: bool,
    /// Order inside each result set.
    pub sort: SortOrder,
    /// Keep at most this many entries per result set.
    pub limit: Option<usize>,
    /// Oracles whose commentary to trust (reference §9.6).
    pub oracles: Vec<Owner>,
    /// Which owners are certified, on a network with root CAs: uncertified entries'
    /// trust is multiplied by [`crate::UNCERTIFIED_TRUST_FACTOR`] (reference §9.6).
    pub certification: Option<std::sync::Arc<dyn crate::Certification>>,
    /// Paging: only records whose first selector key is after this one (the cursor a
    /// previous page returned).
    pub start_after: Option<SelectorKey>,
    /// Paging: at most this many distinct first selector keys in this page (result
    /// sets, unless sets share a first key); the page's cursor says where the next
    /// one starts.
    pub max_keys: Option<usize>,
    /// Refuse ([`StoreError::TooManyRows`]) a page matching more records than this,
    /// before any record is read.
    pub max_rows: Option<usize>,
}

/// One page of a query: result sets, and where the next page starts (`None`: this was
/// the last).
#[derive(Clone, Debug, Default)]
pub struct QueryPage {
    /// Result sets, each sorted best first; in first-selector-key order.
    pub sets: Vec<Vec<QueryResult>>,
    /// The last first-selector key this page covered, if more may follow: pass it as
    /// [`Query::start_after`].
    pub next: Option<SelectorKey>,
}

/// The key just after `k` (big-endian increment); `None` after the last key.
fn successor(k: &SelectorKey) -> Option<SelectorKey> {
    let mut b = k.0;
    for i in (0..32).rev() {
        if b[i] == 0xff {
            b[i] = 0;
        } else {
            b[i] += 1;
            return Some(SelectorKey(b));
        }
    }
    None
}

/// One entry of a result set: an owner's latest record for a selector set.
#[derive(Clone, Debug)]
pub struct QueryResult {
    /// The owner's latest record in this set.
    pub record: Record,
    /// Sum of the weights of the owner's records in this set.
    pub weight: u64,
    /// Local trust in [0, 1] (reputation at the default or above gives 1).
    pub trust: f64,
    /// Lowest reputation among the owner's records in this set.
    pub reputation: i64,
    /// Whether the owner was certified at the latest record's timestamp (false when
    /// the query carries no [`Query::certification`]).
    pub signed: bool,
}

struct Row {
    seq: u32,
    hash: Vec<u8>,
    id: Vec<u8>,
    owner: Vec<u8>,
    ts: i64,
    reputation: i64,
    sel_count: usize,
    doff: i64,
    dlen: i64,
}

impl Store {
    /// Runs a query; returns result sets, each sorted best first. Paging fields of
    /// `q` apply: see [`Store::query_page`] for the cursor.
    pub fn query(&self, q: &Query) -> Result<Vec<Vec<QueryResult>>, StoreError> {
        Ok(self.query_page(q)?.sets)
    }

    /// Runs one page of a query (`start_after`, `max_keys`, `max_rows`). The store
    /// lock is held for the index work only; records are read and ranked after it is
    /// released, so a big query does not stall writers and other readers.
    pub fn query_page(&self, q: &Query) -> Result<QueryPage, StoreError> {
        if q.ranges.is_empty() {
            return Ok(QueryPage::default());
        }
        let mut q = q.clone();
        let inner = self.lock();
        let mut next = None;
        if let Some(after) = q.start_after {
            match successor(&after) {
                Some(s) if s.0 > q.ranges[0].start.0 => q.ranges[0].start = s,
                Some(_) => {}
                None => return Ok(QueryPage::default()),
            }
            if q.ranges[0].start.0 > q.ranges[0].end.0 {
                return Ok(QueryPage::default());
            }
        }
        if let Some(k) = q.max_keys {
            // The first k+1 distinct first keys in range: if there are more than k,
            // this page ends at the k-th.
            let mut stmt = inner.db.prepare_cached(
                "SELECT DISTINCT key FROM selector WHERE idx = 0 AND key BETWEEN ?1 AND ?2
                 ORDER BY key LIMIT ?3",
            )?;
            let keys: Vec<Vec<u8>> = stmt
                .query_map(
                    (
                        &q.ranges[0].start.0[..],
                        &q.ranges[0].end.0[..],
                        (k as i64).saturating_add(1),
                    ),
                    |r| r.get(0),
                )?
                .collect::<Result<_, _>>()?;
            if keys.len() > k {
                let last = keys[k.max(1) - 1].clone();
                if let Ok(a) = <[u8; 32]>::try_from(&last[..]) {
                    q.ranges[0].end = SelectorKey(a);
                    next = Some(SelectorKey(a));
                }
            }
        }
        let q = &q;
        let mut sql = String::from(
            "SELECT seq, hash, id, owner, ts, reputation, sel_count, doff, dlen FROM record
             WHERE synced = 1 AND reputation >= 0 AND ts BETWEEN ?1 AND ?2 AND seq IN (",
        );
        let mut params: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        let (t0, t1) = q.time_range.unwrap_or((0, i64::MAX as u64));
        params.push(Box::new(t0.min(i64::MAX as u64) as i64));
        params.push(Box::new(t1.min(i64::MAX as u64) as i64));
        for (i, r) in q.ranges.iter().enumerate() {
            if i > 0 {
                sql.push_str(" INTERSECT ");
            }
            let n = params.len();
            sql.push_str(&format!(
                "SELECT seq FROM selector WHERE idx = {i} AND key BETWEEN ?{} AND ?{}",
                n + 1,
                n + 2
            ));
            params.push(Box::new(r.start.0.to_vec()));
            params.push(Box::new(r.end.0.to_vec()));
        }
        sql.push(')');
        if let Some(m) = q.max_rows {
            sql.push_str(&format!(" LIMIT {}", m.saturating_add(1)));
        }
        let mut stmt = inner.db.prepare(&sql)?;
        let rows: Vec<Row> = stmt
            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                Ok(Row {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                    id: r.get(2)?,
                    owner: r.get(3)?,
                    ts: r.get(4)?,
                    reputation: r.get(5)?,
                    sel_count: r.get::<_, i64>(6)? as usize,
                    doff: r.get(7)?,
                    dlen: r.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        if let Some(m) = q.max_rows
            && rows.len() > m
        {
            return Err(StoreError::TooManyRows(m));
        }
        let owners: Vec<&[u8]> = q.owners.iter().map(|o| &o.as_bytes()[..]).collect();
        // Group by (id, owner): latest record, weight sum, lowest reputation.
        struct Group {
            latest: Row,
            weight: u64,
            min_rep: i64,
            hashes: Vec<Vec<u8>>,
        }
        let mut groups: HashMap<(Vec<u8>, Vec<u8>), Group> = HashMap::new();
        for row in rows {
            if row.sel_count != q.ranges.len() && !(q.open && row.sel_count > q.ranges.len()) {
                continue;
            }
            if !owners.is_empty() && !owners.contains(&&row.owner[..]) {
                continue;
            }
            let w = inner.dag.weight(row.seq);
            let key = (row.id.clone(), row.owner.clone());
            match groups.get_mut(&key) {
                Some(g) => {
                    g.hashes.push(row.hash.clone());
                    g.weight += w;
                    g.min_rep = g.min_rep.min(row.reputation);
                    // Same timestamp: the greater hash, not the one stored last
                    // here, so every node shows the same record (a fleet sharing an
                    // owner wrote it on both sides of a partition).
                    if (row.ts, &row.hash) > (g.latest.ts, &g.latest.hash) {
                        g.latest = row;
                    }
                }
                None => {
                    let min_rep = row.reputation;
                    let hashes = vec![row.hash.clone()];
                    groups.insert(
                        key,
                        Group {
                            latest: row,
                            weight: w,
                            min_rep,
                            hashes,
                        },
                    );
                }
            }
        }
        // Under the lock: what needs the index (oracle commentary). After it: records.
        let mut ranked = Vec::with_capacity(groups.len());
        for ((id, _), g) in groups {
            let local = if g.min_rep >= REPUTATION_DEFAULT {
                1.0
            } else {
                0.0
            };
            let trust = if q.oracles.is_empty() {
                local
            } else {
                // Reference §9.6: each oracle comment calling a record of this group an
                // impostor lowers the oracles' trust; local trust counts as one voice.
                let k = q.oracles.len() as f64;
                let mut negative = 0u64;
                let mut stmt = inner.db.prepare_cached(
                    "SELECT count(*) FROM comment WHERE subject = ?1 AND by_owner = ?2
                     AND assertion = 1",
                )?;
                for h in &g.hashes {
                    for o in &q.oracles {
                        let n: i64 = stmt.query_row((&h[..], &o.as_bytes()[..]), |r| r.get(0))?;
                        negative += n as u64;
                    }
                }
                let oracle_trust = (1.0 - negative as f64 / k).max(0.0);
                (local + oracle_trust * k) / (k + 1.0)
            };
            ranked.push((id, g.latest.doff, g.latest.dlen, g.weight, g.min_rep, trust));
        }
        drop(inner);
        let mut sets: HashMap<Vec<u8>, Vec<QueryResult>> = HashMap::new();
        for (id, doff, dlen, weight, min_rep, mut trust) in ranked {
            let record = self.read_unlocked(doff, dlen)?;
            let signed = q
                .certification
                .as_ref()
                .is_some_and(|c| c.is_certified(&record.owner(), record.timestamp()));
            if q.certification.is_some() && !signed {
                trust *= crate::UNCERTIFIED_TRUST_FACTOR;
            }
            sets.entry(id).or_default().push(QueryResult {
                record,
                weight,
                trust,
                reputation: min_rep,
                signed,
            });
        }
        let mut out: Vec<Vec<QueryResult>> = sets.into_values().collect();
        for set in &mut out {
            match q.sort {
                // Certified entries first (a network's CA is the final arbiter of its
                // owners' names, even against an earlier uncertified claim), then trust.
                SortOrder::Trust => set.sort_by(|a, b| {
                    b.signed
                        .cmp(&a.signed)
                        .then(b.trust.total_cmp(&a.trust))
                        .then(b.weight.cmp(&a.weight))
                        .then_with(|| a.record.timestamp().cmp(&b.record.timestamp()))
                }),
                SortOrder::Weight => set.sort_by_key(|r| std::cmp::Reverse(r.weight)),
                SortOrder::Timestamp => {
                    set.sort_by_key(|r| std::cmp::Reverse(r.record.timestamp()))
                }
            }
            if let Some(l) = q.limit {
                set.truncate(l);
            }
        }
        // `Limit: 0` empties every set: return no sets rather than empty ones.
        out.retain(|set| !set.is_empty());
        out.sort_by(|a, b| {
            let ka = (a[0].record.selectors().len(), a[0].record.selector_keys());
            let kb = (b[0].record.selectors().len(), b[0].record.selector_keys());
            ka.cmp(&kb)
        });
        if q.max_keys.is_some() {
            // Pages follow the first selector key.
            out.sort_by(|a, b| {
                let ka = a[0].record.selector_keys().first().copied();
                let kb = b[0].record.selector_keys().first().copied();
                ka.map(|k| k.0).cmp(&kb.map(|k| k.0)).then(
                    a[0].record
                        .selectors()
                        .len()
                        .cmp(&b[0].record.selectors().len()),
                )
            });
        }
        Ok(QueryPage { sets: out, next })
    }
}
