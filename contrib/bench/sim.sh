#!/usr/bin/env bash
# The simulation toward internet scale (issue 19): node/p2p/examples/sim_bench.rs runs
# the real P2P code of N nodes in one process over loopback TCP (random topology of
# degree 8 or more (each node dials up to its target of 8; inbound connections come on
# top), 5% loss on every node; after an idle and a write phase without churn
# that measure the traffic, 90 s of churn of 5% of the nodes per minute: nodes leave
# for 20 s and come back, alternately restarted and fresh) for each size, one process
# per size (phases in the example's header), and prints per size:
#   - convergence of a record (write -> every node that stayed up holds it) p50/p95/max,
#     the time until every node, the ones that came back included, holds every record
#     after churn stops, and a returning node's catch-up (p50/max);
#   - per record per node: bytes sent (over an idle baseline measured in the same run),
#     that over the record's own size, socket writes and sync messages; the idle cost per
#     node (bytes/s, sync messages/s);
#   - memory per node: (RSS after start - RSS before) / N, and the process's CPU use.
# What limits the size on this machine is in node/p2p/SCALING.md.
#
# Usage: contrib/bench/sim.sh [SIZES...]        (default: 25 50 100 200)
# Environment: LF_SIM_WRITE_SECONDS=S  write phase length (default 60; two records/s)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init sim.sh
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(25 50 100 200)
secs="${LF_SIM_WRITE_SECONDS:-60}"
say "cargo build --release (lf-p2p example sim_bench)"
SB="$(bench_example lf-p2p sim_bench)" || exit 1
# Two sockets per connection, a few hundred connections at 200 nodes.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

field() { # field NAME "k=v k=v ..." -> v
  awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' <<<"$2"
}
rows=()
failed=()
for n in "${sizes[@]}"; do
  say "$n nodes: ~$((secs + 150)) s"
  # A size where not every record reached every node still prints its figures (the
  # `all_in` column says no); the script fails at the end.
  out=""
  if ! out="$("$SB" "$n" "$secs")"; then
    failed+=("$n")
    say "$n nodes: not every record reached every node (the lacking nodes are listed above)"
  fi
  if [[ -n "$out" ]]; then rows+=("$out"); fi
done

echo
echo "sim.sh: target degree 8, 5% loss, $((secs * 2)) records without churn + 90 with churn 5%/min, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), lf $(bench_label node/p2p)"
printf '%-6s %6s %8s %8s %8s %8s %9s %9s %8s %7s %8s %9s %9s %8s %6s %6s %6s\n' \
  nodes degree p50_ms p95_ms max_ms all_in_s catchup_s B/rec/nd x_rec wr/rec msg/rec idle_B/s idle_msg mem_KiB cpu lag_ms churn
for r in "${rows[@]}"; do
  printf '%-6s %6s %8s %8s %8s %8s %9s %9s %8s %7s %8s %9s %9s %8s %6s %6s %6s\n' \
    "$(field nodes "$r")" "$(field degree "$r")" "$(field conv_p50_ms "$r")" \
    "$(field conv_p95_ms "$r")" "$(field conv_max_ms "$r")" \
    "$(if [[ "$(field delivered "$r")" == true ]]; then field all_in_s "$r"; else echo no; fi)" \
    "$(awk -v m="$(field catchup_max_ms "$r")" 'BEGIN { printf "%.1f", m / 1000 }')" \
    "$(field bytes_per_rec_node "$r")" "$(field overhead_x "$r")" \
    "$(field writes_per_rec_node "$r")" "$(field msgs_per_rec_node "$r")" \
    "$(field idle_bps_node "$r")" "$(field idle_msgs_node "$r")" \
    "$(field mem_kib_node "$r")" "$(field cpu_write "$r")" "$(field lag_ms "$r")" \
    "$(field left "$r")/$(field restarted "$r")/$(field fresh "$r")"
done
echo "B/rec/nd: bytes sent per record per node over the idle baseline; x_rec: that over the"
echo "record's size; wr/rec: socket writes; msg/rec: sync requests+responses; catchup_s: the"
echo "slowest catch-up of a returning node; cpu: cores used while writing; lag_ms: worst"
echo "lateness of a 100 ms timer while writing; churn: left/restarted/fresh."
if [[ ${#failed[@]} -gt 0 ]]; then
  die "not every record reached every node at ${failed[*]} nodes"
fi
