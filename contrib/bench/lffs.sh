#!/usr/bin/env bash
# LFFS figures (issue 5): one run, each figure beside its baselines measured in the same
# run, with the ratio and the goal.
#
#   1. warm `cat` of a 1 KiB file: median wall time of many runs (hyperfine -N, or a
#      python loop if hyperfine is missing), LFFS vs tmpfs (goal <= 1.5x tmpfs);
#   2. sequential read of a 100 MiB file written once (`dd bs=1M` to /dev/null, no cache
#      dropped, median of 5 runs, MiB/s), LFFS vs tmpfs vs bindfs over tmpfs
#      (goal >= 0.7x bindfs). For information also: the same read with the file's page
#      cache dropped before each run (`dd iflag=nocache count=0`, so every byte crosses
#      FUSE; LFFS keeps its page cache across opens, bindfs does not), and the write;
#   3. create+write+close of 1,000 small files (a shell loop of `echo $i > f$i`,
#      median of 3 runs, each in a fresh directory), LFFS vs tmpfs (and bindfs);
#   4. dedup after a 1-byte edit in the middle of a 10 MiB file: records the node gained
#      for the edit vs records the file took when first written (≈ 10 MiB / 8 KiB average
#      chunk), i.e. the fraction of the file that was rewritten;
#   5. 64 MiB of random bytes written with `dd bs=1M conv=fsync` (median of 3, MiB/s;
#      new bytes each run, so nothing is deduplicated), LFFS vs a directory on the disk
#      holding the node home (goal >= 0.5x the disk);
#   6. 1,000 x (create, write 100 B, fsync, close) (median of 3, s), LFFS vs the same
#      disk (goal <= 1.5x the disk). Baselines of rows 5 and 6 are in the tmpfs column;
#   7. a published 64 MiB file read after `echo 3 > /proc/sys/vm/drop_caches` and a
#      restart of the node (its own caches dropped too) (median of 3, MiB/s), LFFS vs
#      the disk (goal >= 0.5x the disk);
#   8. a fresh 64 MiB file read (its page cache dropped) right after it is written, while
#      its records wait to be published, vs the same read once they are (goal >= 0.8x);
#   9. publication of a 64 MiB file: records per second from close until nothing waits
#      (median of 3, polled every 50 ms; goal >= 2,000/s);
#  10. `lf get` of one key, whole CLI process (median of 100), beside `cat` of a file on
#      the mount (goal < 3 ms).
#
# LFFS runs on a fresh node of a private network without proof of work (difficulty 0,
# records up to 60000 bytes), its home in the temp dir (on disk by default), mounted
# with the node's own identity (owner_private: identity-secret.pem). Before each LFFS
# measurement the script waits until the node has published every pending change.
#
# Usage (as root, from anywhere in the repository):
#   contrib/bench/lffs.sh
# Environment:
#   LF_BIN=/path/to/lf   use this binary instead of `cargo build --release -p lf`
#   BENCH_DIR=/some/dir  parent of the temp dir (default: $TMPDIR or /tmp); the node home
#                        is there, so its filesystem sets the cost of the journal fsyncs
# Needs: /dev/fuse, python3, dd, mount; installs bindfs and hyperfine with apt-get if
# missing (a baseline that cannot be installed is skipped with a note).
# Everything (node, mounts, temp dirs) is cleaned up at exit, also on error or Ctrl-C.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init lffs.sh

[[ $EUID -eq 0 ]] || die "run as root (mounts tmpfs, bindfs and FUSE)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"
command -v python3 >/dev/null || die "python3 is needed for the statistics"

# ---------------------------------------------------------------------------- build
bench_lf

