//! The node: its store, network configuration over time, certificates, identity, limbo
//! and the acceptance rules for new records (reference §9.2). The lowest layer of the
//! daemon that holds state: it imports none of the layers that use it (LFFS, P2P, HTTP,
//! boot); what it tells them (records to announce) goes through a hook given at
//! construction (`NodeParts::announce`).
//! `lf node-start`'s lifecycle is in `daemon.rs`.

pub mod amendments;
pub mod collisions;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::bail;
use lf_record::{
    CertError, CertStatus, NetworkConfig, Owner, OwnerSecret, Record, RecordBuilder, RecordError,
    RecordHash, RecordType, lf_pow,
};
use lf_store::{PutOutcome, Store};

mod write;
pub use write::Origin;

/// Why a record was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Malformed or invalid record.
    #[error("{0}")]
    Record(#[from] RecordError),
    /// Only the genesis owner may publish genesis records.
    #[error("only the genesis owner may publish genesis records")]
    GenesisProhibited,
    /// A genesis record that is not a valid amendment of the configuration.
    #[error("invalid genesis amendment: {0}")]
    BadAmendment(String),
    /// Fewer links than the network requires.
    #[error("record has {got} links, the network requires at least {need}")]
    TooFewLinks {
        /// Links carried.
        got: usize,
        /// Network minimum.
        need: usize,
    },
    /// The network requires a certificate and the owner has none valid at the record's
    /// time (or this node has not received it yet).
    #[error(
        "this network requires a certificate: owner {owner} has no valid certificate at {timestamp} \
         (make a request with `lf owner csr`, have it signed by the network's CA and publish it \
         with `lf owner publish-cert`)"
    )]
    NotCertified {
        /// The record's owner.
        owner: Owner,
        /// The record's timestamp.
        timestamp: u64,
    },
    /// Like [`AcceptError::NotCertified`], but limbo is full: the record was not
    /// verified (a full limbo would drop it anyway, and a flood of such records must
    /// not cost a signature check each) and is not held; a peer offers it again later.
    #[error(
        "this network requires a certificate and owner {owner} has none here (records of \
         uncertified owners from peers wait in limbo for one, and limbo is full)"
    )]
    LimboFull {
        /// The record's owner.
        owner: Owner,
    },
    /// The owner's certificate was revoked (CRL) at or before the record's time.
    #[error("owner {owner}'s certificate was revoked before {timestamp}")]
    Revoked {
        /// The record's owner.
        owner: Owner,
        /// The record's timestamp.
        timestamp: u64,
    },
    /// A certificate or CRL record whose contents do not verify against the network's
    /// root CAs.
    #[error("{kind} record: {source}")]
    BadCertificate {
        /// "certificate" or "CRL".
        kind: &'static str,
        /// Why.
        source: CertError,
    },
    /// Store failure.
    #[error("store: {0}")]
    Store(#[from] lf_store::StoreError),
}

/// Whether [`Node::check_as`] verifies claims and signatures.
#[derive(Clone, Copy)]
enum Signatures {
    /// Everything from outside this process.
    Verify,
    /// Records this process has just built and signed.
    KnownGood,
}

/// A running node's shared state.
pub struct Node {
    /// The store.
    store: Arc<Store>,
    /// The network configuration over time (genesis and amendments): see
    /// [`Node::config`] and [`Node::config_at`].
    config_history: std::sync::RwLock<crate::node::amendments::ConfigHistory>,
    /// The configuration of the genesis file (what amendments are checked against).
    genesis_config: NetworkConfig,
    /// The genesis file's own records (not amendments).
    genesis_hashes: std::collections::HashSet<lf_record::RecordHash>,
    /// Owner of the genesis records.
    genesis_owner: Owner,
    /// Node identity.
    identity: OwnerSecret,
    /// Bearer token for privileged API calls.
    token: String,
    /// Start time.
    started: Instant,
    /// HTTP port.
    http_port: u16,
    /// P2P port.
    pub p2p_port: u16,
    /// Set on shutdown: cancels proof of work in progress.
    stopping: AtomicBool,
    /// One node-side proof of work at a time (it uses every core).
    pow_slot: tokio::sync::Semaphore,
    /// Bumped whenever a record is added: LFFS caches compare it to know they are stale.
    generation: std::sync::atomic::AtomicU64,
    /// Bumped when records arrive that LFFS did not write itself (peers, `lf set`,
    /// the oracle): mounts then check what the kernel may have cached.
    external_generation: std::sync::atomic::AtomicU64,
    /// Tells peers about records written here (given at construction: boot wires it
    /// to P2P once P2P runs).
    announce: Announce,
    /// Root CAs and the certificates and CRLs received so far.
    certs: crate::common::certs::Certs,
    /// Records from peers refused only because their owner has no certificate here
    /// yet: retried when a certificate for that owner is stored (bounds and expiry in
    /// [`crate::common::certs::Limbo`]).
    limbo: crate::common::certs::Limbo,
    /// Bumped after every put that added records, whatever their origin (the write
    /// path, `node/write.rs`): watchers wait on it, then read the store's insertion
    /// order from where they were.
    stored: tokio::sync::watch::Sender<u64>,
}

