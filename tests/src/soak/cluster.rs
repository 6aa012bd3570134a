//! The soak's five nodes in the namespace bed, and what the soak does to and asks of
//! one node: write, probe whether writes arrived, read its process figures.
//!
//! Owners: nodes 1 and 2 are a fleet (one `identity-secret.pem`, so their mounts have
//! one owner, and one `lf set` owner); nodes 3, 4 and 5 each have their own. Node 5
//! dials out but cannot be dialled (`-max-inbound 0`).

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::{Bed, Mount, MountGuard, TestNet, TestNode, lffs_on_top, stderr, stdout, wait_until};

/// Nodes in the soak.
pub const NODES: usize = 5;
/// The node that cannot be dialled.
pub const DIAL_OUT_ONLY: usize = 4;

/// The bed, the nodes (each behind a lock the kill -9 takes) and their mounts.
pub struct Cluster {
    // Field order: nodes are dropped before the bed.
    pub nodes: Vec<RwLock<TestNode>>,
    pub mounts: Vec<PathBuf>,
    pub bed: Bed,
}

fn wait_mounted(m: &Path) -> bool {
    wait_until(60, || lffs_on_top(m))
}

/// Starts the five nodes in `dir`, link `delay_ms` each way and `loss` % loss.
pub fn start(dir: &Path, delay_ms: u32, loss: f64) -> Result<Cluster, String> {
    let bed = Bed::new(NODES);
    let net = TestNet::private().name("soak").create(&dir.join("net"));
    let homes: Vec<PathBuf> = (1..=NODES).map(|i| net.home(&format!("n{i}"))).collect();
    // The fleet's identity, made by a first start of node 1.
    {
        let mut n = bed.node(0, &homes[0]).start();
        n.kill();
    }
    std::fs::copy(
        homes[0].join("identity-secret.pem"),
        homes[1].join("identity-secret.pem"),
    )
    .map_err(|e| format!("copying the fleet identity: {e}"))?;
    let mounts: Vec<PathBuf> = (1..=NODES).map(|i| dir.join(format!("m{i}"))).collect();
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in 0..NODES {
        let mut b = bed
            .node(i, &homes[i])
            .mount(Mount::new(&mounts[i], "soakfs"));
        // Everyone knows nodes 1 and 2; node 1 learns node 2 below (for its restarts).
        for n in nodes.iter().take(2) {
            b = b.peer(n.p2p_addr());
        }
        if i == DIAL_OUT_ONLY {
            b = b.args(&["-max-inbound", "0"]);
        }
        nodes.push(b.start());
    }
    let second = nodes[1].p2p_addr();
    nodes[0].peers.push(second);
    for (i, m) in mounts.iter().enumerate() {
        if !wait_mounted(m) {
            return Err(format!("node {} did not mount {}", i + 1, m.display()));
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let pass = if i < 2 {
            "soak fleet".to_string()
        } else {
            format!("soak node {}", i + 1)
        };
        for args in [
            &["owner", "newfrompass", "soak", &pass][..],
            &["owner", "default", "soak"][..],
        ] {
            let o = n.lf_url(args);
            if !o.status.success() {
                return Err(format!("node {}: lf {args:?}: {}", i + 1, stderr(&o)));
            }
        }
    }
    // A full mesh is expected (node 5 dials the others itself); go on without one
    // after a minute, as gossip relays anyway, but say so.
    let meshed = wait_until(60, || nodes.iter().all(|n| n.peers().len() == NODES - 1));
    let counts: Vec<usize> = nodes.iter().map(|n| n.peers().len()).collect();
    println!(
        "[soak] peers per node after start: {counts:?}{}",
        if meshed {
            " (full mesh)"
        } else {
            " (no full mesh after 60 s)"
        }
    );
    bed.set_link(delay_ms, loss);
    Ok(Cluster {
        nodes: nodes.into_iter().map(RwLock::new).collect(),
        mounts,
        bed,
    })
}

/// `lf set KEY VALUE` on `n`; the record hash when `want_hash`.
pub fn set(n: &TestNode, key: &str, value: &str) -> Result<String, String> {
    let o = n.lf_url(&["-json", "set", key, value]);
    if !o.status.success() {
        return Err(format!("lf set {key}: {}", stderr(&o).trim()));
    }
    let v: serde_json::Value = serde_json::from_str(&stdout(&o))
        .map_err(|e| format!("lf -json set {key}: output is not JSON: {e}"))?;
    v["Hash"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("lf -json set {key}: no Hash in {v}"))
}

/// How writing a file on a mount ended.
pub enum FileWrite {
    /// Written, fsync'd and closed: acknowledged.
    Acked,
    /// Refused because another owner holds the name (EACCES / EEXIST).
    Refused,
    /// Any other error.
    Failed(String),
}

/// Writes `content` to `path`, fsync, close.
pub fn write_file(path: &Path, content: &str) -> FileWrite {
    let r = (|| {
        let mut f = std::fs::File::create(path)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        // close(2) may report what fsync did not; Rust ignores close errors, so
        // fsync's answer above is the acknowledgement.
        drop(f);
        Ok::<(), std::io::Error>(())
    })();
    match r {
        Ok(()) => FileWrite::Acked,
        Err(e) if matches!(e.raw_os_error(), Some(13) | Some(17)) => FileWrite::Refused,
        Err(e) => FileWrite::Failed(format!("{}: {e}", path.display())),
    }
}

/// Values of `kv#lo..=hi` on `n` (`lf -json get`), or None if the node did not
/// answer.
pub fn set_values(n: &TestNode, lo: u64, hi: u64) -> Option<HashSet<String>> {
    let o = n.lf_url(&["-json", "get", &format!("kv#{lo}#{hi}")]);
    if !o.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).ok()?;
    let mut out = HashSet::new();
    for set in v.as_array()? {
        for r in set.as_array().into_iter().flatten() {
            if let Some(s) = r["Value"].as_str() {
                out.insert(s.to_string());
            }
        }
    }
    Some(out)
}

