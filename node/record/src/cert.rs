//! X.509 owner certificates and certificate revocation lists (reference §7.4–7.5).
//!
//! A network's root CAs are self-signed P-384 certificates carried (base64 DER) in its
//! configuration. A root certifies an owner by signing an end-entity certificate whose
//! **SubjectPublicKeyInfo is the owner's P-384 key**: the binding is the key itself, not
//! a name, so a certificate request is a standard PKCS#10 CSR signed by the owner's key
//! (proof of possession) and any X.509 tool can read it. A root revokes certificates
//! with a CRL; revocation is permanent and starts at each entry's revocation date, so a
//! record is judged by its own timestamp and every node reaches the same verdict once
//! it has the same certificates and CRLs. Chains are one level deep (root → owner).
//!
//! Parsing uses `x509-parser` (no `verify` feature); signatures are ECDSA P-384 with
//! SHA-384 only and are checked with AWS-LC (`aws-lc-rs`), as record signatures are
//! (`owner.rs`); `p384` only reads the subject key. Like the rest of this crate, this
//! module reads no clock: the time a
//! certificate must be valid at is always a parameter (a record's timestamp).

use std::collections::HashMap;

use p384::ecdsa::VerifyingKey;
use x509_parser::prelude::{
    CertificateRevocationList, FromDer, X509Certificate, X509CertificationRequest,
};
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use crate::Owner;

/// `ecdsa-with-SHA384` (RFC 5758).
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
/// `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// Why a certificate, CRL or certificate request was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertError {
    /// Not DER of the expected ASN.1 structure.
    #[error("not a DER X.509 {what}: {why}")]
    Parse {
        /// Certificate, CRL or certificate request.
        what: &'static str,
        /// The parser's complaint.
        why: String,
    },
    /// Signed with something other than ECDSA P-384 / SHA-384.
    #[error("{0} is not signed with ecdsa-with-SHA384")]
    Algorithm(&'static str),
    /// The subject key is not a P-384 key.
    #[error("{0} public key is not a P-384 key")]
    KeyType(&'static str),
    /// A root certificate of the network is unusable.
    #[error("root certificate {index}: {why}")]
    Root {
        /// Position in `auth_certificates`.
        index: usize,
        /// What is wrong with it.
        why: String,
    },
    /// No root CA of the network signed this certificate.
    #[error("certificate is not signed by any of the network's root CAs")]
    UnknownIssuer,
    /// No root CA of the network (with the cRLSign usage) signed this CRL.
    #[error("CRL is not signed by any of the network's root CAs")]
    UnknownCrlIssuer,
    /// Owners need end-entity certificates.
    #[error("certificate is a CA certificate, not an owner certificate")]
    IsCa,
    /// The request's signature does not verify with the key it carries.
    #[error("certificate request signature is invalid")]
    BadRequestSignature,
}

fn parse_err(what: &'static str) -> impl Fn(String) -> CertError {
    move |why| CertError::Parse { what, why }
}

fn time_secs(t: x509_parser::time::ASN1Time) -> u64 {
    t.timestamp().max(0) as u64
}

/// Serial numbers compare as unsigned integers: drop DER's leading zero bytes.
fn minimal(serial: &[u8]) -> Vec<u8> {
    let skip = serial.iter().take_while(|b| **b == 0).count();
    serial[skip..].to_vec()
}

/// DER of the AlgorithmIdentifier `ecdsa-with-SHA384` (no parameters, RFC 5758).
const ECDSA_SHA384_DER: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];

