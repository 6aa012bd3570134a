//! The record: canonical encoding, parsing, hashes and building.
//!
//! The byte layout is specified in `FORMAT.md`. Parsing is strict: the only accepted
//! encoding of a record is the one [`RecordBuilder`] writes, so `parse(b).to_bytes()
//! == b` always holds and the record hash is a hash of exactly the bytes received.

use lf_pow::{WORK_LEN, Work};

use crate::hash::{RecordHash, RecordId};
use crate::kdf::sha256;
pub use crate::owner::SIGNATURE_LEN;
use crate::owner::{OWNER_LEN, Owner, OwnerSecret};
pub use crate::selector::SELECTOR_LEN;
use crate::selector::{Selector, SelectorKey, SelectorName};
use crate::{MaskError, RecordError, mask};

/// Format version written in the first byte of every record.
pub const FORMAT_VERSION: u8 = 2;
/// Largest encoded record.
pub const MAX_RECORD_SIZE: usize = 65536;
/// Most links a record may carry.
pub const MAX_LINKS: usize = 15;
/// Most selectors a record may carry.
pub const MAX_SELECTORS: usize = 15;

/// Work algorithm byte: no proof of work.
const WORK_NONE: u8 = 0;

/// What a record is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RecordType {
    /// Ordinary data.
    Datum,
    /// Network configuration, published by the genesis owner only.
    Genesis,
    /// Oracle commentary on other records.
    Commentary,
    /// An X.509 owner certificate.
    Certificate,
    /// An X.509 certificate revocation list.
    Crl,
}

impl RecordType {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            RecordType::Datum => 0,
            RecordType::Genesis => 1,
            RecordType::Commentary => 2,
            RecordType::Certificate => 3,
            RecordType::Crl => 4,
        }
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Result<Self, RecordError> {
        Ok(match b {
            0 => RecordType::Datum,
            1 => RecordType::Genesis,
            2 => RecordType::Commentary,
            3 => RecordType::Certificate,
            4 => RecordType::Crl,
            _ => return Err(RecordError::UnknownType(b)),
        })
    }
}

/// A parsed, structurally valid record. Its cryptographic validity is checked
/// separately by [`Record::verify`] (see `validate.rs`).
#[derive(Clone, Debug)]
pub struct Record {
    bytes: Vec<u8>,
    /// Computed when first asked for: reading a file's chunks back from the store parses
    /// records whose hash nobody needs, and hashing them was a pass over every byte.
    hash: std::sync::OnceLock<RecordHash>,
    record_type: RecordType,
    owner: Owner,
    timestamp: u64,
    links: Vec<RecordHash>,
    value_at: (usize, usize),
    body_len: usize,
    selectors: Vec<Selector>,
    work: Option<Work>,
    signature: [u8; SIGNATURE_LEN],
}

/// Records are their bytes: everything else is parsed from them.
impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Record {}

/// A cursor over untrusted bytes; every read names the field it was reading.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(RecordError::Truncated(field))?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or(RecordError::Truncated(field))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, RecordError> {
        Ok(self.take(1, field)?[0])
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], RecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }
}

