//! `lf`: the commands a user runs against a node; `lf node-start` runs `lf-node`.

fn main() -> std::process::ExitCode {
    lf::client_main()
}
