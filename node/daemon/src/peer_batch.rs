//! A batch of records from peers, accepted on the verification pool: checked in jobs
//! of [`VERIFY_CHUNK`] on every core, then stored, in one transaction, by the pool
//! thread that finished the batch's last job, through the node's [`StoreLane`].
//!
//! Why storing happens on the pool: on two cores, a store thread of its own beside the
//! two verifying threads made three runnable threads. Every batch then woke the
//! waiting thread once per job and the scheduler shuffled three threads over two
//! cores, preempting verification (reschedule interrupts alone were 3% of a catch-up's
//! CPU). Now the caller sleeps until its batch is stored and the pool does all the work.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use lf_p2p::{Accepted, Rejected};
use lf_record::{OwnerKeys, Record};
use lf_store::PutOutcome;

use crate::node::{AcceptError, Node};

/// Records per verification job (about 15 ms of work here).
const VERIFY_CHUNK: usize = 32;

/// What a batch's caller gets back: one result per record given.
pub type Results = Vec<Result<Accepted, Rejected>>;

/// Results of the records that reached the verification jobs, by index in the batch.
type Indexed = Vec<(usize, Result<Accepted, Rejected>)>;

thread_local! {
    /// Each pool thread's decompressed owner keys, kept across jobs and batches
    /// (decompressing a P-384 key costs about a quarter of a verification).
    static KEYS: RefCell<OwnerKeys> = RefCell::default();
}

/// Runs store jobs one at a time without ever making a pool thread wait for another:
/// a job submitted while another runs is queued, and the thread running the lane runs
/// it next. Two batches finishing together on both cores would otherwise have one
/// core idle on the store lock.
#[derive(Default)]
pub struct StoreLane {
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    queue: VecDeque<Box<dyn FnOnce() + Send>>,
    running: bool,
}