impl Record {
    /// Parses exactly one record; trailing bytes are an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Record, RecordError> {
        let (r, used) = Record::parse_prefix(bytes)?;
        if used != bytes.len() {
            return Err(RecordError::TrailingBytes(bytes.len() - used));
        }
        Ok(r)
    }

    /// [`Record::from_bytes`] of bytes the caller owns already (read from a file):
    /// kept as they are, not copied.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Record, RecordError> {
        let (mut r, used) = Record::parse_fields(&bytes)?;
        if used != bytes.len() {
            return Err(RecordError::TrailingBytes(bytes.len() - used));
        }
        r.bytes = bytes;
        Ok(r)
    }

    /// Parses the record at the start of `bytes`, returning it and its length, so
    /// concatenated records (`genesis.lf`) can be read one after another.
    pub fn parse_prefix(bytes: &[u8]) -> Result<(Record, usize), RecordError> {
        let (mut r, len) = Record::parse_fields(bytes)?;
        r.bytes = bytes[..len].to_vec();
        Ok((r, len))
    }

    /// The record at the start of `bytes`, all but its bytes (left empty for the
    /// caller to fill), and its length.
    fn parse_fields(bytes: &[u8]) -> Result<(Record, usize), RecordError> {
        let mut r = Reader { b: bytes, pos: 0 };
        let version = r.u8("version")?;
        if version != FORMAT_VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        let record_type = RecordType::from_byte(r.u8("type")?)?;
        let owner = Owner::from_bytes(r.take(OWNER_LEN, "owner")?)?;
        let timestamp = u64::from_be_bytes(r.array("timestamp")?);
        let link_count = r.u8("link count")? as usize;
        if link_count > MAX_LINKS {
            return Err(RecordError::TooManyLinks(link_count));
        }
        let mut links = Vec::with_capacity(link_count);
        for _ in 0..link_count {
            links.push(RecordHash(r.array("links")?));
        }
        if links.windows(2).any(|w| w[0] >= w[1]) {
            return Err(RecordError::LinksNotSorted);
        }
        let value_len = u16::from_be_bytes(r.array("value length")?) as usize;
        if value_len > 0 && value_len <= mask::TAG_LEN {
            return Err(RecordError::ValueTooShort(value_len));
        }
        let value_start = r.pos;
        r.take(value_len, "value")?;
        let body_len = r.pos;
        let selector_count = r.u8("selector count")? as usize;
        if selector_count > MAX_SELECTORS {
            return Err(RecordError::TooManySelectors(selector_count));
        }
        let mut selectors = Vec::with_capacity(selector_count);
        for _ in 0..selector_count {
            selectors.push(Selector::read(&r.array::<SELECTOR_LEN>("selectors")?));
        }
        let work = match r.u8("work algorithm")? {
            WORK_NONE => None,
            lf_pow::ALGORITHM_ID => Some(Work::from_bytes(r.take(WORK_LEN, "work")?)?),
            other => return Err(RecordError::UnknownWorkAlgorithm(other)),
        };
        let signature = r.array::<SIGNATURE_LEN>("signature")?;
        let len = r.pos;
        if len > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge {
                size: len,
                max: MAX_RECORD_SIZE,
            });
        }
        let record = Record {
            hash: std::sync::OnceLock::new(),
            bytes: Vec::new(),
            record_type,
            owner,
            timestamp,
            links,
            value_at: (value_start, value_len),
            body_len,
            selectors,
            work,
            signature,
        };
        Ok((record, len))
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// SHA-256 of the canonical bytes.
    pub fn hash(&self) -> RecordHash {
        *self.hash.get_or_init(|| RecordHash(sha256(&[&self.bytes])))
    }
    /// The record type.
    pub fn record_type(&self) -> RecordType {
        self.record_type
    }
    /// Who signed it.
    pub fn owner(&self) -> Owner {
        self.owner
    }
    /// Seconds since the Unix epoch, as claimed by the writer.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
    /// Hashes of the records this one links to, ascending.
    pub fn links(&self) -> &[RecordHash] {
        &self.links
    }
    /// The selectors, in order.
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }
    /// The proof of work, if any.
    pub fn work(&self) -> Option<&Work> {
        self.work.as_ref()
    }
    /// The owner signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }
    /// The masked value as stored.
    pub fn masked_value(&self) -> &[u8] {
        &self.bytes[self.value_at.0..self.value_at.0 + self.value_at.1]
    }
    /// Size of the plain value (masked size minus the tag).
    pub fn value_size(&self) -> usize {
        self.value_at.1.saturating_sub(mask::TAG_LEN)
    }
    /// Database key of selector `i`.
    pub fn selector_key(&self, i: usize) -> Option<SelectorKey> {
        self.selectors.get(i).map(Selector::key)
    }
    /// All selector keys, in order.
    pub fn selector_keys(&self) -> Vec<SelectorKey> {
        self.selectors.iter().map(Selector::key).collect()
    }

    /// The record ID: SHA-256 of the selector keys, or the record hash if there are no
    /// selectors. Records with one ID compete; the winner is decided by trust.
    pub fn id(&self) -> RecordId {
        if self.selectors.is_empty() {
            return RecordId(self.hash().0);
        }
        let keys = self.selector_keys();
        let mut parts: Vec<&[u8]> = vec![b"lf record id v1"];
        parts.extend(keys.iter().map(|k| &k.0[..]));
        RecordId(sha256(&parts))
    }

    /// Hash of the body (everything before the selectors): what claims sign.
    pub fn body_hash(&self) -> [u8; 32] {
        body_hash(&self.bytes[..self.body_len])
    }

    /// Bytes that proof of work is paid for: body and selectors.
    pub fn billable_bytes(&self) -> usize {
        self.body_len + 1 + SELECTOR_LEN * self.selectors.len()
    }

    /// What the owner signs and the work covers: hash of the body hash and the
    /// selectors.
    pub fn content_hash(&self) -> [u8; 32] {
        content_hash(
            &self.body_hash(),
            &self.bytes[self.body_len..self.billable_bytes()],
        )
    }

    /// The proof-of-work challenge: hash of the content hash and the owner signature,
    /// so every distinct signature needs work of its own.
    pub fn work_challenge(&self) -> [u8; 32] {
        work_challenge(&self.content_hash(), &self.signature)
    }

    /// What the owner signature covers.
    pub(crate) fn signing_message(&self) -> Vec<u8> {
        signing_message(&self.content_hash(), self.work.map_or(0, |w| w.effort))
    }

    /// Unmasks the value. `None` uses no key, which reads records masked without one
    /// (records without selectors and without an explicit masking key).
    pub fn value(&self, masking_key: Option<&[u8]>) -> Result<Vec<u8>, MaskError> {
        mask::unmask(
            self.masked_value(),
            masking_key.unwrap_or(&[]),
            &self.owner,
            self.timestamp,
            self.record_type.to_byte(),
        )
    }
}

