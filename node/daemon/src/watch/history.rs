//! Every version of one key the node holds (`/history`, `lf history`): the records
//! whose first selector key it is, oldest first, with the winner now and why, and one
//! version's content (chunked files reassembled through the mount's filesystem).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use lf_record::{Owner, Record, SelectorKey, SelectorName};
use lffs::layout::{Body, FileData};

use super::scope::{Naming, Range};
use super::{WatchError, WatchHub};
use crate::common::api_json::HistoryVersion;

/// Most versions listed for one key.
pub const MAX_VERSIONS: usize = 10_000;

/// The key of a path (a file or directory entry; not a mount root) or of a selector
/// name and ordinal, and how to name its records. Blocking.
pub fn resolve(
    hub: &WatchHub,
    path: Option<&str>,
    selector: Option<(&str, u64)>,
) -> Result<(SelectorKey, Range), WatchError> {
    match (path, selector) {
        (Some(p), None) => {
            let (fs, abs, rel) = super::locate_mount(hub, p)?;
            let loc = fs
                .locate(rel.as_os_str().as_bytes())
                .map_err(|e| WatchError::Bad(format!("{p}: {e}")))?;
            let name = loc.name.ok_or_else(|| {
                WatchError::Bad(format!("{p} is a mount root, which has no versions"))
            })?;
            let parent = abs.parent().unwrap_or(Path::new("/"));
            let range = Range::entry(fs, parent, loc.dir_selector, &name);
            Ok((range.start, range))
        }
        (None, Some((name, ordinal))) => {
            let range = Range::selector(name, ordinal, ordinal);
            Ok((range.start, range))
        }
        _ => Err(WatchError::Bad("give either Path or Selector".into())),
    }
}

/// Every version under `key`, oldest first, with the records. Blocking.
pub fn versions(
    hub: &WatchHub,
    key: &SelectorKey,
    range: &Range,
    oracles: &[Owner],
    mask: Option<&[u8]>,
) -> Result<Vec<(HistoryVersion, Record)>, WatchError> {
    let node = hub.node();
    let stored = node.store().records_at_key(key, MAX_VERSIONS)?;
    // Rank as a query does: one entry per owner (its latest record), best first.
    let mut q = lf_store::Query {
        ranges: vec![lf_store::KeyRange {
            start: *key,
            end: *key,
        }],
        oracles: oracles.to_vec(),
        ..lf_store::Query::default()
    };
    if node.certs().read().has_roots() {
        q.certification = Some(std::sync::Arc::new(node.certs().clone()));
    }
    let ranked: Vec<lf_store::QueryResult> =
        node.store().query(&q)?.into_iter().flatten().collect();
    let winner = ranked.first().cloned();
    let by_owner: HashMap<Owner, &lf_store::QueryResult> =
        ranked.iter().rev().map(|r| (r.record.owner(), r)).collect();
    let mut out = Vec::new();
    for s in stored {
        let r = s.record;
        let (kind, size) = describe(range, &r, mask);
        let entry = by_owner.get(&r.owner());
        let is_winner = winner.as_ref().is_some_and(|w| w.record.hash() == r.hash());
        let why = why(
            &r,
            s.synced,
            entry.copied(),
            winner.as_ref(),
            !oracles.is_empty(),
        );
        out.push((
            HistoryVersion {
                hash: r.hash().to_string(),
                owner: r.owner().to_string(),
                timestamp: r.timestamp(),
                size,
                kind,
                winner: is_winner,
                why,
                trust: entry.map_or(0.0, |e| e.trust),
                weight: entry.map_or(0, |e| e.weight),
                reputation: entry.map_or(0, |e| e.reputation),
                signed: entry.is_some_and(|e| e.signed),
                cursor: s.seq,
            },
            r,
        ));
    }
    Ok(out)
}

/// The kind and size of a version.
fn describe(range: &Range, r: &Record, mask: Option<&[u8]>) -> (String, u64) {
    match &range.naming {
        Naming::Selector { .. } => match range.name(r, mask) {
            Some(n) => ("value".into(), n.size),
            None => ("value".into(), 0),
        },
        Naming::Entries { fs, dir_sel, .. } => {
            let entry = entry_of(range, r).map(|e| e.body);
            let _ = (fs, dir_sel);
            match entry {
                Some(Body::File(FileData::Inline(d))) => ("file".into(), d.len() as u64),
                Some(Body::File(FileData::Chunked { size, .. })) => ("file".into(), size),
                Some(Body::Dir(_)) => ("directory".into(), 0),
                Some(Body::Symlink(t)) => ("symlink".into(), t.len() as u64),
                Some(Body::Tombstone) => ("deleted".into(), 0),
                None => ("unreadable".into(), 0),
            }
        }
    }
}