# ------------------------------------------------------------------------ baselines
apt_updated=0
ensure() { # ensure COMMAND PACKAGE -> 0 if COMMAND is there (installing PACKAGE if need be)
  command -v "$1" >/dev/null && return 0
  say "installing $2"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1; then
    if [[ $apt_updated -eq 0 ]]; then
      apt_updated=1
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 || true
    fi
  fi
  command -v "$1" >/dev/null
}
NOTES=()
HAVE_BINDFS=1
HAVE_HYPERFINE=1
if ! ensure bindfs bindfs; then
  HAVE_BINDFS=0
  NOTES+=("bindfs could not be installed (apt-get install bindfs): the bindfs baseline is skipped")
fi
if ! ensure hyperfine hyperfine; then
  HAVE_HYPERFINE=0
  NOTES+=("hyperfine could not be installed: warm cat timed with a python loop of subprocess calls")
fi

# -------------------------------------------------------------- temp dir, cleanup
bench_tmp lffs-bench
WORK="$BENCH_TMP"
TMPFS="$WORK/tmpfs"     # tmpfs baseline
BSRC="$WORK/bindfs-src" # tmpfs under bindfs
BINDFS="$WORK/bindfs"   # bindfs over BSRC
LFFS="$WORK/lffs"       # the LFFS mount
HOMEDIR="$WORK/home"    # node home (on disk)
mkdir -p "$TMPFS" "$BSRC" "$BINDFS" "$HOMEDIR"

# After the node is stopped (lib.sh): the script's other mounts.
bench_on_exit() {
  for m in "$LFFS" "$BINDFS" "$BSRC" "$TMPFS"; do
    if mountpoint -q "$m" 2>/dev/null; then
      umount "$m" 2>/dev/null || umount -l "$m"
    fi
  done
}

# ----------------------------------------------------------------- python helpers
PY="$WORK/stats.py"
cat >"$PY" <<'EOF'
import json, re, statistics, subprocess, sys, time

def exec_times(runs, warmup, argv):
    """Wall times (s) of running argv, output discarded."""
    for _ in range(warmup):
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        ts.append(time.perf_counter() - t)
    return ts

def dd_seconds(argv):
    """Runs dd and returns the seconds it reports."""
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, check=True)
    m = re.search(r"copied, ([0-9.e+-]+) s", p.stderr)
    if not m:
        sys.exit("cannot parse dd output: " + p.stderr)
    return float(m.group(1))

cmd = sys.argv[1]
if cmd == "cat-times":                  # cat-times RUNS WARMUP FILE -> one s per line
    for t in exec_times(int(sys.argv[2]), int(sys.argv[3]), ["cat", sys.argv[4]]):
        print(t)
elif cmd == "exec-times":               # exec-times RUNS WARMUP ARGV... -> one s per line
    for t in exec_times(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]):
        print(t)
elif cmd == "hyperfine-times":          # hyperfine-times JSON -> one s per line
    for t in json.load(open(sys.argv[2]))["results"][0]["times"]:
        print(t)
elif cmd == "median-file":              # median-file FILE (one number a line) -> median
    print(statistics.median(float(l) for l in open(sys.argv[2]) if l.strip()))
elif cmd == "dd":                       # dd MIB RUNS ARGV... -> median MiB/s and the runs
    mib, runs = float(sys.argv[2]), int(sys.argv[3])
    rates = [mib / dd_seconds(sys.argv[4:]) for _ in range(runs)]
    print(statistics.median(rates), " ".join(f"{r:.0f}" for r in rates))
elif cmd == "dd-cold":                  # dd-cold MIB RUNS FILE -> like dd, the file's
    mib, runs, f = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]  # pages dropped first
    rates = []
    for _ in range(runs):
        subprocess.run(["dd", "if=" + f, "iflag=nocache", "count=0", "status=none"], check=True)
        rates.append(mib / dd_seconds(["dd", "if=" + f, "of=/dev/null", "bs=1M"]))
    print(statistics.median(rates), " ".join(f"{r:.0f}" for r in rates))