fn body_hash(body: &[u8]) -> [u8; 32] {
    sha256(&[b"lf record body v1", body])
}

fn content_hash(body_hash: &[u8; 32], selectors: &[u8]) -> [u8; 32] {
    sha256(&[b"lf record content v2", body_hash, selectors])
}

fn work_challenge(content_hash: &[u8; 32], signature: &[u8; SIGNATURE_LEN]) -> [u8; 32] {
    sha256(&[b"lf work v2", content_hash, signature])
}

/// The owner signs the content hash and the effort it will pay (0: no work), so nobody
/// can strip, add or change the work of a signed record without the owner's key.
fn signing_message(content_hash: &[u8; 32], effort: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(24 + 32 + 1 + 4);
    m.extend_from_slice(b"lf owner signature v2");
    m.extend_from_slice(content_hash);
    if effort == 0 {
        m.push(WORK_NONE);
    } else {
        m.push(lf_pow::ALGORITHM_ID);
        m.extend_from_slice(&effort.to_be_bytes());
    }
    m
}

/// Builds records on the client side: set the fields, [`RecordBuilder::build`] to get
/// an [`UnsignedRecord`], pay its proof of work, then sign it.
#[derive(Clone, Debug)]
pub struct RecordBuilder {
    record_type: RecordType,
    timestamp: u64,
    value: Vec<u8>,
    masking_key: Option<Vec<u8>>,
    links: Vec<RecordHash>,
    selectors: Vec<(SelectorName, u64)>,
}

impl RecordBuilder {
    /// Starts a record of `record_type` at `timestamp` (Unix seconds).
    pub fn new(record_type: RecordType, timestamp: u64) -> Self {
        RecordBuilder {
            record_type,
            timestamp,
            value: Vec::new(),
            masking_key: None,
            links: Vec::new(),
            selectors: Vec::new(),
        }
    }

