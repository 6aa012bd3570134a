//! The HTTP API's JSON shapes (API version 1), shared by the node and the CLI.
//! Field names follow the seed's PascalCase. Requests reject unknown fields so that a
//! typo is an error, not a silently ignored option.

use serde::{Deserialize, Serialize};

/// API version served in `X-LF-APIVersion`.
pub const API_VERSION: u32 = 1;

/// One selector constraint of a query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QueryRange {
    /// Plain selector name (the node derives the keys; reveals the name to the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ordinals with `Name`: `[]` = 0, `[v]`, or `[first, last]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Vec<u64>>,
    /// Selector keys (hex, 32 bytes): `[k]` or `[first, last]`. Wins over `Name` and
    /// keeps names secret from the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_range: Option<Vec<String>>,
}

/// A query (reference §9.5).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QueryRequest {
    /// One range per selector position; at least one.
    pub ranges: Vec<QueryRange>,
    /// `[start]` or `[start, end]`, Unix seconds, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<Vec<u64>>,
    /// Key to unmask values with on the node (default: the first range's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking_key: Option<String>,
    /// Only these owners (`@...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// `trust` (default), `weight` or `timestamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<String>,
    /// Entries per result set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Also return records with more selectors than ranges.
    #[serde(default)]
    pub open: bool,
    /// Oracles to trust (`@...`); accepted now, used from the trust issue on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oracles: Vec<String>,
    /// Where this page starts: the `X-LF-Next-Cursor` of the previous answer (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Result sets per page (at most, and by default, 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<usize>,
}

/// One candidate in a query result set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryResult {
    /// Record hash (`=...`).
    pub hash: String,
    /// Owner (`@...`).
    pub owner: String,
    /// Record timestamp.
    pub timestamp: u64,
    /// Summed weight of this owner's records in the set.
    pub weight: u64,
    /// Trust in [0, 1].
    pub trust: f64,
    /// Local reputation.
    pub reputation: i64,
    /// Whether the owner was certified at the record's timestamp (certified entries
    /// rank first on networks with root CAs).
    #[serde(default)]
    pub signed: bool,
    /// Selector keys (hex), in order.
    pub selector_keys: Vec<String>,
    /// Unmasked value, when the node could unmask it and it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Unmasked value in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// The record's bytes, base64 (clients unmask locally with names they keep).
    pub record: String,
}

/// A record's metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordJson {
    /// `=...`
    pub hash: String,
    /// `=...` (hash of the selector keys).
    pub id: String,
    /// `@...`
    pub owner: String,
    /// Unix seconds.
    pub timestamp: u64,
    /// `datum`, `genesis`, `commentary`, `certificate`, `crl`.
    #[serde(rename = "Type")]
    pub record_type: String,
    /// Linked hashes.
    pub links: Vec<String>,
    /// Selector keys (hex).
    pub selector_keys: Vec<String>,
    /// Plain value size.
    pub value_size: usize,
    /// Proof-of-work effort (0: none).
    pub work_effort: u32,
    /// Encoded size.
    pub size: usize,
    /// Local reputation, if stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation: Option<i64>,
    /// Weight, if stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
    /// Fully synchronized, if stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronized: Option<bool>,
}

