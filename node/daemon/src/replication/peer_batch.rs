//! A batch of records from peers, accepted on the verification pool: checked in jobs
//! of [`VERIFY_CHUNK`] on every core, then stored, in one transaction, by the pool
//! thread that finished the batch's last job, through the replication source's
//! [`StoreLane`]. The caller sleeps until its batch is stored, then releases the
//! records its certificates free from limbo and applies its genesis amendments.
//!
//! Why storing happens on the pool rather than on a thread of its own: on two cores a
//! third runnable thread beside the two verifying ones is preempted and preempts them,
//! and a batch that woke its waiting thread once per job made the scheduler shuffle
//! three threads over two cores (reschedule interrupts alone were 3% of a catch-up's
//! CPU).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use lf_p2p::{Accepted, Rejected};
use lf_record::{OwnerKeys, Record};
use lf_store::PutOutcome;

use crate::node::{AcceptError, Node, Origin};

/// Records per verification job (about 15 ms of work here).
const VERIFY_CHUNK: usize = 32;

/// What a batch's caller gets back: one result per record given.
pub type Results = Vec<Result<Accepted, Rejected>>;

/// Results of the records that reached the verification jobs, by index in the batch.
type Indexed = Vec<(usize, Result<Accepted, Rejected>)>;

/// What the store job sends back: the results and the records it stored.
type Reply = (Indexed, Vec<Record>);

thread_local! {
    /// Each pool thread's decompressed owner keys, kept across jobs and batches
    /// (decompressing a P-384 key costs about a quarter of a verification).
    static KEYS: RefCell<OwnerKeys> = RefCell::default();
}

/// Runs store jobs one at a time without making a pool thread wait for another store job:
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
        lock(&self.state)
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
    reply: mpsc::Sender<Reply>,
}

/// Parses, verifies and stores `records`. Blocking: call it off the async runtime, and
/// never from a rayon pool thread (it waits for jobs queued on that pool).
pub fn accept(node: &Arc<Node>, lane: &Arc<StoreLane>, records: &[Vec<u8>]) -> Results {
    debug_assert!(
        rayon::current_thread_index().is_none(),
        "peer_batch::accept called on the pool it waits for"
    );
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
            reply: tx,
        });
        let mut rest = todo.into_iter();
        for job in 0..jobs {
            let chunk: Vec<(usize, Record)> = rest.by_ref().take(VERIFY_CHUNK).collect();
            let batch = batch.clone();
            // FIFO on the one pool every batch in flight shares: the oldest batch is
            // finished, and stored, while the next ones are verified. Were the jobs of
            // all batches in flight interleaved, those batches would finish together
            // and then wait for the store one after the other while the cores idle.
            rayon::spawn_fifo(move || verify_job(&batch, job, chunk));
        }
        drop(batch);
        // No reply only if the store job panicked (the lane logged it): the batch is
        // reported unavailable, and its sender offers it again.
        if let Ok((done, stored)) = rx.recv() {
            for (i, r) in done {
                results[i] = Some(r);
            }
            // Here rather than on the lane: a released limbo is verified and stored
            // record by record, and later batches need not wait behind it.
            node.after_stored(&stored);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Rejected::Unavailable("storing the batch failed".into()))))
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
                // Not verified (limbo is full): neither held nor the sender's fault.
                Err(e @ AcceptError::LimboFull { .. }) => {
                    out.push((i, Err(Rejected::Unavailable(e.to_string()))));
                }
                // The sender's clock may be ahead of ours: offered again later.
                Err(e @ AcceptError::Record(lf_record::RecordError::FromTheFuture { .. })) => {
                    out.push((i, Err(Rejected::Unavailable(e.to_string()))));
                }
                Err(e) => out.push((i, Err(Rejected::Invalid(e.to_string())))),
            }
        }
    }
    let stored = if valid.is_empty() {
        Vec::new()
    } else {
        put(node, valid, &mut out)
    };
    let _ = batch.reply.send((out, stored));
}

