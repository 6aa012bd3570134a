//! Cryptographic and network-limit validation of parsed records.
//!
//! Parsing ([`Record::from_bytes`]) already enforces the structure and the absolute
//! limits (size, link and selector counts, sorted links). [`Record::verify`] adds what
//! costs CPU: the owner signature (one P-384 verify), one Ed25519 claim per selector,
//! the proof of work, and the network's value-size limit. It takes `&self` and shares
//! nothing, so callers verify records on as many threads as they like.

use crate::{OwnerKeys, Record, RecordError};

/// The network rules a record is checked against (from the genesis configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest plain value, in bytes.
    pub max_value_size: usize,
    /// Proof-of-work difficulty factor; 0 means no work is required.
    pub work_difficulty: u32,
}

impl Record {
    /// Checks value size, proof of work, selector claims and the owner signature,
    /// cheapest first, so garbage is rejected before the expensive checks.
    pub fn verify(&self, limits: &Limits) -> Result<(), RecordError> {
        self.verify_with(limits, &mut OwnerKeys::default())
    }

    /// [`Record::verify`] with decompressed owner keys kept in `keys` across calls
    /// (what a thread verifying a batch of records does).
    pub fn verify_with(&self, limits: &Limits, keys: &mut OwnerKeys) -> Result<(), RecordError> {
        self.verify_limits(limits)?;
        self.verify_signatures_with(keys)
    }

    /// The checks of [`Record::verify`] that involve no key: value size and proof of
    /// work. A record this process has just built and signed needs only these (its
    /// claims and signature are known good; verifying them again costs more than
    /// signing did).
    pub fn verify_limits(&self, limits: &Limits) -> Result<(), RecordError> {
        if self.value_size() > limits.max_value_size {
            return Err(RecordError::ValueTooLarge {
                size: self.value_size(),
                max: limits.max_value_size,
            });
        }
        let required = lf_pow::required_effort(self.billable_bytes(), limits.work_difficulty);
        let challenge = self.work_challenge();
        match self.work() {
            Some(w) if w.effort < required => Err(RecordError::InsufficientWork {
                required,
                carried: w.effort,
            }),
            Some(w) => Ok(lf_pow::verify(&challenge, w)?),
            None if required > 0 => Err(RecordError::InsufficientWork {
                required,
                carried: 0,
            }),
            None => Ok(()),
        }
    }

    /// The selector claims (Ed25519) and the owner's signature (P-384).
    pub fn verify_signatures_with(&self, keys: &mut OwnerKeys) -> Result<(), RecordError> {
        let body_hash = self.body_hash();
        for (i, s) in self.selectors().iter().enumerate() {
            if !s.verify(i as u8, &body_hash) {
                return Err(RecordError::BadClaim { index: i });
            }
        }
        if !self
            .owner()
            .verify_with(&self.signing_message(), self.signature(), keys)
        {
            return Err(RecordError::BadSignature);
        }
        Ok(())
    }
}

/// Rejects records whose timestamp is more than `drift` seconds ahead of `now`.
pub fn check_time_drift(record: &Record, now: u64, drift: u64) -> Result<(), RecordError> {
    if record.timestamp() > now.saturating_add(drift) {
        return Err(RecordError::FromTheFuture {
            timestamp: record.timestamp(),
            now,
            drift,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OwnerSecret, RecordBuilder, RecordType, SELECTOR_LEN};
    use std::sync::atomic::AtomicBool;

    const LIMITS: Limits = Limits {
        max_value_size: 1024,
        work_difficulty: 0,
    };

    fn owner() -> OwnerSecret {
        OwnerSecret::from_scalar_bytes(&[7; 48]).unwrap()
    }

    fn record(difficulty: u32) -> Record {
        let o = owner();
        let u = RecordBuilder::new(RecordType::Datum, 100)
            .value(b"v".to_vec())
            .selector(b"name", 1)
            .build(&o.public())
            .unwrap();
        let effort = u.required_effort(difficulty);
        let u = u.sign(effort, &o).unwrap();
        let work = (effort > 0).then(|| {
            let opts = lf_pow::SolveOptions {
                threads: 1,
                start_nonce: 0,
            };
            lf_pow::solve(
                &u.work_challenge(),
                effort,
                &opts,
                &AtomicBool::new(false),
                &|_| {},
            )
            .unwrap()
        });
        u.finish(work).unwrap()
    }

    #[test]
    fn valid_record_verifies() {
        record(0).verify(&LIMITS).unwrap();
    }

    #[test]
    fn every_signed_byte_matters() {
        let r = record(0);
        let bytes = r.to_bytes();
        // Flip one bit in each byte; the result must fail to parse or to verify.
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x01;
            if let Ok(p) = Record::from_bytes(&b) {
                assert!(
                    p.verify(&LIMITS).is_err(),
                    "flipping byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn claims_are_checked_per_selector() {
        let r = record(0);
        let mut b = r.to_bytes().to_vec();
        // Corrupt the claim of selector 0 (last 64 bytes of the selector).
        let sel_end = r.billable_bytes();
        b[sel_end - 1] ^= 0x80;
        let p = Record::from_bytes(&b).unwrap();
        assert_eq!(p.verify(&LIMITS), Err(RecordError::BadClaim { index: 0 }));
        assert_eq!(SELECTOR_LEN, 112);
    }

    #[test]
    fn work_is_required_and_checked() {
        let cheap = record(0);
        let tiny = Limits {
            max_value_size: 1024,
            work_difficulty: 1,
        };
        assert!(matches!(
            cheap.verify(&tiny),
            Err(RecordError::InsufficientWork { carried: 0, .. })
        ));
        let paid = record(1);
        paid.verify(&tiny).unwrap();
        let more = Limits {
            max_value_size: 1024,
            work_difficulty: 1000,
        };
        assert!(matches!(
            paid.verify(&more),
            Err(RecordError::InsufficientWork { .. })
        ));
    }

    #[test]
    fn a_mutated_signature_fails_the_work_check_before_any_signature_check() {
        // regression_17: work covers the signature, so one paid record with other
        // signature bytes is not a new record that passes the work check.
        let tiny = Limits {
            max_value_size: 1024,
            work_difficulty: 1,
        };
        let paid = record(1);
        let mut b = paid.to_bytes().to_vec();
        let last = b.len() - 1;
        b[last] ^= 0x01;
        let p = Record::from_bytes(&b).unwrap();
        assert!(matches!(p.verify(&tiny), Err(RecordError::BadWork(_))));
        // Work can be neither stripped nor given another effort: the owner signed it.
        let o = owner();
        let unsigned = || {
            RecordBuilder::new(RecordType::Datum, 100)
                .value(b"v".to_vec())
                .selector(b"name", 1)
                .build(&o.public())
                .unwrap()
        };
        let w = paid.work().copied();
        assert!(matches!(
            unsigned().sign(0, &o).unwrap().finish(w),
            Err(RecordError::WorkEffortMismatch { signed: 0, .. })
        ));
        let stripped = unsigned().sign_without_work(&o).unwrap();
        assert_ne!(stripped.signature(), paid.signature());
    }

    #[test]
    fn value_limit_and_drift() {
        let r = record(0);
        let small = Limits {
            max_value_size: 0,
            work_difficulty: 0,
        };
        assert_eq!(
            r.verify(&small),
            Err(RecordError::ValueTooLarge { size: 1, max: 0 })
        );
        assert!(check_time_drift(&r, 50, 60).is_ok());
        assert!(matches!(
            check_time_drift(&r, 10, 60),
            Err(RecordError::FromTheFuture { .. })
        ));
    }
}
