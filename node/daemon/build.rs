//! Link flags of the programs, and the build's identity.

fn main() {
    // Packed relative relocations (DT_RELR, glibc >= 2.36): the loader applies the
    // relative relocations from a table of a few KiB instead of hundreds, which every
    // `lf get` paid for before `main`.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    // One identity per build of the package (this script runs again whenever a file of
    // the package changes): `lf` hands it to the `lf-node` it runs, which refuses one
    // from another build.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    println!("cargo:rustc-env=LF_BUILD_ID={nanos:x}");
}
