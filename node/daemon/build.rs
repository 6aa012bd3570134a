//! Link flags of the programs, and the identity of the sources they are built from.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// What the programs are built from, relative to the workspace root: the code of this
/// crate and of the workspace crates it links, and the lock file (the dependencies).
const SOURCES: &[&str] = &[
    "node/daemon/src",
    "node/daemon/Cargo.toml",
    "node/record/src",
    "node/pow/src",
    "node/store/src",
    "node/p2p/src",
    "lffs/src",
    "Cargo.lock",
];

fn main() {
    // Packed relative relocations (DT_RELR, glibc >= 2.36): the loader applies the
    // relative relocations from a table of a few KiB instead of hundreds, which every
    // `lf get` paid for before `main`.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    // `lf` hands this to the `lf-node` it runs, which refuses another: a hash of the
    // sources, so that two programs built from the same sources match (whichever
    // cargo run or machine built them; the build stays reproducible) and a change to
    // any of them tells an old `lf-node` from a new `lf`.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../..");
    let mut files = Vec::new();
    for s in SOURCES {
        let p = root.join(s);
        println!("cargo:rerun-if-changed={}", p.display());
        collect(&p, &mut files);
    }
    files.sort();
    let mut h = std::hash::DefaultHasher::new();
    for f in &files {
        f.strip_prefix(&root).unwrap_or(f).hash(&mut h);
        std::fs::read(f).unwrap_or_default().hash(&mut h);
    }
    println!("cargo:rustc-env=LF_BUILD_ID={:016x}", h.finish());
}

/// `p` if it is a file, else every file under it.
fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(p) {
        Ok(entries) => {
            for e in entries.flatten() {
                collect(&e.path(), out);
            }
        }
        Err(_) if p.is_file() => out.push(p.to_path_buf()),
        Err(_) => {}
    }
}
