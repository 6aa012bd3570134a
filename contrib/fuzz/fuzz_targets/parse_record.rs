//! Fuzz the record parser: arbitrary bytes must never panic, and whatever parses must
//! re-encode to the same bytes and survive verification and unmasking attempts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = lf_record::Record::from_bytes(data) {
        assert_eq!(r.to_bytes(), data);
        let limits = lf_record::Limits { max_value_size: 65536, work_difficulty: 1 };
        let _ = r.verify(&limits);
        let _ = r.value(None);
        let _ = r.id();
    }
    let _ = lf_record::parse_records(data);
});