/// Stores verified records in one batch and returns them (none if storing failed). No
/// "already stored?" lookup before verifying: peers are only asked for hashes missing
/// here, and the store reports the rare duplicate anyway.
fn put(node: &Node, valid: Vec<(usize, Record)>, out: &mut Indexed) -> Vec<Record> {
    let batch: Vec<Record> = valid.iter().map(|(_, r)| r.clone()).collect();
    match node.put_verified(&batch, Origin::Peer) {
        Ok(outcomes) => {
            for ((i, r), o) in valid.into_iter().zip(outcomes) {
                out.push((
                    i,
                    Ok(match o {
                        PutOutcome::Added { .. } => Accepted::New {
                            links: r.links().to_vec(),
                        },
                        PutOutcome::Duplicate => Accepted::Duplicate,
                    }),
                ));
            }
            batch
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store records from peers");
            for (i, _) in valid {
                out.push((i, Err(Rejected::Unavailable(e.to_string()))));
            }
            Vec::new()
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::testing::{node, record};
    use lf_record::RecordType;
    use std::sync::atomic::AtomicBool;

    /// A certificate record for `o`, signed by `ca` and published by `o`.
    fn certificate(
        node: &Node,
        ca: &crate::common::certs::Ca,
        o: &lf_record::OwnerSecret,
    ) -> Record {
        let req = lf_record::CertificateRequest::from_der(
            &crate::common::certs::make_request(o, "o").unwrap(),
        )
        .unwrap();
        let der = ca.sign(&req, 1, crate::node::now() - 5).unwrap();
        record(node, o, RecordType::Certificate, der)
    }

    #[test]
    fn a_batch_over_several_jobs_answers_every_record_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let (node, ca) = node(dir.path());
        let node = Arc::new(node);
        let lane = Arc::new(StoreLane::default());
        let (bob, alice) = (
            crate::common::random::new_owner(),
            crate::common::random::new_owner(),
        );
        node.accept(&certificate(&node, &ca, &bob)).unwrap();
        let generation = node.generation();

        // 43 entries, more than one verification job: bob's (certified) records, with
        // garbage at 5, an oversized value at 20 and uncertified alice's record at 30.
        let mut sent: Vec<Option<Record>> = (0..43)
            .map(|i| {
                Some(record(
                    &node,
                    &bob,
                    RecordType::Datum,
                    format!("v{i}").into(),
                ))
            })
            .collect();
        sent[5] = None;
        sent[20] = Some(record(&node, &bob, RecordType::Datum, vec![7; 5000]));
        let held = record(&node, &alice, RecordType::Datum, b"a".to_vec());
        sent[30] = Some(held.clone());
        // regression_17: alice's record with other signature bytes is a forgery, the
        // sender's fault, and does not wait in limbo.
        let mut forged = held.to_bytes().to_vec();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        sent[31] = Some(Record::from_bytes(&forged).unwrap());
        let bytes: Vec<Vec<u8>> = sent
            .iter()
            .map(|r| {
                r.as_ref()
                    .map_or(b"garbage".to_vec(), |r| r.to_bytes().to_vec())
            })
            .collect();
        let results = accept(&node, &lane, &bytes);

        assert_eq!(results.len(), 43);
        for (i, (res, r)) in results.iter().zip(&sent).enumerate() {
            match i {
                5 | 20 | 31 => assert!(matches!(res, Err(Rejected::Invalid(_))), "{i}: {res:?}"),
                30 => assert!(matches!(res, Err(Rejected::Unavailable(_))), "{i}: {res:?}"),
                _ => {
                    let r = r.as_ref().unwrap();
                    assert_eq!(
                        res,
                        &Ok(Accepted::New {
                            links: r.links().to_vec()
                        }),
                        "{i}"
                    );
                    assert!(node.store().contains(&r.hash()).unwrap(), "{i} stored");
                }
            }
        }
        assert!(
            !node
                .store()
                .contains(&sent[20].as_ref().unwrap().hash())
                .unwrap()
        );
        assert!(!node.store().contains(&held.hash()).unwrap());
        assert_eq!(
            node.limbo().len().0,
            1,
            "only the real record waits in limbo"
        );
        assert!(node.generation() > generation);

        // Alice's certificate arrives from a peer beside a record already stored: the
        // held record is stored by the time accept returns.
        let again = sent[0].as_ref().unwrap().to_bytes().to_vec();
        let cert = certificate(&node, &ca, &alice).to_bytes().to_vec();
        let results = accept(&node, &lane, &[again, cert]);
        assert_eq!(results[0], Ok(Accepted::Duplicate));
        assert!(
            matches!(results[1], Ok(Accepted::New { .. })),
            "{results:?}"
        );
        assert!(
            node.store().contains(&held.hash()).unwrap(),
            "released from limbo"
        );
        assert!(node.limbo().is_empty());
    }

    /// regression_17: a limbo flood on an auth_required network (records of owners
    /// without certificates, real ones and forgeries) fills limbo to its bound and no
    /// further, forgeries are the sender's fault, and a certified owner's records are
    /// still stored.
    #[test]
    fn a_limbo_flood_stays_bounded_and_honest_records_pass() {
        let dir = tempfile::tempdir().unwrap();
        let (mut node, ca) = node(dir.path());
        crate::node::testing::set_limbo(
            &mut node,
            crate::common::certs::Limbo::with_limits(16, 1 << 20),
        );
        let node = Arc::new(node);
        let lane = Arc::new(StoreLane::default());
        let bob = crate::common::random::new_owner();
        node.accept(&certificate(&node, &ca, &bob)).unwrap();
        let mut flood = Vec::new();
        for i in 0..40 {
            let o = crate::common::random::new_owner();
            let r = record(&node, &o, RecordType::Datum, format!("flood {i}").into());
            let mut forged = r.to_bytes().to_vec();
            let last = forged.len() - 1;
            forged[last] ^= 1;
            flood.push(r.to_bytes().to_vec());
            flood.push(forged);
        }
        let results = accept(&node, &lane, &flood);
        for (i, res) in results.iter().enumerate() {
            if i % 2 == 0 {
                assert!(matches!(res, Err(Rejected::Unavailable(_))), "{i}: {res:?}");
            } else {
                assert!(matches!(res, Err(Rejected::Invalid(_))), "{i}: {res:?}");
            }
        }
        assert_eq!(node.limbo().len().0, 16, "limbo holds its bound, no more");
        // Once limbo is full, a record of an uncertified owner is not even verified: a
        // forgery is then not found out, and costs this node a lookup, not a P-384
        // verification.
        let late = [flood[1].clone(), {
            let o = crate::common::random::new_owner();
            record(&node, &o, RecordType::Datum, b"late".to_vec())
                .to_bytes()
                .to_vec()
        }];
        for res in accept(&node, &lane, &late) {
            assert!(
                matches!(&res, Err(Rejected::Unavailable(m)) if m.contains("limbo is full")),
                "{res:?}"
            );
        }
        assert_eq!(node.limbo().len().0, 16);
        let honest = record(&node, &bob, RecordType::Datum, b"honest".to_vec());
        let results = accept(&node, &lane, &[honest.to_bytes().to_vec()]);
        assert!(
            matches!(results[0], Ok(Accepted::New { .. })),
            "{results:?}"
        );
    }

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
