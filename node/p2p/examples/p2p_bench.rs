//! Client side of `contrib/bench/p2p.sh`.
//!
//! ```text
//! p2p_bench verify N                   # full-record verification rate on every core
//! p2p_bench propagate URL1 URL2 COUNT  # set on node 1 -> visible on node 2, in ms
//! p2p_bench wait-count URL N PID       # until the node at URL holds N records
//! ```
//!
//! `verify` builds and signs N records (one selector, a 20-byte value, two links, no
//! proof of work), then parses and verifies all of them (`Record::from_bytes` +
//! `Record::verify`: signature, selector claims, work, limits) on
//! `available_parallelism` threads and prints `records_per_s=… threads=…`.
//!
//! `propagate` writes COUNT records one at a time the way `lf set` does (links and
//! server time from node 1's `/links`, build and sign here, `POST /post`), and from the
//! moment each POST returns polls node 2's `/record/=<hash>` every millisecond until it
//! answers 200. Prints `count=… p50_ms=… p95_ms=… mean_ms=… max_ms=…`.
//!
//! `wait-count` polls `/status` every 50 ms until its `RecordCount` reaches N (an hour
//! at most; it fails at once if process PID is gone). A poll costs a few microseconds
//! of CPU here: `curl | jq` in the script cost ~50 ms each, a quarter of a core taken
//! from the catch-up being timed.
//!
//! HTTP is spoken by hand over `std::net` (one connection per request) to keep the
//! example within lf-p2p's dependencies.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lf_record::{Limits, OwnerSecret, Record, RecordBuilder, RecordHash, RecordType};

type Result<T> = std::result::Result<T, String>;

fn owner(seed: u64) -> OwnerSecret {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    OwnerSecret::generate(|b| {
        for c in b.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *c = x as u8;
        }
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn record(o: &OwnerSecret, name: &str, ts: u64, links: Vec<RecordHash>) -> Result<Record> {
    RecordBuilder::new(RecordType::Datum, ts)
        .value(format!("{:>20}", name).into_bytes())
        .links(links)
        .selector(name.as_bytes(), 0)
        .build(&o.public())
        .and_then(|u| u.sign_without_work(o))
        .map_err(|e| format!("building a record: {e}"))
}

fn verify(n: usize) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let o = owner(7);
    let ts = now();
    // Signing is not measured; spread it over the cores too.
    let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let o = &o;
                s.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| {
                            let links = vec![RecordHash([i as u8; 32]), RecordHash([1; 32])];
                            record(o, &format!("verify{i}"), ts, links)
                                .map(|r| r.to_bytes().to_vec())
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| "signing thread panicked".to_string())?
            })
            .collect::<Result<Vec<Vec<Vec<u8>>>>>()
            .map(|v| v.into_iter().flatten().collect())
    })?;
    let limits = Limits {
        max_value_size: 1024,
        work_difficulty: 0,
    };
    let start = Instant::now();
    let ok: usize = std::thread::scope(|s| {
        let hs: Vec<_> = bodies
            .chunks(bodies.len().div_ceil(threads).max(1))
            .map(|chunk| {
                let limits = &limits;
                s.spawn(move || {
                    // As a node verifies a batch from a peer: one key cache per thread.
                    let mut keys = lf_record::OwnerKeys::default();
                    chunk
                        .iter()
                        .filter(|b| {
                            Record::from_bytes(b)
                                .is_ok_and(|r| r.verify_with(limits, &mut keys).is_ok())
                        })
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    if ok != n {
        return Err(format!("{} of {n} records failed verification", n - ok));
    }
    println!(
        "records={n} threads={threads} seconds={secs:.3} records_per_s={:.0}",
        n as f64 / secs
    );
    Ok(())
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the body.
fn http(url: &str, method: &str, path: &str, body: &[u8]) -> Result<(u16, String)> {
    let host = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    let mut s = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body))
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{method} {path}: not HTTP: {text:.80}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

/// Links and server time from `/links` (`{"Links":["=…",…],"ServerTime":n}`).
fn links(url: &str) -> Result<(Vec<RecordHash>, u64)> {
    let (code, body) = http(url, "GET", "/links", b"")?;
    if code != 200 {
        return Err(format!("/links: {code} {body}"));
    }
    let list = body
        .split_once("\"Links\":[")
        .and_then(|(_, r)| r.split_once(']'))
        .map_or("", |(l, _)| l);
    let hashes = list
        .split('"')
        .filter(|s| s.starts_with('='))
        .map(|s| s.parse::<RecordHash>())
        .collect::<Result<Vec<_>>>()?;
    let time = body
        .split_once("\"ServerTime\":")
        .map(|(_, r)| {
            r.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .ok_or("/links: no ServerTime")?;
    Ok((hashes, time))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn propagate(url1: &str, url2: &str, count: usize) -> Result<()> {
    let o = owner(11);
    let mut delays = Vec::with_capacity(count);
    for i in 0..count {
        let (links, ts) = links(url1)?;
        let r = record(&o, &format!("propagate{i}"), ts, links)?;
        let (code, body) = http(url1, "POST", "/post", r.to_bytes())?;
        if code != 200 {
            return Err(format!("POST /post: {code} {body}"));
        }
        let t = Instant::now();
        let path = format!("/record/{}", r.hash());
        loop {
            if http(url2, "GET", &path, b"")?.0 == 200 {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err(format!("record {i} not on node 2 after 60 s"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        delays.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(20));
    }
    delays.sort_by(f64::total_cmp);
    let mean = delays.iter().sum::<f64>() / delays.len().max(1) as f64;
    println!(
        "count={count} p50_ms={:.1} p95_ms={:.1} mean_ms={mean:.1} max_ms={:.1}",
        percentile(&delays, 0.5),
        percentile(&delays, 0.95),
        delays.last().copied().unwrap_or(0.0)
    );
    Ok(())
}

fn wait_count(url: &str, n: usize, pid: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!("process {pid} exited"));
        }
        // `/status` is JSON with `"RecordCount":n`; a node still starting may not answer.
        let count = http(url, "GET", "/status", b"").ok().and_then(|(_, body)| {
            let (_, rest) = body.split_once("\"RecordCount\":")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        });
        if count.is_some_and(|c| c >= n) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{url} did not reach {n} records"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn num(args: &[String], i: usize, what: &str) -> Result<usize> {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{what} missing or not a number"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("verify") => num(&args, 1, "N").and_then(verify),
        Some("propagate") if args.len() == 4 => {
            num(&args, 3, "COUNT").and_then(|c| propagate(&args[1], &args[2], c))
        }
        Some("wait-count") if args.len() == 4 => num(&args, 2, "N")
            .and_then(|n| num(&args, 3, "PID").and_then(|pid| wait_count(&args[1], n, pid))),
        _ => Err(
            "usage: p2p_bench verify N | propagate URL1 URL2 COUNT | wait-count URL N PID".into(),
        ),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p2p_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
