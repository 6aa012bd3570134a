#!/usr/bin/env bash
# Query figures (issue 3): single-key query latency over HTTP on a node holding 100,000
# records, with etcd 3.4 measured in the same run as the baseline, plus the node's memory
# and disk cost per record.
#
#   1. LF: a fresh `lf node-start` on a private network without proof of work
#      (`makegenesis --difficulty 0`), no mounts, HTTP and P2P on loopback. The helper
#      (tests/examples/query_bench.rs) builds and signs N records client-side with
#      lf-record (one selector `bench#i`, a 20-byte value, links to earlier records),
#      POSTs the raw bytes to /post over several connections and waits until every
#      record is fully synchronized. Then, sequentially on one connection, W warm-up
#      and Q measured `POST /query` with a KeyRange for one random key (and MaskingKey,
#      so the node returns the plain value, as etcd does); every answer is checked.
#   2. etcd 3.4 (Debian etcd-server, installed with apt-get if missing) on a temp data
#      dir and loopback ports: N keys `bench#i` with the same values put through the v3
#      JSON gateway, then the same client measures `POST /v3/kv/range` with
#      `"serializable": true` (a local read, as LF's), every answer checked.
#   3. Memory: VmRSS (and peak VmHWM) of each server after its queries. Disk: the node's
#      records.lf + node.db + node.db-wal + node.db-shm over its record count (genesis
#      records included); etcd's data dir (and its bbolt file alone) over its key count.
#
# Both servers run on the same disk under the temp dir, one at a time (the node is
# stopped before etcd starts), with the client on the same machine. The table shows the
# 1-minute load average after each query phase: other work on the machine shows up
# mostly in p90/p99.
#
# Usage (from anywhere in the repository; root only if etcd must be installed):
#   contrib/bench/query.sh
# Environment:
#   LF_BENCH_RECORDS=N   records/keys to load (default 100000)
#   LF_BENCH_QUERIES=Q   measured queries (default 5000); LF_BENCH_WARMUP=W (default 500)
#   LF_BENCH_CONNS=C     connections used to load (default 8)
#   LF_BIN=/path/to/lf   use this binary instead of `cargo build --release -p lf`
#   BENCH_DIR=/some/dir  parent of the temp dir (default: $TMPDIR or /tmp)
# Everything started here (node, etcd, temp dir) is stopped and removed at exit, also on
# error or Ctrl-C.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init query.sh

N="${LF_BENCH_RECORDS:-100000}"
Q="${LF_BENCH_QUERIES:-5000}"
W="${LF_BENCH_WARMUP:-500}"
C="${LF_BENCH_CONNS:-8}"

bench_need curl jq awk

# ---------------------------------------------------------------------------- build
say "cargo build --release (lf-tests example query_bench)"
QB="$(bench_example lf-tests query_bench)" || exit 1
bench_lf

# ------------------------------------------------------------------ temp dir, cleanup
bench_tmp lf-query
tmp="$BENCH_TMP"

field() { # field NAME "k=v k=v ..." -> v
  awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' <<<"$2"
}
rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
size_of() { # total bytes of the files given that exist
  local total=0 f
  for f in "$@"; do
    [[ -e "$f" ]] && total=$((total + $(stat -c %s "$f")))
  done
  echo "$total"
}

# ------------------------------------------------------------------------------ LF
say "LF: private network without proof of work, node on $tmp/lf"
home="$tmp/lf"
bench_network "$home" bench
bench_node "$home" "$tmp/lf-node.out" -http 0 -p2p "$("$QB" free-port)" # no FUSE mounts
lf_pid=$NODE_PID
bench_wait_url "$home" "$lf_pid" "$tmp/lf-node.out"
url="$NODE_URL"
say "LF: loading $N records over $C connections ($url)"
lf_load="$("$QB" lf-load "$url" "$N" "$C")" || die "loading the node failed"
lf_count="$(curl -fsS "$url/status" | jq .RecordCount)"
say "LF: $W warm-up + $Q measured single-key queries"
lf_q="$("$QB" lf-query "$url" "$N" "$Q" "$W")" || die "LF queries failed"
lf_load1="$(cut -d' ' -f1 /proc/loadavg)"
lf_rss="$(rss_kib "$lf_pid" VmRSS)"
lf_hwm="$(rss_kib "$lf_pid" VmHWM)"
lf_file="$(size_of "$home/records.lf")"
lf_db="$(size_of "$home/node.db" "$home/node.db-wal" "$home/node.db-shm")"
say "LF: stopping the node"
bench_stop "$lf_pid"

