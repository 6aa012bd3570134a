//! Property tests: records round-trip through their encoding, and parsing arbitrary or
//! mutated bytes never panics (it returns a typed error or a record that re-encodes to
//! the same bytes).

use lf_record::{Limits, OwnerSecret, Record, RecordBuilder, RecordHash, RecordType};
use proptest::prelude::*;

fn owner() -> OwnerSecret {
    OwnerSecret::from_scalar_bytes(&[0x23; 48]).unwrap()
}

prop_compose! {
    fn arb_record()(
        ty in 0u8..5,
        ts in any::<u64>(),
        value in proptest::collection::vec(any::<u8>(), 0..300),
        links in proptest::collection::vec(any::<[u8; 32]>(), 0..16),
        sels in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), any::<u64>()), 0..4),
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
    ) -> (Record, Vec<u8>, Option<Vec<u8>>, Vec<(Vec<u8>, u64)>) {
        let o = owner();
        let mut b = RecordBuilder::new(RecordType::from_byte(ty).unwrap(), ts)
            .value(value.clone())
            .links(links.into_iter().take(15).map(RecordHash));
        for (n, ord) in &sels {
            b = b.selector(n, *ord);
        }
        if let Some(k) = &key {
            b = b.masking_key(k.clone());
        }
        let r = b.build(&o.public()).unwrap().sign_without_work(&o).unwrap();
        (r, value, key, sels)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn proptest_encode_decode_round_trip((r, value, key, sels) in arb_record()) {
        let parsed = Record::from_bytes(r.to_bytes()).unwrap();
        prop_assert_eq!(&parsed, &r);
        prop_assert_eq!(parsed.to_bytes(), r.to_bytes());
        parsed.verify(&Limits { max_value_size: 65535, work_difficulty: 0 }).unwrap();
        let k = key.or_else(|| sels.first().map(|s| s.0.clone())).unwrap_or_default();
        prop_assert_eq!(parsed.value(Some(&k)).unwrap(), value);
        prop_assert_eq!(parsed.selectors().len(), sels.len());
    }

    #[test]
    fn proptest_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(r) = Record::from_bytes(&bytes) {
            prop_assert_eq!(r.to_bytes(), &bytes[..]);
        }
    }

    #[test]
    fn proptest_random_bytes_after_valid_header_never_panic(
        ty in 0u8..6, count in 0u8..20, rest in proptest::collection::vec(any::<u8>(), 0..2000)
    ) {
        // Start like a real record so the parser gets past the first fields.
        let mut b = vec![1u8, ty];
        b.extend_from_slice(owner().public().as_bytes());
        b.extend_from_slice(&[0; 8]);
        b.push(count);
        b.extend_from_slice(&rest);
        if let Ok(r) = Record::from_bytes(&b) {
            prop_assert_eq!(r.to_bytes(), &b[..]);
            let _ = r.verify(&Limits { max_value_size: 65535, work_difficulty: 1 });
        }
    }

    #[test]
    fn proptest_mutated_records_are_rejected_or_consistent(
        (r, _, _, _) in arb_record(), at in any::<prop::sample::Index>(), byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = r.to_bytes().to_vec();
        let i = at.index(b.len());
        let changed = b[i] != byte;
        b[i] = byte;
        if let Ok(p) = Record::from_bytes(&b) {
            prop_assert_eq!(p.to_bytes(), &b[..]);
            if changed {
                let limits = Limits { max_value_size: 65535, work_difficulty: 0 };
                prop_assert!(p.verify(&limits).is_err(), "mutation went unnoticed");
            }
        }
        let short = &r.to_bytes()[..cut.index(r.to_bytes().len())];
        prop_assert!(Record::from_bytes(short).is_err());
    }
}