/// `/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// "LF".
    pub software: String,
    /// Crate version.
    pub version: String,
    /// API version.
    #[serde(rename = "APIVersion")]
    pub api_version: u32,
    /// Seconds since start.
    pub uptime: u64,
    /// Node clock, Unix seconds.
    pub server_time: u64,
    /// Network configuration in force.
    pub network: lf_record::NetworkConfig,
    /// Genesis owner.
    pub genesis_owner: String,
    /// Node identity (`@...`).
    pub identity: String,
    /// Records stored.
    pub record_count: u64,
    /// Of which fully synchronized.
    pub synchronized_count: u64,
    /// Hashes linked to but missing.
    pub wanted_count: u64,
    /// Bytes of records.lf.
    pub data_size: u64,
    /// No missing links.
    pub fully_synchronized: bool,
    /// HTTP port.
    #[serde(rename = "HTTPPort")]
    pub http_port: u16,
    /// P2P port (used from the P2P issue on).
    #[serde(rename = "P2PPort")]
    pub p2p_port: u16,
    /// Genesis amendments applied to `Network` (0: the genesis configuration).
    #[serde(default)]
    pub config_amendments: u64,
    /// Every mount of `mounts.yaml` and its state.
    #[serde(default)]
    pub mounts: Vec<MountStatus>,
    /// Why the last edit of `mounts.yaml` was refused (the running mounts were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts_file_error: Option<String>,
    /// LFFS changes written locally and not yet published (records).
    #[serde(default)]
    pub pending_commits: u64,
    /// Age of the oldest unpublished LFFS change, seconds.
    #[serde(default)]
    pub oldest_pending_seconds: u64,
    /// LFFS batches (one per close, fsync, mkdir, rename, ...) not yet published.
    #[serde(default)]
    pub pending_batches: u64,
    /// Value bytes of those records.
    #[serde(default)]
    pub pending_bytes: u64,
    /// Bound of `pending_bytes`: past it, LFFS writes fail with ENOSPC.
    #[serde(default)]
    pub pending_max_bytes: u64,
    /// Bound of `pending_commits`: past it too.
    #[serde(default)]
    pub pending_max_records: u64,
    /// The proof of work the commit queue is paying now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_of_work: Option<PowStatus>,
    /// P2P identity (libp2p peer ID).
    #[serde(default, rename = "P2PIdentity")]
    pub p2p_identity: String,
    /// Connected peers.
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// Selector sets under which records of several owners compete here.
    #[serde(default)]
    pub collisions: CollisionsStatus,
    /// The node's background workers, in start order.
    #[serde(default)]
    pub workers: Vec<WorkerStatus>,
}

/// One background worker in `/status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerStatus {
    /// What it is (`lffs-commit`, `oracle`, `lffs-inval /mnt/lf`, ...).
    pub name: String,
    /// `busy`, `idle`, `stopped` (its work ended) or `failed` (logged when it did).
    pub state: String,
    /// Seconds in that state.
    pub seconds: u64,
}

/// Open collisions in `/status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CollisionsStatus {
    /// How many (counted up to 100,000).
    pub open: u64,
    /// The first of them (at most 100), by record ID.
    #[serde(default)]
    pub listed: Vec<CollisionStatus>,
}

/// One collision in `/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CollisionStatus {
    /// Its first selector key (hex): what `lf get` and `/query` find it by.
    pub selector_key: String,
    /// The file on a mount it is about (mount point and path), if a mount listed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The owner whose record wins here (`@...`).
    pub winner: String,
    /// Why: "certified", "trusted oracles", "first seen here", "weight" or "earlier
    /// timestamp".
    pub reason: String,
    /// Whether every node with the same records and certificates picks the same
    /// winner ("first seen here" is local: another node may pick another).
    pub same_everywhere: bool,
    /// Each owner's latest record, best first.
    pub owners: Vec<CollisionOwner>,
}

/// One owner's side of a collision in `/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CollisionOwner {
    /// Owner (`@...`).
    pub owner: String,
    /// Its latest record (`=...`).
    pub hash: String,
    /// That record's timestamp, Unix seconds.
    pub timestamp: u64,
    /// Local trust in [0, 1].
    pub trust: f64,
    /// Weight of the owner's records in the set.
    pub weight: u64,
    /// Certified at that timestamp.
    pub signed: bool,
}

/// A mount in `/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountStatus {
    /// Mount point.
    pub path: String,
    /// Root selector name.
    pub root: String,
    /// Owner (`@...`), empty if it could not be derived.
    pub owner: String,
    /// "mounted" or "failed".
    pub state: String,
    /// Mounted since, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Why it is not mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why changes through it fail with EACCES now (e.g. its owner has no certificate
    /// on a network that requires one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes_refused: Option<String>,
    /// Mounted read-only.
    pub read_only: bool,
    /// Other users (containers) may use it.
    pub allow_other: bool,
}