    /// The plain value.
    pub fn value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = value.into();
        self
    }

    /// An explicit masking key; default is the first selector's name, or none.
    pub fn masking_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.masking_key = Some(key.into());
        self
    }

    /// Links to other records (sorted and deduplicated here).
    pub fn links(mut self, links: impl IntoIterator<Item = RecordHash>) -> Self {
        self.links.extend(links);
        self
    }

    /// Adds a selector from a plain name and an ordinal.
    pub fn selector(mut self, name: &[u8], ordinal: u64) -> Self {
        self.selectors.push((SelectorName::new(name), ordinal));
        self
    }

    /// Adds a selector from an already derived name (saves the key derivation).
    pub fn selector_name(mut self, name: SelectorName, ordinal: u64) -> Self {
        self.selectors.push((name, ordinal));
        self
    }

    /// Masks the value, makes the selector claims and returns the record waiting for
    /// its proof of work and signature.
    pub fn build(mut self, owner: &Owner) -> Result<UnsignedRecord, RecordError> {
        self.links.sort();
        self.links.dedup();
        if self.links.len() > MAX_LINKS {
            return Err(RecordError::TooManyLinks(self.links.len()));
        }
        if self.selectors.len() > MAX_SELECTORS {
            return Err(RecordError::TooManySelectors(self.selectors.len()));
        }
        let key = match (&self.masking_key, self.selectors.first()) {
            (Some(k), _) => k.clone(),
            (None, Some((n, _))) => n.name().to_vec(),
            (None, None) => Vec::new(),
        };
        let masked = mask::mask(
            &self.value,
            &key,
            owner,
            self.timestamp,
            self.record_type.to_byte(),
        );
        if masked.len() > u16::MAX as usize {
            return Err(RecordError::TooLarge {
                size: masked.len(),
                max: MAX_RECORD_SIZE,
            });
        }
        let mut b = Vec::with_capacity(128 + masked.len() + 32 * self.links.len());
        b.push(FORMAT_VERSION);
        b.push(self.record_type.to_byte());
        b.extend_from_slice(owner.as_bytes());
        b.extend_from_slice(&self.timestamp.to_be_bytes());
        b.push(self.links.len() as u8);
        for l in &self.links {
            b.extend_from_slice(&l.0);
        }
        b.extend_from_slice(&(masked.len() as u16).to_be_bytes());
        b.extend_from_slice(&masked);
        let body_hash = body_hash(&b);
        let body_len = b.len();
        b.push(self.selectors.len() as u8);
        for (i, (name, ordinal)) in self.selectors.iter().enumerate() {
            name.claim(*ordinal, i as u8, &body_hash).write(&mut b);
        }
        let content = content_hash(&body_hash, &b[body_len..]);
        let unsigned = UnsignedRecord {
            billable: b,
            content,
        };
        let size = unsigned.billable.len() + 1 + WORK_LEN + SIGNATURE_LEN;
        if size > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge {
                size,
                max: MAX_RECORD_SIZE,
            });
        }
        Ok(unsigned)
    }
}

/// A record with its body and selectors fixed, waiting for the owner's signature and
/// then its proof of work.
#[derive(Clone, Debug)]
pub struct UnsignedRecord {
    billable: Vec<u8>,
    content: [u8; 32],
}

impl UnsignedRecord {
    /// Bytes that work is paid for.
    pub fn billable_bytes(&self) -> usize {
        self.billable.len()
    }

    /// The effort this record needs on a network with `difficulty`.
    pub fn required_effort(&self, difficulty: u32) -> u32 {
        lf_pow::required_effort(self.billable.len(), difficulty)
    }

    /// Signs, committing to the `effort` the work will have (0: the record carries no
    /// work). The work is paid afterwards, on [`SignedRecord::work_challenge`], which
    /// covers the signature.
    pub fn sign(self, effort: u32, owner: &OwnerSecret) -> Result<SignedRecord, RecordError> {
        Ok(self.sign_with(effort, |msg| owner.sign(msg)))
    }