fn entry_of(range: &Range, r: &Record) -> Option<lffs::layout::Entry> {
    let Naming::Entries { fs, dir_sel, .. } = &range.naming else {
        return None;
    };
    let selector = r.selectors().first()?;
    let ordinal = SelectorName::new(dir_sel)
        .ordinal_mask()
        .unmask(&selector.ordinal);
    let value = r.value(Some(&fs.entry_mask(dir_sel))).ok()?;
    fs.stored_entry(&value, dir_sel, ordinal)
}

/// Why a version wins or loses, in words.
fn why(
    r: &Record,
    synced: bool,
    entry: Option<&lf_store::QueryResult>,
    winner: Option<&lf_store::QueryResult>,
    oracles: bool,
) -> String {
    let trust = |e: &lf_store::QueryResult| {
        format!(
            "trust {:.2} (reputation {}{}{})",
            e.trust,
            e.reputation,
            if e.signed { ", certified" } else { "" },
            if oracles {
                ", oracle commentary counted"
            } else {
                ""
            }
        )
    };
    if !synced {
        return "not ranked yet: records it links to have not arrived".into();
    }
    let (Some(e), Some(w)) = (entry, winner) else {
        return "not ranked".into();
    };
    if w.record.hash() == r.hash() {
        return format!("wins: {}, weight {}", trust(w), w.weight);
    }
    if e.record.hash() != r.hash() {
        return format!(
            "superseded by its owner's newer version {}",
            e.record.hash()
        );
    }
    if e.signed != w.signed {
        return "loses: its owner is not certified, the winner's is".into();
    }
    if e.trust < w.trust {
        return format!("loses: {} below the winner's {}", trust(e), trust(w));
    }
    format!(
        "loses: weight {} below the winner's {} at equal trust",
        e.weight, w.weight
    )
}

/// The content of a version: a file's bytes (chunks reassembled), a symbolic link's
/// target, a selector's unmasked value. Blocking.
pub fn content(range: &Range, r: &Record, mask: Option<&[u8]>) -> Result<Vec<u8>, WatchError> {
    match &range.naming {
        Naming::Selector { name, .. } => {
            let key = mask.map_or_else(|| name.as_bytes().to_vec(), <[u8]>::to_vec);
            r.value(Some(&key))
                .map_err(|e| WatchError::Bad(format!("cannot unmask version {}: {e}", r.hash())))
        }
        Naming::Entries { fs, .. } => {
            let e = entry_of(range, r).ok_or_else(|| {
                WatchError::Bad(format!("version {} is not a readable entry", r.hash()))
            })?;
            if matches!(e.body, Body::Dir(_) | Body::Tombstone) {
                return Err(WatchError::Bad(format!(
                    "version {} is a {}, which has no content",
                    r.hash(),
                    if e.body == Body::Tombstone {
                        "deletion"
                    } else {
                        "directory"
                    }
                )));
            }
            fs.entry_content(&e)
                .map_err(|err| WatchError::Bad(format!("version {}: {err}", r.hash())))
        }
    }
}

/// The version `at` names: a hash (`=...` or base62), or a time (Unix seconds or
/// `YYYY-MM-DDTHH:MM:SSZ`), the newest version not after it.
pub fn pick<'a>(
    versions: &'a [(HistoryVersion, Record)],
    at: &str,
) -> Result<&'a (HistoryVersion, Record), WatchError> {
    if let Some(t) = crate::common::clock::parse_time(at) {
        return versions
            .iter()
            .filter(|(v, _)| v.timestamp <= t)
            .max_by_key(|(v, _)| (v.timestamp, v.cursor))
            .ok_or_else(|| WatchError::Bad(format!("no version at or before {at}")));
    }
    let h: lf_record::RecordHash = at
        .parse()
        .map_err(|e| WatchError::Bad(format!("-at {at:?} is neither a time nor a hash: {e}")))?;
    versions
        .iter()
        .find(|(_, r)| r.hash() == h)
        .ok_or_else(|| WatchError::Bad(format!("no version {at} under this key")))
}