elif cmd == "time":                     # time ARGV... -> wall s
    t = time.perf_counter()
    subprocess.run(sys.argv[2:], check=True)
    print(time.perf_counter() - t)
elif cmd == "small-fsync":              # small-fsync DIR -> wall s of 1,000 files
    import os                           # created, written (100 B), fsynced, closed
    d = sys.argv[2]
    os.makedirs(d, exist_ok=True)
    t = time.perf_counter()
    for i in range(1000):
        fd = os.open(f"{d}/f{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"x" * 100)
        os.fsync(fd)
        os.close(fd)
    print(time.perf_counter() - t)
elif cmd == "publish-wait":             # publish-wait LF HOME URL -> s until nothing
    lf, home, url = sys.argv[2:5]           # waits (polled every 50 ms), then the count
    t = time.perf_counter()
    while True:
        j = json.loads(subprocess.run([lf, "-home", home, "-url", url, "-json", "status"],
                                      capture_output=True, check=True).stdout)
        if j["PendingCommits"] == 0:
            break
        time.sleep(0.05)
    print(time.perf_counter() - t, j["RecordCount"])
elif cmd == "median":                   # median X... -> median
    print(statistics.median(float(x) for x in sys.argv[2:]))
elif cmd == "status":                   # status FIELD < json -> value
    print(json.load(sys.stdin)[sys.argv[2]])
elif cmd == "table":                    # table TSV -> the table
    rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip()]
    head = ["figure", "LFFS", "tmpfs (5, 6: disk)", "bindfs/tmpfs", "ratio", "goal"]
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
fmt() { python3 -c "import sys; print(format(float(sys.argv[1]), sys.argv[2]))" "$1" "$2"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}x')" "$1" "$2"; }
# verdict VALUE OP LIMIT -> "ok"/"MISSED" (OP: le or ge)
verdict() {
  python3 -c "import sys; v,l=float(sys.argv[1]),float(sys.argv[3]); \
print('ok' if (v<=l if sys.argv[2]=='le' else v>=l) else 'MISSED')" "$1" "$2" "$3"
}

# ------------------------------------------------------------------------- mounts
say "mounting tmpfs at $TMPFS and bindfs over tmpfs at $BINDFS"
mount -t tmpfs -o size=512m,mode=0755 lffs-bench "$TMPFS"
mount -t tmpfs -o size=512m,mode=0755 lffs-bench "$BSRC"
if [[ $HAVE_BINDFS -eq 1 ]]; then
  bindfs "$BSRC" "$BINDFS"
fi

HTTP_PORT="$(bench_free_port)"
P2P_PORT="$(bench_free_port)"
URL="http://127.0.0.1:$HTTP_PORT"

say "fresh private network (difficulty 0, max value 60000) in $HOMEDIR"
HOME="$HOMEDIR" bench_network "$HOMEDIR" lffs-bench --max-value-size 60000
cat >"$HOMEDIR/mounts.yaml" <<EOF
- path: $LFFS
  root: bench.root
  owner_private: identity-secret.pem
  max_file_size: 268435456
EOF
say "starting the node (http $HTTP_PORT, p2p $P2P_PORT) and waiting for the mount"
HOME="$HOMEDIR" bench_node "$HOMEDIR" "$HOMEDIR/node.out" -http "$HTTP_PORT" -p2p "$P2P_PORT"
bench_wait_mounts "$NODE_PID" "$HOMEDIR/node.out" "$LFFS"

status() { # status FIELD -> value from `lf -json status`
  "$LF" -home "$HOMEDIR" -url "$URL" -json status | py status "$1"
}
# Waits until the node has published every LFFS change and its record count is steady;
# prints the record count.
settle() {
  local last=-1 n pending
  for _ in $(seq 2400); do
    pending="$(status PendingCommits)"
    n="$(status RecordCount)"
    if [[ "$pending" == 0 && "$n" == "$last" ]]; then
      echo "$n"
      return 0
    fi
    last="$n"
    sleep 0.25
  done
  die "node did not settle in 10 minutes (pending $pending)"
}
settle >/dev/null

