//! The client commands: `lf get`, `lf set`, `lf status`, `lf owner ...` (including the
//! certificate commands: `csr`, `sign`, `publish-cert`, `revoke`, `publish-crl`).

pub mod args;
pub mod client;
pub mod makegenesis;
pub mod selftest;
pub mod shell;
pub mod watch;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use lf_record::{OwnerSecret, Record, RecordBuilder, RecordHash, RecordType, SelectorName, lf_pow};

use crate::cli::args::{GetArgs, OracleCommand, OwnerCommand, SetArgs};
use crate::cli::client::{Api, ClientConfig};
use crate::common::api_json as json;

/// A selector argument: name and inclusive ordinal range.
#[derive(Debug, PartialEq, Eq)]
pub struct SelectorArg {
    /// Plain name.
    pub name: Vec<u8>,
    /// First ordinal.
    pub first: u64,
    /// Last ordinal.
    pub last: u64,
}

/// Splits on `#` not preceded by a backslash (`\#` is a literal `#`).
fn split_hash(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'#') => {
                parts.last_mut().expect("non-empty").push('#');
                chars.next();
            }
            '#' => parts.push(String::new()),
            c => parts.last_mut().expect("non-empty").push(c),
        }
    }
    parts
}

fn ordinal(s: &str, arg: &str) -> anyhow::Result<u64> {
    s.parse()
        .map_err(|_| anyhow!("{arg:?}: ordinal {s:?} is not a number from 0 to 2^64-1"))
}

/// Parses `NAME`, `NAME#ORD`, `NAME#FIRST#LAST` or `NAME#` (every ordinal).
pub fn parse_selector(arg: &str, allow_range: bool) -> anyhow::Result<SelectorArg> {
    let parts = split_hash(arg);
    if parts[0].is_empty() {
        bail!("{arg:?}: selector name is empty");
    }
    let name = parts[0].clone().into_bytes();
    let (first, last) = match parts.len() {
        1 => (0, 0),
        2 if parts[1].is_empty() && allow_range => (0, u64::MAX),
        2 => {
            let v = ordinal(&parts[1], arg)?;
            (v, v)
        }
        3 if allow_range => (ordinal(&parts[1], arg)?, ordinal(&parts[2], arg)?),
        _ if allow_range => bail!("{arg:?}: use NAME, NAME#ORD, NAME#FIRST#LAST or NAME#"),
        _ => bail!("{arg:?}: use NAME or NAME#ORD"),
    };
    if first > last {
        bail!("{arg:?}: the range starts after it ends");
    }
    Ok(SelectorArg { name, first, last })
}

pub(crate) fn api(home: &Path, url: Option<&str>, config: &ClientConfig) -> Api {
    let urls = match url {
        Some(u) => u.split(',').map(|s| s.trim().to_string()).collect(),
        None => config.urls.clone(),
    };
    let token = std::fs::read_to_string(home.join("authtoken.secret")).ok();
    Api::new(urls, token.map(|t| t.trim().to_string()))
}

/// A query candidate with its parsed record and, if the key fit, its value.
type Candidate = (json::QueryResult, Record, Option<Vec<u8>>);