fn der_len(n: usize, out: &mut Vec<u8>) {
    match n {
        0..0x80 => out.push(n as u8),
        0x80..0x100 => out.extend([0x81, n as u8]),
        _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
}

/// The one DER encoding of `SEQUENCE { signed, ecdsa-with-SHA384, BIT STRING sig }`.
/// The signed part is covered by the signature; comparing the input with this
/// rebuilds the unsigned wrapper, so a certificate, CRL or request has exactly one
/// accepted encoding (x509-parser alone tolerates, e.g., a wrong tag on the outer
/// algorithm OID, which would change the bytes and not the meaning).
fn canonical(signed: &[u8], signature: &[u8]) -> Option<Vec<u8>> {
    if signed.len() + signature.len() > 0xff00 {
        return None;
    }
    let mut body = Vec::with_capacity(signed.len() + signature.len() + 20);
    body.extend_from_slice(signed);
    body.extend_from_slice(&ECDSA_SHA384_DER);
    body.push(0x03);
    der_len(signature.len() + 1, &mut body);
    body.push(0);
    body.extend_from_slice(signature);
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend_from_slice(&body);
    Some(out)
}

fn check_canonical(
    der: &[u8],
    signed: &[u8],
    signature: &[u8],
    what: &'static str,
) -> Result<(), CertError> {
    if canonical(signed, signature).as_deref() == Some(der) {
        Ok(())
    } else {
        Err(parse_err(what)("not the canonical DER encoding".into()))
    }
}

fn check_alg(alg: &AlgorithmIdentifier<'_>, what: &'static str) -> Result<(), CertError> {
    if alg.algorithm.to_id_string() == ECDSA_SHA384 {
        Ok(())
    } else {
        Err(CertError::Algorithm(what))
    }
}

fn p384_key(spki: &SubjectPublicKeyInfo<'_>, what: &'static str) -> Result<Owner, CertError> {
    if spki.algorithm.algorithm.to_id_string() != EC_PUBLIC_KEY {
        return Err(CertError::KeyType(what));
    }
    let key = VerifyingKey::from_sec1_bytes(&spki.subject_public_key.data)
        .map_err(|_| CertError::KeyType(what))?;
    Owner::from_bytes(key.to_sec1_point(true).as_bytes()).map_err(|_| CertError::KeyType(what))
}

/// ECDSA P-384 / SHA-384 over `msg`, DER signature (X.509 style; either S form).
fn verify_der(key: &Owner, msg: &[u8], der_sig: &[u8]) -> bool {
    let Some(point) = key.uncompressed() else {
        return false;
    };
    crate::owner::verify_p384(
        &point,
        msg,
        der_sig,
        &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1,
    )
}

/// A parsed X.509 certificate with a P-384 subject key, signed with ECDSA-SHA384.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    serial: Vec<u8>,
    key: Owner,
    subject: String,
    not_before: u64,
    not_after: u64,
    is_ca: bool,
    digital_signature: bool,
    cert_sign: bool,
    crl_sign: bool,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

impl Certificate {
    /// Parses one DER certificate (trailing bytes are an error).
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let what = "certificate";
        let (rest, c) =
            X509Certificate::from_der(der).map_err(|e| parse_err(what)(e.to_string()))?;
        if !rest.is_empty() {
            return Err(parse_err(what)(format!("{} trailing bytes", rest.len())));
        }
        check_alg(&c.signature_algorithm, what)?;
        check_alg(&c.tbs_certificate.signature, what)?;
        check_canonical(
            der,
            c.tbs_certificate.as_ref(),
            &c.signature_value.data,
            what,
        )?;
        let key = p384_key(c.public_key(), what)?;
        let ku = c
            .key_usage()
            .map_err(|e| parse_err(what)(e.to_string()))?
            .map(|k| *k.value);
        let bc = c
            .basic_constraints()
            .map_err(|e| parse_err(what)(e.to_string()))?
            .map(|b| b.value.ca);
        Ok(Certificate {
            der: der.to_vec(),
            serial: minimal(c.raw_serial()),
            key,
            subject: c.subject().to_string(),
            not_before: time_secs(c.validity().not_before),
            not_after: time_secs(c.validity().not_after),
            is_ca: bc.unwrap_or(false),
            // Without a keyUsage extension a key may be used for anything (RFC 5280).
            digital_signature: ku.is_none_or(|k| k.digital_signature()),
            cert_sign: ku.is_none_or(|k| k.key_cert_sign()),
            crl_sign: ku.is_none_or(|k| k.crl_sign()),
            tbs: c.tbs_certificate.as_ref().to_vec(),
            signature: c.signature_value.data.to_vec(),
        })
    }

    /// The DER bytes.
    pub fn to_der(&self) -> &[u8] {
        &self.der
    }
    /// The subject key as an LF owner.
    pub fn owner(&self) -> Owner {
        self.key
    }
    /// The serial number, big-endian without leading zeros.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }
    /// The subject distinguished name, for display.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// Start of validity, Unix seconds.
    pub fn not_before(&self) -> u64 {
        self.not_before
    }
    /// End of validity, Unix seconds.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }
    /// Whether this is a CA certificate (basicConstraints cA).
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }
    /// Whether `ts` lies in the validity interval.
    pub fn valid_at(&self, ts: u64) -> bool {
        self.not_before <= ts && ts <= self.not_after
    }
    /// Whether `issuer`'s key signed this certificate.
    pub fn signed_by(&self, issuer: &Owner) -> bool {
        verify_der(issuer, &self.tbs, &self.signature)
    }
}

