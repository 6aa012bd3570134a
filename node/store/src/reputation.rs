//! Local reputation (node-local, never replicated), as the reference's §9.4: the first
//! owner to claim a selector set wins on this node; colliding records from other owners
//! get 0; records linking to records much newer than themselves get 48.

use lf_record::Record;
use rusqlite::Transaction;

/// Reputation of an ordinary record.
pub const REPUTATION_DEFAULT: i64 = 63;
/// Reputation of a record that links to records newer than itself beyond the drift.
pub const REPUTATION_TEMPORAL: i64 = 48;
/// Reputation of a record that collides with another owner's claim.
pub const REPUTATION_COLLISION: i64 = 0;

/// Reputation of a new record with `id` by `owner`, lowering other owners' unsynced
/// claims on the same ID to 0. Returns (reputation, seqs whose reputation dropped).
///
/// Records with one ID share their first selector key, so the selector index finds
/// them (there is no index on the ID: one random-keyed index fewer per insert). A
/// record without selectors has its hash as ID and can collide with nothing.
pub(crate) fn at_insert(tx: &Transaction<'_>, r: &Record) -> rusqlite::Result<(i64, Vec<u32>)> {
    let keys = r.selector_keys();
    let Some(key0) = keys.first() else {
        return Ok((REPUTATION_DEFAULT, Vec::new()));
    };
    let id = r.id();
    // Two single-table lookups, not a join: SQLite marks a join's parameters as
    // plan-relevant, and such a statement is re-prepared each time it comes back from
    // rusqlite's cache. Almost always the key is new and the first finds nothing.
    let seqs: Vec<u32> = tx
        .prepare_cached("SELECT seq FROM selector WHERE idx = 0 AND key = ?1")?
        .query_map([&key0.0[..]], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<(Vec<u8>, i64, bool)> = Vec::new();
    if !seqs.is_empty() {
        let mut stmt =
            tx.prepare_cached("SELECT owner, reputation, synced, id FROM record WHERE seq = ?1")?;
        for seq in seqs {
            let (owner, rep, synced, rid): (Vec<u8>, i64, bool, Vec<u8>) =
                stmt.query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            if rid[..] == id.0[..] {
                rows.push((owner, rep, synced));
            }
        }
    }
    let owner = r.owner();
    let mine = &owner.as_bytes()[..];
    if let Some(best) = rows
        .iter()
        .filter(|(o, _, s)| o == mine && *s)
        .map(|r| r.1)
        .max()
    {
        return Ok((best, Vec::new()));
    }
    let others: Vec<&Vec<u8>> = rows
        .iter()
        .filter(|(o, ..)| o != mine)
        .map(|r| &r.0)
        .collect();
    if others.is_empty() {
        return Ok((REPUTATION_DEFAULT, Vec::new()));
    }
    // "Collisions between unsynchronized records earn both a zero": other owners keep
    // their reputation only if they hold a synchronized, positive record for this ID.
    let mut dropped = Vec::new();
    for o in others {
        let holds = rows.iter().any(|(oo, rep, s)| oo == o && *s && *rep > 0);
        if !holds {
            let mut q = tx.prepare_cached(
                "UPDATE record SET reputation = 0
                 WHERE seq IN (SELECT s.seq FROM selector s WHERE s.idx = 0 AND s.key = ?1)
                   AND id = ?2 AND owner = ?3 AND reputation > 0
                 RETURNING seq",
            )?;
            let seqs: Vec<u32> = q
                .query_map((&key0.0[..], &id.0[..], &o[..]), |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            dropped.extend(seqs);
        }
    }
    Ok((REPUTATION_COLLISION, dropped))
}
