//! `mounts.yaml` errors and the node's files keep secrets to themselves (issue 16): a YAML
//! error never quotes the file (a passphrase two lines above stays out of `lf status`, the
//! status page, `/metrics` and the logs); paths are compared in canonical form; the
//! node's private directories and files get 0700/0600 under umask 022; secret files
//! readable by group or others are warned about at start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use lf_tests::{NodeProcess, TestNode, lf_bin, private_network, wait_until};

fn get(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

fn node_log(home: &Path) -> String {
    std::fs::read_to_string(home.join("node.log")).unwrap_or_default()
}

fn file_error(n: &TestNode) -> Option<String> {
    n.status()["MountsFileError"].as_str().map(str::to_string)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn e2e_yaml_error_never_shows_a_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    private_network(&home);
    let n = TestNode::start(&home);
    let secret = "Tr0ub4dor-and-3-more-words";
    std::fs::write(
        home.join("mounts.yaml"),
        format!(
            "- path: {}/m\n  passphrase: \"{secret}\"\n  root: r\n  max_file_size: lots\n",
            dir.path().display()
        ),
    )
    .unwrap();
    assert!(
        wait_until(10, || file_error(&n).is_some()),
        "{}",
        n.output()
    );
    let e = file_error(&n).unwrap();
    assert!(
        e.contains("mounts.yaml: mount 1") && e.contains("line 4") && e.contains("max_file_size"),
        "{e}"
    );
    let status_text = lf_tests::ok(&n.lf_url(&["status"]));
    let status_json = lf_tests::ok(&n.lf_url(&["-json", "status"]));
    let page = get(&n.url());
    let metrics = get(&format!("{}/metrics", n.url()));
    assert!(page.contains("line 4"), "the page shows the error");
    for (what, text) in [
        ("lf status", status_text),
        ("lf -json status", status_json),
        ("status page", page),
        ("/metrics", metrics),
        ("node.log", node_log(&home)),
        ("stderr", n.output()),
    ] {
        assert!(
            !text.contains("Tr0ub4dor"),
            "{what} shows the passphrase: {text}"
        );
    }
}

#[test]
fn e2e_mount_paths_are_compared_in_canonical_form() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    private_network(&home);
    let n = TestNode::start(&home);
    let d = dir.path().display();
    let entry = |path: &str, root: &str| {
        format!("- path: {path}\n  root: {root}\n  owner_private: identity-secret.pem\n")
    };
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    let yaml = format!(
        "{}{}",
        entry(&format!("{d}/b"), "r1"),
        entry(&format!("{d}/a/../b/"), "r2")
    );
    std::fs::write(home.join("mounts.yaml"), yaml).unwrap();
    assert!(
        wait_until(10, || file_error(&n).is_some()),
        "{}",
        n.output()
    );
    let e = file_error(&n).unwrap();
    assert!(
        e.contains(&format!("mount 2 ({d}/a/../b/): key `path`"))
            && e.contains(&format!("resolves to {d}/b"))
            && e.contains("twice")
            && e.contains(&format!("mount 1 ({d}/b)")),
        "{e}"
    );
    let yaml = format!(
        "{}{}",
        entry(&format!("{d}/outer"), "r1"),
        entry(&format!("{d}//outer/./inner"), "r2")
    );
    std::fs::write(home.join("mounts.yaml"), yaml).unwrap();
    assert!(
        wait_until(10, || file_error(&n).is_some_and(|e| e.contains("inside"))),
        "{:?}",
        file_error(&n)
    );
    let e = file_error(&n).unwrap();
    assert!(
        e.contains(&format!("{d}/outer/inner is inside {d}/outer"))
            && e.contains("mount 1")
            && e.contains("mount 2"),
        "{e}"
    );
    // Nothing was mounted or created.
    assert!(n.status()["Mounts"].as_array().is_none_or(|m| m.is_empty()));
    assert!(!dir.path().join("b").exists() && !dir.path().join("outer").exists());
}

/// `lf node-start` under `umask 022` on `home`; stopped (TERM) on drop, then killed if
/// still running and its mounts cleared ([`NodeProcess`]).
struct UmaskNode(NodeProcess);

impl UmaskNode {
    fn start(home: &Path) -> UmaskNode {
        let node = TestNode::on(home);
        let port = node.http_port();
        node.write_mounts();
        let out = std::fs::File::create(home.parent().unwrap().join("node.out")).unwrap();
        let n = UmaskNode(NodeProcess::spawn(
            Command::new("sh")
                .arg("-c")
                .arg("umask 022 && exec \"$0\" \"$@\"")
                .arg(lf_bin())
                .args(node.start_args())
                .stdout(out.try_clone().unwrap())
                .stderr(out),
            home,
        ));
        assert!(
            wait_until(30, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "node did not start"
        );
        n
    }
}

impl Drop for UmaskNode {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.child.id().to_string()])
            .status();
        let _ = self.0.child.wait();
    }
}

#[test]
fn e2e_private_dirs_0700_and_secret_files_0600_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    private_network(&home);
    std::fs::write(home.join("mounts.yaml"), "[]\n").unwrap();
    let n = UmaskNode::start(&home);
    for d in ["lffs-journal", "lffs-spill"] {
        assert_eq!(mode(&home.join(d)), 0o700, "{d}");
    }
    for f in [
        "identity-secret.pem",
        "authtoken.secret",
        "p2p-identity.key",
    ] {
        assert!(wait_until(10, || home.join(f).exists()), "{f} missing");
        assert_eq!(mode(&home.join(f)), 0o600, "{f}");
    }
    for e in std::fs::read_dir(home.join("lffs-journal")).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    drop(n);
    // A journal directory an older node made with the umask's mode is tightened.
    std::fs::set_permissions(
        home.join("lffs-journal"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let n = UmaskNode::start(&home);
    assert_eq!(mode(&home.join("lffs-journal")), 0o700);
    drop(n);
}

#[test]
fn e2e_secret_files_readable_by_others_are_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    private_network(&home);
    let mut n = TestNode::start(&home);
    assert_eq!(n.stop("TERM").code(), Some(0));
    assert!(!node_log(&home).contains("accessible by group or others"));
    let loose = |f: &str, m: u32| {
        std::fs::set_permissions(home.join(f), std::fs::Permissions::from_mode(m)).unwrap()
    };
    loose("identity-secret.pem", 0o640);
    loose("authtoken.secret", 0o604);
    // A key file named by a mount, and a mounts.yaml holding a passphrase. The mounts'
    // points cannot be created (below a plain file): nothing is mounted.
    std::fs::copy(home.join("identity-secret.pem"), home.join("owner.pem")).unwrap();
    loose("owner.pem", 0o644);
    std::fs::write(dir.path().join("plain-file"), "x").unwrap();
    let below = dir.path().join("plain-file");
    std::fs::write(
        home.join("mounts.yaml"),
        format!(
            "- path: {0}/a\n  root: r\n  owner_private: owner.pem\n\
             - path: {0}/b\n  root: s\n  passphrase: \"a secret passphrase\"\n",
            below.display()
        ),
    )
    .unwrap();
    loose("mounts.yaml", 0o644);
    n.restart();
    let log = node_log(&home);
    for f in [
        "identity-secret.pem",
        "authtoken.secret",
        "owner.pem",
        "mounts.yaml",
    ] {
        let named = format!("file={}", home.join(f).display());
        assert!(
            log.lines()
                .any(|l| l.contains("accessible by group or others") && l.contains(&named)),
            "no warning for {f}: {log}"
        );
    }
    assert!(!log.contains("a secret passphrase"));
    assert_eq!(n.stop("TERM").code(), Some(0));
}
