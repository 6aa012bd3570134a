//! One shape for the node's long-lived background work (after garage's `Worker`): each
//! thread or task has a name, a state that `/status` and `lf status` show (busy, idle,
//! stopped, failed), and a stop signal it polls or waits on; shutdown signals it, waits
//! for it until a deadline and logs any that did not end in time. Nothing long-lived
//! is spawned outside this registry.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What a worker is doing, for `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Working on something.
    Busy,
    /// Waiting for work or for its next round.
    Idle,
    /// Ended (asked to stop, or its work was done).
    Stopped,
    /// Ended with an error (logged when it happened).
    Failed,
}

impl State {
    /// The word `/status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Busy => "busy",
            State::Idle => "idle",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }
}

/// One worker's row in `/status`.
#[derive(Debug, Clone)]
pub struct Status {
    pub name: String,
    pub state: State,
    /// Seconds in that state.
    pub seconds: u64,
}

struct Shared {
    name: String,
    stop: Mutex<bool>,
    stop_cv: Condvar,
    stop_async: tokio::sync::Notify,
    state: Mutex<(State, Instant)>,
    /// Wakes a worker that blocks on something of its own (a channel).
    wake: Option<Box<dyn Fn() + Send + Sync>>,
}

/// What a worker gets: its stop signal and its state.
#[derive(Clone)]
pub struct Ctx(Arc<Shared>);

impl Ctx {
    /// Whether it was asked to stop.
    pub fn stopping(&self) -> bool {
        *self.0.stop.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps for `d` or until asked to stop; false when asked to stop.
    pub fn sleep(&self, d: Duration) -> bool {
        let stop = self.0.stop.lock().unwrap_or_else(|e| e.into_inner());
        let (stop, _) = self
            .0
            .stop_cv
            .wait_timeout_while(stop, d, |s| !*s)
            .unwrap_or_else(|e| e.into_inner());
        !*stop
    }

    /// Resolves when it is asked to stop.
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.stop_async.notified();
            if self.stopping() {
                return;
            }
            notified.await;
        }
    }

    /// Sets the state `/status` shows.
    pub fn set_state(&self, s: State) {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0 != s {
            *st = (s, Instant::now());
        }
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }
}

enum Handle {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

impl Handle {
    fn is_finished(&self) -> bool {
        match self {
            Handle::Thread(t) => t.is_finished(),
            Handle::Task(t) => t.is_finished(),
        }
    }
}

struct Entry {
    ctx: Ctx,
    handle: Option<Handle>,
}

/// The node's workers, in start order.
#[derive(Default, Clone)]
pub struct Workers(Arc<Mutex<Vec<Entry>>>);

/// A worker's body: `Err` ends it as failed (logged).
pub type Outcome = anyhow::Result<()>;

impl Workers {
    fn register(&self, name: &str, wake: Option<Box<dyn Fn() + Send + Sync>>) -> Ctx {
        Ctx(Arc::new(Shared {
            name: name.to_string(),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            stop_async: tokio::sync::Notify::new(),
            state: Mutex::new((State::Idle, Instant::now())),
            wake,
        }))
    }