# ---------------------------------------------------------------------------- etcd
etcd_q=""
if ! command -v etcd >/dev/null; then
  say "installing etcd-server etcd-client (Debian etcd 3.4)"
  if [[ $EUID -ne 0 ]] ||
    ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null 2>&1; then
    say "cannot install etcd: the baseline is skipped"
  fi
fi
if command -v etcd >/dev/null; then
  cport="$("$QB" free-port)"
  pport="$("$QB" free-port)"
  say "etcd $(etcd --version 2>/dev/null | awk '/etcd Version/ { print $3 }') on 127.0.0.1:$cport"
  etcd --name bench --data-dir "$tmp/etcd" \
    --listen-client-urls "http://127.0.0.1:$cport" \
    --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bench=http://127.0.0.1:$pport" \
    >"$tmp/etcd.out" 2>&1 &
  etcd_pid=$!
  bench_track "$etcd_pid"
  eurl="http://127.0.0.1:$cport"
  for ((i = 0; i < 300; i++)); do
    kill -0 "$etcd_pid" 2>/dev/null || die "etcd exited: $(tail -5 "$tmp/etcd.out")"
    curl -fsS "$eurl/health" 2>/dev/null | grep -q '"true"' && break
    sleep 0.1
  done
  say "etcd: putting $N keys over $C connections"
  etcd_load="$("$QB" etcd-load "$eurl" "$N" "$C")" || die "loading etcd failed"
  say "etcd: $W warm-up + $Q measured serializable gets"
  etcd_q="$("$QB" etcd-query "$eurl" "$N" "$Q" "$W")" || die "etcd queries failed"
  etcd_load1="$(cut -d' ' -f1 /proc/loadavg)"
  etcd_rss="$(rss_kib "$etcd_pid" VmRSS)"
  etcd_hwm="$(rss_kib "$etcd_pid" VmHWM)"
  etcd_disk="$(du -sb "$tmp/etcd" | awk '{ print $1 }')"
  etcd_bolt="$(size_of "$tmp/etcd/member/snap/db")"
  bench_stop "$etcd_pid"
fi

# --------------------------------------------------------------------------- table
# The binary's name when LF_BIN gives one (it need not be this checkout's).
rev="$(bench_label)"
echo
echo "query.sh: $N records, $Q sequential queries after $W warm-up, $(nproc) CPUs, lf $rev"
row() { # row LABEL LF ETCD [RATIO-DIGITS]
  local ratio="-"
  if [[ "$3" != "-" && "$2" != "-" ]]; then
    ratio="$(awk -v a="$2" -v b="$3" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
  fi
  printf '%-34s %12s %12s %9s\n' "$1" "$2" "$3" "$ratio"
}
e() { if [[ -n "$etcd_q" ]]; then echo "$1"; else echo "-"; fi; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
printf '%-34s %12s %12s %9s\n' "figure" "LF" "etcd 3.4" "LF/etcd"
row "single-key query p50 (us)" "$(field p50_us "$lf_q")" "$(e "$(field p50_us "$etcd_q")")"
row "single-key query p90 (us)" "$(field p90_us "$lf_q")" "$(e "$(field p90_us "$etcd_q")")"
row "single-key query p99 (us)" "$(field p99_us "$lf_q")" "$(e "$(field p99_us "$etcd_q")")"
row "single-key query mean (us)" "$(field mean_us "$lf_q")" "$(e "$(field mean_us "$etcd_q")")"
row "RSS after queries (MiB)" "$(mib "$lf_rss")" "$(e "$(mib "${etcd_rss:-0}")")"
row "peak RSS (MiB)" "$(mib "$lf_hwm")" "$(e "$(mib "${etcd_hwm:-0}")")"
row "disk bytes per record (all files)" "$(((lf_file + lf_db) / lf_count))" \
  "$(e "$((${etcd_disk:-0} / N))")"
row "  of which data file" "$((lf_file / lf_count))" "$(e "$((${etcd_bolt:-0} / N))")"
row "1-min load average after queries" "$lf_load1" "$(e "${etcd_load1:-}")"
row "load time, $C connections (s)" "$(field load_seconds "$lf_load")" \
  "$(e "$(field load_seconds "${etcd_load:-}")")"
echo "LF: $lf_count records (genesis included); records.lf $lf_file B, node.db* $lf_db B."
echo "etcd: data file = member/snap/db (bbolt); all files include its preallocated WAL."
if [[ -n "$etcd_q" ]]; then
  awk -v a="$(field p50_us "$lf_q")" -v b="$(field p50_us "$etcd_q")" \
    'BEGIN { printf "goal p50 <= etcd serializable get: %s\n", (a <= b ? "met" : "not met") }'
fi
