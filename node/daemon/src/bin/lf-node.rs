//! `lf-node`: the whole program, the node included (`lf-node node-start`, which is what
//! `lf node-start` runs); every other `lf` command works here too.

fn main() -> std::process::ExitCode {
    lf::node_main()
}
