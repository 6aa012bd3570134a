//! Background work (proof of work for LFFS commits and oracle commentary) runs at a
//! lower CPU priority, so that it uses spare cycles and never starves FUSE callbacks,
//! queries or replication on a small machine.

/// Nice value of background threads (0 = normal, 19 = lowest).
const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority. Threads it spawns afterwards (the PoW solver
/// threads) inherit it. On Linux the nice value is per thread, so only this thread is
/// affected. Failure is harmless (the work just competes at normal priority).
pub fn background_thread() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE) {
        tracing::debug!("cannot lower the priority of a background thread: {e}");
    }
}