/// A parsed CRL signed with ECDSA-SHA384.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crl {
    entries: Vec<(Vec<u8>, u64)>,
    this_update: u64,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

impl Crl {
    /// Parses one DER CRL (trailing bytes are an error).
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let what = "CRL";
        let (rest, c) =
            CertificateRevocationList::from_der(der).map_err(|e| parse_err(what)(e.to_string()))?;
        if !rest.is_empty() {
            return Err(parse_err(what)(format!("{} trailing bytes", rest.len())));
        }
        check_alg(&c.signature_algorithm, what)?;
        check_alg(&c.tbs_cert_list.signature, what)?;
        check_canonical(der, c.tbs_cert_list.as_ref(), &c.signature_value.data, what)?;
        Ok(Crl {
            entries: c
                .iter_revoked_certificates()
                .map(|r| (minimal(r.raw_serial()), time_secs(r.revocation_date)))
                .collect(),
            this_update: time_secs(c.last_update()),
            tbs: c.tbs_cert_list.as_ref().to_vec(),
            signature: c.signature_value.data.to_vec(),
        })
    }
    /// Revoked serials (minimal big-endian) and when each was revoked (Unix seconds).
    pub fn entries(&self) -> &[(Vec<u8>, u64)] {
        &self.entries
    }
    /// When the CRL was issued, Unix seconds.
    pub fn this_update(&self) -> u64 {
        self.this_update
    }
    /// Whether `issuer`'s key signed this CRL.
    pub fn signed_by(&self, issuer: &Owner) -> bool {
        verify_der(issuer, &self.tbs, &self.signature)
    }
}

/// A verified PKCS#10 certificate request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The owner whose key signed the request (its SubjectPublicKeyInfo).
    pub owner: Owner,
    /// The requested subject distinguished name, for display.
    pub subject: String,
}

impl CertificateRequest {
    /// Parses a DER CSR and checks that the key it carries signed it.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let what = "certificate request";
        let (rest, r) =
            X509CertificationRequest::from_der(der).map_err(|e| parse_err(what)(e.to_string()))?;
        if !rest.is_empty() {
            return Err(parse_err(what)(format!("{} trailing bytes", rest.len())));
        }
        check_alg(&r.signature_algorithm, what)?;
        let info = &r.certification_request_info;
        check_canonical(der, info.raw, &r.signature_value.data, what)?;
        let owner = p384_key(&info.subject_pki, what)?;
        if !verify_der(&owner, info.raw, &r.signature_value.data) {
            return Err(CertError::BadRequestSignature);
        }
        Ok(CertificateRequest {
            owner,
            subject: info.subject.to_string(),
        })
    }
}

/// Whether an owner may write at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// A root, or an unrevoked certificate from a root, is valid at that time.
    Certified,
    /// Only certificates revoked at or before that time cover it.
    Revoked,
    /// No certificate covers it.
    Uncertified,
}

/// The network's roots and the certificates and CRLs seen so far: answers "is this
/// owner certified at this time". Certificates and CRLs enter only after their
/// signature checks against a root, so the registry holds nothing unverified.
#[derive(Clone, Debug, Default)]
pub struct CertRegistry {
    roots: Vec<Certificate>,
    by_owner: HashMap<Owner, Vec<(usize, Certificate)>>,
    revoked: HashMap<(usize, Vec<u8>), u64>,
}

