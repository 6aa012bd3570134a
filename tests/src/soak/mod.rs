//! The soak (issue 19): five `lf node-start` processes in network namespaces (the bed
//! of [`crate::Bed`]), each with a mount, written everywhere for a while through their
//! mounts and `lf set`, with a partition and a `kill -9` + restart every few minutes,
//! while every acknowledged write is followed until every node shows it.
//!
//! Run by `contrib/soak/soak.sh` (the example `soak`, 30 minutes by default) and by
//! `tests/tests/soak_short.rs` (2 minutes, in CI). See `contrib/soak/README.md`.
//!
//! Threads: one writer per node (alternating a unique `lf set`, a unique file and,
//! once per round, the round's collision key and file), one prober per node (asks
//! its node for the writes it has not shown yet), one for the schedule of cuts and
//! kills; the caller's thread checks deadlines and bounds each second and prints the
//! table each minute. The first violated invariant stops the run: [`run`] returns it.

mod cluster;
mod ledger;
mod report;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cluster::{Cluster, FileWrite, NODES, Usage};
use ledger::{Kind, Ledger};

/// What the soak does and the bounds it holds the nodes to.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long writes, cuts and kills go on (then the soak waits for the last writes
    /// to arrive, at most `deadline`).
    pub duration: Duration,
    /// A partition or a kill -9 + restart every this often, alternating (partition
    /// first), each on the next node in turn.
    pub event_every: Duration,
    /// How long a partition lasts.
    pub cut_for: Duration,
    /// How long a killed node stays down before its restart.
    pub down_for: Duration,
    /// An acknowledged write must be on every node this long after it was
    /// acknowledged, or after the heal or restart of either end if one was cut off or
    /// down in between.
    pub deadline: Duration,
    /// Pause of each writer between two writes.
    pub write_pause: Duration,
    /// A new collision round (key and file every node writes once) this often.
    pub round: Duration,
    /// A write or a probe that has not returned after this long is a hang (a kill -9
    /// holds the node's writer and prober for `down_for` plus the restart: longer).
    pub hang: Duration,
    /// Table every this often.
    pub report_every: Duration,
    /// Link: delay of every frame each way (ms).
    pub delay_ms: u32,
    /// Link: share of frames lost (%).
    pub loss: f64,
    /// Bounds on every node's process, checked every few seconds.
    pub bounds: Bounds,
}

/// Bounds on each node process. Why these figures: see `contrib/soak/README.md`
/// ("Bounds"); in short, several times what a node uses in this soak, so that a leak
/// (memory, descriptors or threads growing with writes, peers or restarts) trips them
/// in 30 minutes, while the normal spread (debug build, SQLite cache filling) does not.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Resident memory (MiB).
    pub rss_mib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Threads.
    pub threads: u64,
}

impl Config {
    /// The 30-minute soak: a partition or a kill every 2 minutes (each every
    /// 4 minutes), 50 ms RTT and 1 % loss.
    pub fn long(duration: Duration) -> Config {
        Config {
            duration,
            event_every: Duration::from_secs(120),
            cut_for: Duration::from_secs(30),
            down_for: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
            write_pause: Duration::from_millis(400),
            round: Duration::from_secs(20),
            report_every: Duration::from_secs(60),
            hang: Duration::from_secs(120),
            delay_ms: 25,
            loss: 1.0,
            bounds: Bounds {
                rss_mib: 512,
                fds: 256,
                threads: 128,
            },
        }
    }

    /// The 2-minute form (CI): a partition at 30 s, a kill at 70 s, the bounds and
    /// deadline loose enough for a loaded 2-core machine and a debug build.
    pub fn short() -> Config {
        Config {
            event_every: Duration::from_secs(35),
            cut_for: Duration::from_secs(15),
            down_for: Duration::from_secs(5),
            deadline: Duration::from_secs(90),
            report_every: Duration::from_secs(60),
            ..Config::long(Duration::from_secs(120))
        }
    }
}

/// What a finished run measured.
#[derive(Debug)]
pub struct Outcome {
    /// The final table (markdown).
    pub table: String,
    /// The first violated invariant, if any.
    pub violation: Option<String>,
}

