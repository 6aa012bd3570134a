//! Client side of `contrib/bench/query.sh`: loads a node (or etcd) with N small records
//! over HTTP and measures sequential single-key queries, so that LF and its etcd
//! baseline pay the same client and HTTP costs.
//!
//! ```text
//! query_bench lf-load    URL N CONNS      # build+sign N records, POST /post, wait for sync
//! query_bench lf-query   URL N QUERIES WARMUP
//! query_bench etcd-load  URL N CONNS      # PUT bench#i through the v3 JSON gateway
//! query_bench etcd-query URL N QUERIES WARMUP
//! query_bench free-port
//! ```
//!
//! Record `i` has one selector `bench#i`, the value `bench value {i:08}` (masked with
//! the name `bench`), and links to records `i-D`, `i-D-1`, ... (the first ones link to
//! what `/links` offers), with `D` at least twice the connections so that a record's
//! parents are normally stored before it arrives. Query programs print one line of
//! `key=value` figures (microseconds) for the script to tabulate.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use lf_record::{OwnerSecret, Record, RecordBuilder, RecordHash, RecordType, SelectorName};

type Result<T> = std::result::Result<T, String>;

const SELECTOR: &[u8] = b"bench";

fn value_of(i: u64) -> String {
    format!("bench value {i:08}")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Sends `body` to `url` and returns the answer's text, or an error with the body.
fn post(a: &ureq::Agent, url: &str, body: &[u8]) -> Result<String> {
    let mut r = a
        .post(url)
        .send(body)
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = r.status();
    let text = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| format!("POST {url}: reading the answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("POST {url}: {status}: {text}"));
    }
    Ok(text)
}

fn get_json(a: &ureq::Agent, url: &str) -> Result<serde_json::Value> {
    let mut r = a.get(url).call().map_err(|e| format!("GET {url}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("GET {url}: {}", r.status()));
    }
    r.body_mut()
        .read_json()
        .map_err(|e| format!("GET {url}: {e}"))
}

/// splitmix64: a seeded, dependency-free generator for the query keys.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Builds and signs `n` records on every core, wave by wave (a wave's records link only
/// to earlier waves).
fn build_records(n: usize, base: &[RecordHash], ts: u64, distance: usize) -> Result<Vec<Record>> {
    let (owner, _) = OwnerSecret::from_passphrase("lf query bench").map_err(|e| e.to_string())?;
    let name = SelectorName::new(SELECTOR);
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
    let mut hashes: Vec<RecordHash> = Vec::with_capacity(n);
    let mut records: Vec<Record> = Vec::with_capacity(n);
    let start = Instant::now();
    while records.len() < n {
        let first = records.len();
        let wave = distance.min(n - first);
        let per = wave.div_ceil(threads);
        let built: Vec<Result<Vec<Record>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (first..first + wave)
                .step_by(per)
                .map(|lo| {
                    let hi = (lo + per).min(first + wave);
                    let (owner, name, hashes) = (&owner, &name, &hashes);
                    s.spawn(move || {
                        (lo..hi)
                            .map(|i| {
                                let links: Vec<RecordHash> = if i > distance + base.len() {
                                    (0..base.len()).map(|j| hashes[i - distance - j]).collect()
                                } else {
                                    base.to_vec()
                                };
                                RecordBuilder::new(RecordType::Datum, ts)
                                    .value(value_of(i as u64))
                                    .links(links)
                                    .selector_name(name.clone(), i as u64)
                                    .build(&owner.public())
                                    .and_then(|u| u.sign_without_work(owner))
                                    .map_err(|e| format!("building record {i}: {e}"))
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("signing thread panicked"))
                .collect()
        });
        for part in built {
            for r in part? {
                hashes.push(r.hash());
                records.push(r);
            }
        }
    }
    eprintln!(
        "built and signed {n} records in {:.1} s on {threads} threads",
        start.elapsed().as_secs_f64()
    );
    Ok(records)
}

/// Posts `bodies` to `url` with `conns` connections, in order, printing progress.
fn post_all(url: &str, conns: usize, bodies: &[Vec<u8>], what: &str) -> Result<()> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let start = Instant::now();
    let n = bodies.len();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..conns)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let a = agent();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(b) = bodies.get(i) else {
                            return Ok(());
                        };
                        post(&a, url, b).map_err(|e| format!("{what} {i}: {e}"))?;
                        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if d.is_multiple_of(10_000) || d == n {
                            let secs = start.elapsed().as_secs_f64();
                            eprintln!(
                                "  {what}: {d}/{n} in {secs:.0} s ({:.0}/s)",
                                d as f64 / secs
                            );
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("posting thread panicked"))
            .collect::<Result<Vec<()>>>()
    })?;
    Ok(())
}

fn lf_load(url: &str, n: usize, conns: usize) -> Result<()> {
    let a = agent();
    let links = get_json(&a, &format!("{url}/links"))?;
    let ts = links["ServerTime"]
        .as_u64()
        .ok_or("/links has no ServerTime")?;
    let base: Vec<RecordHash> = links["Links"]
        .as_array()
        .ok_or("/links has no Links")?
        .iter()
        .map(|h| h.as_str().unwrap_or_default().parse::<RecordHash>())
        .collect::<std::result::Result<_, _>>()?;
    if base.is_empty() {
        return Err("the node offers no links".into());
    }
    let distance = (2 * conns).max(32);
    let records = build_records(n, &base, ts, distance)?;
    let bodies: Vec<Vec<u8>> = records.iter().map(|r| r.to_bytes().to_vec()).collect();
    drop(records);
    let start = Instant::now();
    post_all(&format!("{url}/post"), conns, &bodies, "POST /post")?;
    // Records whose parents arrived later become synchronized when the parents do.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let s = get_json(&a, &format!("{url}/status"))?;
        let (count, synced) = (s["RecordCount"].as_u64(), s["SynchronizedCount"].as_u64());
        if count.is_some() && count == synced && s["WantedCount"].as_u64() == Some(0) {
            eprintln!(
                "node holds {} records, all synchronized, {:.1} s after the first post",
                count.unwrap_or(0),
                start.elapsed().as_secs_f64()
            );
            println!("load_seconds={:.1}", start.elapsed().as_secs_f64());
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("node not synchronized after loading: {s}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn etcd_load(url: &str, n: usize, conns: usize) -> Result<()> {
    let bodies: Vec<Vec<u8>> = (0..n as u64)
        .map(|i| {
            serde_json::json!({
                "key": B64.encode(format!("bench#{i}")),
                "value": B64.encode(value_of(i)),
            })
            .to_string()
            .into_bytes()
        })
        .collect();
    let start = Instant::now();
    post_all(&format!("{url}/v3/kv/put"), conns, &bodies, "etcd put")?;
    println!("load_seconds={:.1}", start.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `warmup + queries` sequential queries for random keys and prints percentiles.
/// `one(agent, i)` performs the query for key `i` and returns the value it got.
fn measure(
    n: u64,
    queries: usize,
    warmup: usize,
    one: impl Fn(&ureq::Agent, u64) -> Result<String>,
) -> Result<()> {
    let a = agent();
    let mut rng = Rng(0x5eed);
    let mut lat = Vec::with_capacity(queries);
    for q in 0..warmup + queries {
        let i = rng.below(n);
        let t = Instant::now();
        let got = one(&a, i)?;
        let dt = t.elapsed();
        if got != value_of(i) {
            return Err(format!("key {i}: got {got:?}, expected {:?}", value_of(i)));
        }
        if q >= warmup {
            lat.push(dt);
        }
    }
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pct = |p: usize| us(lat[(lat.len() * p / 100).min(lat.len() - 1)]);
    let mean = lat.iter().map(|d| us(*d)).sum::<f64>() / lat.len() as f64;
    println!(
        "queries={} p50_us={:.0} p90_us={:.0} p99_us={:.0} mean_us={:.0} max_us={:.0}",
        lat.len(),
        pct(50),
        pct(90),
        pct(99),
        mean,
        us(*lat.last().expect("at least one query"))
    );
    Ok(())
}

fn lf_query(url: &str, n: u64, queries: usize, warmup: usize) -> Result<()> {
    let name = SelectorName::new(SELECTOR);
    let q = format!("{url}/query");
    measure(n, queries, warmup, |a, i| {
        // A key range for one key: the node learns neither the name nor the ordinal
        // from the key; the masking key lets it return the plain value, as etcd does.
        let key: String = name.key(i).0.iter().map(|b| format!("{b:02x}")).collect();
        let body = format!(r#"{{"Ranges":[{{"KeyRange":["{key}"]}}],"MaskingKey":"bench"}}"#);
        let text = post(a, &q, body.as_bytes())?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        v[0][0]["Value"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("key {i}: no value in {text}"))
    })
}

fn etcd_query(url: &str, n: u64, queries: usize, warmup: usize) -> Result<()> {
    let q = format!("{url}/v3/kv/range");
    measure(n, queries, warmup, |a, i| {
        let body = format!(
            r#"{{"key":"{}","serializable":true}}"#,
            B64.encode(format!("bench#{i}"))
        );
        let text = post(a, &q, body.as_bytes())?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let b64 = v["kvs"][0]["value"]
            .as_str()
            .ok_or_else(|| format!("key {i}: no value in {text}"))?;
        let plain = B64.decode(b64).map_err(|e| e.to_string())?;
        String::from_utf8(plain).map_err(|e| e.to_string())
    })
}

fn num<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T> {
    args.get(i)
        .ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("{what} {:?} is not a number", args[i]))
}

fn run(args: &[String]) -> Result<()> {
    let url = || {
        args.get(1)
            .map(|u| u.trim_end_matches('/').to_owned())
            .ok_or_else(|| "missing URL".to_owned())
    };
    match args.first().map(String::as_str) {
        Some("lf-load") => lf_load(&url()?, num(args, 2, "N")?, num(args, 3, "CONNS")?),
        Some("etcd-load") => etcd_load(&url()?, num(args, 2, "N")?, num(args, 3, "CONNS")?),
        Some("lf-query") => lf_query(
            &url()?,
            num(args, 2, "N")?,
            num(args, 3, "QUERIES")?,
            num(args, 4, "WARMUP")?,
        ),
        Some("etcd-query") => etcd_query(
            &url()?,
            num(args, 2, "N")?,
            num(args, 3, "QUERIES")?,
            num(args, 4, "WARMUP")?,
        ),
        Some("free-port") => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            println!("{}", l.local_addr().map_err(|e| e.to_string())?.port());
            Ok(())
        }
        _ => Err("usage: query_bench lf-load|etcd-load URL N CONNS | \
                  lf-query|etcd-query URL N QUERIES WARMUP | free-port"
            .into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("query_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
