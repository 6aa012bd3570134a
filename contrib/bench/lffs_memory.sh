#!/usr/bin/env bash
# LFFS memory figures (issue 16): the node's resident set while its mounts hold big
# writes, against a stated bound. One run prints a table of VmRSS (resident now) and the
# peak VmHWM of each phase (the kernel's high-water mark, reset at the start of the phase
# through /proc/<pid>/clear_refs), each compared with the idle VmRSS:
#
#   0. idle: the node started, mounted and settled;
#   1. 100 files written sparsely on a mount with the default max_file_size (64 MiB):
#      each opened, one byte written at offset max_file_size - 1, all 100 kept open at
#      once (figures taken then), then closed (each a 64 MiB file of zeros to chunk and
#      commit), and the node settled (everything published);
#   2. a 1 GiB file of random bytes copied into a mount with max_file_size 2 GiB (`cp`, to
#      its close), then the node settled;
#   3. the same file read back (`cmp` against the source, its pages dropped first, so
#      every byte crosses FUSE).
#
# Bound: each phase's peak stays under idle + BOUND_MIB (default 128 MiB, the goal of
# issue 16); PASS/FAIL per phase. Written data of open files is expected in unlinked
# files under <home>/lffs-spill/ and reads to fetch only the chunks of their range, so
# neither should grow with file size. As a safety net on shared machines the script
# stops a phase (FAIL) when the node's RSS passes ABORT_MIB.
#
# LFFS runs on a fresh node of a private network without proof of work (difficulty 0,
# records up to 60000 bytes), its home in the temp dir, both mounts signed by the node's
# identity (owner_private: identity-secret.pem).
#
# Usage (as root, from anywhere in the repository):
#   contrib/bench/lffs_memory.sh
# Environment:
#   LF_BIN=/path/to/lf   use this binary instead of `cargo build --release -p lf`
#   BENCH_DIR=/some/dir  parent of the temp dir (default: $TMPDIR or /tmp); needs about
#                        5 GiB free (the 1 GiB source, the node's records, journal, spill)
#   BOUND_MIB=128        the bound above idle, MiB
#   ABORT_MIB=4096       stop a phase when node RSS passes this, MiB
#   BIG_MIB=1024         size of the copied file, MiB
#   SPARSE_FILES=100     number of sparse files
#   QUEUE_MIB=256        the node's -lffs-queue-mib (its default: 256)
# Needs: /dev/fuse, python3, cmp, dd, mount.
# Everything (node, mounts, temp dirs) is cleaned up at exit, also on error or Ctrl-C.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init lffs_memory.sh

[[ $EUID -eq 0 ]] || die "run as root (FUSE mounts, /proc/<pid>/clear_refs of the node)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"
command -v python3 >/dev/null || die "python3 is needed"

BOUND_MIB="${BOUND_MIB:-128}"
ABORT_MIB="${ABORT_MIB:-4096}"
BIG_MIB="${BIG_MIB:-1024}"
SPARSE_FILES="${SPARSE_FILES:-100}"
QUEUE_MIB="${QUEUE_MIB:-256}"
SPARSE_MAX=$((64 << 20))      # the default max_file_size
BIG_MAX=2147483648            # max_file_size of the mount the big file goes to

# ---------------------------------------------------------------------------- build
bench_lf

# -------------------------------------------------------------- temp dir, cleanup
bench_tmp lffs-memory
WORK="$BENCH_TMP"
SPARSE="$WORK/sparse" # mount with the default max_file_size
BIG="$WORK/big"       # mount with max_file_size 2 GiB
HOMEDIR="$WORK/home"  # node home (on disk)
SRC="$WORK/src.bin"   # the big file's source, outside LFFS
mkdir -p "$HOMEDIR"

# After the node is stopped (lib.sh): the script's other mounts.
bench_on_exit() {
  for m in "$SPARSE" "$BIG"; do
    if mountpoint -q "$m" 2>/dev/null; then
      umount "$m" 2>/dev/null || umount -l "$m"
    fi
  done
}

# ----------------------------------------------------------------- python helpers
PY="$WORK/mem.py"
cat >"$PY" <<'EOF'
import os, sys, time

def status(pid):
    """(VmRSS, VmHWM) of pid, KiB."""
    f = {}
    for l in open(f"/proc/{pid}/status"):
        k, _, v = l.partition(":")
        if k in ("VmRSS", "VmHWM"):
            f[k] = int(v.split()[0])
    return f["VmRSS"], f["VmHWM"]