/// The state the threads share.
struct Shared<'a> {
    cfg: &'a Config,
    cluster: &'a Cluster,
    ledger: Mutex<Ledger>,
    start: Instant,
    /// Writers stop.
    writes_done: AtomicBool,
    /// Everything stops.
    stop: AtomicBool,
    next_id: AtomicU64,
    /// Writers still running (a write may be in flight after `writes_done`).
    writers: AtomicUsize,
    /// Per writer (0..NODES) and prober (NODES..): when its current operation began
    /// (ms since `start`, plus 1), 0 when idle; a hung mount or API shows here.
    busy: Vec<AtomicU64>,
    /// Each node's process ID at the last sample (to kill a hung node without its lock).
    pids: Vec<AtomicU32>,
    /// Writes found past their deadline (the run stops at the first check finding any).
    lost: AtomicUsize,
    violation: Mutex<Option<String>>,
    /// Largest figures seen per node.
    peak: Mutex<Vec<Usage>>,
    last: Mutex<Vec<Usage>>,
    events: Mutex<Vec<String>>,
}

impl Shared<'_> {
    fn violate(&self, what: String) {
        let mut v = self.violation.lock().unwrap();
        if v.is_none() {
            println!("[soak] INVARIANT VIOLATED: {what}");
            *v = Some(what);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Thread `slot` begins an operation (`true`) or is idle again.
    fn busy(&self, slot: usize, busy: bool) {
        let v = if busy {
            self.start.elapsed().as_millis() as u64 + 1
        } else {
            0
        };
        self.busy[slot].store(v, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, what: String) {
        let line = format!("{:>5} s  {what}", self.start.elapsed().as_secs());
        println!("[soak] {line}");
        self.events.lock().unwrap().push(line);
    }

    /// Sleeps `d` in small steps; false if the run stopped meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stopped() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
        }
        !self.stopped()
    }
}

/// Runs the soak in `dir` (node homes, mount points); prints a line per event, the
/// table every `report_every` and at the end.
pub fn run(cfg: &Config, dir: &Path) -> Outcome {
    println!(
        "[soak] {} nodes, {} ms RTT, {} % loss, {} s of writes; a partition ({} s) or a \
         kill -9 ({} s down) every {} s; deadline {} s; bounds per node: RSS {} MiB, \
         {} fds, {} threads",
        NODES,
        2 * cfg.delay_ms,
        cfg.loss,
        cfg.duration.as_secs(),
        cfg.cut_for.as_secs(),
        cfg.down_for.as_secs(),
        cfg.event_every.as_secs(),
        cfg.deadline.as_secs(),
        cfg.bounds.rss_mib,
        cfg.bounds.fds,
        cfg.bounds.threads
    );
    let cluster = match cluster::start(dir, cfg.delay_ms, cfg.loss) {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                table: String::new(),
                violation: Some(format!("setup: {e}")),
            };
        }
    };
    let start = Instant::now();
    let sh = Shared {
        cfg,
        cluster: &cluster,
        ledger: Mutex::new(Ledger::new(NODES, start)),
        start,
        writes_done: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        writers: AtomicUsize::new(NODES),
        lost: AtomicUsize::new(0),
        busy: (0..2 * NODES).map(|_| AtomicU64::new(0)).collect(),
        pids: (0..NODES).map(|_| AtomicU32::new(0)).collect(),
        violation: Mutex::new(None),
        peak: Mutex::new(vec![Usage::default(); NODES]),
        last: Mutex::new(vec![Usage::default(); NODES]),
        events: Mutex::new(Vec::new()),
    };
    std::thread::scope(|s| {
        for i in 0..NODES {
            let sh = &sh;
            s.spawn(move || writer(sh, i));
            s.spawn(move || prober(sh, i));
        }
        let schedule = s.spawn(|| schedule(&sh));
        watch(&sh, &schedule);
        sh.stop.store(true, Ordering::SeqCst);
    });
    let table = report::table(&sh);
    println!("{table}");
    let violation = sh.violation.lock().unwrap().clone();
    if violation.is_some() {
        for (i, n) in cluster.nodes.iter().enumerate() {
            let n = n.read().unwrap_or_else(|p| p.into_inner());
            println!(
                "[soak] node {} log (last lines):\n{}",
                i + 1,
                cluster::tail(&n.output(), 15)
            );
        }
    }
    Outcome { table, violation }
}

