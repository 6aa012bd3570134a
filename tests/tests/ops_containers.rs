//! The container pattern of `contrib/containers/README.md`, end to end with a real
//! runtime: podman with runc and a busybox image imported from a tarball (no registry
//! is reachable), a directory of an LFFS mount bind-mounted into containers read-only
//! and read-write, used as root and as a non-root user, and a mount that appears after
//! the container started reaching it through `rslave` propagation. Needs root,
//! /dev/fuse, podman, runc and busybox-static (installed by .ci/run).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lf_tests::{FuseNode, Mount, TestNet, TestNode, is_mounted, stderr, stdout, wait_until};

/// Podman with private storage in the test's directory, so tests never touch the
/// machine's images and can run in parallel.
struct Podman {
    dir: PathBuf,
    containers: Vec<String>,
    unmount: Vec<PathBuf>,
}

const IMAGE: &str = "localhost/lf-busybox:test";

impl Podman {
    fn new(dir: &Path) -> Podman {
        let p = Podman {
            dir: dir.to_path_buf(),
            containers: Vec::new(),
            unmount: Vec::new(),
        };
        // A root filesystem with only busybox, imported as an image.
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox"))
            .expect("busybox-static is installed (.ci/run)");
        for applet in ["sh", "cat", "ls", "echo", "id", "sleep", "stat"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let tar = dir.join("rootfs.tar");
        let o = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .unwrap();
        assert!(o.status.success(), "tar: {}", stderr(&o));
        let o = p.run(&["import", "-q", tar.to_str().unwrap(), IMAGE]);
        assert!(o.status.success(), "podman import: {}", stderr(&o));
        p
    }

    /// `podman <args>` bounded to 60 s, with this test's storage and the runtime that
    /// works here (runc; crun refuses this machine's cgroup setup).
    fn run(&self, args: &[&str]) -> Output {
        let argv = self.argv(args);
        Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .expect("podman is installed (.ci/run)")
    }

    /// The command line of [`Podman::run`].
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ["timeout", "60", "podman", "--root"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(self.dir.join("storage").display().to_string());
        v.push("--runroot".into());
        v.push(self.dir.join("run").display().to_string());
        for a in [
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--runtime",
            "/usr/sbin/runc",
        ] {
            v.push(a.into());
        }
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// `podman run --rm` with `volume` (`HOST:CONTAINER[:OPTIONS]`) as `user`; returns
    /// (success, stdout, stderr).
    fn sh(&self, volume: &str, user: &str, script: &str) -> (bool, String, String) {
        let o = self.run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--user",
            user,
            "-v",
            volume,
            IMAGE,
            "/bin/sh",
            "-c",
            script,
        ]);
        (o.status.success(), stdout(&o), stderr(&o))
    }

    /// Starts a long-running container; removed on drop.
    fn start(&mut self, name: &str, volume: &str) {
        self.start_with(name, volume, &["/bin/sleep", "120"]);
    }

    /// Starts a container running `cmd`; removed on drop.
    fn start_with(&mut self, name: &str, volume: &str, cmd: &[&str]) {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "-v",
            volume,
            IMAGE,
        ];
        args.extend_from_slice(cmd);
        let o = self.run(&args);
        assert!(o.status.success(), "podman run -d: {}", stderr(&o));
        self.containers.push(name.to_string());
    }

    fn exec(&self, name: &str, script: &str) -> (bool, String, String) {
        let o = self.run(&["exec", name, "/bin/sh", "-c", script]);
        (o.status.success(), stdout(&o), stderr(&o))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.run(&["rm", "-f", "-t", "0", c]);
        }
        for m in &self.unmount {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

#[test]
fn fuse_container_bind_mounts_read_only_read_write_root_and_non_root() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    f.sh(
        "mkdir -p $M/shared/drop && echo 'port=1' > $M/shared/app.conf && chmod 777 $M/shared/drop",
    );
    let pm = Podman::new(&dir.path().join("podman"));
    let shared = f.mnt.join("shared");
    let ro = format!("{}:/etc/app:ro", shared.display());
    let rw = format!("{}:/data", shared.display());

    // Read-only: root and a non-root user read; nobody writes.
    let (ok, out, err) = pm.sh(&ro, "0:0", "cat /etc/app/app.conf");
    assert!(ok && out == "port=1\n", "{out}{err}");
    let (ok, out, err) = pm.sh(&ro, "65534:65534", "id -u; cat /etc/app/app.conf");
    assert!(ok && out == "65534\nport=1\n", "{out}{err}");
    let (ok, _, err) = pm.sh(&ro, "0:0", "echo x > /etc/app/app.conf");
    assert!(!ok && err.contains("Read-only file system"), "{err}");
    assert_eq!(f.sh("cat $M/shared/app.conf"), "port=1\n");

    // Read-write as root: the write is in the mount at once.
    let (ok, _, err) = pm.sh(
        &rw,
        "0:0",
        "echo 'port=2' > /data/app.conf && echo r > /data/root.txt",
    );
    assert!(ok, "{err}");
    assert_eq!(
        f.sh("cat $M/shared/app.conf $M/shared/root.txt"),
        "port=2\nr\n"
    );

    // Read-write as a non-root user: refused everywhere, even in a 0777 directory,
    // because every change is signed by the mount's owner and only the mount's uid and
    // root may make one (lffs/SEMANTICS.md, "Who may change what").
    let (ok, _, err) = pm.sh(&rw, "65534:65534", "echo n > /data/drop/nobody.txt");
    assert!(!ok && err.contains("Permission denied"), "{err}");
    assert!(!f.mnt.join("shared/drop/nobody.txt").exists());
    let (ok, _, err) = pm.sh(&rw, "65534:65534", "echo n > /data/app.conf");
    assert!(!ok && err.contains("Permission denied"), "{err}");
    // The host's later change is what the next container reads.
    f.sh("echo 'port=3' > $M/shared/app.conf");
    let (ok, out, err) = pm.sh(&ro, "65534:65534", "cat /etc/app/app.conf");
    assert!(ok && out == "port=3\n", "{out}{err}");
}