ROWS="$WORK/rows.tsv"
: >"$ROWS"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"; }
BFS_NA="n/a (no bindfs)"
DETAILS=()

# ---------------------------------------------------------- 1. warm cat of 1 KiB
say "1. warm cat of a 1 KiB file"
head -c 1024 /dev/urandom >"$WORK/small.src"
for d in "$TMPFS" "$BINDFS" "$LFFS"; do
  [[ $d == "$BINDFS" && $HAVE_BINDFS -eq 0 ]] && continue
  cp "$WORK/small.src" "$d/small"
done
settle >/dev/null
cmp "$WORK/small.src" "$LFFS/small" || die "LFFS returned other bytes for the 1 KiB file"
FSES=(tmpfs lffs)
[[ $HAVE_BINDFS -eq 1 ]] && FSES+=(bindfs)
dir_of() { case $1 in tmpfs) echo "$TMPFS" ;; bindfs) echo "$BINDFS" ;; lffs) echo "$LFFS" ;; esac; }
# 4 rounds of 50 timed runs, the filesystems taking turns, so that load from other
# processes falls on all of them alike; the median is over all 200 runs.
for round in 1 2 3 4; do
  for name in "${FSES[@]}"; do
    f="$(dir_of "$name")/small"
    if [[ $HAVE_HYPERFINE -eq 1 ]]; then
      hyperfine -N --warmup 5 --runs 50 --style none --export-json "$WORK/hf.json" \
        "cat $f" >/dev/null 2>&1
      py hyperfine-times "$WORK/hf.json" >>"$WORK/cat.$name"
    else
      py cat-times 50 5 "$f" >>"$WORK/cat.$name"
    fi
  done
done
us() { python3 -c "import sys; print(f'{float(sys.argv[1])*1e6:.0f}')" "$1"; }
cat_tmpfs="$(py median-file "$WORK/cat.tmpfs")"
cat_lffs="$(py median-file "$WORK/cat.lffs")"
cat_bfs="$BFS_NA"
cat_ratio="$(ratio "$cat_lffs" "$cat_tmpfs") tmpfs"
if [[ $HAVE_BINDFS -eq 1 ]]; then
  b="$(py median-file "$WORK/cat.bindfs")"
  cat_bfs="$(us "$b")"
  cat_ratio+=", $(ratio "$cat_lffs" "$b") bindfs"
fi
row "warm cat 1 KiB (median of 200, µs)" "$(us "$cat_lffs")" "$(us "$cat_tmpfs")" \
  "$cat_bfs" "$cat_ratio" \
  "<= 1.5x tmpfs: $(verdict "$(python3 -c "print($cat_lffs/$cat_tmpfs)")" le 1.5)"

# ------------------------------------------------- 2. sequential read of 100 MiB
say "2. sequential read of a 100 MiB file (writing it first)"
head -c $((100 << 20)) /dev/urandom >"$TMPFS/big.src"
declare -A WRITE READ RUNS COLD
for name in tmpfs bindfs lffs; do
  case $name in
    tmpfs) d="$TMPFS" ;;
    bindfs) d="$BINDFS"; [[ $HAVE_BINDFS -eq 1 ]] || continue ;;
    lffs) d="$LFFS" ;;
  esac
  w="$(py dd 100 1 dd if="$TMPFS/big.src" of="$d/big" bs=1M)"
  WRITE[$name]="${w%% *}"
  if [[ $name == lffs ]]; then
    t0="$(date +%s.%N)"
    r0="$(status RecordCount)"
    r1="$(settle)"
    t1="$(date +%s.%N)"
    DETAILS+=("publishing the 100 MiB file after close: $((r1 - r0)) records in $(python3 -c "print(f'{$t1-$t0:.1f}')") s")
    cmp "$TMPFS/big.src" "$d/big" || die "LFFS returned other bytes for the 100 MiB file"
  fi
  out="$(py dd 100 5 dd if="$d/big" of=/dev/null bs=1M)"
  READ[$name]="${out%% *}"
  RUNS[$name]="${out#* }"
  DETAILS+=("read MiB/s, 5 runs in order, $name: ${RUNS[$name]}")
  out="$(py dd-cold 100 5 "$d/big")"
  COLD[$name]="${out%% *}"
  DETAILS+=("read MiB/s with the file's page cache dropped first, 5 runs, $name: ${out#* }")
