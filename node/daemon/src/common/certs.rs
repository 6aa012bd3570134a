//! Owner certificates on the daemon side: issuing with rcgen (a network's root CA at
//! `lf makegenesis -ca`, owner certificate requests, certificates signed from them,
//! CRLs), the node's registry of the certificates and CRLs it has seen, and the limbo
//! where peers' records wait for their owner's certificate.
//!
//! Checking is `lf_record::cert` (pure, no clock); this module brings the randomness
//! (keys, serials), the clock and the files. Key files are PEM: a CA file holds its
//! `CERTIFICATE` and its PKCS#8 `PRIVATE KEY` and is written with mode 0600.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use lf_record::{
    CertRegistry, CertStatus, Certificate, CertificateRequest, NetworkConfig, Owner, OwnerSecret,
    Record, RecordHash, RecordType,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, PublicKeyData,
    RevokedCertParams, SerialNumber, SignatureAlgorithm,
};
use time::OffsetDateTime;

/// Seconds in a day.
const DAY: u64 = 86_400;

/// Decodes every PEM block labelled `label` in `text`.
pub fn pem_blocks(text: &str, label: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body = &rest[start + begin.len()..];
        let stop = body
            .find(&end)
            .ok_or_else(|| anyhow!("PEM block {label} is not terminated"))?;
        let b64: String = body[..stop].split_whitespace().collect();
        out.push(
            B64.decode(b64)
                .with_context(|| format!("PEM block {label} is not base64"))?,
        );
        rest = &body[stop + end.len()..];
    }
    Ok(out)
}

/// PEM-encodes `der` under `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// Reads DER from a file holding PEM (block `label`) or raw DER.
pub fn read_der(path: &Path, label: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("-----BEGIN") => pem_blocks(text, label)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("{} holds no {label} PEM block", path.display())),
        _ => Ok(bytes),
    }
}

fn at(t: u64) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t as i64).map_err(|e| anyhow!("time {t}: {e}"))
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    crate::common::random::fill(&mut b);
    b[0] &= 0x7f; // positive, at most 16 bytes: within RFC 5280's 20
    b[0] |= 0x01; // and never shortened by leading zeros
    SerialNumber::from_slice(&b)
}

fn keypair(o: &OwnerSecret) -> anyhow::Result<KeyPair> {
    KeyPair::try_from(o.to_pkcs8_der().as_slice()).map_err(|e| anyhow!("key: {e}"))
}

/// An owner's public key as rcgen wants it (uncompressed SEC1 point).
struct OwnerKey(Vec<u8>);

impl OwnerKey {
    fn new(o: &Owner) -> anyhow::Result<Self> {
        o.uncompressed()
            .map(OwnerKey)
            .ok_or_else(|| anyhow!("{o} is not a valid P-384 key"))
    }
}

impl PublicKeyData for OwnerKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &SignatureAlgorithm {
        &PKCS_ECDSA_P384_SHA384
    }
}

/// A CA: its certificate and key, as read from a CA file.
pub struct Ca {
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// The key, also usable as an LF owner (it publishes certificate and CRL records).
    pub key: OwnerSecret,
    issuer: rcgen::Certificate,
    rc_key: KeyPair,
}

fn ca_params(name: &str, from: u64, to: u64) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    p.not_before = at(from)?;
    p.not_after = at(to)?;
    p.key_identifier_method = KeyIdMethod::Sha256;
    Ok(p)
}

impl Ca {
    /// Creates a self-signed root CA valid from `now` for `days` days.
    pub fn create(name: &str, days: u64, now: u64) -> anyhow::Result<Self> {
        let key = crate::common::random::new_owner();
        let rc_key = keypair(&key)?;
        let mut p = ca_params(name, now, now + days * DAY)?;
        p.serial_number = Some(random_serial());
        let issuer = p.self_signed(&rc_key)?;
        Ok(Ca {
            der: issuer.der().to_vec(),
            key,
            issuer,
            rc_key,
        })
    }

    /// The CA file: certificate then PKCS#8 private key, PEM.
    pub fn to_pem(&self) -> String {
        let mut s = pem("CERTIFICATE", &self.der);
        s.push_str(&pem("PRIVATE KEY", &self.key.to_pkcs8_der()));
        s
    }