impl CertRegistry {
    /// A registry over these root certificates (DER). Each must be a self-signed
    /// P-384 CA certificate allowed to sign certificates.
    pub fn new(roots: &[Vec<u8>]) -> Result<Self, CertError> {
        let mut out = CertRegistry::default();
        for (index, der) in roots.iter().enumerate() {
            let why = |why: String| CertError::Root { index, why };
            let c = Certificate::from_der(der).map_err(|e| why(e.to_string()))?;
            if !c.is_ca || !c.cert_sign {
                return Err(why("not a CA certificate with the keyCertSign usage".into()));
            }
            if !c.signed_by(&c.key) {
                return Err(why("not self-signed".into()));
            }
            out.roots.push(c);
        }
        Ok(out)
    }

    /// Whether the network has any root CA.
    pub fn has_roots(&self) -> bool {
        !self.roots.is_empty()
    }

    /// The root certificates.
    pub fn roots(&self) -> &[Certificate] {
        &self.roots
    }

    /// Parses an owner certificate and finds the root that signed it.
    pub fn check_certificate(&self, der: &[u8]) -> Result<(usize, Certificate), CertError> {
        let c = Certificate::from_der(der)?;
        if c.is_ca {
            return Err(CertError::IsCa);
        }
        self.roots
            .iter()
            .position(|r| r.cert_sign && c.signed_by(&r.key))
            .map(|i| (i, c))
            .ok_or(CertError::UnknownIssuer)
    }

    /// Adds an owner certificate after checking it; returns its owner. Adding the same
    /// certificate twice changes nothing.
    pub fn add_certificate(&mut self, der: &[u8]) -> Result<Owner, CertError> {
        let (root, c) = self.check_certificate(der)?;
        let owner = c.key;
        let list = self.by_owner.entry(owner).or_default();
        if !list.iter().any(|(r, x)| *r == root && x.der == c.der) {
            list.push((root, c));
        }
        Ok(owner)
    }

    /// Parses a CRL and finds the root (with the cRLSign usage) that signed it.
    pub fn check_crl(&self, der: &[u8]) -> Result<(usize, Crl), CertError> {
        let crl = Crl::from_der(der)?;
        self.roots
            .iter()
            .position(|r| r.crl_sign && crl.signed_by(&r.key))
            .map(|i| (i, crl))
            .ok_or(CertError::UnknownCrlIssuer)
    }

    /// Adds a CRL after checking it; returns how many serials it lists. Revocations
    /// accumulate over CRLs (the earliest date of a serial wins): a later CRL that
    /// omits a serial does not reinstate it.
    pub fn add_crl(&mut self, der: &[u8]) -> Result<usize, CertError> {
        let (root, crl) = self.check_crl(der)?;
        for (serial, at) in &crl.entries {
            let e = self.revoked.entry((root, serial.clone())).or_insert(*at);
            *e = (*e).min(*at);
        }
        Ok(crl.entries.len())
    }

    /// Whether `owner` is certified at time `ts`: a root key with the
    /// digitalSignature usage valid at `ts` certifies itself; otherwise an owner
    /// certificate valid at `ts`, from a root valid at `ts`, not revoked at or before
    /// `ts`.
    pub fn status(&self, owner: &Owner, ts: u64) -> CertStatus {
        if self
            .roots
            .iter()
            .any(|r| r.key == *owner && r.digital_signature && r.valid_at(ts))
        {
            return CertStatus::Certified;
        }
        let mut revoked = false;
        for (root, c) in self.by_owner.get(owner).into_iter().flatten() {
            if !c.valid_at(ts) || !self.roots[*root].valid_at(ts) {
                continue;
            }
            match self.revoked.get(&(*root, c.serial.clone())) {
                Some(at) if *at <= ts => revoked = true,
                _ => return CertStatus::Certified,
            }
        }
        if revoked {
            CertStatus::Revoked
        } else {
            CertStatus::Uncertified
        }
    }

