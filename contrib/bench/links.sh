#!/usr/bin/env bash
# LF over real links (issue 18): four nodes, each in its own network namespace, joined
# by the test bed's user-space switch (tests/src/netns.rs, tests/src/netsim.py: this
# kernel has no netem), measured with a perfect link and with DELAY_MS each way and
# LOSS % of frames lost, in the same run:
#   - `lf set` on node 1 -> the record on every other node (p50 / p95 / max),
#   - a file closed on mount 1 -> its content on every other mount,
#   - a burst of 100 writes on node 1 -> all of them on every node,
#   - node 2 killed (SIGKILL), 100 records written, node 2 restarted -> caught up,
#   - node 4 cut off 15 s, part.txt written on mounts 1 and 4 (different owners) ->
#     whether every mount lists the same file names (winner here + conflict copies,
#     the copies identical everywhere) after the heal, and when,
#   - node 4 cut off 15 s, 1,000 keys written on both sides by one owner (the homes
#     share identity-secret.pem) -> every node holds every record.
# Figures to reach (issue 18, at 50 ms RTT and 1 % loss): propagation p50 <= 150 ms,
# p95 <= 1 s; burst <= 2 s; restart catch-up <= 1 s; same-owner convergence <= 5 s.
#
# Usage: contrib/bench/links.sh [DELAY_MS [LOSS_PERCENT]]   (default 25 1; root)
# Environment: LF_BIN (binary measured), BENCH_DIR, LINKS_WRITES (samples, 30),
# LINKS_KEYS (keys per side of the partition, 1000).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init links.sh
bench_need ip nsenter python3
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, TAP devices, FUSE)"

say "cargo build --release (lf-tests example links_bench)"
LB="$(bench_example lf-tests links_bench)" || exit 1
bench_lf
bench_tmp lf-links
export LF_BIN="$LF" BENCH_TMP

say "measuring (a few minutes)"
"$LB" "${1:-25}" "${2:-1}"
echo
echo "lf $(bench_label), $(nproc) cores; $(uname -r)"