/// `lf get`.
pub fn get(home: &Path, url: Option<&str>, json_out: bool, a: &GetArgs) -> anyhow::Result<()> {
    let config = ClientConfig::load(home)?;
    let sels: Vec<SelectorArg> = a
        .selectors
        .iter()
        .map(|s| parse_selector(s, true))
        .collect::<anyhow::Result<_>>()?;
    let names: Vec<SelectorName> = sels.iter().map(|s| SelectorName::new(&s.name)).collect();
    let q = json::QueryRequest {
        ranges: key_ranges(sels.iter().zip(&names).map(|(s, n)| (n, s.first, s.last))),
        time_range: Some(vec![
            a.tstart.unwrap_or(0),
            a.tend.unwrap_or(i64::MAX as u64),
        ]),
        open: a.open,
        limit: if json_out { None } else { Some(1) },
        oracles: config.oracles.clone(),
        ..Default::default()
    };
    let api = api(home, url, &config);
    let sets = api.query_all(&q)?;
    let mask = a
        .mask
        .clone()
        .map(String::into_bytes)
        .unwrap_or_else(|| sels[0].name.clone());
    let mut decoded: Vec<Vec<Candidate>> = Vec::new();
    for set in sets {
        let mut d = Vec::new();
        for mut r in set {
            let bytes = B64
                .decode(&r.record)
                .context("node sent a record that is not base64")?;
            let rec = Record::from_bytes(&bytes).context("node sent a malformed record")?;
            let value = rec.value(Some(&mask)).ok();
            if let Some(v) = &value {
                match std::str::from_utf8(v) {
                    Ok(s) => r.value = Some(s.into()),
                    Err(_) => r.value_base64 = Some(B64.encode(v)),
                }
            }
            d.push((r, rec, value));
        }
        decoded.push(d);
    }
    if json_out {
        let out: Vec<Vec<&json::QueryResult>> = decoded
            .iter()
            .map(|s| s.iter().map(|(r, ..)| r).collect())
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if a.raw {
        let mut out = std::io::stdout().lock();
        for set in &decoded {
            if let Some((_, _, Some(v))) = set.first() {
                out.write_all(v)?;
            }
        }
        return Ok(());
    }
    let lines: Vec<(String, String)> = decoded
        .iter()
        .filter_map(|set| set.first())
        .map(|(_, rec, value)| {
            let v = match value {
                Some(v) => String::from_utf8_lossy(v)
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect(),
                None => "-".to_string(),
            };
            let sel: Vec<String> = rec
                .selectors()
                .iter()
                .map(
                    |s| match names.iter().zip(&sels).find(|(n, _)| n.is_named(s)) {
                        Some((n, sa)) => format!(
                            "{}#{}",
                            String::from_utf8_lossy(&sa.name),
                            n.ordinal_mask().unmask(&s.ordinal)
                        ),
                        None => format!("?{}", lf_record::base62_encode(&s.key().0)),
                    },
                )
                .collect();
            (v, sel.join(" "))
        })
        .collect();
    let width = lines
        .iter()
        .map(|(v, _)| v.chars().count())
        .max()
        .unwrap_or(0);
    for (v, s) in lines {
        println!("{v:<width$} | {s}");
    }
    Ok(())
}

/// `lf set`.
pub fn set(home: &Path, url: Option<&str>, json_out: bool, a: &SetArgs) -> anyhow::Result<()> {
    let (sel_args, value): (&[String], Vec<u8>) = match &a.file {
        Some(path) => {
            let v = if path.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::stdin().read_to_end(&mut b)?;
                b
            } else {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
            };
            (&a.args[..], v)
        }
        None => {
            if a.args.len() < 2 {
                bail!("give at least one selector and a value (or --file)");
            }
            let (v, s) = a.args.split_last().expect("two or more");
            (s, v.clone().into_bytes())
        }
    };
    let sels: Vec<SelectorArg> = sel_args
        .iter()
        .map(|s| parse_selector(s, false))
        .collect::<anyhow::Result<_>>()?;
    set_value(
        home,
        url,
        json_out,
        &sels,
        value,
        a.owner.as_deref(),
        a.mask.as_deref(),
    )
}

/// Query ranges for (name, first ordinal, last ordinal) triples. Only keys leave this
/// machine: the node never learns names or ordinals.
fn key_ranges<'a>(
    sels: impl Iterator<Item = (&'a SelectorName, u64, u64)>,
) -> Vec<json::QueryRange> {
    sels.map(|(n, first, last)| {
        let (k1, k2) = n.key_range(first, last);
        json::QueryRange {
            key_range: Some(vec![hex::encode(k1.0), hex::encode(k2.0)]),
            ..Default::default()
        }
    })
    .collect()
}

