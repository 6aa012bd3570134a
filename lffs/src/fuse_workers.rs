//! Workers for the FUSE requests that may take long.
//!
//! The session reads requests on one thread and answers most of them there: a
//! program's sequence of quick requests (lookup, create, write, getattr, close of a
//! saved file) then runs on one warm thread that the scheduler keeps beside the
//! caller. With four reader threads the kernel handed each request to the one that
//! had waited longest, a different thread (and often the other core) every time:
//! 1,000 small files written with an fsync each took 0.55–0.69 s instead of
//! 0.41–0.48 s with one thread (measured on 2 cores). Requests that may wait for the
//! disk or for a commit (reads of data, fsync, a close that commits) go to a few
//! workers, so that one of them never holds up the others and readahead's reads of
//! one file run on every core.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// Most jobs waiting for a worker: a full queue makes the reader run the job itself
/// (the kernel bounds the requests in flight anyway: `max_background` for readahead,
/// one per calling thread for the others).
const QUEUE: usize = 64;

/// A fixed set of worker threads fed through a bounded queue.
pub(crate) struct Workers {
    tx: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` workers named `<name>-<i>`. A worker that cannot be started is left
    /// out; with none, every job runs on the caller's thread.
    pub(crate) fn new(n: usize, name: &str) -> Workers {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let threads: Vec<JoinHandle<()>> = (0..n)
            .filter_map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || work(&rx))
                    .map_err(|e| tracing::warn!("cannot start FUSE worker {name}-{i}: {e}"))
                    .ok()
            })
            .collect();
        Workers {
            tx: (!threads.is_empty()).then_some(tx),
            threads,
        }
    }

    /// Runs `job` on a worker, or here when none is free to take it (queue full) or
    /// the workers are gone.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        let Some(tx) = &self.tx else {
            return job();
        };
        match tx.try_send(Box::new(job)) {
            Ok(()) => {
                metrics::counter!("lf_fuse_worker_jobs_total", "ran" => "worker").increment(1)
            }
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                metrics::counter!("lf_fuse_worker_jobs_total", "ran" => "here").increment(1);
                job()
            }
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting: the job runs without it.
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return, // the session ended
        };
        // A panicking job (its reply, dropped, answers EIO) must not take the worker
        // with it.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a FUSE request panicked (answered EIO)");
        }
    }
}

impl Drop for Workers {
    /// Waits for the jobs under way (their replies go to a session that may have
    /// ended: harmless), so that nothing outlives the filesystem's session.
    fn drop(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_job_runs_once_and_drop_waits_for_them() {
        let done = Arc::new(AtomicUsize::new(0));
        let w = Workers::new(3, "t");
        for _ in 0..500 {
            let d = done.clone();
            w.run(move || {
                std::thread::sleep(std::time::Duration::from_micros(50));
                d.fetch_add(1, Ordering::SeqCst);
            });
        }
        drop(w);
        assert_eq!(done.load(Ordering::SeqCst), 500);
    }

    #[test]
    fn jobs_run_beside_a_blocked_one() {
        let w = Workers::new(2, "t");
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        w.run(move || {
            let _ = hold_rx.recv(); // a long fsync
        });
        w.run(move || done_tx.send(()).unwrap());
        done_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a second job ran while the first was blocked");
        hold_tx.send(()).unwrap();
    }

    #[test]
    fn a_panicking_job_leaves_its_worker_running() {
        let w = Workers::new(1, "t");
        w.run(|| panic!("a bug in one request"));
        let (tx, rx) = std::sync::mpsc::channel();
        w.run(move || tx.send(()).unwrap());
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the one worker ran the next job");
    }

    #[test]
    fn without_workers_a_job_runs_on_the_caller() {
        let w = Workers::new(0, "t");
        let here = std::thread::current().id();
        let (tx, rx) = std::sync::mpsc::channel();
        w.run(move || tx.send(std::thread::current().id()).unwrap());
        assert_eq!(rx.try_recv().unwrap(), here);
    }
}
