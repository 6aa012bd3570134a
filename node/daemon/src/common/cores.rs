//! How many threads CPU-bound work may use.

use std::sync::OnceLock;

/// The cores this process may use, asked once: `available_parallelism` reads the
/// cgroup's CPU quota from `/proc` and `/sys` on every call (five system calls and
/// three files), which the commit queue paid per record when files trickle in.
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