/// Proof of work in progress in `/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PowStatus {
    /// Selector name of the record being paid for.
    pub name: String,
    /// Seconds spent so far.
    pub elapsed_seconds: f64,
    /// Equi-X challenges tried so far.
    pub challenges_tried: u64,
    /// Challenges expected on average (0 until the solver first reports).
    pub expected_challenges: f64,
}

impl PowStatus {
    /// Progress as a percentage of the expected work (may pass 100: work is random).
    pub fn percent(&self) -> f64 {
        if self.expected_challenges > 0.0 {
            100.0 * self.challenges_tried as f64 / self.expected_challenges
        } else {
            0.0
        }
    }
}

/// A connected peer in `/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Peer {
    /// libp2p peer ID.
    #[serde(rename = "PeerID")]
    pub peer_id: String,
    /// Address of the connection.
    pub address: String,
    /// Whether the peer dialed this node.
    pub inbound: bool,
    /// Misbehaviour score (0 = none; banned at -100).
    pub score: i32,
}

/// `/connect` (privileged): dial a peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Connect {
    /// The peer's multiaddr.
    pub address: String,
}

/// Answer to `/connect`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Connected {
    /// The peer's libp2p peer ID.
    #[serde(rename = "PeerID")]
    pub peer_id: String,
}

/// `/owner/@...`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OwnerStatus {
    /// `@...`
    pub owner: String,
    /// Always `p384`.
    pub owner_type: String,
    /// Records stored from this owner.
    pub record_count: u64,
    /// Their bytes.
    pub record_bytes: u64,
    /// Links a new record should carry (`=...`), `RecordMinLinks` of them.
    pub new_record_links: Vec<String>,
    /// Node clock, Unix seconds: use it as the new record's timestamp.
    pub server_time: u64,
    /// Network's proof-of-work difficulty factor.
    pub work_difficulty: u32,
    /// Network's largest value.
    pub max_value_size: u32,
    /// Whether records need a certificate.
    pub auth_required: bool,
    /// Whether this owner holds a certificate valid now and not revoked (then its
    /// records need no proof of work).
    pub has_current_certificate: bool,
    /// Whether the owner's certificate was revoked (its new records are refused).
    #[serde(default)]
    pub certificate_revoked: bool,
    /// The owner's certificates this node holds (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<OwnerCertificate>,
}

/// One owner certificate in [`OwnerStatus`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OwnerCertificate {
    /// Serial number, hex.
    pub serial: String,
    /// Subject distinguished name.
    pub subject: String,
    /// Start of validity, Unix seconds.
    pub not_before: u64,
    /// End of validity, Unix seconds.
    pub not_after: u64,
    /// When a CRL revoked it, Unix seconds (absent if not revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

/// `/links`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Links {
    /// `=...`
    pub links: Vec<String>,
    /// Node clock.
    pub server_time: u64,
}

/// A selector in `/makerecord`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MakeSelector {
    /// Plain name.
    pub name: String,
    /// Ordinal (default 0).
    #[serde(default)]
    pub ordinal: u64,
}

/// `/makerecord` (privileged): the node builds, pays and posts a record.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MakeRecord {
    /// Selectors.
    #[serde(default)]
    pub selectors: Vec<MakeSelector>,
    /// Value (UTF-8).
    #[serde(default)]
    pub value: String,
    /// Owner secret key (PEM). Default: the node's identity.
    #[serde(default)]
    pub owner_private: Option<String>,
    /// Passphrase deriving owner and masking key (wins over `OwnerPrivate`).
    #[serde(default)]
    pub passphrase: Option<String>,
    /// Masking key (default: passphrase-derived, else the first selector name).
    #[serde(default)]
    pub masking_key: Option<String>,
    /// Timestamp (default: now).
    #[serde(default)]
    pub timestamp: Option<u64>,
}