/// Announces the hashes of records written on this node to peers: the hook through
/// which the layer above (P2P, `replication.rs`) hears of local writes.
pub type Announce = Box<dyn Fn(Vec<RecordHash>) + Send + Sync>;

/// Unix seconds now.
pub fn now() -> u64 {
    crate::common::clock::now()
}

/// What a node is made of beside its counters and hooks (see [`Node::new`]).
pub struct NodeParts {
    /// The opened store, genesis records in it.
    pub store: Store,
    /// The genesis configuration.
    pub genesis_config: NetworkConfig,
    /// The configuration over time (genesis and amendments).
    pub history: crate::node::amendments::ConfigHistory,
    /// The network's genesis records.
    pub genesis: Vec<Record>,
    /// The node's identity.
    pub identity: OwnerSecret,
    /// The API token.
    pub token: String,
    /// HTTP and P2P ports.
    pub ports: (u16, u16),
    /// The certificate registry.
    pub certs: crate::common::certs::Certs,
    /// Announces records written on this node to peers (`node/write.rs` calls it).
    pub announce: Announce,
}

impl Node {
    // State read by the layers over the node. The fields are private so that every
    // change goes through the node's own methods (records: `store_verified`).

    /// The record store, for reads. Records enter it only through
    /// [`Node::store_verified`] (`node/write.rs`).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Owner of the genesis records.
    pub fn genesis_owner(&self) -> &Owner {
        &self.genesis_owner
    }

    /// The node's identity (its owner key: signs LFFS commits and oracle commentary).
    pub fn identity(&self) -> &OwnerSecret {
        &self.identity
    }

    /// The bearer token of privileged API calls.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// When the node started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The HTTP API's port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The P2P port.
    pub fn p2p_port(&self) -> u16 {
        self.p2p_port
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Begins shutdown: proof of work in progress is cancelled, workers end their loops.
    pub fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The cancellation flag that proof of work polls (set by [`Node::begin_stopping`]).
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.stopping
    }

    /// One node-side proof of work at a time (it uses every core).
    pub fn pow_slot(&self) -> &tokio::sync::Semaphore {
        &self.pow_slot
    }

    /// Bumped whenever a record is added or LFFS's overlay changes: LFFS caches compare
    /// it to know they are stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Marks LFFS caches stale (the commit queue's overlay changed).
    pub fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Bumped when records arrive that LFFS did not write itself.
    pub fn external_generation(&self) -> u64 {
        self.external_generation.load(Ordering::Relaxed)
    }

    /// Root CAs and the certificates and CRLs received so far.
    pub fn certs(&self) -> &crate::common::certs::Certs {
        &self.certs
    }

    /// Records from peers waiting for their owner's certificate.
    pub fn limbo(&self) -> &crate::common::certs::Limbo {
        &self.limbo
    }

    /// A receiver of the count bumped after every put that added records (watchers).
    pub fn subscribe_stored(&self) -> tokio::sync::watch::Receiver<u64> {
        self.stored.subscribe()
    }

