//! What the soak wrote and what each node has shown of it: the acknowledged writes,
//! which nodes have each one, the deadline by which every node must have it, and the
//! figures of the table (propagation, convergence after a heal, catch-up after a
//! restart). Pure bookkeeping, no I/O: the probes live in `super::cluster`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// One acknowledged write and how to recognise it on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `lf set kv#<id> w<id>`: a key only this write uses.
    Set { id: u64 },
    /// A file only this write uses, written, fsync'd and closed on the writer's mount.
    File { name: String, content: String },
    /// `lf set clash#<round>`, which every node writes once per round (owners collide):
    /// recognised by its record hash in `lf history`.
    ClashSet { key: String, hash: String },
    /// `c<round>.txt`, which every mount writes once per round: recognised by content
    /// under the plain name or, when another version won, by its size (unique per
    /// writer and round) among the versions `lf history` lists.
    ClashFile { name: String, content: String },
}

impl Kind {
    /// Short label for reports.
    pub fn label(&self) -> String {
        match self {
            Kind::Set { id } => format!("lf set kv#{id}"),
            Kind::File { name, .. } => format!("file {name}"),
            Kind::ClashSet { key, hash } => format!("lf set {key} (record {hash})"),
            Kind::ClashFile { name, .. } => format!("file {name} (collision)"),
        }
    }
}

#[derive(Debug)]
struct Write {
    writer: usize,
    kind: Kind,
    acked: Instant,
    seen: Vec<Option<Instant>>,
}

/// A heal or a restart and how long until it was made good.
#[derive(Debug, Clone)]
pub struct Milestone {
    /// Node (0-based).
    pub node: usize,
    /// When the node was reconnected (heal) or serving again (restart).
    pub at: Instant,
    /// Time from `at` until every write acknowledged before it was on every node
    /// (heal) or on this node (restart).
    pub took: Option<Duration>,
}

/// The writes and their state on every node.
#[derive(Debug)]
pub struct Ledger {
    nodes: usize,
    writes: Vec<Write>,
    /// Per node, the writes it has not shown yet.
    pending: Vec<BTreeSet<usize>>,
    impaired: Vec<bool>,
    recovered: Vec<Instant>,
    /// Write to a node, for writes neither of whose ends was cut or down in between.
    propagation: Vec<Duration>,
    /// Heals and restarts.
    pub heals: Vec<Milestone>,
    pub restarts: Vec<Milestone>,
    /// Writes that returned an error (not acknowledged: not owed to anyone).
    pub failed: u64,
    /// Collision writes a mount refused because another owner's version had arrived
    /// first (EACCES / EEXIST: LFFS's rule, not a failure).
    pub refused: u64,
    /// Last error of a failed write, for the report.
    pub last_failure: Option<String>,
}

impl Ledger {
    /// A ledger for `nodes` nodes, all healthy since `start`.
    pub fn new(nodes: usize, start: Instant) -> Ledger {
        Ledger {
            nodes,
            writes: Vec::new(),
            pending: vec![BTreeSet::new(); nodes],
            impaired: vec![false; nodes],
            recovered: vec![start; nodes],
            propagation: Vec::new(),
            heals: Vec::new(),
            restarts: Vec::new(),
            failed: 0,
            refused: 0,
            last_failure: None,
        }
    }

    /// Records an acknowledged write on `writer` (it holds it: seen there too only
    /// once a probe shows it, so a write lost by its own node counts as lost).
    pub fn acked(&mut self, writer: usize, kind: Kind, at: Instant) {
        let i = self.writes.len();
        self.writes.push(Write {
            writer,
            kind,
            acked: at,
            seen: vec![None; self.nodes],
        });
        for p in &mut self.pending {
            p.insert(i);
        }
    }

    /// The writes node `node` has not shown yet: (index, kind).
    pub fn pending_on(&self, node: usize) -> Vec<(usize, Kind)> {
        self.pending[node]
            .iter()
            .map(|&i| (i, self.writes[i].kind.clone()))
            .collect()
    }

    /// Write `i` seen on `node` at `at`.
    pub fn seen(&mut self, i: usize, node: usize, at: Instant) {
        if !self.pending[node].remove(&i) {
            return;
        }
        let w = &mut self.writes[i];
        w.seen[node] = Some(at);
        let clean = |n: usize| !self.impaired[n] && self.recovered[n] <= w.acked;
        if node != w.writer && clean(node) && clean(w.writer) {
            self.propagation.push(at.saturating_duration_since(w.acked));
        }
    }

    /// Node `node` is cut off or killed from now on.
    pub fn impair(&mut self, node: usize) {
        self.impaired[node] = true;
    }

    /// Node `node` is reachable again at `at` (`heal` true: after a cut, else a restart).
    pub fn recover(&mut self, node: usize, at: Instant, heal: bool) {
        self.impaired[node] = false;
        self.recovered[node] = at;
        let m = Milestone {
            node,
            at,
            took: None,
        };
        if heal {
            self.heals.push(m);
        } else {
            self.restarts.push(m);
        }
    }

    /// Whether any node is cut off or down now.
    pub fn any_impaired(&self) -> bool {
        self.impaired.iter().any(|&x| x)
    }