cmd = sys.argv[1]
if cmd == "sparse":     # sparse DIR COUNT OFFSET PID ABORT_KIB -> figures, one line
    d, n, off, pid, abort = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    t = time.perf_counter()
    files = []
    for i in range(n):
        f = open(os.path.join(d, f"sparse{i:03}"), "wb", buffering=0)
        f.seek(off)
        f.write(b"x")
        files.append(f)
        if status(pid)[0] > abort:
            sys.exit(f"node RSS passed the abort limit after {i + 1} files")
    written = time.perf_counter() - t
    time.sleep(1)       # what the node holds for the open files, settled
    open_rss, open_hwm = status(pid)
    t = time.perf_counter()
    for f in files:
        f.close()
    closed = time.perf_counter() - t
    rss, hwm = status(pid)
    print(open_rss, open_hwm, rss, hwm, f"{written:.2f}", f"{closed:.2f}")
elif cmd == "watch":    # watch PID ABORT_KIB ARGV... -> runs ARGV, killing it past the limit
    pid, abort, argv = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    import subprocess
    t = time.perf_counter()
    p = subprocess.Popen(argv)
    while p.poll() is None:
        if status(pid)[0] > abort:
            p.kill()
            p.wait()
            sys.exit(f"node RSS passed the abort limit: {' '.join(argv)} stopped")
        time.sleep(0.05)
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed with {p.returncode}")
    print(f"{time.perf_counter() - t:.2f}")
elif cmd == "status":   # status FIELD < json -> value
    import json
    print(json.load(sys.stdin)[sys.argv[2]])
elif cmd == "table":    # table TSV -> the table
    rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip()]
    head = ["phase", "VmRSS MiB", "peak VmHWM MiB", "peak - phase start MiB",
            "peak - idle MiB", "bound", "verdict"]
    rows = [head] + rows
    w = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
        if n == 0:
            print("  ".join("-" * x for x in w))
else:
    sys.exit("unknown helper " + cmd)
EOF
py() { python3 "$PY" "$@"; }
mib() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1024:.1f}')" "$1"; }

# --------------------------------------------------------------------- the node
HTTP_PORT="$(bench_free_port)"
P2P_PORT="$(bench_free_port)"
URL="http://127.0.0.1:$HTTP_PORT"

say "fresh private network (difficulty 0, max value 60000) in $HOMEDIR"
HOME="$HOMEDIR" bench_network "$HOMEDIR" lffs-memory --max-value-size 60000
cat >"$HOMEDIR/mounts.yaml" <<EOF
- path: $SPARSE
  root: memory.sparse
  owner_private: identity-secret.pem
- path: $BIG
  root: memory.big
  owner_private: identity-secret.pem
  max_file_size: $BIG_MAX
EOF
say "starting the node (http $HTTP_PORT, p2p $P2P_PORT) and waiting for the mounts"
HOME="$HOMEDIR" bench_node "$HOMEDIR" "$HOMEDIR/node.out" -http "$HTTP_PORT" -p2p "$P2P_PORT" \
  -lffs-queue-mib "$QUEUE_MIB"
bench_wait_mounts "$NODE_PID" "$HOMEDIR/node.out" "$SPARSE" "$BIG"

status() { # status FIELD -> value from `lf -json status`
  "$LF" -home "$HOMEDIR" -url "$URL" -json status | py status "$1"
}
# Waits until the node has published every LFFS change and its record count is steady.
settle() {
  local last=-1 n pending
  for _ in $(seq 4800); do
    pending="$(status PendingCommits)"
    n="$(status RecordCount)"
    if [[ "$pending" == 0 && "$n" == "$last" ]]; then
      return 0
    fi
    last="$n"
    sleep 0.25
  done
  die "node did not settle in 20 minutes (pending $pending)"
}
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$NODE_PID/status"; }
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$NODE_PID/status"; }
# The peak of a phase: the high-water mark starts again from the current RSS.
# PHASE_START: the RSS then, so that each row also shows what its phase added.
reset_peak() {
  echo 5 >"/proc/$NODE_PID/clear_refs" 2>/dev/null ||
    die "cannot reset VmHWM through /proc/$NODE_PID/clear_refs (Linux >= 4.0 needed)"
  PHASE_START="$(rss)"
}

ROWS="$WORK/rows.tsv"
: >"$ROWS"
DETAILS=()
FAILED=0
BOUND_KIB=$((BOUND_MIB * 1024))
ABORT_KIB=$((ABORT_MIB * 1024))
# row PHASE RSS_KIB PEAK_KIB: one table line, judged against idle + bound.
row() {
  local verdict=PASS
  if (($3 - IDLE > BOUND_KIB)); then
    verdict=FAIL
    FAILED=1
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(mib "$2")" "$(mib "$3")" \
    "$(mib $(($3 - PHASE_START)))" "$(mib $(($3 - IDLE)))" "< $BOUND_MIB MiB above idle" \
    "$verdict" >>"$ROWS"
}
# failed_row PHASE WHY: a phase that could not finish (its figures up to the failure).
failed_row() {
  FAILED=1
  local peak
  peak="$(hwm)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(mib "$(rss)")" "$(mib "$peak")" \
    "$(mib $((peak - PHASE_START)))" "$(mib $((peak - IDLE)))" "< $BOUND_MIB MiB above idle" \
    "FAIL ($2)" >>"$ROWS"
}

