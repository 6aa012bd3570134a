//! End-to-end tests of the `lf` command line that need no node: help, version, errors,
//! single-dash flags, `makegenesis` and `selftest`.

use lf_tests::{lf, stderr, stdout};

#[test]
fn e2e_no_arguments_prints_help() {
    let dir = tempfile::tempdir().unwrap();
    let o = lf(dir.path(), &[]);
    assert!(!o.status.success());
    let text = stdout(&o) + &stderr(&o);
    assert!(text.contains("Usage: lf"), "{text}");
    assert!(text.contains("makegenesis"), "{text}");
}

#[test]
fn e2e_version_with_and_without_dashes() {
    let dir = tempfile::tempdir().unwrap();
    let plain = lf(dir.path(), &["version"]);
    assert!(plain.status.success());
    assert_eq!(stdout(&plain).trim(), env!("CARGO_PKG_VERSION"));
    let single = lf(dir.path(), &["-json", "version"]);
    assert!(single.status.success(), "{}", stderr(&single));
    let double = lf(dir.path(), &["--json", "version"]);
    assert!(double.status.success(), "{}", stderr(&double));
}

#[test]
fn e2e_bad_arguments_give_one_line_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let o = lf(dir.path(), &["no-such-command"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unrecognized subcommand"),
        "{}",
        stderr(&o)
    );
    let o = lf(dir.path(), &["makegenesis", "--yes", "--min-links", "many"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--min-links"), "{}", stderr(&o));
    // Every usage error is one line, starting like every other error, and says where
    // to read more.
    for args in [
        &["no-such-command"][..],
        &["makegenesis", "--yes", "--min-links", "many"],
        &["get", "-bogus", "x"],
        &["set"],
    ] {
        let o = lf(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("lf: "), "{args:?}: {err}");
        assert!(err.contains("--help"), "{args:?}: {err}");
    }
}

#[test]
fn e2e_makegenesis_scripted_network_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "makegenesis",
        "--yes",
        "--name",
        "e2e net",
        "--min-links",
        "3",
        "--difficulty",
        "0",
        "--amendable",
        "name,comment",
    ];
    let o = lf(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("network ID"), "{}", stdout(&o));
    let bytes = std::fs::read(dir.path().join("genesis.lf")).unwrap();
    let (config, records) = lf_record::parse_records(&bytes).unwrap();
    assert_eq!(config.name, "e2e net");
    assert_eq!(records.len(), 3);
    assert_eq!(config.amendable_fields, ["name", "comment"]);
    let pem = std::fs::read_to_string(dir.path().join("genesis-secret.pem")).unwrap();
    let owner = lf_record::OwnerSecret::from_pem(&pem).unwrap();
    assert_eq!(owner.public(), records[0].owner());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("genesis-secret.pem"))
        .unwrap()
        .permissions();
    assert_eq!(mode.mode() & 0o777, 0o600);

    // A second run refuses to overwrite; a bad field is named.
    let again = lf(dir.path(), &args);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    let bad = lf(
        dir.path(),
        &[
            "makegenesis",
            "--yes",
            "--force",
            "--name",
            "x",
            "--amendable",
            "bogus",
        ],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("bogus"), "{}", stderr(&bad));
    let noname = lf(dir.path(), &["makegenesis", "--yes", "--force"]);
    assert!(
        stderr(&noname).contains("network name is required"),
        "{}",
        stderr(&noname)
    );
}

#[test]
fn e2e_makegenesis_pays_proof_of_work() {
    let dir = tempfile::tempdir().unwrap();
    let o = lf(
        dir.path(),
        &["makegenesis", "--yes", "--name", "pow", "--difficulty", "2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(dir.path().join("genesis.lf")).unwrap();
    let (config, records) = lf_record::parse_records(&bytes).unwrap();
    assert_eq!(config.work_difficulty, 2);
    assert!(records.iter().all(|r| r.work().is_some()));
}

#[test]
fn e2e_selftest_quick_passes() {
    let dir = tempfile::tempdir().unwrap();
    let o = lf(dir.path(), &["selftest", "--quick"]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("all checks passed"), "{out}");
    assert!(out.contains("embedded default network"), "{out}");
    let j = lf(dir.path(), &["-json", "selftest", "-quick"]);
    assert!(j.status.success(), "{}", stderr(&j));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&j.stdout).unwrap();
    assert!(rows.len() >= 8);
}

/// `lf ... | head`: the reader closes the pipe early; lf ends quietly (status 141, as a
/// process killed by SIGPIPE), never with a panic on stderr.
#[test]
fn e2e_output_into_a_closed_pipe_ends_quietly() {
    for cmd in ["man", "completions bash", "-help"] {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "'{}' {cmd} | head -c 1 >/dev/null",
                lf_tests::lf_bin().display()
            ))
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "lf {cmd}: {err}");
        assert!(!err.contains("Broken pipe"), "lf {cmd}: {err}");
    }
}
