//! Golden vectors: records built from fixed keys, timestamps and work must encode to
//! the bytes in `testdata/golden.txt`, so any format change is deliberate. Regenerate
//! with `LF_REGENERATE_GOLDEN=1 cargo test -p lf-record --test golden`.

use std::fmt::Write;
use std::sync::atomic::AtomicBool;

use lf_record::{
    Limits, OwnerSecret, Record, RecordBuilder, RecordHash, RecordType, SelectorName, lf_pow,
};

fn owner() -> OwnerSecret {
    OwnerSecret::from_scalar_bytes(&[0x11; 48]).unwrap()
}

fn vectors() -> Vec<(&'static str, Record)> {
    let o = owner();
    let sign = |b: RecordBuilder, effort: u32| {
        let u = b.build(&o.public()).unwrap().sign(effort, &o).unwrap();
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
    };
    let empty = sign(RecordBuilder::new(RecordType::Datum, 1_600_000_000), 0);
    let named = sign(
        RecordBuilder::new(RecordType::Datum, 1_600_000_001)
            .value(b"neigh".to_vec())
            .selector(b"bad horse", 0)
            .links([empty.hash()]),
        0,
    );
    let worked = sign(
        RecordBuilder::new(RecordType::Datum, 1_600_000_002)
            .value(b"two selectors".to_vec())
            .selector(b"a", 1)
            .selector(b"b", u64::MAX)
            .links([empty.hash(), named.hash(), RecordHash([0xee; 32])]),
        3,
    );
    let masked = sign(
        RecordBuilder::new(RecordType::Commentary, 1_600_000_003)
            .value(b"explicit key".to_vec())
            .masking_key(b"k".to_vec())
            .selector(b"c", 7),
        0,
    );
    vec![
        ("empty", empty),
        ("named", named),
        ("worked", worked),
        ("masked", masked),
    ]
}

fn render() -> String {
    let mut out = String::new();
    let bad = SelectorName::new(b"bad horse");
    writeln!(out, "owner {}", owner().public()).unwrap();
    writeln!(out, "key(\"bad horse\",0) {}", hex::encode(bad.key(0).0)).unwrap();
    writeln!(out, "key(\"bad horse\",1) {}", hex::encode(bad.key(1).0)).unwrap();
    for (name, r) in vectors() {
        writeln!(out, "{name} hash {} id {}", r.hash(), r.id()).unwrap();
        writeln!(out, "{name} bytes {}", hex::encode(r.to_bytes())).unwrap();
    }
    out
}

#[test]
fn golden_vectors_match() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden.txt");
    let now = render();
    if std::env::var_os("LF_REGENERATE_GOLDEN").is_some() {
        std::fs::write(path, &now).unwrap();
    }
    let want = std::fs::read_to_string(path).expect("testdata/golden.txt (regenerate?)");
    assert_eq!(
        now, want,
        "record encoding changed: bump FORMAT_VERSION and regenerate"
    );
}

#[test]
fn golden_records_parse_and_verify() {
    let want = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden.txt"))
        .unwrap();
    let limits = Limits {
        max_value_size: 1024,
        work_difficulty: 0,
    };
    let mut seen = 0;
    for line in want.lines() {
        let mut parts = line.split(' ');
        if let (Some(_), Some("bytes"), Some(h)) = (parts.next(), parts.next(), parts.next()) {
            let r = Record::from_bytes(&hex::decode(h).unwrap()).unwrap();
            r.verify(&limits).unwrap();
            seen += 1;
        }
    }
    assert_eq!(seen, 4);
    let worked = &vectors()[2].1;
    assert_eq!(worked.work().unwrap().effort, 3);
    assert_eq!(worked.value(Some(b"a")).unwrap(), b"two selectors");
    assert_eq!(vectors()[3].1.value(Some(b"k")).unwrap(), b"explicit key");
}
