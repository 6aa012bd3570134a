# Shared prologue of the scripts in contrib/bench/, sourced (not run):
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_init query.sh            # strict mode, LC_ALL=C, cd to the repository, say/die
#   bench_lf                       # LF: $LF_BIN or `cargo build --release -p lf`
#   bench_tmp lf-query             # BENCH_TMP, and the cleanup traps
#   bench_network "$BENCH_TMP/net" bench [makegenesis options...]
#   bench_node "$home" "$out" [node-start options...]   # NODE_PID, stopped at exit
#   bench_wait_url "$home" "$NODE_PID" "$out"           # NODE_URL from client.json
#   ... echo "lf $(bench_label)" in the table
#
# Environment every script takes:
#   LF_BIN=/path/to/lf   use this binary instead of `cargo build --release -p lf`; the
#                        table then names it instead of the checkout's commit
#   BENCH_DIR=/some/dir  parent of the temp dir (default: $TMPDIR or /tmp)
# Everything started through here (processes, and LFFS mounts under the temp dir) is
# stopped and removed at exit, also on error or Ctrl-C; a script unmounts its own other
# mounts (tmpfs, bindfs baselines) in a `bench_on_exit` function, called after the
# processes are stopped.

set -euo pipefail
export LC_ALL=C

# bench_init NAME: strict mode, the repository as working directory, say/die naming NAME.
bench_init() {
  BENCH_NAME="$1"
  BENCH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  cd "$BENCH_REPO"
  BENCH_PIDS=()
  BENCH_TMP=""
}

say() { printf '== %s\n' "$*" >&2; }
die() {
  printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2
  exit 1
}

# bench_need TOOL...: dies naming the first missing one.
bench_need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || die "$t is needed"
  done
}

# bench_target: the cargo target directory.
bench_target() { echo "${CARGO_TARGET_DIR:-target}"; }

# bench_lf: sets LF to $LF_BIN (checked) or to a fresh `cargo build --release -p lf`.
bench_lf() {
  if [[ -n "${LF_BIN:-}" ]]; then
    LF="$LF_BIN"
    [[ -x "$LF" ]] || die "LF_BIN=$LF is not an executable"
    say "using $LF (LF_BIN)"
  else
    say "cargo build --release -p lf"
    cargo build --release -q -p lf || die "build failed (set LF_BIN to use a built binary)"
    LF="$(realpath "$(bench_target)/release/lf")"
  fi
}

# bench_example PACKAGE EXAMPLE: builds a release example, prints its path.
bench_example() {
  cargo build --release -q -p "$1" --example "$2" || die "building $2 failed"
  realpath "$(bench_target)/release/examples/$2"
}

# bench_label [PATH...]: what the figures were measured with: $LF_BIN when it is given
# (it need not be this checkout's), else the checkout's commit, "+dirty" when the
# working tree differs from it (in PATHs only, when given).
bench_label() {
  if [[ -n "${LF_BIN:-}" ]]; then
    echo "$LF_BIN"
    return
  fi
  local rev
  rev="$(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
  git -C "$BENCH_REPO" diff --quiet HEAD -- "$@" 2>/dev/null || rev="$rev+dirty"
  echo "$rev"
}

# bench_tmp PREFIX: makes BENCH_TMP under $BENCH_DIR (or $TMPDIR, or /tmp) and installs
# the traps that clean up at exit.
bench_tmp() {
  BENCH_TMP="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/$1.XXXXXX")"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# bench_stop PID: SIGTERM, then SIGKILL after 30 s.
bench_stop() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "process $pid still running after 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# bench_track PID: stopped at exit (last tracked, first stopped).
bench_track() { BENCH_PIDS+=("$1"); }

bench_cleanup() {
  local rc=$? i m
  trap - EXIT INT TERM
  set +e
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
    bench_stop "${BENCH_PIDS[$i]}"
  done
  if declare -F bench_on_exit >/dev/null; then
    bench_on_exit
  fi
  if [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" ]]; then
    # LFFS mounts a killed node left (dead): cleared, so the temp dir can go.
    while read -r m; do
      [[ -n "$m" ]] && { umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null; }
    done < <(awk -v d="$BENCH_TMP/" 'index($5, d) == 1 {
        for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 2) == "lffs") print $5; break } }' \
      /proc/self/mountinfo 2>/dev/null)
    if awk -v d="$BENCH_TMP/" 'index($5, d) == 1 { found = 1 } END { exit !found }' \
      /proc/self/mountinfo 2>/dev/null; then
      say "something is still mounted under $BENCH_TMP: left in place"
    else
      rm -rf "$BENCH_TMP"
    fi
  fi
  exit "$rc"
}

# bench_free_port: a free loopback TCP port.
bench_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_network DIR NAME [makegenesis options...]: a private network without proof of
# work (unless the options say otherwise) in DIR; its output in DIR/makegenesis.out.
bench_network() {
  local dir="$1" name="$2"
  shift 2
  mkdir -p "$dir"
  (cd "$dir" && "$LF" makegenesis --yes --name "$name" --difficulty 0 "$@" --out . \
    >makegenesis.out 2>&1) || die "makegenesis failed: $(cat "$dir/makegenesis.out")"
}

# bench_node HOME OUT [node-start options...]: starts `lf node-start` on HOME in the
# background (output to OUT; P2P bound on 127.0.0.1, no mDNS: nothing leaves loopback),
# with no FUSE mounts unless HOME has a mounts.yaml; sets NODE_PID, stopped at exit.
bench_node() {
  local home="$1" out="$2"
  shift 2
  [[ -e "$home/mounts.yaml" ]] || echo '[]' >"$home/mounts.yaml"
  "$LF" -home "$home" node-start -p2p-bind 127.0.0.1 -no-mdns "$@" >"$out" 2>&1 &
  NODE_PID=$!
  bench_track "$NODE_PID"
}

# bench_wait_url HOME PID OUT: waits (30 s) until the node serves the URL its client.json
# names; sets NODE_URL.
bench_wait_url() {
  local home="$1" pid="$2" out="$3" i
  NODE_URL=""
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || die "node exited: $(tail -5 "$out")"
    if [[ -s "$home/client.json" ]]; then
      NODE_URL="$(jq -r '.URLs[0] // empty' "$home/client.json")"
      [[ -n "$NODE_URL" ]] && curl -fsS "$NODE_URL/status" >/dev/null 2>&1 && return 0
    fi
    NODE_URL=""
    sleep 0.1
  done
  die "node did not start: $(tail -5 "$out")"
}

# bench_wait_mounts PID OUT PATH...: waits (30 s) until every PATH is mounted.
bench_wait_mounts() {
  local pid="$1" out="$2" i m up
  shift 2
  for ((i = 0; i < 600; i++)); do
    up=1
    for m in "$@"; do mountpoint -q "$m" || up=0; done
    [[ $up -eq 1 ]] && return 0
    kill -0 "$pid" 2>/dev/null || die "node exited: $(tail -20 "$out")"
    sleep 0.05
  done
  die "LFFS not mounted after 30 s: $(tail -20 "$out")"
}