done
rd_bfs="$BFS_NA"
wr_bfs="$BFS_NA"
rd_ratio="$(ratio "${READ[lffs]}" "${READ[tmpfs]}") tmpfs"
rd_goal="n/a (no bindfs)"
if [[ $HAVE_BINDFS -eq 1 ]]; then
  rd_bfs="$(fmt "${READ[bindfs]}" .0f)"
  wr_bfs="$(fmt "${WRITE[bindfs]}" .0f)"
  rd_ratio+=", $(ratio "${READ[lffs]}" "${READ[bindfs]}") bindfs"
  rd_goal=">= 0.7x bindfs: $(verdict "$(python3 -c "print(${READ[lffs]}/${READ[bindfs]})")" ge 0.7)"
fi
row "seq read 100 MiB (median of 5, MiB/s)" "$(fmt "${READ[lffs]}" .0f)" \
  "$(fmt "${READ[tmpfs]}" .0f)" "$rd_bfs" "$rd_ratio" "$rd_goal"
cold_bfs="$BFS_NA"
cold_ratio="$(ratio "${COLD[lffs]}" "${COLD[tmpfs]}") tmpfs"
if [[ $HAVE_BINDFS -eq 1 ]]; then
  cold_bfs="$(fmt "${COLD[bindfs]}" .0f)"
  cold_ratio+=", $(ratio "${COLD[lffs]}" "${COLD[bindfs]}") bindfs"
fi
row "  (info) same, page cache of the file dropped (fadvise) before each run" \
  "$(fmt "${COLD[lffs]}" .0f)" "$(fmt "${COLD[tmpfs]}" .0f)" "$cold_bfs" "$cold_ratio" "-"
wr_ratio="$(ratio "${WRITE[lffs]}" "${WRITE[tmpfs]}") tmpfs"
[[ $HAVE_BINDFS -eq 1 ]] && wr_ratio+=", $(ratio "${WRITE[lffs]}" "${WRITE[bindfs]}") bindfs"
row "  (info) write 100 MiB once, to close (MiB/s)" "$(fmt "${WRITE[lffs]}" .0f)" \
  "$(fmt "${WRITE[tmpfs]}" .0f)" "$wr_bfs" "$wr_ratio" "-"
rm -f "$TMPFS/big" "$BSRC/big"

# --------------------------------------- 3. create+write+close of 1,000 small files
say "3. create+write+close of 1,000 small files (3 runs per filesystem)"
# 3 rounds, the filesystems taking turns; each run in a fresh subdirectory.
for r in 1 2 3; do
  for name in "${FSES[@]}"; do
    d="$(dir_of "$name")/c$r"
    mkdir "$d"
    py time bash -c 'for i in $(seq 1000); do echo $i > "$1/f$i"; done' _ "$d" \
      >>"$WORK/create.$name"
    if [[ $name == lffs ]]; then settle >/dev/null; fi
  done
done
[[ "$(cat "$LFFS/c3/f1000")" == 1000 ]] || die "LFFS lost a small file"
cr_tmpfs="$(py median-file "$WORK/create.tmpfs")"
cr_lffs="$(py median-file "$WORK/create.lffs")"
cr_bfs="$BFS_NA"
cr_ratio="$(ratio "$cr_lffs" "$cr_tmpfs") tmpfs"
if [[ $HAVE_BINDFS -eq 1 ]]; then
  b="$(py median-file "$WORK/create.bindfs")"
  cr_bfs="$(fmt "$b" .3f)"
  cr_ratio+=", $(ratio "$cr_lffs" "$b") bindfs"