    /// Reads a CA file written by [`Ca::to_pem`].
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read CA file {}", path.display()))?;
        let der = pem_blocks(&text, "CERTIFICATE")?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("{} holds no CERTIFICATE", path.display()))?;
        let key = pem_blocks(&text, "PRIVATE KEY")?
            .first()
            .and_then(|b| OwnerSecret::from_pem(&pem("PRIVATE KEY", b)).ok())
            .ok_or_else(|| anyhow!("{} holds no P-384 PRIVATE KEY", path.display()))?;
        let cert = Certificate::from_der(&der)
            .with_context(|| format!("{}: bad CA certificate", path.display()))?;
        if cert.owner() != key.public() {
            bail!(
                "{}: the private key does not match the certificate",
                path.display()
            );
        }
        if !cert.is_ca() {
            bail!("{}: not a CA certificate", path.display());
        }
        // rcgen signs with the issuer's name and key identifier; rebuild them from the
        // certificate (the CN is the only name attribute `Ca::create` writes).
        let cn = cert
            .subject()
            .strip_prefix("CN=")
            .unwrap_or(cert.subject())
            .to_string();
        let rc_key = keypair(&key)?;
        let issuer = ca_params(&cn, cert.not_before(), cert.not_after())?.self_signed(&rc_key)?;
        Ok(Ca {
            der,
            key,
            issuer,
            rc_key,
        })
    }

    /// Issues an owner certificate from a verified request, valid from `now` for `days`.
    /// Returns the DER.
    pub fn sign(&self, req: &CertificateRequest, days: u64, now: u64) -> anyhow::Result<Vec<u8>> {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, req.owner.to_string());
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.is_ca = IsCa::ExplicitNoCa;
        p.not_before = at(now)?;
        p.not_after = at(now + days * DAY)?;
        p.serial_number = Some(random_serial());
        p.use_authority_key_identifier_extension = true;
        let c = p.signed_by(&OwnerKey::new(&req.owner)?, &self.issuer, &self.rc_key)?;
        Ok(c.der().to_vec())
    }

    /// A CRL revoking `serials` as of `now`. Returns the DER.
    pub fn crl(&self, serials: &[Vec<u8>], now: u64) -> anyhow::Result<Vec<u8>> {
        let revoked = serials
            .iter()
            .map(|s| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(s),
                    revocation_time: at(now)?,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let crl = CertificateRevocationListParams {
            this_update: at(now)?,
            next_update: at(now + 30 * DAY)?,
            crl_number: SerialNumber::from(now),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer, &self.rc_key)?;
        Ok(crl.der().to_vec())
    }
}

/// A PKCS#10 request for `owner`, signed by its key. `cn` is informational: the
/// certificate binds the key.
pub fn make_request(owner: &OwnerSecret, cn: &str) -> anyhow::Result<Vec<u8>> {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    let csr = p.serialize_request(&keypair(owner)?)?;
    Ok(csr.der().to_vec())
}

/// The node's registry: the network's roots and every verified certificate and CRL
/// from the records it holds. Shared by the acceptance checks and queries.
#[derive(Debug, Clone)]
pub struct Certs(Arc<RwLock<CertRegistry>>);

impl Certs {
    /// Builds the registry from the configuration's roots and the store's certificate
    /// and CRL records (records whose contents no longer verify are skipped).
    pub fn load(config: &NetworkConfig, store: &lf_store::Store) -> anyhow::Result<Self> {
        let roots = config.root_certificates()?;
        let mut reg = CertRegistry::new(&roots).context("bad root certificate")?;
        let (mut certs, mut crls) = (0, 0);
        if reg.has_roots() {
            for r in store.records_of_type(RecordType::Certificate)? {
                match r.value(None).map(|v| reg.add_certificate(&v)) {
                    Ok(Ok(_)) => certs += 1,
                    _ => tracing::warn!(hash = %r.hash(), "stored certificate record skipped"),
                }
            }
            for r in store.records_of_type(RecordType::Crl)? {
                match r.value(None).map(|v| reg.add_crl(&v)) {
                    Ok(Ok(_)) => crls += 1,
                    _ => tracing::warn!(hash = %r.hash(), "stored CRL record skipped"),
                }
            }
            tracing::info!(
                roots = reg.roots().len(),
                certificates = certs,
                crls,
                auth_required = config.auth_required,
                "certificates loaded"
            );
        }
        Ok(Certs(Arc::new(RwLock::new(reg))))
    }

    /// Read access.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, CertRegistry> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The hook a store query ranks certified owners first with, on a network with
    /// root CAs (`None` elsewhere): `/query`, the mounts and the collision list all
    /// rank with it, so they agree.
    pub fn query_hook(&self) -> Option<Arc<dyn lf_store::Certification>> {
        if self.read().has_roots() {
            Some(Arc::new(self.clone()))
        } else {
            None
        }
    }

    /// Write access.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, CertRegistry> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// `owner`'s standing at `ts`.
    pub fn status(&self, owner: &Owner, ts: u64) -> CertStatus {
        self.read().status(owner, ts)
    }
}