#[test]
fn fuse_container_sees_a_later_mount_through_rslave_propagation() {
    let dir = tempfile::tempdir().unwrap();
    let f = FuseNode::start(dir.path(), 60_000);
    let mut pm = Podman::new(&dir.path().join("podman"));
    // The directory that will hold the later mount, made a shared mount (systemd makes
    // `/` shared on a normal host; this machine's `/` is private).
    let host = dir.path().join("host");
    std::fs::create_dir_all(host.join("late")).unwrap();
    let bind = |args: &[&str]| {
        let o = Command::new("mount")
            .args(args)
            .arg(&host)
            .arg(&host)
            .output()
            .unwrap();
        assert!(o.status.success(), "mount {args:?}: {}", stderr(&o));
    };
    bind(&["--bind"]);
    pm.unmount.push(host.clone());
    let o = Command::new("mount")
        .arg("--make-shared")
        .arg(&host)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Two containers started before the mount exists: one rslave, one default (private).
    pm.start("lf-rslave", &format!("{}:/host:rslave", host.display()));
    pm.start("lf-private", &format!("{}:/host", host.display()));
    // Add a second LFFS mount under the shared directory (live reload of mounts.yaml).
    let late = host.join("late");
    let yaml = f.node.home.join("mounts.yaml");
    let good = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        format!(
            "{good}- path: {}\n  root: late.root\n  passphrase: \"late mount\"\n  allow_other: true\n",
            late.display()
        ),
    )
    .unwrap();
    pm.unmount.insert(0, late.clone());
    assert!(wait_until(20, || is_mounted(&late)), "{}", f.node.output());
    std::fs::write(late.join("x"), "late\n").unwrap();
    let (ok, out, err) = pm.exec("lf-rslave", "cat /host/late/x");
    assert!(ok && out == "late\n", "rslave container: {out}{err}");
    let (ok, out, _) = pm.exec("lf-private", "ls /host/late");
    assert!(
        ok && out.is_empty(),
        "private container saw the new mount: {out}"
    );
    // And writes from inside reach the host through the propagated mount.
    let (ok, _, err) = pm.exec("lf-rslave", "echo from-container > /host/late/y");
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(late.join("y")).unwrap(),
        "from-container\n"
    );
    // Unmount the late mount before the node goes, so nothing is left behind.
    std::fs::write(&yaml, &good).unwrap();
    assert!(wait_until(20, || !is_mounted(&late)));
}

#[test]
fn fuse_container_reloads_when_its_config_changes_on_another_node() {
    // consul-template's pattern with LF: the config of a containerised service lives on
    // the mount, bind-mounted read-only; `lf watch FILE -- podman kill --signal HUP`
    // on the host reloads the service when the file changes, here written on another
    // node.
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::private()
        .name("reload")
        .max_value(60_000)
        .create(&dir.path().join("net"));
    let (m1, m2) = (dir.path().join("m1"), dir.path().join("m2"));
    let n1 = TestNode::on(&net.home("n1"))
        .mount(Mount::new(&m1, "reload.root").allow_other())
        .start();
    let n2 = TestNode::on(&net.home("n2"))
        .peer(n1.p2p_addr())
        .mount(Mount::new(&m2, "reload.root").allow_other())
        .start();
    assert!(wait_until(20, || is_mounted(&m1) && is_mounted(&m2)));
    std::fs::create_dir(m1.join("app")).unwrap();
    std::fs::write(m1.join("app/app.conf"), "port=1\n").unwrap();
    let conf2 = m2.join("app/app.conf");
    assert!(
        wait_until(30, || std::fs::read_to_string(&conf2).ok().as_deref()
            == Some("port=1\n")),
        "{}",
        n2.output()
    );
    let mut pm = Podman::new(&dir.path().join("podman"));
    // The service: prints its config at start and again on SIGHUP.
    let service = "trap 'echo reloaded: $(cat /etc/app/app.conf)' HUP; \
                   echo loaded: $(cat /etc/app/app.conf); \
                   while :; do sleep 1 & wait $!; done";
    pm.start_with(
        "svc",
        &format!("{}:/etc/app:ro", m2.join("app").display()),
        &["/bin/sh", "-c", service],
    );
    let logs = |pm: &Podman| stdout(&pm.run(&["logs", "svc"]));
    assert!(
        wait_until(30, || logs(&pm).contains("loaded: port=1")),
        "{}",
        logs(&pm)
    );
    let kill = pm.argv(&["kill", "--signal", "HUP", "svc"]);
    let mut watch_args = vec![
        "-home".to_string(),
        n2.home.display().to_string(),
        "watch".into(),
        conf2.display().to_string(),
        "--".into(),
    ];
    watch_args.extend(kill);
    let mut watcher = Command::new(lf_tests::lf_bin())
        .args(&watch_args)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    std::fs::write(m1.join("app/app.conf"), "port=2\n").unwrap();
    let reloaded = wait_until(60, || logs(&pm).contains("reloaded: port=2"));
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(reloaded, "{}\n{}", logs(&pm), n2.output());
}