/// Versions `lf -json history TARGET` lists on `n`: (hash, size, kind).
pub fn history(n: &TestNode, target: &str) -> Option<Vec<(String, u64, String)>> {
    let o = n.lf_url(&["-json", "history", target]);
    if !o.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).ok()?;
    Some(
        v.as_array()?
            .iter()
            .map(|x| {
                (
                    x["Hash"].as_str().unwrap_or("").to_string(),
                    x["Size"].as_u64().unwrap_or(0),
                    x["Kind"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
    )
}

/// The content of `path` if it holds exactly `content`.
pub fn file_is(path: &Path, content: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s == content)
}

/// Process figures of a node from /proc: RSS (KiB), open fds, threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

/// Reads /proc/<pid>/status and /proc/<pid>/fd.
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Usage {
        rss_kib: field("VmRSS:")?,
        fds,
        threads: field("Threads:")?,
    })
}

/// kill -9 of node `i`, its dead mount taken off (as a service manager's
/// `fusermount -uz` would), `down` without it, then a restart: returns when it
/// serves and its mount is back, or an error naming what did not come back.
pub fn kill_and_restart(c: &Cluster, i: usize, down: Duration) -> Result<Instant, String> {
    let mut n = c.nodes[i].write().unwrap_or_else(|p| p.into_inner());
    n.kill();
    MountGuard::new(&c.mounts[i]).clear();
    std::thread::sleep(down);
    // The restart starts a new log: keep the killed process's one beside it.
    let log = n.home.join("test-node.out");
    let kept = (1..)
        .map(|k| n.home.join(format!("test-node.out.{k}")))
        .find(|p| !p.exists())
        .expect("a free name");
    let _ = std::fs::rename(&log, kept);
    let restart = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| n.restart()));
    if restart.is_err() {
        return Err(format!(
            "node {} did not restart after kill -9: {}",
            i + 1,
            tail(&n.output(), 20)
        ));
    }
    if !wait_mounted(&c.mounts[i]) {
        return Err(format!(
            "node {} did not mount again after its restart",
            i + 1
        ));
    }
    Ok(Instant::now())
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
