#!/usr/bin/env bash
# Honest propagation under the P2P attacks of issue 17, beside the same figures with
# no attack, measured in the same run: node/p2p/examples/attack_bench.rs (release).
#
#   The victim runs as its own process over an in-memory source that verifies every
#   record, so its CPU time (utime + stime of /proc/<pid>/stat over the phase) and RSS
#   (peak of VmRSS sampled after each honest record) are its own; the honest node (on
#   127.0.0.2, dialed by the victim) and the attackers run in the bench's process. In
#   each phase the honest node writes N records, one every 50 ms, and the time until
#   the victim stores each is measured (p50, p95). Phases: quiet; sig-flood (256
#   records made from one by mutating signature bytes, announced by a fresh identity
#   from 127.0.0.1 each time the last is thrown out, until the address is refused);
#   churn (identity churn from one address: each identity announces only two of them);
#   lister (a peer that lists 20,000 hashes and serves none). Each phase gets a fresh
#   victim; the table is the median of RUNS runs (each run's figures go to stderr).
# Second table: the limbo flood, which needs certificates and so real daemons
#   (tests/examples/limbo_bench.rs): two `lf node-start` on an auth_required network,
#   a certified owner's `lf set` on node 1 followed to node 2, quiet and then under the
#   hostile peer's `limbo` attack on node 2 (validly signed records of fresh
#   uncertified owners, about 1,000 a second).
#   Goal: p50 within 2x of quiet under every attack.
#
# Usage: contrib/bench/p2p_attacks.sh
# Environment: LF_BENCH_RECORDS=N (default 40), LF_BENCH_RUNS=N (default 3), LF_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init p2p_attacks.sh
say "cargo build --release (lf-p2p example attack_bench)"
AB="$(bench_example lf-p2p attack_bench)" || exit 1
say "cargo build --release (lf-tests example limbo_bench, lf-p2p example hostile_peer)"
LB="$(bench_example lf-tests limbo_bench)" || exit 1
bench_example lf-p2p hostile_peer >/dev/null || exit 1
bench_lf
"$AB" "${LF_BENCH_RECORDS:-40}" "${LF_BENCH_RUNS:-3}"
echo
LF_BIN="$LF" "$LB" "${LF_BENCH_RECORDS:-40}" "${LF_BENCH_RUNS:-3}"
echo
echo "lf-p2p $(LF_BIN= bench_label node/p2p contrib/bench tests), lf $(bench_label), $(nproc) cores; $(uname -r)"