impl lf_store::Certification for Certs {
    fn is_certified(&self, owner: &Owner, timestamp: u64) -> bool {
        self.status(owner, timestamp) == CertStatus::Certified
    }
}

/// Most records waiting in limbo.
pub const LIMBO_MAX_RECORDS: usize = 4096;
/// Most record bytes waiting in limbo.
pub const LIMBO_MAX_BYTES: usize = 8 << 20;
/// How long a record waits in limbo for its owner's certificate; then it is dropped
/// (a peer offers it again at a later reconciliation if the certificate came since).
pub const LIMBO_TTL: Duration = Duration::from_secs(600);

/// Records from peers refused only because their owner has no certificate here yet
/// (reference §13.1), kept until a certificate for that owner is stored. Only records
/// whose signature, claims and any work verified enter it (`Node::check_with`), so a
/// forgery costs its sender instead. Bounded by [`LIMBO_MAX_RECORDS`] and
/// [`LIMBO_MAX_BYTES`] (past them new records are dropped, never old ones pushed out),
/// and each record leaves after [`LIMBO_TTL`]; the count and bytes are running totals
/// and expiry pops a queue in arrival order, so every operation is O(1) amortized
/// (releasing an owner's records is O(those records)). Lost at restart.
pub struct Limbo {
    inner: Mutex<LimboInner>,
    max_records: usize,
    max_bytes: usize,
}

impl Default for Limbo {
    fn default() -> Self {
        Limbo::with_limits(LIMBO_MAX_RECORDS, LIMBO_MAX_BYTES)
    }
}

#[derive(Default)]
struct LimboInner {
    records: HashMap<RecordHash, (Record, u64)>,
    by_owner: HashMap<Owner, HashSet<RecordHash>>,
    /// Arrival order: (sequence, arrival, hash); entries already released are skipped
    /// when they reach the front (their sequence no longer matches).
    order: VecDeque<(u64, Instant, RecordHash)>,
    next_seq: u64,
    bytes: usize,
}

impl LimboInner {
    fn remove(&mut self, h: &RecordHash) -> Option<Record> {
        let (r, _) = self.records.remove(h)?;
        self.bytes -= r.to_bytes().len();
        if let Some(set) = self.by_owner.get_mut(&r.owner()) {
            set.remove(h);
            if set.is_empty() {
                self.by_owner.remove(&r.owner());
            }
        }
        Some(r)
    }

    fn expire(&mut self, now: Instant, max_records: usize) {
        while let Some(&(seq, at, h)) = self.order.front() {
            let live = self.records.get(&h).is_some_and(|(_, s)| *s == seq);
            if live && now.duration_since(at) < LIMBO_TTL {
                break;
            }
            self.order.pop_front();
            if live {
                self.remove(&h);
                ::metrics::counter!("lf_limbo_dropped_total", "reason" => "expired").increment(1);
            }
        }
        // Released entries wait in the queue until they reach the front; compact when
        // they outnumber the live ones (amortized O(1) per insert).
        if self.order.len() > 2 * max_records {
            let records = &self.records;
            self.order
                .retain(|(seq, _, h)| records.get(h).is_some_and(|(_, s)| s == seq));
        }
    }

    fn publish(&self) {
        ::metrics::gauge!("lf_limbo_records").set(self.records.len() as f64);
        ::metrics::gauge!("lf_limbo_bytes").set(self.bytes as f64);
    }
}

impl Limbo {
    /// A limbo with other bounds than the defaults (tests).
    pub fn with_limits(max_records: usize, max_bytes: usize) -> Limbo {
        Limbo {
            inner: Mutex::default(),
            max_records,
            max_bytes,
        }
    }

    /// Holds `r` (a verified record of an owner not certified here) until its owner's
    /// certificate arrives; false if it was already held or limbo is full.
    pub fn hold(&self, r: Record, now: Instant) -> bool {
        let mut l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        l.expire(now, self.max_records);
        let h = r.hash();
        if l.records.contains_key(&h) {
            return false;
        }
        let size = r.to_bytes().len();
        if l.records.len() >= self.max_records || l.bytes + size > self.max_bytes {
            ::metrics::counter!("lf_limbo_dropped_total", "reason" => "full").increment(1);
            return false;
        }
        let seq = l.next_seq;
        l.next_seq += 1;
        l.bytes += size;
        l.by_owner.entry(r.owner()).or_default().insert(h);
        l.order.push_back((seq, now, h));
        l.records.insert(h, (r, seq));
        l.publish();
        true
    }