    /// A node from its parts: counters at their start, nothing announced yet, an empty
    /// limbo, one proof-of-work slot.
    pub fn new(p: NodeParts) -> Node {
        Node {
            store: Arc::new(p.store),
            config_history: std::sync::RwLock::new(p.history),
            genesis_config: p.genesis_config,
            genesis_hashes: p.genesis.iter().map(|r| r.hash()).collect(),
            genesis_owner: p.genesis[0].owner(),
            identity: p.identity,
            token: p.token,
            started: Instant::now(),
            http_port: p.ports.0,
            p2p_port: p.ports.1,
            stopping: AtomicBool::new(false),
            pow_slot: tokio::sync::Semaphore::new(1),
            generation: std::sync::atomic::AtomicU64::new(1),
            external_generation: std::sync::atomic::AtomicU64::new(1),
            announce: p.announce,
            certs: p.certs,
            limbo: crate::common::certs::Limbo::default(),
            stored: tokio::sync::watch::Sender::new(0),
        }
    }

    fn announce_local(&self, hashes: Vec<RecordHash>) {
        (self.announce)(hashes);
    }

    /// Checks a record against the network's rules and stores it (blocking: verifies a
    /// P-384 signature; call from a blocking thread). For records of this node's
    /// clients (`/post`, `/makerecord`) and its oracle.
    pub fn accept(&self, r: &Record) -> Result<PutOutcome, AcceptError> {
        self.accept_from(r, Origin::Client)
    }

    fn accept_from(&self, r: &Record, origin: Origin) -> Result<PutOutcome, AcceptError> {
        if self.store.contains(&r.hash())? {
            return Ok(PutOutcome::Duplicate);
        }
        if let Err(e) = self.check(r) {
            crate::common::metrics::error("record_rejected");
            return Err(e);
        }
        Ok(self.store_verified(std::slice::from_ref(r), origin)?[0])
    }

