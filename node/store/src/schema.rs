//! The SQLite index (`node.db`): schema and connection settings.
//!
//! The index is derived from `records.lf` and can be rebuilt from it; it runs in WAL
//! mode with `synchronous=NORMAL`, which keeps it consistent across crashes (a commit
//! may be lost on power failure, and recovery re-indexes the records file's tail).
//!
//! The WAL is checkpointed every 65,536 pages (256 MiB) rather than SQLite's default
//! 1,000: once the random indexes (hash, ID, selector keys) are much larger than a
//! batch, every insert dirties its own page in each of them, and a large checkpoint
//! writes a page dirtied by several batches once (1.6x the insert rate at 300k records).

use rusqlite::Connection;

/// Schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS record (
    seq        INTEGER PRIMARY KEY,   -- insertion order; index into the in-memory DAG
    hash       BLOB NOT NULL,         -- unique: checked before every insert
    h8         INTEGER NOT NULL,      -- lf_h8(hash): the hash index holds only this
    id         BLOB NOT NULL,         -- hash of selector keys (what records compete for)
    owner      BLOB NOT NULL,
    ts         INTEGER NOT NULL,
    rtype      INTEGER NOT NULL,
    doff       INTEGER NOT NULL,      -- offset of the bytes in records.lf
    dlen       INTEGER NOT NULL,
    score      INTEGER NOT NULL,
    reputation INTEGER NOT NULL,
    synced     INTEGER NOT NULL,      -- 1 once fully synchronized
    sel_count  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS record_h8 ON record(h8);
-- No index on `id`: records with one ID share their first selector key, found through
-- `selector` (reputation.rs); a record without selectors has its hash as ID.
-- Genesis amendments, certificates, CRLs, commentary: few rows, read at start.
CREATE INDEX IF NOT EXISTS record_special ON record(rtype) WHERE rtype != 0;
-- Records that collided (only a collision gives reputation 0): few rows, the open
-- collisions (`collisions.rs`). Created at open in an index of this version made before
-- it (one scan), so no rebuild.
CREATE INDEX IF NOT EXISTS record_collided ON record(id) WHERE reputation = 0;
-- Per-owner totals (the owner info endpoint), instead of an index on owner.
CREATE TABLE IF NOT EXISTS owner_stat (
    owner   BLOB PRIMARY KEY,
    records INTEGER NOT NULL,
    bytes   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS selector (
    idx INTEGER NOT NULL,
    key BLOB NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (idx, key, seq)
) WITHOUT ROWID;
-- Links of every record, by target hash (present or not).
CREATE TABLE IF NOT EXISTS link (
    seq    INTEGER NOT NULL,
    target BLOB NOT NULL,
    PRIMARY KEY (seq, target)
) WITHOUT ROWID;
-- A record waiting for `target` to be stored and fully synchronized.
CREATE TABLE IF NOT EXISTS pending (
    target BLOB NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (target, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_seq ON pending(seq);
-- Oracle commentary: `by_owner` says `assertion` about the record hash `subject`.
CREATE TABLE IF NOT EXISTS comment (
    subject   BLOB NOT NULL,
    by_owner  BLOB NOT NULL,
    assertion INTEGER NOT NULL,
    by_seq    INTEGER NOT NULL,
    PRIMARY KEY (subject, by_owner, assertion, by_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    k TEXT PRIMARY KEY,
    v INTEGER NOT NULL
);
";

/// `lf_h8(blob)`: the first 8 bytes of a hash as an integer that sorts like the bytes
/// (big-endian, sign bit flipped). The hash and ID indexes hold this instead of the
/// 32-byte value: entries 3-4x smaller keep the random-insert working set in the page
/// cache for longer (the store's insert rate at 1M records depends on it). Lookups
/// compare the full value after the index narrows to (almost always) one row.
pub fn h8(b: &[u8]) -> i64 {
    let mut x = [0u8; 8];
    let n = b.len().min(8);
    x[..n].copy_from_slice(&b[..n]);
    i64::from_be_bytes(x) ^ i64::MIN
}

fn register_functions(db: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    db.create_scalar_function(
        "lf_h8",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let b = ctx.get_raw(0);
            Ok(match b {
                rusqlite::types::ValueRef::Blob(b) => h8(b),
                _ => 0,
            })
        },
    )
}

/// Opens the index, applying pragmas and the schema. An index of an older schema
/// version is deleted first: it is derived data, rebuilt from `records.lf` by the
/// store's recovery (which re-indexes everything past `indexed_end`, here 0).
pub fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    if path.exists() {
        let old = Connection::open(path)?;
        let v: i64 = old.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        drop(old);
        if v != 0 && v != SCHEMA_VERSION {
            tracing::warn!(
                from = v,
                to = SCHEMA_VERSION,
                "the index (node.db) has another schema version; rebuilding it from records.lf"
            );
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let db = Connection::open(path)?;
    // The store runs about 30 distinct cached statements, more than rusqlite's default
    // cache of 16: with that, every batch re-prepared (parsed and planned) its insert
    // statements under the store lock.
    db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    register_functions(&db)?;
    db.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous=NORMAL;
         PRAGMA foreign_keys=OFF;
         PRAGMA cache_size=-65536;
         PRAGMA temp_store=MEMORY;
         PRAGMA wal_autocheckpoint=65536;
         PRAGMA journal_size_limit=134217728;",
    )?;
    db.execute_batch(SCHEMA)?;
    let v: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if v == 0 {
        db.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))?;
    }
    Ok(db)
}

/// Prepared statements kept per connection (see [`open`]).
const STATEMENT_CACHE: usize = 64;

/// Reads a meta integer (0 if absent).
pub fn meta(db: &Connection, k: &str) -> rusqlite::Result<i64> {
    use rusqlite::OptionalExtension;
    Ok(db
        .query_row("SELECT v FROM meta WHERE k=?1", [k], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Writes a meta integer.
pub fn set_meta(db: &Connection, k: &str, v: i64) -> rusqlite::Result<()> {
    db.execute(
        "INSERT INTO meta(k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v=?2",
        (k, v),
    )?;
    Ok(())
}
