//! Criterion benches of the record layer: owner sign (p384, and AWS-LC as the daemon
//! signs its own records) and verify, record build (encode),
//! parse, and full verification (signature + claims + work).

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{Criterion, criterion_group, criterion_main};
use lf_record::{Limits, OwnerSecret, Record, RecordBuilder, RecordHash, RecordType, lf_pow};

fn record(owner: &OwnerSecret, effort: u32) -> Record {
    let u = RecordBuilder::new(RecordType::Datum, 1_700_000_000)
        .value(vec![7u8; 200])
        .selector(b"bench", 1)
        .links([RecordHash([1; 32]), RecordHash([2; 32])])
        .build(&owner.public())
        .unwrap()
        .sign(effort, owner)
        .unwrap();
    let work = (effort > 0).then(|| {
        let o = lf_pow::SolveOptions {
            threads: 1,
            start_nonce: 0,
        };
        lf_pow::solve(
            &u.work_challenge(),
            effort,
            &o,
            &AtomicBool::new(false),
            &|_| {},
        )
        .unwrap()
    });
    u.finish(work).unwrap()
}

fn benches(c: &mut Criterion) {
    let owner = OwnerSecret::from_scalar_bytes(&[3; 48]).unwrap();
    let sig = owner.sign(b"message");
    c.bench_function("owner_sign", |b| {
        b.iter(|| owner.sign(black_box(b"message")))
    });
    // The daemon's signer for its own records (node/daemon/src/common/signer.rs): the
    // same signature by AWS-LC, with the low-S step it adds.
    let public = owner.public().uncompressed().unwrap();
    let aws = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_and_public_key(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &owner.to_scalar_bytes(),
        &public,
    )
    .unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    c.bench_function("owner_sign_aws_lc", |b| {
        b.iter(|| {
            let s = aws.sign(&rng, black_box(b"message")).unwrap();
            lf_record::low_s(s.as_ref()).unwrap()
        })
    });
    c.bench_function("owner_verify", |b| {
        b.iter(|| assert!(owner.public().verify(black_box(b"message"), &sig)))
    });
    c.bench_function("record_build_and_sign", |b| b.iter(|| record(&owner, 0)));
    let r = record(&owner, 2);
    c.bench_function("record_parse", |b| {
        b.iter(|| Record::from_bytes(black_box(r.to_bytes())).unwrap())
    });
    let limits = Limits {
        max_value_size: 1024,
        work_difficulty: 1,
    };
    c.bench_function("record_verify_full", |b| {
        b.iter(|| r.verify(&limits).unwrap())
    });
    // Unmasking an LFFS chunk's value (8 KiB, the average chunk): key derivation and
    // AES-256-GCM-SIV, paid for every chunk a cold read fetches.
    let chunk = RecordBuilder::new(RecordType::Datum, 1_700_000_000)
        .value(
            (0..8192u32)
                .map(|i| (i * 7 + i / 13) as u8)
                .collect::<Vec<u8>>(),
        )
        .selector(b"lffs-chunk:bench", 0)
        .build(&owner.public())
        .unwrap()
        .sign(0, &owner)
        .unwrap()
        .finish(None)
        .unwrap();
    c.bench_function("value_unmask_8k", |b| {
        b.iter(|| chunk.value(Some(black_box(b"lffs-chunk:bench"))).unwrap())
    });
    // What reading a chunk first costs on a node that has not seen its name lately.
    c.bench_function("selector_key_of_a_new_name", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            lf_record::SelectorName::new(&n.to_le_bytes()).key(0)
        })
    });
    let name = lf_record::SelectorName::new(b"bench");
    c.bench_function("ordinal_mask", |b| {
        b.iter(|| name.ordinal_mask().mask(black_box(0x1234_5678_9abc_def0)))
    });
}

criterion_group!(record_benches, benches);
criterion_main!(record_benches);
