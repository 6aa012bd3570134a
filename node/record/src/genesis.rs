//! The network configuration ("genesis parameters") and genesis records.
//!
//! A network is defined by its genesis records: the first carries the configuration
//! as JSON (this module's serialized format, version 1), unmasked-readable (no
//! masking key); the following `record_min_links - 1` records carry no value and link
//! to all earlier ones, so that the first user records have enough links. The owner of
//! the first record is the network's genesis owner: only it may publish genesis
//! records, and later ones amend the fields listed in `amendable_fields`.

use serde::{Deserialize, Serialize};

use crate::{Limits, OwnerSecret, Record, RecordBuilder, RecordError, RecordHash, RecordType};

/// The 32-byte network ID: random at creation; also the P2P pre-shared key seed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct NetworkId(pub [u8; 32]);

impl Serialize for NetworkId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex_encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for NetworkId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex_decode_32(&s)
            .map(NetworkId)
            .ok_or_else(|| serde::de::Error::custom("network id must be 64 hex digits"))
    }
}

impl std::fmt::Display for NetworkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex_encode(&self.0))
    }
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode_32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Fields whose names may appear in `amendable_fields`.
pub const AMENDABLE: &[&str] = &[
    "name",
    "contact",
    "comment",
    "auth_certificates",
    "auth_required",
    "record_min_links",
    "record_max_value_size",
    "record_max_time_drift",
    "work_difficulty",
    "bootstrap_peers",
    "mdns",
];

/// A network's configuration, as carried (JSON) in its genesis records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Version of this JSON shape; 1.
    pub format: u32,
    /// The network ID.
    pub id: NetworkId,
    /// Human-readable name.
    pub name: String,
    /// Who runs it (URL or e-mail).
    #[serde(default)]
    pub contact: String,
    /// Free text.
    #[serde(default)]
    pub comment: String,
    /// Fields the genesis owner may change later, from [`AMENDABLE`].
    #[serde(default)]
    pub amendable_fields: Vec<String>,
    /// Root CA certificates, base64 (standard alphabet, padded) of DER: self-signed
    /// P-384 CAs that certify owners (see `cert.rs`).
    #[serde(default)]
    pub auth_certificates: Vec<String>,
    /// Whether records need a certificate (proof of work alone is not enough); needs at
    /// least one root in `auth_certificates`.
    #[serde(default)]
    pub auth_required: bool,
    /// Fewest links a new record must carry.
    pub record_min_links: u32,
    /// Largest plain value, bytes.
    pub record_max_value_size: u32,
    /// Largest tolerated clock drift into the future, seconds.
    pub record_max_time_drift: u64,
    /// Proof-of-work difficulty factor (0: no proof of work needed).
    pub work_difficulty: u32,
    /// Peers to contact first (libp2p multiaddrs).
    #[serde(default)]
    pub bootstrap_peers: Vec<String>,
    /// Whether nodes look for each other on their LAN with mDNS (they do by default on
    /// every network but the embedded default one; `false` turns it off for nodes
    /// not told otherwise by their operator). Written only when `false`, so a
    /// configuration that leaves it alone reads the same to nodes that predate it.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub mdns: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// Errors about network configurations and genesis files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    /// A parameter is out of range.
    #[error("invalid network configuration: {0}")]
    Invalid(String),
    /// The configuration JSON does not parse.
    #[error("network configuration is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A record in the genesis file is malformed.
    #[error("genesis record {index}: {source}")]
    Record {
        /// Position in the file.
        index: usize,
        /// Why.
        source: RecordError,
    },
    /// The genesis file holds no records, or the first carries no configuration.
    #[error("genesis file holds no configuration record")]
    Empty,
}

