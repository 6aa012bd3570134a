#!/usr/bin/env bash
# Honest propagation under the P2P attacks of issue 17, beside the same figures with
# no attack, measured in the same run: node/p2p/examples/attack_bench.rs (release).
#
#   A victim node and an honest node (on 127.0.0.2, dialed by the victim) run in one
#   process over in-memory sources that verify every record. In each phase the honest
#   node writes N records, one every 50 ms, and the time until the victim holds each is
#   measured (p50, p95). Phases: quiet; sig-flood (256 records made from one by
#   mutating signature bytes, announced by a fresh identity from 127.0.0.1 each time
#   the last is thrown out: signature-mutation flood and identity churn, until the
#   address is refused); lister (a peer that lists 20,000 hashes and serves none).
#   CPU is the whole process's (victim, honest node and attacker) over the phase; RSS
#   its peak. The limbo flood needs certificates, which only the daemon has: its bound
#   is checked by peer_batch's a_limbo_flood_stays_bounded_and_honest_records_pass.
#   Goal: p50 within 2x of quiet under every attack.
#
# Usage: contrib/bench/p2p_attacks.sh     Environment: LF_BENCH_RECORDS=N (default 40)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lf-target}"
cargo build -q --release -p lf-p2p --example attack_bench
"$CARGO_TARGET_DIR/release/examples/attack_bench" "${LF_BENCH_RECORDS:-40}"