/// Timestamp of `owner`'s newest record under exactly `sels` (first ordinals) on the
/// node, 0 if none.
fn newest_own_timestamp(
    api: &crate::cli::client::Api,
    sels: &[SelectorArg],
    owner: &lf_record::Owner,
) -> anyhow::Result<u64> {
    let names: Vec<SelectorName> = sels.iter().map(|s| SelectorName::new(&s.name)).collect();
    let q = json::QueryRequest {
        ranges: key_ranges(sels.iter().zip(&names).map(|(s, n)| (n, s.first, s.first))),
        ..Default::default()
    };
    let mut newest = 0;
    for r in api.query_all(&q)?.into_iter().flatten() {
        let Ok(bytes) = B64.decode(&r.record) else {
            continue;
        };
        if let Ok(rec) = Record::from_bytes(&bytes)
            && rec.owner() == *owner
        {
            newest = newest.max(rec.timestamp());
        }
    }
    Ok(newest)
}

/// Builds, pays for, signs and posts a value under `sels` (`lf set`, `lf restore`).
pub(crate) fn set_value(
    home: &Path,
    url: Option<&str>,
    json_out: bool,
    sels: &[SelectorArg],
    value: Vec<u8>,
    owner: Option<&str>,
    mask: Option<&str>,
) -> anyhow::Result<()> {
    let mut config = ClientConfig::load(home)?;
    let (owner_name, owner) = config.owner(owner)?;
    let api = api(home, url, &config);
    let status: json::OwnerStatus = api.get(&format!("/owner/{}", owner.public()))?;
    if status.certificate_revoked {
        bail!(
            "owner {owner_name:?} ({}) has a revoked certificate: the network refuses its new records",
            owner.public()
        );
    }
    if status.auth_required && !status.has_current_certificate {
        bail!(
            "this network requires a certificate and owner {owner_name:?} ({}) has no valid one \
             (make a request with `lf owner csr`, have the network's CA sign it with \
             `lf owner sign`, then `lf owner publish-cert`)",
            owner.public()
        );
    }
    if value.len() > status.max_value_size as usize {
        bail!(
            "value is {} bytes, the network allows {}",
            value.len(),
            status.max_value_size
        );
    }
    let links = status
        .new_record_links
        .iter()
        .map(|h| h.parse::<RecordHash>().map_err(|e| anyhow!(e)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // After the owner's newest version here: ranking takes the newest timestamp, then
    // the greatest hash, so a second `lf set` within the same second must not tie.
    let timestamp = status
        .server_time
        .max(newest_own_timestamp(&api, sels, &owner.public())?.saturating_add(1));
    let mut b = RecordBuilder::new(RecordType::Datum, timestamp)
        .value(value)
        .links(links);
    for s in sels {
        b = b.selector(&s.name, s.first);
    }
    if let Some(m) = mask {
        b = b.masking_key(m.as_bytes().to_vec());
    }
    let u = b.build(&owner.public())?;
    // A certified owner's records need no proof of work (reference §7.5).
    let effort = if status.has_current_certificate {
        0
    } else {
        u.required_effort(status.work_difficulty)
    };
    let r = pay(u.sign(effort, &owner)?)?;
    let posted: json::RecordJson = api.post_bytes("/post", r.to_bytes())?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&posted)?);
    } else {
        println!("{} {}", owner.public(), r.hash());
    }
    Ok(())
}

/// Publishes a certificate or CRL record (value: the DER, readable by anyone) signed by
/// `signer`. `self_certifying`: the value is `signer`'s own certificate, which lets the
/// record skip proof of work even before the node knows the certificate.
fn publish(
    api: &Api,
    json_out: bool,
    signer: &OwnerSecret,
    t: RecordType,
    der: Vec<u8>,
    self_certifying: bool,
) -> anyhow::Result<()> {
    let status: json::OwnerStatus = api.get(&format!("/owner/{}", signer.public()))?;
    let links = status
        .new_record_links
        .iter()
        .map(|h| h.parse::<RecordHash>().map_err(|e| anyhow!(e)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let u = RecordBuilder::new(t, status.server_time)
        .value(der)
        .links(links)
        .build(&signer.public())?;
    let effort = if status.has_current_certificate || self_certifying {
        0
    } else {
        u.required_effort(status.work_difficulty)
    };
    let r = pay(u.sign(effort, signer)?)?;
    let posted: json::RecordJson = api.post_bytes("/post", r.to_bytes())?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&posted)?);
    } else {
        println!("published {} {}", posted.record_type, r.hash());
    }
    Ok(())
}