/// One node's writes: a unique `lf set`, a unique file, and once per round the
/// round's collision key and file.
fn writer(sh: &Shared, i: usize) {
    let mut seq = 0u64;
    let mut last_round = u64::MAX;
    while !sh.stopped() && !sh.writes_done.load(Ordering::SeqCst) {
        seq += 1;
        let round = sh.start.elapsed().as_secs() / sh.cfg.round.as_secs().max(1);
        sh.busy(i, true);
        // The node's lock: a kill -9 waits for the write in flight, and no write is
        // tried while the node is down.
        let node = sh.cluster.nodes[i]
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mount = &sh.cluster.mounts[i];
        let id = sh.next_id.fetch_add(1, Ordering::SeqCst);
        let r = cluster::set(&node, &format!("kv#{id}"), &format!("w{id}"));
        note(sh, i, r.map(|_| Kind::Set { id }));
        let name = format!("f{}-{seq}.txt", i + 1);
        let content = format!(
            "written on node {} as write {seq} at {:?}\n",
            i + 1,
            Instant::now()
        );
        note_file(sh, i, &mount.join(&name), Kind::File { name, content });
        if round != last_round {
            last_round = round;
            let key = format!("clash#{round}");
            let r = cluster::set(&node, &key, &format!("round {round} node {}", i + 1));
            note(sh, i, r.map(|hash| Kind::ClashSet { key, hash }));
            let name = format!("c{round}.txt");
            // A size unique per writer in the round ("." * node).
            let content = format!(
                "round {round}, written on node {}{}\n",
                i + 1,
                ".".repeat(i + 1)
            );
            note_file(sh, i, &mount.join(&name), Kind::ClashFile { name, content });
        }
        drop(node);
        sh.busy(i, false);
        sh.sleep(sh.cfg.write_pause);
    }
    sh.writers.fetch_sub(1, Ordering::SeqCst);
}

fn note(sh: &Shared, i: usize, r: Result<Kind, String>) {
    let mut l = sh.ledger();
    match r {
        Ok(kind) => l.acked(i, kind, Instant::now()),
        Err(e) => {
            l.failed += 1;
            l.last_failure = Some(format!("node {}: {e}", i + 1));
        }
    }
}

fn note_file(sh: &Shared, i: usize, path: &Path, kind: Kind) {
    let content = match &kind {
        Kind::File { content, .. } | Kind::ClashFile { content, .. } => content.clone(),
        _ => unreachable!("files only"),
    };
    match cluster::write_file(path, &content) {
        FileWrite::Acked => sh.ledger().acked(i, kind, Instant::now()),
        FileWrite::Refused => sh.ledger().refused += 1,
        FileWrite::Failed(e) => note(sh, i, Err(e)),
    }
}

/// Asks node `i` for the writes it has not shown yet, over and over.
fn prober(sh: &Shared, i: usize) {
    let mut cycle = 0u64;
    while !sh.stopped() {
        cycle += 1;
        let pending = sh.ledger().pending_on(i);
        sh.busy(NODES + i, true);
        let node = sh.cluster.nodes[i]
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mount = &sh.cluster.mounts[i];
        let mut seen: Vec<(usize, Instant)> = Vec::new();
        let ids: Vec<u64> = pending
            .iter()
            .filter_map(|(_, k)| match k {
                Kind::Set { id } => Some(*id),
                _ => None,
            })
            .collect();
        if let (Some(&lo), Some(&hi)) = (ids.iter().min(), ids.iter().max())
            && let Some(values) = cluster::set_values(&node, lo, hi)
        {
            let now = Instant::now();
            for (w, k) in &pending {
                if let Kind::Set { id } = k
                    && values.contains(&format!("w{id}"))
                {
                    seen.push((*w, now));
                }
            }
        }
        for (w, k) in &pending {
            match k {
                Kind::File { name, content } if cluster::file_is(&mount.join(name), content) => {
                    seen.push((*w, Instant::now()));
                }
                // Collisions are asked less often (one `lf history` each).
                Kind::ClashSet { key, hash }
                    if cycle.is_multiple_of(4)
                        && cluster::history(&node, key)
                            .is_some_and(|v| v.iter().any(|x| x.0 == *hash)) =>
                {
                    seen.push((*w, Instant::now()));
                }
                Kind::ClashFile { name, content } if cycle.is_multiple_of(4) => {
                    let path = mount.join(name);
                    let here = cluster::file_is(&path, content)
                        || cluster::history(&node, &path.to_string_lossy()).is_some_and(|v| {
                            v.iter()
                                .any(|x| x.2 == "file" && x.1 == content.len() as u64)
                        });
                    if here {
                        seen.push((*w, Instant::now()));
                    }
                }
                _ => {}
            }
        }
        drop(node);
        sh.busy(NODES + i, false);
        if !seen.is_empty() {
            let mut l = sh.ledger();
            for (w, at) in seen {
                l.seen(w, i, at);
            }
        }
        sh.sleep(Duration::from_millis(100));
    }
}