    /// The writes past their deadline: acknowledged at `acked`, a write must be on
    /// node `n` by `max(acked, recovery of its writer, recovery of n) + deadline`
    /// (no deadline runs while either end is cut off or down). Returns
    /// (node, writer, what, seconds since the acknowledgement).
    pub fn overdue(&self, now: Instant, deadline: Duration) -> Vec<(usize, usize, String, u64)> {
        let mut out = Vec::new();
        for (n, p) in self.pending.iter().enumerate() {
            for &i in p {
                let w = &self.writes[i];
                if self.impaired[n] || self.impaired[w.writer] {
                    continue;
                }
                let from = w.acked.max(self.recovered[n]).max(self.recovered[w.writer]);
                if now > from + deadline {
                    out.push((
                        n,
                        w.writer,
                        w.kind.label(),
                        now.saturating_duration_since(w.acked).as_secs(),
                    ));
                }
            }
        }
        out
    }

    /// Closes the heals and restarts whose writes have all arrived.
    pub fn settle(&mut self, now: Instant) {
        let writes = &self.writes;
        let pending = &self.pending;
        let before = |n: usize, at: Instant| pending[n].iter().any(|&i| writes[i].acked <= at);
        for m in self.heals.iter_mut().filter(|m| m.took.is_none()) {
            if !(0..self.nodes).any(|n| before(n, m.at)) {
                m.took = Some(now.saturating_duration_since(m.at));
            }
        }
        for m in self.restarts.iter_mut().filter(|m| m.took.is_none()) {
            if !before(m.node, m.at) {
                m.took = Some(now.saturating_duration_since(m.at));
            }
        }
    }

    /// Acknowledged writes.
    pub fn acked_count(&self) -> usize {
        self.writes.len()
    }

    /// Acknowledged writes of each kind: (set, file, collision set, collision file).
    pub fn kinds(&self) -> (usize, usize, usize, usize) {
        let mut k = (0, 0, 0, 0);
        for w in &self.writes {
            match w.kind {
                Kind::Set { .. } => k.0 += 1,
                Kind::File { .. } => k.1 += 1,
                Kind::ClashSet { .. } => k.2 += 1,
                Kind::ClashFile { .. } => k.3 += 1,
            }
        }
        k
    }

    /// Writes every node has shown.
    pub fn everywhere(&self) -> usize {
        self.writes
            .iter()
            .filter(|w| w.seen.iter().all(Option::is_some))
            .count()
    }

    /// Writes still missing on some node.
    pub fn pending_count(&self) -> usize {
        self.writes.len() - self.everywhere()
    }

    /// Propagation samples (write to another node).
    pub fn propagation(&self) -> &[Duration] {
        &self.propagation
    }
}

/// p50 / p95 / max of `v` in milliseconds, or "-".
pub fn percentiles(v: &[Duration]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut v = v.to_vec();
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_millis();
    format!(
        "{} / {} / {}",
        at(0.5),
        at(0.95),
        v[v.len() - 1].as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_overdue_only_after_its_deadline_and_not_while_an_end_is_cut() {
        let t0 = Instant::now();
        let mut l = Ledger::new(3, t0);
        l.acked(0, Kind::Set { id: 1 }, t0);
        l.seen(0, 0, t0);
        l.seen(0, 1, t0 + Duration::from_millis(100));
        let d = Duration::from_secs(10);
        assert!(l.overdue(t0 + Duration::from_secs(5), d).is_empty());
        let late = l.overdue(t0 + Duration::from_secs(11), d);
        assert_eq!(late.len(), 1);
        assert_eq!((late[0].0, late[0].1), (2, 0));
        // Node 2 cut off: no deadline runs; healed at 20 s: 10 s from then.
        l.impair(2);
        assert!(l.overdue(t0 + Duration::from_secs(15), d).is_empty());
        l.recover(2, t0 + Duration::from_secs(20), true);
        assert!(l.overdue(t0 + Duration::from_secs(29), d).is_empty());
        assert_eq!(l.overdue(t0 + Duration::from_secs(31), d).len(), 1);
        l.seen(0, 2, t0 + Duration::from_secs(22));
        l.settle(t0 + Duration::from_secs(22));
        assert_eq!(l.heals[0].took, Some(Duration::from_secs(2)));
        assert_eq!(l.everywhere(), 1);
        // Only the clean delivery counts as a propagation sample.
        assert_eq!(l.propagation(), &[Duration::from_millis(100)]);
    }

    #[test]
    fn a_restart_is_caught_up_when_the_writes_before_it_arrived_there() {
        let t0 = Instant::now();
        let mut l = Ledger::new(2, t0);
        l.impair(1);
        l.acked(0, Kind::Set { id: 7 }, t0 + Duration::from_secs(1));
        l.seen(0, 0, t0 + Duration::from_secs(1));
        l.recover(1, t0 + Duration::from_secs(5), false);
        l.acked(0, Kind::Set { id: 8 }, t0 + Duration::from_secs(6));
        l.settle(t0 + Duration::from_secs(6));
        assert_eq!(l.restarts[0].took, None);
        l.seen(0, 1, t0 + Duration::from_secs(7));
        l.settle(t0 + Duration::from_secs(7));
        // Write 8 (after the restart) is not waited for.
        assert_eq!(l.restarts[0].took, Some(Duration::from_secs(2)));
        assert_eq!(percentiles(&[]), "-");
    }
}
