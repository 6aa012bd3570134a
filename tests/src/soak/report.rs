//! The soak's figures: process samples checked against the bounds, the minute lines
//! and the final table.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Shared;
use super::cluster::{self, DIAL_OUT_ONLY, NODES, Usage};
use super::ledger::{Milestone, percentiles};

/// Samples every node's process (skipping one being killed or restarted) and checks
/// the bounds, and that the dial-out-only node holds no inbound connection.
pub(super) fn sample(sh: &Shared) -> Result<(), String> {
    let b = sh.cfg.bounds;
    for i in 0..NODES {
        let Ok(node) = sh.cluster.nodes[i].try_read() else {
            continue;
        };
        if let Some(pid) = node.pid() {
            sh.pids[i].store(pid, Ordering::SeqCst);
        }
        let Some(u) = node.pid().and_then(cluster::usage) else {
            continue;
        };
        {
            let mut peak = sh.peak.lock().unwrap();
            let p = &mut peak[i];
            p.rss_kib = p.rss_kib.max(u.rss_kib);
            p.fds = p.fds.max(u.fds);
            p.threads = p.threads.max(u.threads);
            sh.last.lock().unwrap()[i] = u;
        }
        let name = format!("node {}", i + 1);
        if u.rss_kib > b.rss_mib * 1024 {
            return Err(format!(
                "memory bound: {name} RSS {} MiB > {} MiB",
                u.rss_kib / 1024,
                b.rss_mib
            ));
        }
        if u.fds > b.fds {
            return Err(format!(
                "fd bound: {name} has {} open fds > {}",
                u.fds, b.fds
            ));
        }
        if u.threads > b.threads {
            return Err(format!(
                "thread bound: {name} has {} threads > {}",
                u.threads, b.threads
            ));
        }
        if i == DIAL_OUT_ONLY && !sh.stopped() {
            let inbound = node.peers().iter().filter(|p| p.1).count();
            if inbound > 0 {
                return Err(format!(
                    "dial-out only: node {} (-max-inbound 0) holds {inbound} inbound connections",
                    i + 1
                ));
            }
        }
    }
    Ok(())
}

fn milestones(v: &[Milestone]) -> String {
    if v.is_empty() {
        return "none yet".into();
    }
    v.iter()
        .map(|m| match m.took {
            Some(d) => format!("n{} {:.1} s", m.node + 1, d.as_secs_f64()),
            None => format!("n{} waiting", m.node + 1),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn usage_line(u: &[Usage]) -> String {
    u.iter()
        .enumerate()
        .map(|(i, u)| {
            format!(
                "n{} {} MiB {} fds {} thr",
                i + 1,
                u.rss_kib / 1024,
                u.fds,
                u.threads
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn lost(sh: &Shared) -> usize {
    sh.lost.load(Ordering::SeqCst)
}

/// The lines printed every minute.
pub(super) fn minute(sh: &Shared) -> String {
    let l = sh.ledger();
    let (s, f, cs, cf) = l.kinds();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "[soak {:>2} min] acked {} (set {s}, file {f}, collision set {cs}, collision file {cf}) | \
         on every node {} | pending {} | lost {} | failed {} | refused {} | propagation \
         p50/p95/max {} ms (n={})",
        sh.start.elapsed().as_secs() / 60,
        l.acked_count(),
        l.everywhere(),
        l.pending_count(),
        lost(sh),
        l.failed,
        l.refused,
        percentiles(l.propagation()),
        l.propagation().len()
    );
    let _ = writeln!(
        out,
        "            heals: {} | restarts: {}",
        milestones(&l.heals),
        milestones(&l.restarts)
    );
    let _ = write!(out, "            {}", usage_line(&sh.last.lock().unwrap()));
    out
}

fn max_took(v: &[Milestone]) -> String {
    let done: Vec<Duration> = v.iter().filter_map(|m| m.took).collect();
    let open = v.len() - done.len();
    let worst = done
        .iter()
        .max()
        .map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()));
    format!(
        "{} (max {worst}{})",
        milestones(v),
        if open > 0 {
            format!(", {open} not done")
        } else {
            String::new()
        }
    )
}

/// The final table (markdown).
pub(super) fn table(sh: &Shared) -> String {
    let l = sh.ledger();
    let (s, f, cs, cf) = l.kinds();
    let (fwd, dropped) = sh.cluster.bed.stats();
    let mut t = String::new();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(t, "| {k} | {v} |");
    };
    row("figure", "value".into());
    row("---", "---".into());
    row(
        "ran",
        format!(
            "{:.0} s ({} s of writes)",
            sh.start.elapsed().as_secs_f64(),
            sh.cfg.duration.as_secs()
        ),
    );
    row(
        "acknowledged writes",
        format!(
            "{} (lf set {s}, files {f}, collision keys {cs}, collision files {cf})",
            l.acked_count()
        ),
    );
    row("on every node", l.everywhere().to_string());
    row("lost (past the deadline)", lost(sh).to_string());
    row("still pending at the end", l.pending_count().to_string());
    row(
        "failed writes (not acknowledged)",
        format!(
            "{}{}",
            l.failed,
            l.last_failure
                .as_ref()
                .map_or(String::new(), |e| format!(", last: {e}"))
        ),
    );
    row(
        "collision files refused (another owner's version already there)",
        l.refused.to_string(),
    );
    row(
        "propagation to another node, p50 / p95 / max ms",
        format!(
            "{} (n={}, both ends undisturbed)",
            percentiles(l.propagation()),
            l.propagation().len()
        ),
    );
    row("convergence after each heal", max_took(&l.heals));
    row("catch-up after each restart", max_took(&l.restarts));
    row(
        "link frames forwarded / dropped",
        format!("{fwd} / {dropped}"),
    );
    let last = sh.last.lock().unwrap();
    let peak = sh.peak.lock().unwrap();
    for i in 0..NODES {
        row(
            &format!(
                "node {} RSS MiB / fds / threads: last (peak){}",
                i + 1,
                if i == DIAL_OUT_ONLY {
                    ", dial-out only"
                } else if i < 2 {
                    ", fleet"
                } else {
                    ""
                }
            ),
            format!(
                "{} / {} / {} ({} / {} / {})",
                last[i].rss_kib / 1024,
                last[i].fds,
                last[i].threads,
                peak[i].rss_kib / 1024,
                peak[i].fds,
                peak[i].threads
            ),
        );
    }
    row(
        "bounds per node",
        format!(
            "RSS {} MiB, {} fds, {} threads",
            sh.cfg.bounds.rss_mib, sh.cfg.bounds.fds, sh.cfg.bounds.threads
        ),
    );
    row(
        "result",
        match sh.violation.lock().unwrap().as_ref() {
            Some(v) => format!("FAILED: {v}"),
            None if sh.writers.load(Ordering::SeqCst) == 0 && l.pending_count() == 0 => {
                "passed: every acknowledged write on every node, within bounds".into()
            }
            None => "stopped early".into(),
        },
    );
    t
}
