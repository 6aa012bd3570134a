#!/usr/bin/env bash
# Core figures (issue 2): record sign/verify/encode/parse rates (criterion), full-record
# verification rate on one core and on all cores, proof-of-work verify time, and solve
# times (median and spread) at the default difficulty for 64/256/1024 billable bytes.
# Usage: contrib/bench/core.sh [solve-runs]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init core.sh
runs="${1:-7}"
echo "== criterion: lf-record"
cargo bench -q -p lf-record --bench record -- --noplot 2>/dev/null | grep -E '^[a-z_]+ +time:|^record|^owner' || true
echo "== criterion: lf-pow"
cargo bench -q -p lf-pow --bench pow -- --noplot 2>/dev/null | grep -E 'time:|^pow' || true
echo "== full-record verification rate"
cargo run -q --release -p lf-record --example verify_rate -- 4000
echo "== proof of work at the default difficulty ($runs runs each)"
cargo run -q --release -p lf-pow --example calibrate -- "$runs"