    /// Signs with a signer of the caller's (a faster implementation of ECDSA P-384 /
    /// SHA-384 by the owner the record was built for, giving low-S signatures, see
    /// [`crate::low_s`]): this crate draws no randomness, and the fast signers do.
    /// A wrong signature is not caught here but by verification, as any record's.
    pub fn sign_with(
        self,
        effort: u32,
        signer: impl FnOnce(&[u8]) -> [u8; SIGNATURE_LEN],
    ) -> SignedRecord {
        let signature = signer(&signing_message(&self.content, effort));
        SignedRecord {
            challenge: work_challenge(&self.content, &signature),
            billable: self.billable,
            effort,
            signature,
        }
    }

    /// Signs a record that carries no proof of work.
    pub fn sign_without_work(self, owner: &OwnerSecret) -> Result<Record, RecordError> {
        self.sign(0, owner)?.finish(None)
    }
}

/// A signed record waiting for its proof of work.
#[derive(Clone, Debug)]
pub struct SignedRecord {
    billable: Vec<u8>,
    effort: u32,
    signature: [u8; SIGNATURE_LEN],
    challenge: [u8; 32],
}

impl SignedRecord {
    /// The proof-of-work challenge (content hash and signature).
    pub fn work_challenge(&self) -> [u8; 32] {
        self.challenge
    }

    /// The effort the signature commits to (0: no work).
    pub fn effort(&self) -> u32 {
        self.effort
    }

    /// Pays the proof of work the signature commits to (none at effort 0) and
    /// finishes the record: the one way every writer pays (CLI, node, oracle, genesis,
    /// selftest), so they differ only in threads, start nonce, cancellation and
    /// progress. Fails with [`RecordError::Unpaid`] when cancelled.
    pub fn pay(
        self,
        opts: &lf_pow::SolveOptions,
        cancel: &std::sync::atomic::AtomicBool,
        progress: &(dyn Fn(lf_pow::Progress) + Sync),
    ) -> Result<Record, RecordError> {
        let work = match self.effort {
            0 => None,
            effort => Some(
                lf_pow::solve(&self.challenge, effort, opts, cancel, progress)
                    .map_err(RecordError::Unpaid)?,
            ),
        };
        self.finish(work)
    }

