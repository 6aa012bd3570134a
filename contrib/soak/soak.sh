#!/usr/bin/env bash
# The soak (issue 19): five `lf node-start` processes, each in its own network
# namespace with a mount, joined by the test bed's switch at 50 ms RTT and 1 % loss
# (tests/src/netns.rs), written everywhere through their mounts (files written,
# fsync'd, closed) and `lf set` (one fleet owner on nodes 1-2, own owners on 3-5, and a
# key and a file every node writes each round), with a partition or a kill -9 +
# restart every 2 minutes (alternating, on node after node); node 5 dials out but
# cannot be dialled (-max-inbound 0). Every acknowledged write must reach every node
# within 60 s (of the write, or of the heal or restart of either end); each node's
# RSS, open fds and threads must stay under the bounds printed at the start. A line
# per event, a table every minute and at the end; exit status 1 names the violated
# invariant. What it checks and why: contrib/soak/README.md.
#
# Usage: contrib/soak/soak.sh [MINUTES]     (default 30; root)
# Environment: LF_BIN (binary soaked; default: cargo build --release), BENCH_DIR
# (parent of the scratch directory).
source "$(dirname "${BASH_SOURCE[0]}")/../bench/lib.sh"
bench_init soak.sh
bench_need ip nsenter python3
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, TAP devices, FUSE)"
[[ -e /dev/fuse ]] || die "needs /dev/fuse"

say "cargo build --release (lf-tests example soak)"
SOAK="$(bench_example lf-tests soak)" || exit 1
bench_lf
bench_tmp lf-soak
export LF_BIN="$LF" SOAK_TMP="$BENCH_TMP"

say "soaking for ${1:-30} minutes"
status=0
"$SOAK" "${1:-30}" || status=$?
echo
echo "lf $(bench_label), $(nproc) cores; $(uname -r); $(date -u +%Y-%m-%dT%H:%MZ)"
exit "$status"
