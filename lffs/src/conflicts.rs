//! Conflict copies: when several owners hold a name, every version is shown.
//!
//! LF settles a collision between owners locally (first owner seen here wins, unless
//! certificates or trusted oracles decide), so two nodes can show different versions
//! under one name. So that no version is ever hidden and every node lists the same
//! names, each owner's live version of a contested name is also listed under a conflict
//! name made from the record alone (as Syncthing does):
//! `<stem>.sync-conflict-<owner>-<yyyymmdd>-<hhmmss><ext>`, where `<owner>` is the last
//! 8 characters of the owner's name (`@...`, as `lf status` prints it) and the time is
//! the version's mtime in UTC. A name is contested when entries of two or more owners
//! (deletions included: a deletion still holds the name for its owner) carry it.

use lf_record::Owner;

use crate::layout::{self, Body, Entry, MAX_NAME};

/// What sits between a conflict copy's stem and its owner and time.
pub const MARK: &[u8] = b".sync-conflict-";
/// Characters of the owner's name in a conflict name.
const OWNER_CHARS: usize = 8;
/// Conflict copies listed per name at most (the first by conflict name): anyone may
/// write a name under as many keys as they like, and a listing stays bounded.
pub const MAX_COPIES: usize = 32;
/// `<owner>-yyyymmdd-hhmmss` after [`MARK`].
const TAIL: usize = OWNER_CHARS + 1 + 8 + 1 + 6;

/// The last [`OWNER_CHARS`] characters of the owner's name: base62 of the key as a
/// big number, whose last digits vary most (the first ones hardly at all).
pub fn owner_short(owner: &Owner) -> String {
    let s = owner.to_string();
    s[s.len().saturating_sub(OWNER_CHARS)..].to_string()
}

/// `yyyymmdd-hhmmss` (UTC) of a time in nanoseconds since the epoch.
fn stamp(nanos: u64) -> String {
    let secs = (nanos / 1_000_000_000) as i64;
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "99991231-235959".to_string(),
    }
}

/// Where a name's extension starts: its last `.`, unless that is its first byte (a
/// dot file) or there is none (the end).
fn ext_start(name: &[u8]) -> usize {
    match name.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => i,
        _ => name.len(),
    }
}

/// The conflict name of `owner`'s version of `name` with modification time `mtime`
/// (ns); `None` when it would be over 255 bytes (such a version is still listed by
/// `lf status`).
pub fn conflict_name(name: &[u8], owner: &Owner, mtime: u64) -> Option<Vec<u8>> {
    let at = ext_start(name);
    let mut out = name[..at].to_vec();
    out.extend_from_slice(MARK);
    out.extend_from_slice(owner_short(owner).as_bytes());
    out.push(b'-');
    out.extend_from_slice(stamp(mtime).as_bytes());
    out.extend_from_slice(&name[at..]);
    (out.len() <= MAX_NAME && layout::valid_name(&out)).then_some(out)
}