    fn push(&self, ctx: Ctx, handle: Handle) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Entry {
                ctx,
                handle: Some(handle),
            });
    }

    /// Starts `body` on a thread of its own named `name`. `wake` (if any) is called when
    /// it is asked to stop, for a body that blocks on something other than its [`Ctx`].
    pub fn spawn_thread(
        &self,
        name: &str,
        wake: Option<Box<dyn Fn() + Send + Sync>>,
        body: impl FnOnce(Ctx) -> Outcome + Send + 'static,
    ) -> std::io::Result<()> {
        let ctx = self.register(name, wake);
        let c = ctx.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || finish(&c, body(c.clone())))?;
        self.push(ctx, Handle::Thread(thread));
        Ok(())
    }

    /// Starts `body` as a task on `rt`.
    pub fn spawn_task<F>(
        &self,
        rt: &tokio::runtime::Handle,
        name: &str,
        body: impl FnOnce(Ctx) -> F,
    ) where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let ctx = self.register(name, None);
        let fut = body(ctx.clone());
        let c = ctx.clone();
        let task = rt.spawn(async move { finish(&c, fut.await) });
        self.push(ctx, Handle::Task(task));
    }

    /// Every worker's name and state, in start order.
    pub fn status(&self) -> Vec<Status> {
        let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .map(|e| {
                let (state, since) = *e.ctx.0.state.lock().unwrap_or_else(|e| e.into_inner());
                Status {
                    name: e.ctx.0.name.clone(),
                    state,
                    seconds: since.elapsed().as_secs(),
                }
            })
            .collect()
    }

    /// Asks the workers named (all if `names` is empty) to stop, newest first, and
    /// waits for each until `deadline` has passed in all. They leave the registry (a
    /// mount's workers come and go with it). A worker still running then is logged and
    /// left (a task is aborted); false if any was.
    pub fn stop(&self, names: &[&str], deadline: Duration) -> bool {
        let picked: Vec<(Ctx, Option<Handle>)> = {
            let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let (picked, kept) = std::mem::take(&mut *list)
                .into_iter()
                .partition(|e: &Entry| names.is_empty() || names.contains(&e.ctx.0.name.as_str()));
            *list = kept;
            picked
                .into_iter()
                .rev()
                .map(|mut e| (e.ctx.clone(), e.handle.take()))
                .collect()
        };
        for (ctx, _) in &picked {
            signal(ctx);
        }
        let end = Instant::now() + deadline;
        let mut all = true;
        for (ctx, handle) in picked {
            let Some(handle) = handle else { continue };
            while !handle.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            match handle {
                Handle::Thread(t) if t.is_finished() => {
                    let _ = t.join();
                }
                Handle::Task(t) if t.is_finished() => {}
                h => {
                    all = false;
                    tracing::warn!(
                        worker = ctx.name(),
                        deadline_ms = deadline.as_millis() as u64,
                        "worker did not stop before the deadline; left behind"
                    );
                    if let Handle::Task(t) = h {
                        t.abort();
                    }
                }
            }
        }
        all
    }
}

fn signal(ctx: &Ctx) {
    *ctx.0.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
    ctx.0.stop_cv.notify_all();
    ctx.0.stop_async.notify_waiters();
    if let Some(wake) = &ctx.0.wake {
        wake();
    }
}

fn finish(ctx: &Ctx, outcome: Outcome) {
    match outcome {
        Ok(()) => ctx.set_state(State::Stopped),
        Err(e) => {
            tracing::error!(worker = ctx.name(), "worker failed: {e:#}");
            ctx.set_state(State::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_and_tasks_stop_on_signal_and_show_their_state() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let w = Workers::default();
        w.spawn_thread("sleeper", None, |ctx| {
            ctx.set_state(State::Busy);
            while ctx.sleep(Duration::from_secs(60)) {}
            Ok(())
        })
        .unwrap();
        w.spawn_task(rt.handle(), "waiter", |ctx| async move {
            ctx.stopped().await;
            Ok(())
        });
        w.spawn_thread("failing", None, |_| anyhow::bail!("no disk"))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let names = |w: &Workers| {
            w.status()
                .iter()
                .map(|s| format!("{} {}", s.name, s.state.as_str()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&w), ["sleeper busy", "waiter idle", "failing failed"]);
        // The task needs its runtime to run while stop waits for it.
        let bg = std::thread::spawn(move || {
            rt.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await })
        });
        let t = Instant::now();
        assert!(w.stop(&[], Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(names(&w).is_empty(), "{:?}", names(&w));
        bg.join().unwrap();
    }

    #[test]
    fn a_worker_that_ignores_the_signal_is_left_after_the_deadline() {
        let w = Workers::default();
        let release = Arc::new(std::sync::Barrier::new(2));
        let r = release.clone();
        w.spawn_thread("stubborn", None, move |_| {
            r.wait();
            Ok(())
        })
        .unwrap();
        let t = Instant::now();
        assert!(!w.stop(&["stubborn"], Duration::from_millis(200)));
        assert!(t.elapsed() >= Duration::from_millis(200));
        release.wait();
    }

    #[test]
    fn wake_reaches_a_worker_blocked_on_its_own_channel() {
        let w = Workers::default();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let tx = Mutex::new(tx);
        w.spawn_thread(
            "channel",
            Some(Box::new(move || {
                let _ = tx.lock().unwrap().send(());
            })),
            move |_| {
                let _ = rx.recv();
                Ok(())
            },
        )
        .unwrap();
        assert!(w.stop(&["channel"], Duration::from_secs(5)));
    }
}