/// `lf amend FIELD=VALUE...`: publishes a genesis amendment signed by the genesis
/// owner. Checked here first (the node checks it again), so a field that is not
/// amendable is named before any proof of work is paid.
pub fn amend(
    home: &Path,
    url: Option<&str>,
    json_out: bool,
    a: &crate::cli::args::AmendArgs,
) -> anyhow::Result<()> {
    let config = ClientConfig::load(home)?;
    let api = api(home, url, &config);
    let status: json::Status = api.get("/status")?;
    let pem = std::fs::read_to_string(&a.key)
        .with_context(|| format!("cannot read the genesis owner's key {}", a.key.display()))?;
    let key = OwnerSecret::from_pem(&pem).with_context(|| a.key.display().to_string())?;
    if key.public().to_string() != status.genesis_owner {
        bail!(
            "{} holds {}, but this network's genesis owner is {}",
            a.key.display(),
            key.public(),
            status.genesis_owner
        );
    }
    let mut next = serde_json::to_value(&status.network)?;
    for c in &a.changes {
        let (field, value) = c
            .split_once('=')
            .ok_or_else(|| anyhow!("{c:?}: expected FIELD=VALUE"))?;
        let obj = next.as_object_mut().expect("config is an object");
        if !obj.contains_key(field) {
            bail!("{field:?} is not a network configuration field");
        }
        let v = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        obj.insert(field.to_string(), v);
    }
    let next: lf_record::NetworkConfig =
        serde_json::from_value(next).context("the amended configuration")?;
    status
        .network
        .amend(&next)
        .context("this amendment would be refused")?;
    publish(
        &api,
        json_out,
        &key,
        RecordType::Genesis,
        next.to_json(),
        false,
    )
}

/// Pays a record's proof of work on all cores, with a progress bar on stderr.
fn pay(u: lf_record::SignedRecord) -> anyhow::Result<Record> {
    if u.effort() == 0 {
        return Ok(u.finish(None)?);
    }
    let expected = lf_pow::expected_challenges(u.effort());
    let bar = indicatif::ProgressBar::new(expected.ceil() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "proof of work {bar:30} {pos}/~{len} challenges, {elapsed}",
        )
        .expect("static template"),
    );
    let mut start = [0u8; 8];
    crate::common::random::fill(&mut start);
    let opts = lf_pow::SolveOptions {
        threads: 0,
        start_nonce: u64::from_le_bytes(start),
    };
    let r = u.pay(&opts, &AtomicBool::new(false), &|p| {
        bar.set_position(p.challenges_tried.min(bar.length().unwrap_or(0)))
    })?;
    bar.finish_and_clear();
    Ok(r)
}

/// `lf status`.
/// The `collisions` lines of `lf status`: each contested name, who wins here and why.
fn print_collisions(c: &json::CollisionsStatus) {
    println!("collisions     {} open", c.open);
    for col in &c.listed {
        let what = col.path.as_deref().unwrap_or(&col.selector_key);
        let scope = if col.same_everywhere {
            "same on every node"
        } else {
            "this node only"
        };
        println!(
            "  {what}: {} wins here ({}, {scope})",
            col.winner, col.reason
        );
        for o in col.owners.iter().skip(1) {
            println!("    also {} (record {}, {})", o.owner, o.hash, o.timestamp);
        }
    }
    if (c.listed.len() as u64) < c.open {
        println!(
            "  ... {} more (`lf -json status` lists the first {})",
            c.open - c.listed.len() as u64,
            c.listed.len()
        );
    }
}