impl NetworkConfig {
    /// Checks ranges: at least 1 link, value size ≤ 60,000, amendable names known.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |m: String| Err(GenesisError::Invalid(m));
        if self.format != 1 {
            return bad(format!("unsupported format {}", self.format));
        }
        if self.name.trim().is_empty() {
            return bad("name must not be empty".into());
        }
        if !(1..=crate::MAX_LINKS as u32).contains(&self.record_min_links) {
            return bad(format!(
                "record_min_links {} not in 1..=15",
                self.record_min_links
            ));
        }
        if self.record_max_value_size > 60_000 {
            return bad(format!(
                "record_max_value_size {} exceeds 60000",
                self.record_max_value_size
            ));
        }
        let roots = self.root_certificates()?;
        crate::CertRegistry::new(&roots).map_err(|e| GenesisError::Invalid(e.to_string()))?;
        if self.auth_required && roots.is_empty() {
            return bad("auth_required needs at least one root in auth_certificates".into());
        }
        if let Some(f) = self
            .amendable_fields
            .iter()
            .find(|f| !AMENDABLE.contains(&f.as_str()))
        {
            return bad(format!(
                "field {f:?} cannot be amendable (allowed: {AMENDABLE:?})"
            ));
        }
        Ok(())
    }

    /// The configuration after an amendment that proposes `next` (the whole new
    /// configuration, as an amendment record carries it): every field that differs
    /// must be listed in this configuration's `amendable_fields`; the format, the
    /// network ID and the list of amendable fields itself never change.
    pub fn amend(&self, next: &NetworkConfig) -> Result<NetworkConfig, GenesisError> {
        let bad = |m: String| Err(GenesisError::Invalid(m));
        if next.format != self.format || next.id != self.id {
            return bad("an amendment cannot change the format or the network ID".into());
        }
        if next.amendable_fields != self.amendable_fields {
            return bad("an amendment cannot change amendable_fields".into());
        }
        let (old, new) = (
            serde_json::to_value(self).map_err(GenesisError::Json)?,
            serde_json::to_value(next).map_err(GenesisError::Json)?,
        );
        let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
            return bad("configuration is not a JSON object".into());
        };
        let changed: Vec<&String> = new.keys().filter(|k| old.get(*k) != new.get(*k)).collect();
        if let Some(f) = changed.iter().find(|f| !self.amendable_fields.contains(f)) {
            return bad(format!(
                "field {f:?} is not amendable on this network (amendable: {:?})",
                self.amendable_fields
            ));
        }
        next.validate()?;
        Ok(next.clone())
    }

    /// The DER of each root certificate in `auth_certificates`.
    pub fn root_certificates(&self) -> Result<Vec<Vec<u8>>, GenesisError> {
        use base64::Engine;
        self.auth_certificates
            .iter()
            .enumerate()
            .map(|(i, b)| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|e| GenesisError::Invalid(format!("auth_certificates[{i}]: {e}")))
            })
            .collect()
    }

    /// The record limits this configuration imposes.
    pub fn limits(&self) -> Limits {
        Limits {
            max_value_size: self.record_max_value_size as usize,
            work_difficulty: self.work_difficulty,
        }
    }

    /// Compact JSON, as stored in a genesis record.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("network config serializes")
    }

    /// Parses the JSON of a genesis record and validates it.
    pub fn from_json(json: &[u8]) -> Result<Self, GenesisError> {
        let c: NetworkConfig = serde_json::from_slice(json)?;
        c.validate()?;
        Ok(c)
    }

    /// Reads the configuration out of a genesis record.
    pub fn from_record(record: &Record) -> Result<Self, GenesisError> {
        if record.record_type() != RecordType::Genesis {
            return Err(GenesisError::Invalid("not a genesis record".into()));
        }
        let json = record.value(None).map_err(|e| GenesisError::Record {
            index: 0,
            source: RecordError::Mask(e),
        })?;
        Self::from_json(&json)
    }
}

/// Creates the genesis records of a new network. `solve` pays the proof of work for a
/// (challenge, effort) pair; it is a parameter so this crate stays free of threads.
pub fn create_genesis_records(
    config: &NetworkConfig,
    owner: &OwnerSecret,
    timestamp: u64,
    opts: &lf_pow::SolveOptions,
    cancel: &std::sync::atomic::AtomicBool,
    progress: &(dyn Fn(lf_pow::Progress) + Sync),
) -> Result<Vec<Record>, GenesisError> {
    config.validate()?;
    let mut records: Vec<Record> = Vec::new();
    for i in 0..config.record_min_links as u64 {
        let mut b = RecordBuilder::new(RecordType::Genesis, timestamp + i).links(
            records
                .iter()
                .map(Record::hash)
                .collect::<Vec<RecordHash>>(),
        );
        if i == 0 {
            b = b.value(config.to_json());
        }
        let err = |source| GenesisError::Record {
            index: i as usize,
            source,
        };
        let u = b.build(&owner.public()).map_err(err)?;
        let effort = u.required_effort(config.work_difficulty);
        let u = u.sign(effort, owner).map_err(err)?;
        records.push(u.pay(opts, cancel, progress).map_err(err)?);
    }
    Ok(records)
}

