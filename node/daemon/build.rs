//! Links the `lf` binary as a position-dependent executable: a PIE of this size has
//! about 40,000 relative relocations that the loader applies at every start, touching
//! each page they fall on, and `lf get` is started once per key by scripts.
fn main() {
    println!("cargo:rustc-link-arg-bin=lf=-no-pie");
}