pub fn status(home: &Path, url: Option<&str>, json_out: bool) -> anyhow::Result<()> {
    let config = ClientConfig::load(home)?;
    let s: json::Status = api(home, url, &config).get("/status")?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("network        {} ({})", s.network.name, s.network.id);
    let n = &s.network;
    println!(
        "config         difficulty {}, values up to {} bytes, {} links, drift {} s{}{}",
        n.work_difficulty,
        n.record_max_value_size,
        n.record_min_links,
        n.record_max_time_drift,
        if n.auth_required {
            ", certificates required"
        } else {
            ""
        },
        match s.config_amendments {
            0 => String::new(),
            1 => " (amended once)".to_string(),
            k => format!(" (amended {k} times)"),
        }
    );
    println!("identity       {}", s.identity);
    if !s.network.auth_certificates.is_empty() {
        println!(
            "certificates   {} root CA(s), {}",
            s.network.auth_certificates.len(),
            if s.network.auth_required {
                "required to write"
            } else {
                "optional (certified owners skip proof of work)"
            }
        );
    }
    println!(
        "records        {} ({} synchronized, {} wanted), {} bytes",
        s.record_count, s.synchronized_count, s.wanted_count, s.data_size
    );
    println!(
        "synchronized   {}",
        if s.fully_synchronized { "yes" } else { "no" }
    );
    println!(
        "version        {} (API {}), up {} s",
        s.version, s.api_version, s.uptime
    );
    println!(
        "ports          HTTP {} (127.0.0.1), P2P {}",
        s.http_port, s.p2p_port
    );
    println!("p2p identity   {}", s.p2p_identity);
    println!("peers          {}", s.peers.len());
    for p in &s.peers {
        println!(
            "  {} {} {}{}",
            p.peer_id,
            if p.inbound { "in " } else { "out" },
            p.address,
            if p.score < 0 {
                format!(" (score {})", p.score)
            } else {
                String::new()
            }
        );
    }
    let up = s.mounts.iter().filter(|m| m.error.is_none()).count();
    println!("mounts         {up} up of {}", s.mounts.len());
    for m in &s.mounts {
        let mode = if m.read_only { "ro" } else { "rw" };
        match &m.error {
            None => {
                println!("  {}  {}  {mode}  owner {}", m.path, m.root, m.owner);
                if let Some(w) = &m.writes_refused {
                    println!("    writes refused (EACCES): {w}");
                }
            }
            Some(e) => println!("  {}  {}  FAILED: {e}", m.path, m.root),
        }
    }
    if let Some(e) = &s.mounts_file_error {
        println!("  mounts.yaml edit refused (running mounts kept): {e}");
    }
    print_collisions(&s.collisions);
    let words: Vec<String> = s
        .workers
        .iter()
        .map(|w| match w.state.as_str() {
            "busy" | "failed" => format!("{} {} ({} s)", w.name, w.state, w.seconds),
            _ => format!("{} {}", w.name, w.state),
        })
        .collect();
    println!("workers        {}", words.join(", "));
    println!(
        "pending        {} LFFS records in {} batches (oldest {} s), {} of {} MiB{}",
        s.pending_commits,
        s.pending_batches,
        s.oldest_pending_seconds,
        mib(s.pending_bytes),
        s.pending_max_bytes >> 20,
        if s.pending_commits > 0
            && (s.pending_bytes >= s.pending_max_bytes
                || (s.pending_max_records > 0 && s.pending_commits >= s.pending_max_records))
        {
            ": full, new writes fail with ENOSPC"
        } else {
            ""
        }
    );
    if let Some(p) = &s.proof_of_work {
        println!(
            "proof of work  {}: {:.0}% of the expected work, {:.1} s",
            p.name,
            p.percent(),
            p.elapsed_seconds
        );
    }
    Ok(())
}

/// `lf node-connect MULTIADDR`.
pub fn node_connect(
    home: &Path,
    url: Option<&str>,
    json_out: bool,
    addr: &str,
) -> anyhow::Result<()> {
    let config = ClientConfig::load(home)?;
    let c: json::Connected =
        api(home, url, &config).post_json("/connect", &serde_json::json!({ "Address": addr }))?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        println!("connected to {}", c.peer_id);
    }
    Ok(())
}

