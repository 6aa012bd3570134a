#!/usr/bin/env bash
# lf-store past 1M records (issue 19): runs node/store/benches/insert.rs to 10,000,000
# generated records (not replicated: written straight into a store, 1,000 per put_many)
# and prints, at 10k, 100k, 1M and 10M records, the insert rate over the last 1% before
# each size, single-key query p50/p99 (Store::query on a selector key drawn from all keys
# inserted so far), the process RSS (in-memory graph + SQLite page cache) and disk bytes
# per record, then the insert bench's usual summary (rates, reopen time).
#
# 10M records need about 7 GB of disk (about 680 B per record) and, on the 2-core VM, most
# of an hour; the store is removed at the end. Progress goes to stderr.
# Usage: contrib/bench/store_growth.sh [records]   (default 10000000)
# Environment: LF_BENCH_DIR=/some/dir  where the store goes (default: $TMPDIR or /tmp)
#              LF_BENCH_QUERIES=N      queries per checkpoint (default 2000)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init store_growth.sh
export LF_BENCH_RECORDS="${1:-10000000}"
dir="${LF_BENCH_DIR:-${TMPDIR:-/tmp}}"
need_kib=$((LF_BENCH_RECORDS * 800 / 1024))
free_kib="$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')"
[[ "$free_kib" -ge "$need_kib" ]] ||
  die "$dir has $((free_kib / 1024)) MiB free, $LF_BENCH_RECORDS records need about $((need_kib / 1024)) MiB"
say "lf-store growth to $LF_BENCH_RECORDS records in $dir, lf $(bench_label node/store)"
cargo bench -q -p lf-store --bench insert