/// Parses a genesis file (records back to back) and the configuration in its first
/// record. Every record is verified against that configuration's limits.
pub fn parse_records(bytes: &[u8]) -> Result<(NetworkConfig, Vec<Record>), GenesisError> {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (r, used) = Record::parse_prefix(rest).map_err(|source| GenesisError::Record {
            index: records.len(),
            source,
        })?;
        records.push(r);
        rest = &rest[used..];
    }
    let first = records.first().ok_or(GenesisError::Empty)?;
    let config = NetworkConfig::from_record(first)?;
    for (index, r) in records.iter().enumerate() {
        if r.owner() != first.owner() || r.record_type() != RecordType::Genesis {
            return Err(GenesisError::Record {
                index,
                source: RecordError::Invalid("not a genesis record of the genesis owner"),
            });
        }
        r.verify(&config.limits())
            .map_err(|source| GenesisError::Record { index, source })?;
    }
    Ok((config, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn config() -> NetworkConfig {
        NetworkConfig {
            format: 1,
            id: NetworkId([1; 32]),
            name: "Test".into(),
            contact: "test@example.com".into(),
            comment: String::new(),
            amendable_fields: vec!["name".into()],
            auth_certificates: vec![],
            auth_required: false,
            record_min_links: 3,
            record_max_value_size: 1024,
            record_max_time_drift: 60,
            work_difficulty: 0,
            bootstrap_peers: vec![],
            mdns: true,
        }
    }

    /// `mdns` is absent from the JSON unless turned off, and absent means on: a
    /// configuration that leaves it alone reads the same to older nodes.
    #[test]
    fn mdns_defaults_on_and_is_written_only_when_off() {
        let on = config();
        let json = String::from_utf8(on.to_json()).unwrap();
        assert!(!json.contains("mdns"), "{json}");
        assert!(NetworkConfig::from_json(json.as_bytes()).unwrap().mdns);
        let off = NetworkConfig {
            mdns: false,
            ..config()
        };
        let json = off.to_json();
        assert!(String::from_utf8_lossy(&json).contains("\"mdns\":false"));
        assert_eq!(NetworkConfig::from_json(&json).unwrap(), off);
    }

    #[test]
    fn genesis_round_trip() {
        let owner = OwnerSecret::from_scalar_bytes(&[9; 48]).unwrap();
        // Difficulty 0: nothing to pay, so the solver is never reached.
        let opts = lf_pow::SolveOptions {
            threads: 1,
            start_nonce: 0,
        };
        let never = std::sync::atomic::AtomicBool::new(true);
        let recs =
            create_genesis_records(&config(), &owner, 1000, &opts, &never, &|_| unreachable!())
                .unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2].links().len(), 2);
        let file: Vec<u8> = recs.iter().flat_map(|r| r.to_bytes().to_vec()).collect();
        let (c, parsed) = parse_records(&file).unwrap();
        assert_eq!(c, config());
        assert_eq!(parsed, recs);
    }

    #[test]
    fn amendments_change_only_amendable_fields() {
        let mut base = config();
        base.amendable_fields = vec!["name".into(), "work_difficulty".into()];
        let mut next = base.clone();
        next.name = "Renamed".into();
        next.work_difficulty = 99;
        assert_eq!(base.amend(&next).unwrap(), next);
        // Unchanged is fine too (an amendment that restates the config).
        assert_eq!(base.amend(&base).unwrap(), base);
        let mut wrong = base.clone();
        wrong.record_max_value_size = 10;
        let e = base.amend(&wrong).unwrap_err().to_string();
        assert!(e.contains("record_max_value_size"), "{e}");
        let mut wrong = base.clone();
        wrong.amendable_fields.push("record_min_links".into());
        assert!(base.amend(&wrong).is_err());
        let mut wrong = base.clone();
        wrong.id = NetworkId([2; 32]);
        assert!(base.amend(&wrong).is_err());
        // Still validated: an amendable field set out of range is refused.
        let mut base2 = base.clone();
        base2.amendable_fields = vec!["record_min_links".into()];
        let mut wrong = base2.clone();
        wrong.record_min_links = 0;
        assert!(base2.amend(&wrong).is_err());
    }

    #[test]
    fn bad_configs_are_named() {
        let mut c = config();
        c.amendable_fields = vec!["bogus".into()];
        assert!(c.validate().unwrap_err().to_string().contains("bogus"));
        let mut c = config();
        c.record_min_links = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("record_min_links")
        );
        assert!(NetworkConfig::from_json(b"{\"format\":1,\"extra\":2}").is_err());
        assert!(matches!(parse_records(b""), Err(GenesisError::Empty)));
        assert!(matches!(
            parse_records(b"\x01"),
            Err(GenesisError::Record { index: 0, .. })
        ));
    }
}