impl StoreLane {
    /// Runs `job` now on this thread, or after the job running on another thread.
    /// A panicking job is logged and the lane goes on.
    pub fn run(&self, job: Box<dyn FnOnce() + Send>) {
        {
            let mut s = self.lock();
            s.queue.push_back(job);
            if s.running {
                return;
            }
            s.running = true;
        }
        loop {
            let next = {
                let mut s = self.lock();
                match s.queue.pop_front() {
                    Some(j) => j,
                    None => {
                        s.running = false;
                        return;
                    }
                }
            };
            if catch_unwind(AssertUnwindSafe(next)).is_err() {
                tracing::error!("a store job panicked");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Verification results of one job: its records and their checks (`None` if the job
/// panicked).
type Part = (Vec<(usize, Record)>, Option<Vec<Result<(), AcceptError>>>);

/// A batch on its way through the pool.
struct Batch {
    node: Arc<Node>,
    lane: Arc<StoreLane>,
    /// Results by job, in the batch's order.
    parts: Mutex<Vec<Option<Part>>>,
    /// Jobs not finished yet; the one that brings it to zero stores the batch.
    left: AtomicUsize,
    reply: Mutex<Option<mpsc::Sender<Indexed>>>,
}

/// Parses, verifies and stores `records` (blocking: call it off the async runtime).
pub fn accept(node: &Arc<Node>, lane: &Arc<StoreLane>, records: &[Vec<u8>]) -> Results {
    let mut results: Vec<Option<Result<Accepted, Rejected>>> = vec![None; records.len()];
    let mut todo: Vec<(usize, Record)> = Vec::new();
    for (i, b) in records.iter().enumerate() {
        match Record::from_bytes(b) {
            Err(e) => results[i] = Some(Err(Rejected::Invalid(e.to_string()))),
            Ok(r) => todo.push((i, r)),
        }
    }
    if !todo.is_empty() {
        let jobs = todo.len().div_ceil(VERIFY_CHUNK);
        let (tx, rx) = mpsc::channel();
        let batch = Arc::new(Batch {
            node: node.clone(),
            lane: lane.clone(),
            parts: Mutex::new((0..jobs).map(|_| None).collect()),
            left: AtomicUsize::new(jobs),
            reply: Mutex::new(Some(tx)),
        });
        let mut rest = todo.into_iter();
        for job in 0..jobs {
            let chunk: Vec<(usize, Record)> = rest.by_ref().take(VERIFY_CHUNK).collect();
            let batch = batch.clone();
            // FIFO on the one pool every batch in flight shares: the oldest batch is
            // finished, and stored, while the next ones are verified. Split over all
            // cores at once, the batches in flight finished together and then waited
            // for the store one after the other while the cores idled.
            rayon::spawn_fifo(move || verify_job(&batch, job, chunk));
        }
        drop(batch);
        // Dropped unanswered (a job died past its guards): the records are not stored.
        if let Ok(done) = rx.recv() {
            for (i, r) in done {
                results[i] = Some(r);
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Rejected::Unavailable("the node is stopping".into()))))
        .collect()
}

fn verify_job(batch: &Arc<Batch>, job: usize, chunk: Vec<(usize, Record)>) {
    let checked = catch_unwind(AssertUnwindSafe(|| {
        KEYS.with_borrow_mut(|keys| {
            chunk
                .iter()
                .map(|(_, r)| batch.node.check_with(r, keys))
                .collect::<Vec<_>>()
        })
    }))
    .ok();
    if checked.is_none() {
        tracing::error!("a verification job panicked");
    }
    lock(&batch.parts)[job] = Some((chunk, checked));
    if batch.left.fetch_sub(1, Ordering::AcqRel) == 1 {
        let b = batch.clone();
        batch.lane.run(Box::new(move || store(&b)));
    }
}

/// Sorts the verified records from the rest and stores them (on the lane).
fn store(batch: &Batch) {
    let Some(reply) = lock(&batch.reply).take() else {
        return;
    };
    let parts = std::mem::take(&mut *lock(&batch.parts));
    let node = &batch.node;
    let mut out = Vec::new();
    let mut valid: Vec<(usize, Record)> = Vec::new();
    for (chunk, checked) in parts.into_iter().flatten() {
        let checked = checked.unwrap_or_else(|| {
            let e = || lf_store::StoreError::Corrupt("verification job panicked".into());
            chunk.iter().map(|_| Err(AcceptError::Store(e()))).collect()
        });
        for ((i, r), c) in chunk.into_iter().zip(checked) {
            match c {
                Ok(()) => valid.push((i, r)),
                Err(AcceptError::Store(e)) => {
                    out.push((i, Err(Rejected::Unavailable(e.to_string()))));
                }
                // Not the sender's fault: this node may not have the certificate yet.
                // The record waits in limbo until a certificate for its owner arrives.
                Err(e @ AcceptError::NotCertified { .. }) => {
                    out.push((i, Err(Rejected::Unavailable(e.to_string()))));
                    node.hold_in_limbo(r);
                }
                Err(e) => out.push((i, Err(Rejected::Invalid(e.to_string())))),
            }
        }
    }
    if !valid.is_empty() {
        put(node, valid, &mut out);
    }
    let _ = reply.send(out);
}

/// Stores verified records in one batch. No "already stored?" lookup before
/// verifying: peers are only asked for hashes missing here, and the store reports the
/// rare duplicate anyway.
fn put(node: &Node, valid: Vec<(usize, Record)>, out: &mut Indexed) {
    let batch: Vec<Record> = valid.iter().map(|(_, r)| r.clone()).collect();
    match node.store.put_many(&batch) {
        Ok(outcomes) => {
            let mut added = false;
            for ((i, r), o) in valid.into_iter().zip(outcomes) {
                out.push((
                    i,
                    Ok(match o {
                        PutOutcome::Added { .. } => {
                            added = true;
                            Accepted::New {
                                links: r.links().to_vec(),
                            }
                        }
                        PutOutcome::Duplicate => Accepted::Duplicate,
                    }),
                ));
            }
            if added {
                node.generation.fetch_add(1, Ordering::Relaxed);
                node.external_generation.fetch_add(1, Ordering::Relaxed);
            }
            node.release_limbo(&batch);
            node.apply_amendments_in(&batch);
        }
        Err(e) => {
            tracing::error!("cannot store records from peers: {e}");
            for (i, _) in valid {
                out.push((i, Err(Rejected::Unavailable(e.to_string()))));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn lane_runs_jobs_one_at_a_time_in_order_and_survives_a_panic() {
        let lane = Arc::new(StoreLane::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let inside = Arc::new(AtomicBool::new(false));
        let overlap = Arc::new(AtomicBool::new(false));
        std::thread::scope(|s| {
            for t in 0..4 {
                let (lane, order) = (lane.clone(), order.clone());
                let (inside, overlap) = (inside.clone(), overlap.clone());
                s.spawn(move || {
                    for k in 0..50 {
                        let (order, inside) = (order.clone(), inside.clone());
                        let overlap = overlap.clone();
                        lane.run(Box::new(move || {
                            // (An assert here would be caught by the lane.)
                            if inside.swap(true, Ordering::SeqCst) {
                                overlap.store(true, Ordering::SeqCst);
                            }
                            std::thread::yield_now();
                            order.lock().unwrap().push((t, k));
                            inside.store(false, Ordering::SeqCst);
                            if k == 7 {
                                panic!("job panics");
                            }
                        }));
                    }
                });
            }
        });
        assert!(!overlap.load(Ordering::SeqCst), "two jobs ran at once");
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 200, "every job ran, also after panics");
        for t in 0..4 {
            let mine: Vec<usize> = order.iter().filter(|o| o.0 == t).map(|o| o.1).collect();
            assert_eq!(
                mine,
                (0..50).collect::<Vec<_>>(),
                "a thread's jobs run in order"
            );
        }
        assert!(!lane.lock().running, "the lane is idle again");
    }
}
