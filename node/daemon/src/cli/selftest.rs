//! `lf selftest`: checks that records and proof of work behave on this machine and
//! prints how long each step takes. Exits non-zero if any check fails.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use lf_record::{OwnerSecret, Record, RecordBuilder, RecordType, SelectorName, lf_pow};

use crate::cli::args::SelftestArgs;

struct Report {
    json: bool,
    rows: Vec<serde_json::Value>,
}

impl Report {
    fn row(&mut self, check: &str, detail: String) {
        if self.json {
            self.rows
                .push(serde_json::json!({"check": check, "ok": true, "detail": detail}));
        } else {
            println!("ok  {check:<32} {detail}");
        }
    }
}

fn per_op(total: Duration, n: u32) -> String {
    let each = total / n;
    format!(
        "{:.1} µs each, {:.0}/s",
        each.as_secs_f64() * 1e6,
        1.0 / each.as_secs_f64()
    )
}

fn sample_record(owner: &OwnerSecret, value: &[u8], difficulty: u32) -> anyhow::Result<Record> {
    let u = RecordBuilder::new(RecordType::Datum, 1_700_000_000)
        .value(value.to_vec())
        .selector(b"selftest", 42)
        .build(&owner.public())?;
    let effort = u.required_effort(difficulty);
    let opts = lf_pow::SolveOptions {
        threads: 0,
        start_nonce: 0,
    };
    Ok(u.sign(effort, owner)?
        .pay(&opts, &AtomicBool::new(false), &|_| {})?)
}

/// Runs the checks.
pub fn run(a: &SelftestArgs, json: bool) -> anyhow::Result<()> {
    let mut rep = Report {
        json,
        rows: Vec::new(),
    };
    let owner = OwnerSecret::from_scalar_bytes(&[0x42; 48])?;

    let n = 50;
    let t = Instant::now();
    let mut sigs = Vec::new();
    for i in 0..n {
        sigs.push(owner.sign(&[i as u8]));
    }
    let sign_time = t.elapsed();
    let t = Instant::now();
    for (i, s) in sigs.iter().enumerate() {
        ensure!(
            owner.public().verify(&[i as u8], s),
            "owner signature {i} did not verify"
        );
    }
    rep.row("owner sign (P-384)", per_op(sign_time, n));
    rep.row("owner verify (P-384)", per_op(t.elapsed(), n));

    let name = SelectorName::new(b"selftest");
    let mut last = name.key(0);
    for v in [1u64, 2, 1000, 1 << 40, u64::MAX] {
        let k = name.key(v);
        ensure!(k > last, "selector keys out of order at ordinal {v}");
        ensure!(
            name.ordinal_mask().unmask(&k.0[16..].try_into()?) == v,
            "ordinal {v} unmask"
        );
        last = k;
    }
    rep.row("ordinal order and unmask", "5 ordinals".into());

    let limits = lf_record::Limits {
        max_value_size: 1024,
        work_difficulty: 0,
    };
    let r = sample_record(&owner, b"hello selftest", 0)?;
    ensure!(
        r.value(Some(b"selftest"))? == b"hello selftest",
        "value did not unmask"
    );
    ensure!(
        r.value(Some(b"wrong")).is_err(),
        "a wrong masking key was not detected"
    );
    rep.row("value masking", "wrong key detected".into());

    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(sample_record(&owner, b"hello selftest", 0)?);
    }
    rep.row("record build + sign", per_op(t.elapsed(), n));
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(Record::from_bytes(r.to_bytes())?);
    }
    rep.row("record parse", per_op(t.elapsed(), n));
    let t = Instant::now();
    for _ in 0..n {
        r.verify(&limits)?;
    }
    rep.row("record verify (sig + 1 claim)", per_op(t.elapsed(), n));

    let worked = sample_record(&owner, b"work", 1)?;
    let w = worked
        .work()
        .context("record built with difficulty 1 carries no work")?;
    let challenge = worked.work_challenge();
    let t = Instant::now();
    for _ in 0..n {
        lf_pow::verify(&challenge, w)?;
    }
    rep.row("proof of work verify", per_op(t.elapsed(), n));
    let mut bad = *w;
    bad.nonce ^= 1;
    if lf_pow::verify(&challenge, &bad).is_ok() {
        bail!("tampered proof of work verified");
    }

    if !a.quick {
        let t = Instant::now();
        let r = sample_record(&owner, &[7u8; 64], lf_pow::DEFAULT_DIFFICULTY)?;
        r.verify(&lf_record::Limits {
            max_value_size: 1024,
            work_difficulty: lf_pow::DEFAULT_DIFFICULTY,
        })?;
        rep.row(
            "proof of work solve (default)",
            format!(
                "{} billable bytes, effort {}, {:.2} s on all cores",
                r.billable_bytes(),
                r.work().map_or(0, |w| w.effort),
                t.elapsed().as_secs_f64()
            ),
        );
    }

    let (config, records) = crate::common::network::default_network()?;
    rep.row(
        "embedded default network",
        format!(
            "{} ({} genesis records verified)",
            config.name,
            records.len()
        ),
    );

    let t = Instant::now();
    OwnerSecret::from_passphrase("selftest passphrase")?;
    rep.row(
        "passphrase owner",
        format!(
            "{}: {:.0} ms",
            lf_record::PASSPHRASE_KDF,
            t.elapsed().as_secs_f64() * 1e3
        ),
    );

    if json {
        println!("{}", serde_json::to_string_pretty(&rep.rows)?);
    } else {
        println!("all checks passed");
    }
    Ok(())
}
