//! Metrics of the FUSE adapter through the `metrics` facade (a no-op until the daemon
//! installs a recorder): latency of every request by operation, errors by errno. Names
//! are documented in `node/daemon/METRICS.md`.

use std::time::Instant;

/// Records `lf_fuse_op_duration_seconds{op}` when dropped (at the end of a callback).
pub(crate) struct OpTimer {
    op: &'static str,
    start: Instant,
}

impl OpTimer {
    /// Starts timing one request of operation `op`.
    pub(crate) fn start(op: &'static str) -> OpTimer {
        OpTimer {
            op,
            start: Instant::now(),
        }
    }
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        metrics::histogram!("lf_fuse_op_duration_seconds", "op" => self.op)
            .record(self.start.elapsed().as_secs_f64());
    }
}

/// Counts a request answered with `errno` (`lf_fuse_errors_total{op, errno}`).
pub(crate) fn error(op: &'static str, errno: i32) {
    metrics::counter!("lf_fuse_errors_total", "op" => op, "errno" => errno.to_string())
        .increment(1);
}