/// Partitions and kills, alternating, each on the next node in turn.
fn schedule(sh: &Shared) {
    // Partition victims and kill victims, in turn (node 5, the dial-out-only one, in
    // both: it must find its way back by itself).
    const CUT: [usize; NODES] = [3, 4, 1, 2, 0];
    const KILL: [usize; NODES] = [1, 4, 2, 0, 3];
    let mut k = 0usize;
    loop {
        let at = sh.cfg.event_every * (k as u32 + 1);
        let wait = at.saturating_sub(sh.start.elapsed());
        if sh.start.elapsed() + wait + sh.cfg.cut_for.max(sh.cfg.down_for) >= sh.cfg.duration
            || !sh.sleep(wait)
        {
            return;
        }
        if k.is_multiple_of(2) {
            let n = CUT[(k / 2) % NODES];
            sh.ledger().impair(n);
            sh.cluster.bed.cut(n);
            sh.event(format!(
                "node {} cut off for {} s",
                n + 1,
                sh.cfg.cut_for.as_secs()
            ));
            let completed = sh.sleep(sh.cfg.cut_for);
            sh.cluster.bed.heal(n);
            sh.ledger().recover(n, Instant::now(), true);
            sh.event(format!("node {} healed", n + 1));
            if !completed {
                return;
            }
        } else {
            let n = KILL[(k / 2) % NODES];
            sh.ledger().impair(n);
            sh.event(format!(
                "node {} kill -9, {} s down",
                n + 1,
                sh.cfg.down_for.as_secs()
            ));
            match cluster::kill_and_restart(sh.cluster, n, sh.cfg.down_for) {
                Ok(at) => {
                    sh.ledger().recover(n, at, false);
                    sh.event(format!("node {} serving and mounted again", n + 1));
                }
                Err(e) => {
                    sh.violate(format!("restart: {e}"));
                    return;
                }
            }
        }
        k += 1;
    }
}

/// A writer or prober inside one operation for longer than `cfg.hang`: its mount or
/// its node's API does not answer.
fn hung(sh: &Shared, now: Instant) -> Option<String> {
    let t = now.saturating_duration_since(sh.start).as_millis() as u64;
    let limit = sh.cfg.hang.as_millis() as u64;
    sh.busy.iter().enumerate().find_map(|(slot, b)| {
        let since = b.load(Ordering::SeqCst);
        (since != 0 && t.saturating_sub(since - 1) > limit).then(|| {
            let (who, node) = if slot < NODES {
                ("writer", slot)
            } else {
                ("prober", slot - NODES)
            };
            format!(
                "hung: node {}'s {who} has waited {} s for one operation (its mount or its \
                 HTTP API does not answer)",
                node + 1,
                (t - (since - 1)) / 1000
            )
        })
    })
}

/// The caller's loop: deadlines, bounds, the minute table, the end.
fn watch(sh: &Shared, schedule: &std::thread::ScopedJoinHandle<'_, ()>) {
    let mut next_report = sh.cfg.report_every;
    let mut next_sample = Duration::ZERO;
    let mut drain_from: Option<Instant> = None;
    while !sh.stopped() {
        std::thread::sleep(Duration::from_millis(250));
        let now = Instant::now();
        let t = sh.start.elapsed();
        {
            let mut l = sh.ledger();
            l.settle(now);
            let late = l.overdue(now, sh.cfg.deadline);
            if let Some((n, w, what, age)) = late.first() {
                sh.lost.store(late.len(), Ordering::SeqCst);
                let what = format!(
                    "lost write: {what}, acknowledged on node {} {age} s ago, not on node {} \
                     within the deadline of {} s ({} such writes)",
                    w + 1,
                    n + 1,
                    sh.cfg.deadline.as_secs(),
                    late.len()
                );
                drop(l);
                sh.violate(what);
                break;
            }
        }
        if let Some(what) = hung(sh, now) {
            sh.violate(what);
            // Killing the nodes (by the IDs sampled last) ends their FUSE connections:
            // the stuck operations return and the threads can be joined.
            for p in &sh.pids {
                let pid = p.load(Ordering::SeqCst);
                if pid != 0 {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
            break;
        }
        if t >= next_sample {
            next_sample = t + Duration::from_secs(5);
            if let Err(e) = report::sample(sh) {
                sh.violate(e);
                break;
            }
        }
        if t >= next_report {
            next_report += sh.cfg.report_every;
            println!("{}", report::minute(sh));
        }
        if t >= sh.cfg.duration && !sh.writes_done.swap(true, Ordering::SeqCst) {
            sh.event("writes stop; waiting for every write to reach every node".into());
        }
        if sh.writes_done.load(Ordering::SeqCst)
            && sh.writers.load(Ordering::SeqCst) == 0
            && schedule.is_finished()
        {
            let l = sh.ledger();
            let from = *drain_from.get_or_insert(now);
            if l.pending_count() == 0 && !l.any_impaired() {
                drop(l);
                sh.event(format!(
                    "every write on every node, {:.1} s after the writes stopped",
                    now.saturating_duration_since(from).as_secs_f64()
                ));
                break;
            }
        }
    }
    let _ = report::sample(sh);
}