    /// The certificates known for `owner`, with whether each is revoked (at any time).
    pub fn certificates(&self, owner: &Owner) -> Vec<(&Certificate, Option<u64>)> {
        self.by_owner
            .get(owner)
            .into_iter()
            .flatten()
            .map(|(root, c)| (c, self.revoked.get(&(*root, c.serial.clone())).copied()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OwnerSecret;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
        KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, PublicKeyData,
        RevokedCertParams, SerialNumber, SignatureAlgorithm,
    };
    use time::OffsetDateTime;

    const DAY: u64 = 86_400;
    const T0: u64 = 1_800_000_000;

    struct Public(Vec<u8>);
    impl PublicKeyData for Public {
        fn der_bytes(&self) -> &[u8] {
            &self.0
        }
        fn algorithm(&self) -> &SignatureAlgorithm {
            &PKCS_ECDSA_P384_SHA384
        }
    }

    fn at(t: u64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(t as i64).unwrap()
    }

    fn secret(n: u8) -> OwnerSecret {
        OwnerSecret::from_scalar_bytes(&[n; 48]).unwrap()
    }

    fn keypair(o: &OwnerSecret) -> KeyPair {
        KeyPair::try_from(o.to_pkcs8_der().as_slice()).unwrap()
    }

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn ca(n: u8, from: u64, to: u64) -> Ca {
        let key = keypair(&secret(n));
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, format!("test root {n}"));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        p.not_before = at(from);
        p.not_after = at(to);
        p.serial_number = Some(SerialNumber::from(vec![n]));
        p.key_identifier_method = KeyIdMethod::Sha256;
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn issue(ca: &Ca, owner: &OwnerSecret, serial: u64, from: u64, to: u64) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "owner");
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = at(from);
        p.not_after = at(to);
        p.serial_number = Some(SerialNumber::from(serial));
        p.signed_by(&Public(owner.public_uncompressed()), &ca.cert, &ca.key)
            .unwrap()
            .der()
            .to_vec()
    }

    fn crl(ca: &Ca, serial: u64, revoked_at: u64) -> Vec<u8> {
        CertificateRevocationListParams {
            this_update: at(revoked_at),
            next_update: at(revoked_at + 30 * DAY),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: at(revoked_at),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca.cert, &ca.key)
        .unwrap()
        .der()
        .to_vec()
    }

    fn registry(ca: &Ca) -> CertRegistry {
        CertRegistry::new(&[ca.cert.der().to_vec()]).unwrap()
    }

    #[test]
    fn valid_certificate_certifies_its_owner_within_validity() {
        let root = ca(1, T0 - DAY, T0 + 3650 * DAY);
        let mut reg = registry(&root);
        let owner = secret(10);
        assert_eq!(reg.status(&owner.public(), T0), CertStatus::Uncertified);
        let der = issue(&root, &owner, 77, T0, T0 + 10 * DAY);
        assert_eq!(reg.add_certificate(&der).unwrap(), owner.public());
        assert_eq!(reg.status(&owner.public(), T0 + DAY), CertStatus::Certified);
        // Before it starts and after it ends (expired), the owner is not certified.
        assert_eq!(reg.status(&owner.public(), T0 - 1), CertStatus::Uncertified);
        assert_eq!(
            reg.status(&owner.public(), T0 + 11 * DAY),
            CertStatus::Uncertified
        );
        // Another owner is not certified by this certificate.
        assert_eq!(
            reg.status(&secret(11).public(), T0),
            CertStatus::Uncertified
        );
        // The root's key certifies itself (it publishes certificate and CRL records).
        assert_eq!(reg.status(&secret(1).public(), T0), CertStatus::Certified);
        let c = Certificate::from_der(&der).unwrap();
        assert_eq!(c.serial(), &[77]);
        assert!(!c.is_ca());
        assert_eq!(reg.certificates(&owner.public()).len(), 1);
    }

    #[test]
    fn certificate_from_another_ca_is_refused() {
        let root = ca(1, T0 - DAY, T0 + 3650 * DAY);
        let other = ca(2, T0 - DAY, T0 + 3650 * DAY);
        let mut reg = registry(&root);
        let der = issue(&other, &secret(10), 5, T0, T0 + DAY);
        assert_eq!(reg.add_certificate(&der), Err(CertError::UnknownIssuer));
        assert_eq!(
            reg.status(&secret(10).public(), T0),
            CertStatus::Uncertified
        );
        // A CRL from the other CA is refused too.
        assert_eq!(
            reg.add_crl(&crl(&other, 5, T0)),
            Err(CertError::UnknownCrlIssuer)
        );
        // A tampered certificate fails its signature.
        let mut bad = issue(&root, &secret(10), 6, T0, T0 + DAY);
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert!(reg.add_certificate(&bad).is_err());
        // A CA certificate is not an owner certificate; garbage does not parse.
        assert_eq!(reg.add_certificate(root.cert.der()), Err(CertError::IsCa));
        assert!(matches!(
            reg.add_certificate(b"nope"),
            Err(CertError::Parse { .. })
        ));
    }