    /// Whether a record of `size` bytes would find room now (after expiry). Checked
    /// before a record is verified for limbo; counts a `full` drop when not.
    pub fn has_room(&self, size: usize, now: Instant) -> bool {
        let mut l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        l.expire(now, self.max_records);
        let room = l.records.len() < self.max_records && l.bytes + size <= self.max_bytes;
        if !room {
            ::metrics::counter!("lf_limbo_dropped_total", "reason" => "full").increment(1);
        }
        room
    }

    /// Takes out every record of `owner` still waiting.
    pub fn take_owner(&self, owner: &Owner, now: Instant) -> Vec<Record> {
        let mut l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        l.expire(now, self.max_records);
        let hashes = l.by_owner.remove(owner).unwrap_or_default();
        let out: Vec<Record> = hashes.iter().filter_map(|h| l.remove(h)).collect();
        l.publish();
        out
    }

    /// Records and bytes waiting.
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        let l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (l.records.len(), l.bytes)
    }

    /// Whether nothing waits.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len().0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_round_trip_sign_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000;
        let ca = Ca::create("Test root", 10, now).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.to_pem()).unwrap();
        let ca = Ca::load(&path).unwrap();
        let mut reg = CertRegistry::new(std::slice::from_ref(&ca.der)).unwrap();
        let owner = crate::common::random::new_owner();
        let req = CertificateRequest::from_der(&make_request(&owner, "alice").unwrap()).unwrap();
        assert_eq!(req.owner, owner.public());
        let der = ca.sign(&req, 5, now).unwrap();
        assert_eq!(reg.add_certificate(&der).unwrap(), owner.public());
        assert_eq!(reg.status(&owner.public(), now + 1), CertStatus::Certified);
        assert_eq!(reg.status(&ca.key.public(), now + 1), CertStatus::Certified);
        let serial = Certificate::from_der(&der).unwrap().serial().to_vec();
        let crl = ca.crl(&[serial], now + 100).unwrap();
        assert_eq!(reg.add_crl(&crl).unwrap(), 1);
        assert_eq!(reg.status(&owner.public(), now + 99), CertStatus::Certified);
        assert_eq!(reg.status(&owner.public(), now + 100), CertStatus::Revoked);
        // PEM helpers round-trip and read raw DER too.
        let p = dir.path().join("c.pem");
        std::fs::write(&p, pem("CERTIFICATE", &der)).unwrap();
        assert_eq!(read_der(&p, "CERTIFICATE").unwrap(), der);
        std::fs::write(&p, &der).unwrap();
        assert_eq!(read_der(&p, "CERTIFICATE").unwrap(), der);
    }

    fn datum(o: &OwnerSecret, i: u64, size: usize) -> Record {
        lf_record::RecordBuilder::new(RecordType::Datum, 1_700_000_000 + i)
            .value(vec![7u8; size])
            .build(&o.public())
            .unwrap()
            .sign_without_work(o)
            .unwrap()
    }

    /// regression_17: limbo is bounded by count and bytes, expires, and a release
    /// takes only the certified owner's records.
    #[test]
    fn limbo_is_bounded_and_expires() {
        let t0 = Instant::now();
        let limbo = Limbo::with_limits(16, 400_000);
        let (a, b) = (
            crate::common::random::new_owner(),
            crate::common::random::new_owner(),
        );
        let first = datum(&a, 0, 10);
        assert!(limbo.hold(first.clone(), t0));
        assert!(!limbo.hold(first.clone(), t0), "held once");
        for i in 1..16 {
            assert!(limbo.hold(datum(&b, i, 10), t0));
        }
        assert_eq!(limbo.len().0, 16);
        assert!(!limbo.hold(datum(&a, 99_999, 10), t0), "full by count");
        assert_eq!(limbo.take_owner(&a.public(), t0), vec![first]);
        // Past the time to live everything left is dropped, and bytes are accounted.
        let later = t0 + LIMBO_TTL;
        assert!(limbo.hold(datum(&a, 1, 60_000), later));
        assert_eq!(limbo.len().0, 1);
        let (_, bytes) = limbo.len();
        assert!(bytes > 60_000 && bytes < 61_000, "{bytes}");
        let mut held = 1;
        while limbo.hold(datum(&a, 2 + held, 60_000), later) {
            held += 1;
        }
        assert!(limbo.len().1 <= 400_000);
        assert_eq!(held, 6, "six records of 60 kB in 400 kB");
        assert!(limbo.take_owner(&b.public(), later).is_empty());
        assert!(limbo.take_owner(&a.public(), later + LIMBO_TTL).is_empty());
        assert!(limbo.is_empty());
    }
}
