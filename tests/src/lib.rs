//! Helpers shared by the end-to-end tests in `tests/tests/`: building and locating the
//! real `lf` binary and running it in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Path to a freshly built `lf` binary (built once per test process, with the same
/// profile and target directory as the tests themselves).
pub fn lf_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test-binary> → target/<profile>/lf
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "lf", "--bin", "lf"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the lf binary");
        assert!(status.success(), "cargo build -p lf failed");
        let bin = profile_dir.join("lf");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// Runs `lf` with `args` in `dir` and returns its output.
pub fn lf(dir: &Path, args: &[&str]) -> Output {
    Command::new(lf_bin())
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .expect("running lf")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