    /// Why `owner` may not write now (no certificate on a network that requires one,
    /// or a revoked one), if it may not.
    pub fn write_refused(&self, owner: &Owner) -> Option<String> {
        match self.certs.status(owner, now()) {
            CertStatus::Revoked => Some(format!("owner {owner} has a revoked certificate")),
            CertStatus::Uncertified if self.config().auth_required => Some(format!(
                "this network requires a certificate and owner {owner} has none \
                 (lf owner csr -key ..., then have the CA sign it and publish it)"
            )),
            _ => None,
        }
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<NetworkConfig> {
        self.history().current()
    }

    /// The configuration that judges a record timestamped `ts`.
    pub fn config_at(&self, ts: u64) -> Arc<NetworkConfig> {
        self.history().at(ts)
    }

    /// Genesis amendments applied.
    pub fn amendment_count(&self) -> usize {
        self.history().amendments()
    }

    fn history(&self) -> std::sync::RwLockReadGuard<'_, crate::node::amendments::ConfigHistory> {
        self.config_history
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// After `stored` records were stored: if any is a genesis amendment, rebuilds the
    /// configuration from every amendment held (a handful of records), and the
    /// certificate registry if the root CAs changed.
    pub fn apply_amendments_in(&self, stored: &[Record]) {
        if !stored.iter().any(|r| {
            r.record_type() == RecordType::Genesis && !self.genesis_hashes.contains(&r.hash())
        }) {
            return;
        }
        if let Err(e) = self.apply_amendments() {
            crate::common::metrics::error("genesis_amendment");
            tracing::error!("cannot apply genesis amendments: {e:#}");
        }
    }

    /// Rebuilds the configuration history from the stored genesis records.
    pub fn apply_amendments(&self) -> anyhow::Result<()> {
        let records = self.store.records_of_type(RecordType::Genesis)?;
        let h = crate::node::amendments::ConfigHistory::build(
            &self.genesis_config,
            &self.genesis_hashes,
            &records,
        );
        let (before, after) = (self.config(), h.current());
        let count = h.amendments();
        *self
            .config_history
            .write()
            .unwrap_or_else(|p| p.into_inner()) = h;
        if before != after {
            tracing::info!(
                amendments = count,
                config = %String::from_utf8_lossy(&after.to_json()),
                "network configuration amended"
            );
            if before.auth_certificates != after.auth_certificates {
                let fresh = crate::common::certs::Certs::load(&after, &self.store)?;
                *self.certs.write() = fresh.read().clone();
            }
        }
        Ok(())
    }

    /// Keeps a peer's record refused for lack of a certificate until one arrives.
    pub fn hold_in_limbo(&self, r: Record) {
        let (owner, hash) = (r.owner(), r.hash());
        if self.limbo.hold(r, Instant::now()) {
            tracing::debug!(%owner, %hash, "record held until its owner's certificate arrives");
        }
    }

    /// After `stored` records were stored: accepts the records in limbo whose owners
    /// the certificates among them certify (blocking).
    pub fn release_limbo(&self, stored: &[Record]) {
        let owners: Vec<Owner> = stored
            .iter()
            .filter(|r| r.record_type() == RecordType::Certificate)
            .filter_map(|r| lf_record::Certificate::from_der(&r.value(None).ok()?).ok())
            .map(|c| c.owner())
            .collect();
        if owners.is_empty() {
            return;
        }
        let now = Instant::now();
        let waiting: Vec<Record> = owners
            .iter()
            .flat_map(|o| self.limbo.take_owner(o, now))
            .collect();
        let (mut stored, mut refused) = (0, 0);
        for r in &waiting {
            match self.accept_from(r, Origin::Limbo) {
                Ok(_) => stored += 1,
                Err(e) => {
                    refused += 1;
                    tracing::debug!(hash = %r.hash(), "record from limbo refused: {e}");
                }
            }
        }
        if !waiting.is_empty() {
            tracing::info!(
                stored,
                refused,
                "records released from limbo by a certificate"
            );
        }
    }

    /// Every rule that makes a record acceptable here, without storing it (blocking).
    pub fn check(&self, r: &Record) -> Result<(), AcceptError> {
        self.check_with(r, &mut lf_record::OwnerKeys::default())
    }

    /// [`Node::check`] of records this process has just built and signed, on every
    /// core; the first failure in order. Their claims and signatures are checked on the
    /// first record only (a signing bug shows on every record; checking them all would
    /// cost more than signing did, most of publishing a big file); every network rule
    /// is checked on all.
    fn check_many(&self, records: &[Record]) -> Result<(), AcceptError> {
        let Some((first, rest)) = records.split_first() else {
            return Ok(());
        };
        self.check_with(first, &mut lf_record::OwnerKeys::default())?;
        let signed_here = |r: &Record, keys: &mut lf_record::OwnerKeys| {
            self.check_as(r, keys, Signatures::KnownGood)
        };
        let threads = crate::common::cores::cores();
        let records = rest;
        if records.len() < 8 || threads < 2 {
            let mut keys = lf_record::OwnerKeys::default();
            return records.iter().try_for_each(|r| signed_here(r, &mut keys));
        }
        let per = records.len().div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = records
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        let mut keys = lf_record::OwnerKeys::default();
                        part.iter().try_for_each(|r| signed_here(r, &mut keys))
                    })
                })
                .collect();
            // A panic goes on as it would have on this thread.
            parts
                .into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
    }

    /// [`Node::check`] keeping decompressed owner keys in `keys` (one per verifying
    /// thread of a batch).
    pub fn check_with(
        &self,
        r: &Record,
        keys: &mut lf_record::OwnerKeys,
    ) -> Result<(), AcceptError> {
        self.check_as(r, keys, Signatures::Verify)
    }

    fn check_as(
        &self,
        r: &Record,
        keys: &mut lf_record::OwnerKeys,
        signatures: Signatures,
    ) -> Result<(), AcceptError> {
        let verify = |limits: &lf_record::Limits, keys: &mut lf_record::OwnerKeys| match signatures
        {
            Signatures::Verify => r.verify_with(limits, keys),
            Signatures::KnownGood => r.verify_limits(limits),
        };
        if r.record_type() == RecordType::Genesis && r.owner() != self.genesis_owner {
            return Err(AcceptError::GenesisProhibited);
        }
        if r.record_type() == RecordType::Genesis && !self.genesis_hashes.contains(&r.hash()) {
            crate::node::amendments::check(&self.genesis_config, r)
                .map_err(AcceptError::BadAmendment)?;
        }
        // Judged by the configuration in force at the record's time (amendments).
        let config = self.config_at(r.timestamp());
        let need = config.record_min_links as usize;
        if r.record_type() != RecordType::Genesis && r.links().len() < need {
            return Err(AcceptError::TooFewLinks {
                got: r.links().len(),
                need,
            });
        }
        lf_record::check_time_drift(r, now(), self.config().record_max_time_drift)?;
        let mut limits = config.limits();
        match self.standing(r)? {
            // Reference §7.5: a certified owner's records need no proof of work.
            CertStatus::Certified => limits.work_difficulty = 0,
            CertStatus::Revoked => {
                return Err(AcceptError::Revoked {
                    owner: r.owner(),
                    timestamp: r.timestamp(),
                });
            }
            // The genesis owner amends the configuration with proof of work alone.
            CertStatus::Uncertified
                if config.auth_required && r.record_type() != RecordType::Genesis =>
            {
                // Verified before it may wait in limbo (work, if carried, claims and
                // signature), so that a forgery is the sender's fault, not a slot of
                // limbo: issue 17. Unless limbo has no room for it: then it is not
                // verified at all, so that a flood of validly signed records of
                // uncertified owners costs a lookup each once limbo is full.
                if !self.limbo.has_room(r.to_bytes().len(), Instant::now()) {
                    return Err(AcceptError::LimboFull { owner: r.owner() });
                }
                limits.work_difficulty = 0;
                verify(&limits, keys)?;
                return Err(AcceptError::NotCertified {
                    owner: r.owner(),
                    timestamp: r.timestamp(),
                });
            }
            CertStatus::Uncertified => {}
        }
        verify(&limits, keys)?;
        // A verified certificate or CRL counts from now on, even before the record is
        // stored: its contents are signed by a root whatever happens to the record.
        let value = || r.value(None).unwrap_or_default();
        match r.record_type() {
            RecordType::Certificate => {
                let added = self.certs.write().add_certificate(&value());
                if let Ok(owner) = added {
                    tracing::info!(%owner, hash = %r.hash(), "owner certificate added");
                }
            }
            RecordType::Crl => {
                if let Ok(n) = self.certs.write().add_crl(&value()) {
                    tracing::info!(revoked = n, hash = %r.hash(), "CRL added");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The record owner's certification at the record's time. A certificate or CRL
    /// record must hold a certificate or CRL from one of the network's roots; a
    /// certificate record certifies its own publisher when it is that owner's.
    pub fn standing(&self, r: &Record) -> Result<CertStatus, AcceptError> {
        let bad = |kind| move |source| AcceptError::BadCertificate { kind, source };
        match r.record_type() {
            RecordType::Certificate => {
                let der = r.value(None).map_err(RecordError::Mask)?;
                let mut reg = self.certs.read().clone();
                reg.add_certificate(&der).map_err(bad("certificate"))?;
                Ok(reg.status(&r.owner(), r.timestamp()))
            }
            RecordType::Crl => {
                let der = r.value(None).map_err(RecordError::Mask)?;
                let reg = self.certs.read();
                reg.check_crl(&der).map_err(bad("CRL"))?;
                Ok(reg.status(&r.owner(), r.timestamp()))
            }
            _ => Ok(self.certs.status(&r.owner(), r.timestamp())),
        }
    }

    /// Builds, pays for and stores a record on the node (blocking; `/makerecord`).
    /// `progress` hears from the proof-of-work solver.
    pub fn make_record(
        &self,
        owner: &OwnerSecret,
        selectors: &[(Vec<u8>, u64)],
        value: Vec<u8>,
        masking_key: Option<Vec<u8>>,
        timestamp: u64,
        progress: &(dyn Fn(lf_pow::Progress) + Sync),
    ) -> Result<Record, anyhow::Error> {
        let r = self.build_record(owner, selectors, value, masking_key, timestamp, progress)?;
        self.accept(&r)?;
        Ok(r)
    }

    /// Checks and stores records built on this node (the LFFS commit queue) in one
    /// store transaction, with one fsync of `records.lf` for all of them; all or none.
    pub fn accept_local_many(&self, records: &[Record]) -> Result<(), AcceptError> {
        if let Err(e) = self.check_many(records) {
            crate::common::metrics::error("record_rejected");
            return Err(e);
        }
        self.store_verified(records, Origin::Lffs)?;
        Ok(())
    }

    /// Builds, pays for and signs a datum record (blocking), without storing it.
    pub fn build_record(
        &self,
        owner: &OwnerSecret,
        selectors: &[(Vec<u8>, u64)],
        value: Vec<u8>,
        masking_key: Option<Vec<u8>>,
        timestamp: u64,
        progress: &(dyn Fn(lf_pow::Progress) + Sync),
    ) -> Result<Record, anyhow::Error> {
        let names = selectors
            .iter()
            .map(|(n, o)| (lf_record::SelectorName::new(n), *o))
            .collect();
        self.build_record_named(owner, names, value, masking_key, timestamp, progress)
    }

    /// [`Node::build_record`] with the selector names already derived.
    pub fn build_record_named(
        &self,
        owner: &OwnerSecret,
        selectors: Vec<(lf_record::SelectorName, u64)>,
        value: Vec<u8>,
        masking_key: Option<Vec<u8>>,
        timestamp: u64,
        progress: &(dyn Fn(lf_pow::Progress) + Sync),
    ) -> Result<Record, anyhow::Error> {
        let links = self
            .store
            .link_candidates(self.config().record_min_links as usize)?;
        let mut b = RecordBuilder::new(RecordType::Datum, timestamp)
            .value(value)
            .links(links);
        for (n, o) in selectors {
            b = b.selector_name(n, o);
        }
        if let Some(k) = masking_key {
            b = b.masking_key(k);
        }
        let u = b.build(&owner.public())?;
        let effort = match self.certs.status(&owner.public(), timestamp) {
            // Certified owners publish at once: no proof of work (reference §7.5).
            CertStatus::Certified => 0,
            CertStatus::Revoked => bail!(AcceptError::Revoked {
                owner: owner.public(),
                timestamp
            }),
            CertStatus::Uncertified if self.config_at(timestamp).auth_required => {
                bail!(AcceptError::NotCertified {
                    owner: owner.public(),
                    timestamp
                })
            }
            CertStatus::Uncertified => u.required_effort(self.config_at(timestamp).work_difficulty),
        };
        let mut start = [0u8; 8];
        crate::common::random::fill(&mut start);
        let opts = lf_pow::SolveOptions {
            threads: 0,
            start_nonce: u64::from_le_bytes(start),
        };
        let started = Instant::now();
        let r = u
            .sign_with(effort, |msg| crate::common::signer::sign(owner, msg))
            .pay(&opts, &self.stopping, progress)?;
        if effort > 0 {
            ::metrics::histogram!("lf_pow_duration_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        Ok(r)
    }
}

/// A node for unit tests of the layers that take one.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use base64::Engine;
    use lf_store::StoreConfig;
    use std::path::Path;

    /// Gives a test node a limbo with other bounds.
    pub(crate) fn set_limbo(node: &mut Node, limbo: crate::common::certs::Limbo) {
        node.limbo = limbo;
    }

    /// A node on a new auth_required network with a root CA, without HTTP or P2P.
    pub(crate) fn node(dir: &Path) -> (Node, crate::common::certs::Ca) {
        node_announcing(dir, Box::new(|_| {}))
    }

    /// [`node`] with an announcement hook.
    pub(crate) fn node_announcing(
        dir: &Path,
        announce: Announce,
    ) -> (Node, crate::common::certs::Ca) {
        let t = now();
        let ca = crate::common::certs::Ca::create("test root", 10, t - 10).unwrap();
        let config = NetworkConfig {
            format: 1,
            id: lf_record::NetworkId([3; 32]),
            name: "certs".into(),
            contact: String::new(),
            comment: String::new(),
            amendable_fields: vec![],
            auth_certificates: vec![base64::engine::general_purpose::STANDARD.encode(&ca.der)],
            auth_required: true,
            record_min_links: 1,
            record_max_value_size: 4096,
            record_max_time_drift: 60,
            work_difficulty: 50,
            bootstrap_peers: vec![],
            mdns: true,
        };
        let owner = crate::common::random::new_owner();
        let genesis = lf_record::create_genesis_records(
            &config,
            &owner,
            t - 5,
            &lf_record::lf_pow::SolveOptions::default(),
            &std::sync::atomic::AtomicBool::new(false),
            &|_| {},
        )
        .unwrap();
        let store = Store::open(dir, StoreConfig { max_time_drift: 60 }).unwrap();
        store.put_many(&genesis).unwrap();
        let certs = crate::common::certs::Certs::load(&config, &store).unwrap();
        let node = Node::new(NodeParts {
            store,
            history: crate::node::amendments::ConfigHistory::new(config.clone()),
            genesis_config: config,
            genesis,
            identity: crate::common::random::new_owner(),
            token: String::new(),
            ports: (0, 0),
            certs,
            announce,
        });
        (node, ca)
    }

    pub(crate) fn record(node: &Node, o: &OwnerSecret, t: RecordType, value: Vec<u8>) -> Record {
        let links = node.store.link_candidates(1).unwrap();
        let mut b = RecordBuilder::new(t, now()).value(value).links(links);
        if t == RecordType::Datum {
            b = b.selector(b"k", 0);
        }
        b.build(&o.public()).unwrap().sign_without_work(o).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{node, record};
    use super::*;

    #[test]
    fn records_wait_in_limbo_for_their_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (node, ca) = node(dir.path());
        let alice = crate::common::random::new_owner();
        let datum = record(&node, &alice, RecordType::Datum, b"v".to_vec());
        // No certificate yet: refused, and held (as peer_batch.rs does).
        assert!(matches!(
            node.check(&datum),
            Err(AcceptError::NotCertified { .. })
        ));
        node.hold_in_limbo(datum.clone());
        node.hold_in_limbo(datum.clone());
        assert_eq!(node.limbo.len().0, 1);
        // The certificate arrives (published by alice, without proof of work).
        let req = lf_record::CertificateRequest::from_der(
            &crate::common::certs::make_request(&alice, "alice").unwrap(),
        )
        .unwrap();
        let der = ca.sign(&req, 1, now() - 5).unwrap();
        let cert = record(&node, &alice, RecordType::Certificate, der.clone());
        node.accept(&cert).unwrap();
        assert!(node.store.contains(&datum.hash()).unwrap());
        assert!(node.limbo.is_empty());
        // Revoked: alice's next record is refused, a stranger's certificate too.
        let serial = lf_record::Certificate::from_der(&der)
            .unwrap()
            .serial()
            .to_vec();
        let crl = ca.crl(&[serial], now() - 1).unwrap();
        node.accept(&record(&node, &ca.key, RecordType::Crl, crl))
            .unwrap();
        let later = record(&node, &alice, RecordType::Datum, b"w".to_vec());
        assert!(matches!(
            node.accept(&later),
            Err(AcceptError::Revoked { .. })
        ));
        let other = crate::common::certs::Ca::create("other", 10, now() - 10).unwrap();
        let der = other.sign(&req, 1, now() - 5).unwrap();
        let bad = record(&node, &alice, RecordType::Certificate, der);
        assert!(matches!(
            node.accept(&bad),
            Err(AcceptError::BadCertificate { .. })
        ));
    }

    /// Records built here skip claim and signature checks past the first of a batch,
    /// never the network's rules: a forged first record fails the batch, and a record
    /// from too far in the future fails it wherever it is.
    #[test]
    fn local_batches_check_the_first_signature_and_every_rule() {
        let dir = tempfile::tempdir().unwrap();
        let (node, ca) = node(dir.path());
        let alice = crate::common::random::new_owner();
        let req = lf_record::CertificateRequest::from_der(
            &crate::common::certs::make_request(&alice, "alice").unwrap(),
        )
        .unwrap();
        let der = ca.sign(&req, 1, now() - 5).unwrap();
        node.accept(&record(&node, &alice, RecordType::Certificate, der))
            .unwrap();
        let good: Vec<Record> = (0..10)
            .map(|i| record(&node, &alice, RecordType::Datum, vec![i]))
            .collect();
        let forged = |r: &Record| {
            let mut b = r.to_bytes().to_vec();
            let n = b.len();
            b[n - 1] ^= 1; // the signature ends the record
            Record::from_bytes(&b).unwrap()
        };
        let mut batch = good.clone();
        batch[0] = forged(&good[0]);
        assert!(matches!(
            node.accept_local_many(&batch),
            Err(AcceptError::Record(lf_record::RecordError::BadSignature))
        ));
        let future = {
            let links = node.store.link_candidates(1).unwrap();
            RecordBuilder::new(RecordType::Datum, now() + 3600)
                .value(b"late".to_vec())
                .links(links)
                .selector(b"k", 0)
                .build(&alice.public())
                .unwrap()
                .sign_without_work(&alice)
                .unwrap()
        };
        let mut batch = good.clone();
        batch[9] = future;
        assert!(node.accept_local_many(&batch).is_err());
        assert!(!node.store.contains(&good[0].hash()).unwrap());
        node.accept_local_many(&good).unwrap();
        assert!(node.store.contains(&good[9].hash()).unwrap());
    }
}