/// `lf owner ...`.
pub fn owner(
    home: &Path,
    url: Option<&str>,
    json_out: bool,
    cmd: &OwnerCommand,
) -> anyhow::Result<()> {
    let mut config = ClientConfig::load(home)?;
    match cmd {
        OwnerCommand::List => {
            if json_out {
                let list: Vec<_> = config
                    .owners
                    .iter()
                    .map(|(n, o)| serde_json::json!({"Name": n, "Public": o.public, "Default": o.default}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for (n, o) in &config.owners {
                    println!(
                        "{n:<24} {} p384    {}",
                        if o.default { "*" } else { " " },
                        o.public
                    );
                }
            }
        }
        OwnerCommand::New { name } => {
            let o = crate::common::random::new_owner();
            config.add_owner(name, &o)?;
            config.save()?;
            println!("{name} {}", o.public());
        }
        OwnerCommand::Newfrompass { name, passphrase } => {
            let (o, _) = OwnerSecret::from_passphrase(passphrase)?;
            config.add_owner(name, &o)?;
            config.save()?;
            println!("{name} {}", o.public());
        }
        OwnerCommand::Default { name } => {
            if !config.owners.contains_key(name) {
                bail!("no owner named {name:?} (see lf owner list)");
            }
            for (n, o) in config.owners.iter_mut() {
                o.default = n == name;
            }
            config.save()?;
        }
        OwnerCommand::Delete { name } => {
            if config.owners.remove(name).is_none() {
                bail!("no owner named {name:?} (see lf owner list)");
            }
            config.save()?;
        }
        OwnerCommand::Show { owner } => {
            let public = if owner.starts_with('@') {
                owner.parse::<lf_record::Owner>()?
            } else {
                config.owner(Some(owner))?.1.public()
            };
            let s: json::OwnerStatus = api(home, url, &config).get(&format!("/owner/{public}"))?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        OwnerCommand::Csr {
            owner,
            key,
            cn,
            out,
        } => {
            let (name, secret) = match key {
                Some(path) => {
                    let pem = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let secret = OwnerSecret::from_pem(&pem)
                        .with_context(|| format!("{}", path.display()))?;
                    let stem = path
                        .file_stem()
                        .map_or("owner".into(), |s| s.to_string_lossy().into_owned());
                    (stem, secret)
                }
                None => config.owner(owner.as_deref())?,
            };
            let der = crate::common::certs::make_request(&secret, cn.as_deref().unwrap_or(&name))?;
            let path = out.clone().unwrap_or_else(|| format!("{name}.csr").into());
            std::fs::write(
                &path,
                crate::common::certs::pem("CERTIFICATE REQUEST", &der),
            )
            .with_context(|| format!("cannot write {}", path.display()))?;
            println!("{} {}", secret.public(), path.display());
        }
        OwnerCommand::Sign { ca, days, out, csr } => {
            let ca = crate::common::certs::Ca::load(ca)?;
            let der = crate::common::certs::read_der(csr, "CERTIFICATE REQUEST")?;
            let req = lf_record::CertificateRequest::from_der(&der)
                .with_context(|| format!("{} is not a valid request", csr.display()))?;
            let cert = ca.sign(&req, *days, crate::common::clock::now())?;
            let path = out.clone().unwrap_or_else(|| csr.with_extension("crt"));
            std::fs::write(&path, crate::common::certs::pem("CERTIFICATE", &cert))
                .with_context(|| format!("cannot write {}", path.display()))?;
            let c = lf_record::Certificate::from_der(&cert)?;
            println!(
                "{} serial {} valid {} days: {}",
                req.owner,
                hex::encode(c.serial()),
                days,
                path.display()
            );
        }
        OwnerCommand::PublishCert { ca, cert } => {
            let der = crate::common::certs::read_der(cert, "CERTIFICATE")?;
            let c = lf_record::Certificate::from_der(&der)
                .with_context(|| format!("{} is not a valid certificate", cert.display()))?;
            let (signer, own) = match ca {
                Some(path) => (crate::common::certs::Ca::load(path)?.key, false),
                None => {
                    let owned = config
                        .owners
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .into_iter()
                        .filter_map(|n| config.owner(Some(&n)).ok())
                        .find(|(_, o)| o.public() == c.owner());
                    match owned {
                        Some((_, o)) => (o, true),
                        None => bail!(
                            "the certificate is for {}, which is not an owner in client.json \
                             (publish it with -ca instead)",
                            c.owner()
                        ),
                    }
                }
            };
            let api = api(home, url, &config);
            publish(&api, json_out, &signer, RecordType::Certificate, der, own)?;
        }
        OwnerCommand::Revoke { ca, out, certs } => {
            let ca = crate::common::certs::Ca::load(ca)?;
            let serials = certs
                .iter()
                .map(|p| {
                    let der = crate::common::certs::read_der(p, "CERTIFICATE")?;
                    let c = lf_record::Certificate::from_der(&der)
                        .with_context(|| format!("{} is not a valid certificate", p.display()))?;
                    Ok(c.serial().to_vec())
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let crl = ca.crl(&serials, crate::common::clock::now())?;
            if let Some(path) = out {
                std::fs::write(path, &crl)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let api = api(home, url, &config);
            publish(&api, json_out, &ca.key, RecordType::Crl, crl, false)?;
        }
        OwnerCommand::PublishCrl { ca, crl } => {
            let ca = crate::common::certs::Ca::load(ca)?;
            let der = crate::common::certs::read_der(crl, "X509 CRL")?;
            lf_record::Crl::from_der(&der)
                .with_context(|| format!("{} is not a valid CRL", crl.display()))?;
            let api = api(home, url, &config);
            publish(&api, json_out, &ca.key, RecordType::Crl, der, false)?;
        }
    }
    Ok(())
}

/// `lf oracle ...`.
pub fn oracle(home: &Path, json_out: bool, cmd: &OracleCommand) -> anyhow::Result<()> {
    let mut config = ClientConfig::load(home)?;
    match cmd {
        OracleCommand::List => {
            if json_out {
                println!("{}", serde_json::to_string_pretty(&config.oracles)?);
            } else {
                for o in &config.oracles {
                    println!("{o}");
                }
            }
        }
        OracleCommand::Add { owner } => {
            let o = owner.parse::<lf_record::Owner>()?.to_string();
            if !config.oracles.contains(&o) {
                config.oracles.push(o);
                config.save()?;
            }
        }
        OracleCommand::Remove { owner } => {
            let before = config.oracles.len();
            config.oracles.retain(|o| o != owner);
            if config.oracles.len() == before {
                bail!("{owner} is not a trusted oracle (see lf oracle list)");
            }
            config.save()?;
        }
    }
    Ok(())
}

/// Bytes as MiB with one decimal, for status lines.
fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1048576.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(name: &str, first: u64, last: u64) -> SelectorArg {
        SelectorArg {
            name: name.as_bytes().to_vec(),
            first,
            last,
        }
    }

    #[test]
    fn selector_syntax() {
        assert_eq!(
            parse_selector("bad horse", true).unwrap(),
            sel("bad horse", 0, 0)
        );
        assert_eq!(
            parse_selector("bad horse#7", true).unwrap(),
            sel("bad horse", 7, 7)
        );
        assert_eq!(parse_selector("a#2#9", true).unwrap(), sel("a", 2, 9));
        assert_eq!(parse_selector("a#", true).unwrap(), sel("a", 0, u64::MAX));
        assert_eq!(parse_selector(r"a\#b#1", true).unwrap(), sel("a#b", 1, 1));
        assert!(
            parse_selector("a#x", true)
                .unwrap_err()
                .to_string()
                .contains("not a number")
        );
        assert!(
            parse_selector("a#9#2", true)
                .unwrap_err()
                .to_string()
                .contains("after it ends")
        );
        assert!(parse_selector("a#1#2", false).is_err());
        assert!(parse_selector("a#", false).is_err());
        assert!(
            parse_selector("#1", true)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }
}