/// Error body of every non-2xx answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiError {
    /// HTTP status.
    pub code: u16,
    /// What was wrong.
    pub message: String,
}

/// A selector name and its ordinals, in a watch or history request.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NamedSelector {
    /// Plain selector name (the node derives the keys).
    pub name: String,
    /// Ordinals: `[]` = 0, `[v]`, or `[first, last]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub range: Vec<u64>,
}

/// `/watch`: what to watch and from where.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct WatchRequest {
    /// Selector names with ordinal ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<NamedSelector>,
    /// Absolute paths on this node's mounts: a file (existing or not) or a directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// A directory path watches its whole tree (default) or only its own entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<bool>,
    /// Where to start: the `Cursor` of the last event or answer seen (absent: now;
    /// 0: from the first record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
    /// Oracles to trust when ranking (`@...`): their commentary is an event too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oracles: Vec<String>,
    /// Key to unmask selector values with (default: the selector's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking_key: Option<String>,
    /// Long-poll: seconds to wait for a first event (default 30, at most 300;
    /// fractions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<f64>,
    /// Stream events as newline-delimited JSON until the client disconnects.
    #[serde(default)]
    pub stream: bool,
}

/// One change seen by a watcher.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct WatchEvent {
    /// Position in the node's change log: resume after it.
    pub cursor: u64,
    /// The path, for path watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The selector name, for selector watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The ordinal, for selector watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordinal: Option<u64>,
    /// `created`, `changed` or `deleted`.
    pub kind: String,
    /// The version's record hash (`=...`).
    pub hash: String,
    /// Its owner (`@...`).
    pub owner: String,
    /// Its timestamp.
    pub timestamp: u64,
    /// Content bytes (file size, value length).
    pub size: u64,
    /// Whether this version wins its key now.
    pub winner: bool,
    /// Why the event, when not a new version: `oracle` (commentary changed the winner's
    /// trust).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A long-poll answer of `/watch`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WatchAnswer {
    /// Where to resume (past every record looked at, even if no event came of it).
    pub cursor: u64,
    /// Events, oldest first (none when the wait ran out).
    pub events: Vec<WatchEvent>,
}

/// A stream's heartbeat line (and its first line): where the watcher is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WatchHeartbeat {
    /// Where to resume.
    pub cursor: u64,
}

/// `/history` and `/restore`: which key, and which version.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HistoryRequest {
    /// An absolute path on one of this node's mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Or a selector name and one ordinal (`Range`: `[]` or `[v]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<NamedSelector>,
    /// Oracles to trust when ranking (`@...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oracles: Vec<String>,
    /// Key to unmask selector values with (default: the selector's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking_key: Option<String>,
    /// One version: its hash (`=...`) or a time (Unix seconds or
    /// `YYYY-MM-DDTHH:MM:SSZ`: the newest version not after it). With it, `/history`
    /// answers that version's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// One version in a `/history` answer (field names of `lf -json get`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryVersion {
    /// Record hash (`=...`).
    pub hash: String,
    /// Owner (`@...`).
    pub owner: String,
    /// Timestamp.
    pub timestamp: u64,
    /// Content bytes.
    pub size: u64,
    /// `file`, `directory`, `symlink`, `deleted` (paths) or `value` (selectors).
    pub kind: String,
    /// Whether this version wins now.
    pub winner: bool,
    /// Why it wins or loses.
    pub why: String,
    /// Trust of its owner's entry in [0, 1].
    pub trust: f64,
    /// Weight of its owner's entry.
    pub weight: u64,
    /// Local reputation of its owner's entry.
    pub reputation: i64,
    /// Whether its owner was certified at its time.
    pub signed: bool,
    /// Position in the node's change log.
    pub cursor: u64,
}