fi
for name in "${FSES[@]}"; do
  DETAILS+=("create 1,000 files, s per run, $name: $(python3 -c "import sys; print(' '.join(f'{float(x):.3f}' for x in sys.argv[1:]))" $(cat "$WORK/create.$name"))")
done
row "create+write+close 1,000 files (median of 3, s)" "$(fmt "$cr_lffs" .3f)" \
  "$(fmt "$cr_tmpfs" .3f)" "$cr_bfs" "$cr_ratio" "-"

# ---------------------------------------------- 4. dedup after a 1-byte edit
say "4. dedup after a 1-byte edit of a 10 MiB file"
head -c $((10 << 20)) /dev/urandom >"$TMPFS/mid.src"
r0="$(settle)"
cp "$TMPFS/mid.src" "$LFFS/mid"
r1="$(settle)"
# One byte in the middle, in place (no truncation): the file is re-chunked on close.
printf 'X' | dd of="$LFFS/mid" bs=1 seek=$((5 << 20)) conv=notrunc status=none
printf 'X' | dd of="$TMPFS/mid.src" bs=1 seek=$((5 << 20)) conv=notrunc status=none
r2="$(settle)"
cmp "$TMPFS/mid.src" "$LFFS/mid" || die "LFFS returned other bytes after the edit"
first=$((r1 - r0))
edit=$((r2 - r1))
chunks=$(((10 << 20) / 8192))
row "dedup: records for a 1-byte edit of 10 MiB" \
  "$edit new / $first for the first write" "-" "-" \
  "$(python3 -c "print(f'{100*$edit/$first:.2f}% rewritten')")" \
  "≈ chunk(s) + manifest (~$chunks chunks)"

# ------------------------------- 5. 64 MiB written with fsync, vs the home's disk
say "5. 64 MiB written with fsync (3 runs each), LFFS vs the disk holding the node home"
DISK="$WORK/disk"
mkdir -p "$DISK"
# New random bytes for every run: the same bytes again would be deduplicated (chunks
# the node has are not written again), which measures a rewrite, not a write. Each
# measurement starts with nothing dirty (sync), so that one run's writeback does not
# fall on the next.
for r in 1 2 3; do
  head -c $((64 << 20)) /dev/urandom >"$DISK/src64"
  sync
  py time dd if="$DISK/src64" of="$DISK/w$r" bs=1M conv=fsync status=none >>"$WORK/fsync.disk"
  sync
  py time dd if="$DISK/src64" of="$LFFS/w$r" bs=1M conv=fsync status=none >>"$WORK/fsync.lffs"
  settle >/dev/null
done
cmp "$DISK/src64" "$LFFS/w3" || die "LFFS returned other bytes than written"
fs_disk="$(python3 -c "import sys; print(64 / float(sys.argv[1]))" "$(py median-file "$WORK/fsync.disk")")"
fs_lffs="$(python3 -c "import sys; print(64 / float(sys.argv[1]))" "$(py median-file "$WORK/fsync.lffs")")"
row "write 64 MiB + fsync (median of 3, MiB/s; baseline: disk)" "$(fmt "$fs_lffs" .0f)" \
  "$(fmt "$fs_disk" .0f)" "-" "$(ratio "$fs_lffs" "$fs_disk") disk" \
  ">= 0.5x disk: $(verdict "$(python3 -c "print($fs_lffs / $fs_disk)")" ge 0.5)"
rm -f "$DISK"/w* "$LFFS"/w*