# ----------------------------------------------------------------------- 0. idle
settle
sleep 2
IDLE="$(rss)"
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "0. idle (mounted, settled)" "$(mib "$IDLE")" \
  "$(mib "$(hwm)") (since start)" "-" "0.0" "-" "-" >>"$ROWS"

# ------------------------------------------------------------ 1. 100 sparse files
say "1. $SPARSE_FILES files, one byte each at offset $((SPARSE_MAX - 1)), open at once"
reset_peak
if out="$(py sparse "$SPARSE" "$SPARSE_FILES" $((SPARSE_MAX - 1)) "$NODE_PID" "$ABORT_KIB")"; then
  read -r open_rss open_hwm closed_rss closed_hwm t_write t_close <<<"$out"
  row "1a. $SPARSE_FILES sparse files open (1 byte at 64 MiB - 1 each)" "$open_rss" "$open_hwm"
  row "1b. ... then closed (each a 64 MiB file committed)" "$closed_rss" "$closed_hwm"
  DETAILS+=("1. writes ${t_write} s, closes ${t_close} s (chunking $SPARSE_FILES x 64 MiB of zeros)")
  reset_peak
  t0=$(date +%s.%N)
  settle
  t1=$(date +%s.%N)
  row "1c. ... and published (node settled)" "$(rss)" "$(hwm)"
  DETAILS+=("1. publication $(python3 -c "print(f'{$t1 - $t0:.1f}')") s")
  # The files are what was written: 64 MiB, the last byte an x.
  [[ "$(stat -c %s "$SPARSE/sparse000")" == "$SPARSE_MAX" ]] || die "sparse000 has the wrong size"
  [[ "$(tail -c 1 "$SPARSE/sparse$(printf %03d $((SPARSE_FILES - 1)))")" == x ]] ||
    die "the last sparse file lost its byte"
else
  failed_row "1. $SPARSE_FILES sparse files" "did not finish"
  settle
fi

# ----------------------------------------------------------------- 2. 1 GiB copy in
say "2. writing a $BIG_MIB MiB source file, then copying it into LFFS"
head -c $((BIG_MIB << 20)) /dev/urandom >"$SRC"
sync "$SRC"
reset_peak
if t_cp="$(py watch "$NODE_PID" "$ABORT_KIB" cp "$SRC" "$BIG/big.bin")"; then
  row "2a. cp of $BIG_MIB MiB into the mount (to its close)" "$(rss)" "$(hwm)"
  DETAILS+=("2. cp $t_cp s ($(python3 -c "print(f'{$BIG_MIB / $t_cp:.0f}')") MiB/s)")
  reset_peak
  t0=$(date +%s.%N)
  settle
  t1=$(date +%s.%N)
  row "2b. ... and published (node settled)" "$(rss)" "$(hwm)"
  DETAILS+=("2. publication $(python3 -c "print(f'{$t1 - $t0:.1f}')") s, $(status RecordCount) records in the store")

  # ------------------------------------------------------------ 3. read it back
  say "3. reading it back (cmp), its pages dropped first"
  dd if="$BIG/big.bin" iflag=nocache count=0 status=none
  reset_peak
  if t_cmp="$(py watch "$NODE_PID" "$ABORT_KIB" cmp "$SRC" "$BIG/big.bin")"; then
    row "3. cmp of the $BIG_MIB MiB file against its source" "$(rss)" "$(hwm)"
    DETAILS+=("3. cmp $t_cmp s ($(python3 -c "print(f'{$BIG_MIB / $t_cmp:.0f}')") MiB/s), contents equal")
  else
    failed_row "3. cmp of the $BIG_MIB MiB file" "differs, failed or over the abort limit"
  fi
else
  failed_row "2a. cp of $BIG_MIB MiB" "failed or over the abort limit"
  DETAILS+=("2. node log: $(grep -ciE 'error|warn' "$HOMEDIR/node.out") warning/error lines; the last: $(grep -iE 'error|warn' "$HOMEDIR/node.out" | tail -1 | cut -c1-200)")
fi

# -------------------------------------------------------------------------- table
echo
echo "LFFS memory — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), lf $("$LF" version 2>/dev/null | head -1) ($(bench_label))"
echo "node home on $(findmnt -n -o FSTYPE --target "$HOMEDIR") (${HOMEDIR}); -lffs-queue-mib $QUEUE_MIB; idle VmRSS $(mib "$IDLE") MiB; bound: each phase's peak < idle + $BOUND_MIB MiB"
echo
py table "$ROWS"
echo
for d in "${DETAILS[@]}"; do echo "  $d"; done
echo
if [[ $FAILED -eq 0 ]]; then
  echo "PASS: node RSS stayed under idle + $BOUND_MIB MiB in every phase"
else
  echo "FAIL: node RSS went over idle + $BOUND_MIB MiB (or a phase failed); see the table"
  exit 1
fi
