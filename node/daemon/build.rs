//! Link flags of the `lf` binary.

fn main() {
    // Packed relative relocations (DT_RELR, glibc >= 2.36): the loader applies the
    // binary's ~40,000 relative relocations from a table of a few KiB instead of
    // 960 KiB, which every `lf get` paid for in page faults before `main`.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