# -------------------- 6. 1,000 x (create, write, fsync, close), vs the home's disk
say "6. 1,000 small files, each fsynced (3 runs each), LFFS vs the disk holding the node home"
for r in 1 2 3; do
  sync
  py small-fsync "$DISK/s$r" >>"$WORK/small.disk"
  sync
  py small-fsync "$LFFS/s$r" >>"$WORK/small.lffs"
  settle >/dev/null
done
sm_disk="$(py median-file "$WORK/small.disk")"
sm_lffs="$(py median-file "$WORK/small.lffs")"
row "1,000 x (create, write, fsync, close) (median of 3, s; baseline: disk)" \
  "$(fmt "$sm_lffs" .3f)" "$(fmt "$sm_disk" .3f)" "-" "$(ratio "$sm_lffs" "$sm_disk") disk" \
  "<= 1.5x disk: $(verdict "$(python3 -c "print($sm_lffs / $sm_disk)")" le 1.5)"

# ------------------- 7. cold sequential read after drop_caches, vs the home's disk
say "7. cold read of a published 64 MiB file after drop_caches and a node restart (3 runs each), LFFS vs the disk"
cp "$DISK/src64" "$DISK/cold64"
cp "$DISK/src64" "$LFFS/cold64"
settle >/dev/null
# Every cache dropped, the node's own too (selector keys derived, names resolved): a
# restart, as after a reboot.
restart_node() {
  bench_stop "$NODE_PID"
  HOME="$HOMEDIR" bench_node "$HOMEDIR" "$HOMEDIR/node.restarted.out" \
    -http "$HTTP_PORT" -p2p "$P2P_PORT"
  bench_wait_mounts "$NODE_PID" "$HOMEDIR/node.restarted.out" "$LFFS"
  for _ in $(seq 300); do
    status RecordCount >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "node did not answer after its restart: $(tail -5 "$HOMEDIR/node.restarted.out")"
}
cold_read() { # cold_read FILE -> MiB/s, every cache the kernel has dropped first
  sync
  echo 3 >/proc/sys/vm/drop_caches
  python3 -c "import sys; print(64 / float(sys.argv[1]))" \
    "$(py time dd if="$1" of=/dev/null bs=1M status=none)"
}
for r in 1 2 3; do
  cold_read "$DISK/cold64" >>"$WORK/cold.disk"
  restart_node
  cold_read "$LFFS/cold64" >>"$WORK/cold.lffs"
done
cd_disk="$(py median-file "$WORK/cold.disk")"
cd_lffs="$(py median-file "$WORK/cold.lffs")"
row "cold read 64 MiB after drop_caches and a node restart (median of 3, MiB/s; baseline: disk)" \
  "$(fmt "$cd_lffs" .0f)" "$(fmt "$cd_disk" .0f)" "-" "$(ratio "$cd_lffs" "$cd_disk") disk" \
  ">= 0.5x disk: $(verdict "$(python3 -c "print($cd_lffs / $cd_disk)")" ge 0.5)"

# ---------------- 8. read right after writing (not yet published) vs after publishing
say "8. 64 MiB read right after it is written, then again once it is published"
for r in 1 2 3; do
  head -c $((64 << 20)) /dev/urandom >"$DISK/fresh64"
  cp "$DISK/fresh64" "$LFFS/fresh$r"
  pend="$(status PendingCommits)"
  py dd-cold 64 1 "$LFFS/fresh$r" | cut -d' ' -f1 >>"$WORK/fresh.before"
  settle >/dev/null
  py dd-cold 64 1 "$LFFS/fresh$r" | cut -d' ' -f1 >>"$WORK/fresh.after"
  DETAILS+=("read after write, run $r: $pend changes were waiting to be published when the read began")
  cmp "$DISK/fresh64" "$LFFS/fresh$r" || die "LFFS returned other bytes for a fresh file"