    #[test]
    fn revocation_applies_from_its_date() {
        let root = ca(1, T0 - DAY, T0 + 3650 * DAY);
        let mut reg = registry(&root);
        let owner = secret(10);
        reg.add_certificate(&issue(&root, &owner, 9, T0, T0 + 100 * DAY))
            .unwrap();
        assert_eq!(reg.add_crl(&crl(&root, 9, T0 + 10 * DAY)).unwrap(), 1);
        // Records made before the revocation keep their certification; later ones not.
        assert_eq!(reg.status(&owner.public(), T0 + DAY), CertStatus::Certified);
        assert_eq!(
            reg.status(&owner.public(), T0 + 10 * DAY),
            CertStatus::Revoked
        );
        assert_eq!(
            reg.status(&owner.public(), T0 + 50 * DAY),
            CertStatus::Revoked
        );
        // A second, unrevoked certificate certifies the owner again.
        reg.add_certificate(&issue(&root, &owner, 10, T0 + 20 * DAY, T0 + 100 * DAY))
            .unwrap();
        assert_eq!(
            reg.status(&owner.public(), T0 + 50 * DAY),
            CertStatus::Certified
        );
        assert_eq!(
            reg.status(&owner.public(), T0 + 15 * DAY),
            CertStatus::Revoked
        );
    }

    #[test]
    fn every_byte_of_a_certificate_and_crl_matters() {
        let root = ca(1, T0 - DAY, T0 + 3650 * DAY);
        let owner = secret(10);
        let der = issue(&root, &owner, 77, T0, T0 + 10 * DAY);
        let crl_der = crl(&root, 77, T0);
        let reg = registry(&root);
        assert!(reg.check_certificate(&der).is_ok());
        assert!(reg.check_crl(&crl_der).is_ok());
        // Flip one bit in each byte (two different bits): never a panic, never valid.
        for bit in [0x01u8, 0x80] {
            for i in 0..der.len() {
                let mut b = der.clone();
                b[i] ^= bit;
                assert!(
                    reg.check_certificate(&b).is_err(),
                    "certificate byte {i} bit {bit:#x} went unnoticed"
                );
            }
            for i in 0..crl_der.len() {
                let mut b = crl_der.clone();
                b[i] ^= bit;
                assert!(
                    reg.check_crl(&b).is_err(),
                    "CRL byte {i} bit {bit:#x} went unnoticed"
                );
            }
        }
        // Truncations and garbage parse to errors.
        for n in 0..der.len() {
            assert!(Certificate::from_der(&der[..n]).is_err());
        }
        for n in 0..crl_der.len() {
            assert!(Crl::from_der(&crl_der[..n]).is_err());
        }
        assert!(CertificateRequest::from_der(&der).is_err());
    }

    #[test]
    fn roots_must_be_self_signed_cas() {
        let root = ca(1, T0, T0 + DAY);
        let leaf = issue(&root, &secret(3), 1, T0, T0 + DAY);
        assert!(matches!(
            CertRegistry::new(&[leaf]),
            Err(CertError::Root { index: 0, .. })
        ));
        assert!(CertRegistry::new(&[b"x".to_vec()]).is_err());
        assert!(!CertRegistry::new(&[]).unwrap().has_roots());
    }

    #[test]
    fn certificate_request_proves_the_owner_key() {
        let owner = secret(12);
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "alice");
        let csr = p.serialize_request(&keypair(&owner)).unwrap();
        let r = CertificateRequest::from_der(csr.der()).unwrap();
        assert_eq!(r.owner, owner.public());
        assert!(r.subject.contains("alice"));
        let mut bad = csr.der().to_vec();
        // Flip a byte inside the subject name: the signature no longer matches.
        let pos = bad.windows(5).position(|w| w == b"alice").unwrap();
        bad[pos] = b'b';
        assert_eq!(
            CertificateRequest::from_der(&bad),
            Err(CertError::BadRequestSignature)
        );
    }
}