    /// Attaches the work, which must have exactly the effort signed for.
    pub fn finish(self, work: Option<Work>) -> Result<Record, RecordError> {
        let carried = work.map_or(0, |w| w.effort);
        if carried != self.effort {
            return Err(RecordError::WorkEffortMismatch {
                signed: self.effort,
                carried,
            });
        }
        let mut b = self.billable;
        match &work {
            None => b.push(WORK_NONE),
            Some(w) => {
                b.push(lf_pow::ALGORITHM_ID);
                b.extend_from_slice(&w.to_bytes());
            }
        }
        b.extend_from_slice(&self.signature);
        Record::from_bytes(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn owner() -> OwnerSecret {
        OwnerSecret::from_scalar_bytes(&[5; 48]).unwrap()
    }

    fn sample() -> Record {
        let o = owner();
        RecordBuilder::new(RecordType::Datum, 1_700_000_000)
            .value(b"hello".to_vec())
            .selector(b"bad horse", 3)
            .selector(b"second", 9)
            .links([
                RecordHash([3; 32]),
                RecordHash([1; 32]),
                RecordHash([3; 32]),
            ])
            .build(&o.public())
            .unwrap()
            .sign_without_work(&o)
            .unwrap()
    }

    #[test]
    fn build_parse_round_trip() {
        let r = sample();
        let again = Record::from_bytes(r.to_bytes()).unwrap();
        assert_eq!(again, r);
        assert_eq!(r.links(), &[RecordHash([1; 32]), RecordHash([3; 32])]);
        assert_eq!(r.value(Some(b"bad horse")).unwrap(), b"hello");
        assert_eq!(r.value(Some(b"second")), Err(MaskError::WrongKey));
        assert_eq!(r.selectors().len(), 2);
        assert_eq!(
            r.selector_key(0),
            Some(SelectorName::new(b"bad horse").key(3))
        );
        assert_eq!(r.billable_bytes(), r.to_bytes().len() - 1 - SIGNATURE_LEN);
    }

    #[test]
    fn id_depends_on_selectors_not_value() {
        let o = owner();
        let mk = |v: &[u8], ord| {
            RecordBuilder::new(RecordType::Datum, 1)
                .value(v.to_vec())
                .selector(b"n", ord)
                .build(&o.public())
                .unwrap()
                .sign_without_work(&o)
                .unwrap()
        };
        assert_eq!(mk(b"a", 1).id(), mk(b"b", 1).id());
        assert_ne!(mk(b"a", 1).id(), mk(b"a", 2).id());
        assert_ne!(mk(b"a", 1).hash(), mk(b"b", 1).hash());
        let plain = RecordBuilder::new(RecordType::Datum, 1)
            .build(&o.public())
            .unwrap()
            .sign_without_work(&o)
            .unwrap();
        assert_eq!(plain.id().0, plain.hash().0);
    }

    #[test]
    fn structural_errors_are_named() {
        let r = sample();
        let b = r.to_bytes();
        assert_eq!(
            Record::from_bytes(&b[..10]),
            Err(RecordError::Truncated("owner"))
        );
        let mut trailing = b.to_vec();
        trailing.push(0);
        assert_eq!(
            Record::from_bytes(&trailing),
            Err(RecordError::TrailingBytes(1))
        );
        // The owned variant parses the same and refuses the same.
        assert_eq!(Record::from_vec(b.to_vec()).unwrap(), r);
        assert_eq!(Record::from_vec(b.to_vec()).unwrap().hash(), r.hash());
        assert_eq!(
            Record::from_vec(trailing.clone()),
            Err(RecordError::TrailingBytes(1))
        );
        assert_eq!(
            Record::from_vec(b[..10].to_vec()),
            Err(RecordError::Truncated("owner"))
        );
        let mut v = b.to_vec();
        v[0] = 9;
        assert_eq!(
            Record::from_bytes(&v),
            Err(RecordError::UnsupportedVersion(9))
        );
        let mut t = b.to_vec();
        t[1] = 200;
        assert_eq!(Record::from_bytes(&t), Err(RecordError::UnknownType(200)));
        let mut links = b.to_vec();
        // Swap the two links: no longer ascending.
        let at = 2 + OWNER_LEN + 8 + 1;
        links[at..at + 32].copy_from_slice(&[3; 32]);
        links[at + 32..at + 64].copy_from_slice(&[1; 32]);
        assert_eq!(Record::from_bytes(&links), Err(RecordError::LinksNotSorted));
        let mut many = b.to_vec();
        many[at - 1] = 16;
        assert_eq!(
            Record::from_bytes(&many),
            Err(RecordError::TooManyLinks(16))
        );
    }

    #[test]
    fn builder_limits() {
        let o = owner();
        let mut b = RecordBuilder::new(RecordType::Datum, 1);
        for i in 0..16u8 {
            b = b.selector(&[i], 0);
        }
        assert_eq!(
            b.build(&o.public()).unwrap_err(),
            RecordError::TooManySelectors(16)
        );
        let links = (0..16u8).map(|i| RecordHash([i; 32]));
        let b = RecordBuilder::new(RecordType::Datum, 1).links(links);
        assert_eq!(
            b.build(&o.public()).unwrap_err(),
            RecordError::TooManyLinks(16)
        );
        let big = RecordBuilder::new(RecordType::Datum, 1).value(vec![0u8; 65_400]);
        assert!(matches!(
            big.build(&o.public()),
            Err(RecordError::TooLarge { .. })
        ));
    }
}