done
fr_before="$(py median-file "$WORK/fresh.before")"
fr_after="$(py median-file "$WORK/fresh.after")"
row "read 64 MiB right after writing / after publishing (median of 3, MiB/s)" \
  "$(fmt "$fr_before" .0f)" "$(fmt "$fr_after" .0f) (published)" "-" \
  "$(ratio "$fr_before" "$fr_after") published" \
  ">= 0.8x published: $(verdict "$(python3 -c "print($fr_before / $fr_after)")" ge 0.8)"
rm -f "$LFFS"/fresh* "$LFFS/cold64" "$DISK/cold64" "$DISK/fresh64"

# ------------------------------------------------- 9. publication rate, 64 MiB
say "9. publication of a 64 MiB file: records per second from close until nothing waits (3 runs)"
for r in 1 2 3; do
  head -c $((64 << 20)) /dev/urandom >"$DISK/pub64"
  r0="$(settle)"
  cp "$DISK/pub64" "$LFFS/pub$r"
  read -r secs r1 < <(py publish-wait "$LF" "$HOMEDIR" "$URL")
  rate="$(python3 -c "print(($r1 - $r0) / $secs)")"
  echo "$rate" >>"$WORK/publish"
  DETAILS+=("publishing 64 MiB, run $r: $((r1 - r0)) records in $(fmt "$secs" .2f) s (polled every 50 ms)")
done
pub_rate="$(py median-file "$WORK/publish")"
row "publish 64 MiB without proof of work (median of 3, records/s)" "$(fmt "$pub_rate" .0f)" \
  "-" "-" "-" ">= 2000/s: $(verdict "$pub_rate" ge 2000)"
rm -f "$LFFS"/pub* "$DISK/pub64"

# ----------------------------------------- 10. lf get per process, vs cat on the mount
say "10. lf get of one key, whole CLI process, vs cat of a file on the mount (median of 100)"
"$LF" -home "$HOMEDIR" -url "$URL" set bench key#0 value >/dev/null
printf 'value' >"$LFFS/getme"
settle >/dev/null
if [[ $HAVE_HYPERFINE -eq 1 ]]; then
  hyperfine -N --warmup 5 --runs 100 --style none --export-json "$WORK/get.json" \
    "$LF -home $HOMEDIR -url $URL get bench key#0" >/dev/null 2>&1
  py hyperfine-times "$WORK/get.json" >"$WORK/get.times"
  hyperfine -N --warmup 5 --runs 100 --style none --export-json "$WORK/getcat.json" \
    "cat $LFFS/getme" >/dev/null 2>&1
  py hyperfine-times "$WORK/getcat.json" >"$WORK/getcat.times"
else
  py exec-times 100 5 "$LF" -home "$HOMEDIR" -url "$URL" get bench key#0 >"$WORK/get.times"
  py cat-times 100 5 "$LFFS/getme" >"$WORK/getcat.times"
fi
get_s="$(py median-file "$WORK/get.times")"
getcat_s="$(py median-file "$WORK/getcat.times")"
row "lf get, one key, per process (median of 100, ms)" \
  "$(python3 -c "print(f'{$get_s*1000:.2f}')")" "-" "-" \
  "$(ratio "$get_s" "$getcat_s") cat on the mount ($(python3 -c "print(f'{$getcat_s*1000:.2f}')") ms)" \
  "< 3 ms: $(verdict "$(python3 -c "print($get_s*1000)")" le 3)"

# -------------------------------------------------------------------------- table
echo
echo "LFFS figures — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), lf $("$LF" version 2>/dev/null | head -1) ($(bench_label))"
echo "node home on $(findmnt -n -o FSTYPE --target "$HOMEDIR") (${HOMEDIR}); bindfs $(bindfs --version 2>/dev/null | head -1 | awk '{print $2}') default options"
echo
py table "$ROWS"
echo
for d in "${DETAILS[@]}"; do echo "  $d"; done
for n in "${NOTES[@]}"; do echo "note: $n"; done
