//! contrib/soak/soak.sh: the soak of issue 19 (`lf_tests::soak`): five nodes in
//! network namespaces, 50 ms RTT and 1 % loss, written everywhere through mounts and
//! `lf set`, a partition or a kill -9 every 2 minutes, every acknowledged write
//! followed to every node. Prints a line per event, a table every minute and at the
//! end; exits 1 naming the violated invariant.
//!
//! Usage: soak [MINUTES]      (default 30)
//! Environment: LF_BIN (the binary soaked), SOAK_TMP (parent of the scratch directory).

use std::path::PathBuf;
use std::time::Duration;

use lf_tests::soak::{self, Config};

fn main() {
    let minutes: f64 = match std::env::args().nth(1) {
        None => 30.0,
        Some(a) => match a.parse() {
            Ok(m) if m > 0.0 => m,
            _ => {
                eprintln!("usage: soak [MINUTES]   (a positive number; default 30)");
                std::process::exit(2);
            }
        },
    };
    let dir = match std::env::var_os("SOAK_TMP").map(PathBuf::from) {
        Some(p) => tempfile::tempdir_in(p),
        None => tempfile::tempdir(),
    }
    .expect("a scratch directory");
    let cfg = Config::long(Duration::from_secs_f64(minutes * 60.0));
    let out = soak::run(&cfg, dir.path());
    if let Some(v) = out.violation {
        eprintln!("soak FAILED: {v}");
        std::process::exit(1);
    }
    println!("soak passed");
}
