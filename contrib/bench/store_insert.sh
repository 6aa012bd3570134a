#!/usr/bin/env bash
# lf-store insert rate as the store grows (node/store/benches/insert.rs): puts 1,000,000
# DAG-shaped records, 1,000 per put_many, into a fresh store and prints the rate around
# 10k, 100k and 1M records, the ratio rate@1M / rate@10k (goal >= 0.5), disk bytes per
# record, RSS and the time to reopen. Takes a few minutes; progress goes to stderr.
# Usage: contrib/bench/store_insert.sh [records]   (LF_BENCH_DIR=... to pick the disk)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init store_insert.sh
if [[ $# -gt 0 ]]; then
    export LF_BENCH_RECORDS="$1"
fi
cargo bench -q -p lf-store --bench insert