/// The names `conflict` may be a conflict copy of (one per [`MARK`] in it followed by
/// a well-formed owner and time); the caller confirms by making the name again.
pub fn originals(conflict: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = find(&conflict[from..], MARK).map(|i| i + from) {
        let tail = i + MARK.len();
        if let Some(t) = conflict.get(tail..tail + TAIL)
            && t[OWNER_CHARS] == b'-'
            && t[OWNER_CHARS + 9] == b'-'
            && t[OWNER_CHARS + 1..OWNER_CHARS + 9]
                .iter()
                .chain(&t[OWNER_CHARS + 10..])
                .all(u8::is_ascii_digit)
        {
            let mut name = conflict[..i].to_vec();
            name.extend_from_slice(&conflict[tail + TAIL..]);
            out.push(name);
        }
        from = i + 1;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One version shown under its conflict name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    /// Its conflict name.
    pub name: Vec<u8>,
    /// The entry (its `name` is the contested name).
    pub entry: Entry,
    /// Who wrote it.
    pub owner: Owner,
}

/// The conflict copies under one ordinal, from its usable entries (each owner's
/// latest, any order): for every name that entries of two or more owners carry, each
/// owner's live version. Sorted by name, at most [`MAX_COPIES`]; where two versions
/// would get the same conflict name, the smaller owner key keeps it, so the result
/// depends only on the entries, never on their order.
pub fn copies(entries: &[(Entry, Owner)]) -> Vec<Copy> {
    let mut out: Vec<Copy> = Vec::new();
    for (i, (e, owner)) in entries.iter().enumerate() {
        if e.body == Body::Tombstone {
            continue;
        }
        let contested = entries[..i]
            .iter()
            .chain(&entries[i + 1..])
            .any(|(o, by)| by != owner && o.name == e.name);
        if !contested {
            continue;
        }
        let Some(name) = conflict_name(&e.name, owner, e.mtime) else {
            continue;
        };
        out.push(Copy {
            name,
            entry: e.clone(),
            owner: *owner,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.owner.cmp(&b.owner)));
    out.dedup_by(|later, first| later.name == first.name);
    out.truncate(MAX_COPIES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileData;

    fn owner(n: u8) -> Owner {
        lf_record::OwnerSecret::from_scalar_bytes(&[n; 48])
            .unwrap()
            .public()
    }

    fn file(name: &[u8], mtime: u64) -> Entry {
        Entry {
            name: name.to_vec(),
            mode: 0o644,
            mtime,
            body: Body::File(FileData::Inline(b"x".to_vec())),
        }
    }

    // 2026-12-07 04:05:06 UTC
    const T: u64 = 1_796_616_306_000_000_000;

    #[test]
    fn names_follow_syncthing_and_parse_back() {
        let o = owner(1);
        let short = owner_short(&o);
        assert_eq!(short.len(), 8);
        assert!(o.to_string().ends_with(&short));
        let n = conflict_name(b"part.txt", &o, T).unwrap();
        assert_eq!(
            String::from_utf8(n.clone()).unwrap(),
            format!("part.sync-conflict-{short}-20261207-040506.txt")
        );
        assert_eq!(originals(&n), vec![b"part.txt".to_vec()]);
        let n = conflict_name(b".bashrc", &o, T).unwrap();
        assert_eq!(
            String::from_utf8(n.clone()).unwrap(),
            format!(".bashrc.sync-conflict-{short}-20261207-040506")
        );
        assert_eq!(originals(&n), vec![b".bashrc".to_vec()]);
        let n = conflict_name(b"a.tar.gz", &o, T).unwrap();
        assert_eq!(originals(&n), vec![b"a.tar.gz".to_vec()]);
        assert!(originals(b"part.sync-conflict-short-20261207-040506.txt").is_empty());
        assert!(originals(b"plain.txt").is_empty());
        assert!(
            conflict_name(&[b'a'; 230], &o, T).is_none(),
            "over 255 bytes"
        );
    }

    #[test]
    fn copies_are_a_function_of_the_entries_only() {
        let (a, b, c) = (owner(1), owner(2), owner(3));
        let gone = Entry {
            body: Body::Tombstone,
            ..file(b"f", T)
        };
        let entries = vec![
            (file(b"f", T), a),
            (file(b"f", T + 1_000_000_000), b),
            (gone, c),
            (file(b"lonely", T), c),
        ];
        let got = copies(&entries);
        let mut reversed = entries.clone();
        reversed.reverse();
        assert_eq!(copies(&reversed), got, "any order");
        let owners: Vec<Owner> = got.iter().map(|c| c.owner).collect();
        assert_eq!(got.len(), 2, "a and b are live, c deleted its f");
        assert!(owners.contains(&a) && owners.contains(&b));
        assert!(got.windows(2).all(|w| w[0].name < w[1].name));
        // One owner alone holds no conflict.
        assert!(copies(&[(file(b"f", T), a)]).is_empty());
        // A name written under many keys lists a bounded number of copies.
        let many: Vec<(Entry, Owner)> = (1..=60).map(|i| (file(b"f", T), owner(i))).collect();
        assert_eq!(copies(&many).len(), MAX_COPIES);
    }
}
