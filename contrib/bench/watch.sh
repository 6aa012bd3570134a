#!/usr/bin/env bash
# Watch figures (issue 20):
#   1. Notification latency: two nodes of a private network without proof of work, each
#      with an LFFS mount of the same tree, node 2 replicating from node 1. A file is
#      written through node 1's mount (N times, one at a time); measured from the
#      write's close to the line `lf -json watch` (running on node 2 over its mount)
#      prints for it, p50/p95. Baseline in the same run: the same writes, measured to
#      the moment the new content is readable through node 2's mount (polled every
#      2 ms): what replication alone takes, which no watcher can beat.
#   2. 1,000 concurrent watchers on node 2 (NDJSON streams of `/watch`, each over its own
#      selector `bench-<i>`, one Python process holding the 1,000 connections): the
#      node's RSS and CPU (user+system, % of one core) over 10 s at rest with the
#      watchers connected, and over 10 s of 100 writes/s (`/makerecord` on node 2 to
#      random selectors `bench-<j>`: each write is an event for one watcher, and wakes
#      every watcher's matching); the same two phases without watchers as the baseline;
#      and the events the watchers received against the writes made.
#
# Usage: contrib/bench/watch.sh (root: FUSE mounts)
# Environment: LF_BENCH_WRITES=N (latency samples, default 100), LF_BIN, BENCH_DIR
#   (see lib.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init watch.sh
bench_need python3 jq curl mountpoint
N="${LF_BENCH_WRITES:-100}"
bench_lf
bench_tmp lf-watch
tmp="$BENCH_TMP"

bench_network "$tmp/net" watchbench --max-value-size 60000
for n in 1 2; do
  mkdir -p "$tmp/h$n" "$tmp/m$n"
  cp "$tmp/net/genesis.lf" "$tmp/h$n/"
  printf -- '- path: %s\n  root: bench.root\n  owner_private: identity-secret.pem\n' \
    "$tmp/m$n" >"$tmp/h$n/mounts.yaml"
done
p1="$(bench_free_port)"
bench_node "$tmp/h1" "$tmp/n1.out" -http 0 -p2p "$p1"
pid1=$NODE_PID
bench_wait_url "$tmp/h1" "$pid1" "$tmp/n1.out"
bench_node "$tmp/h2" "$tmp/n2.out" -http 0 -p2p "$(bench_free_port)" \
  -peer "/ip4/127.0.0.1/tcp/$p1" -watch-max 1100 -http-max-connections 1200
pid2=$NODE_PID
bench_wait_url "$tmp/h2" "$pid2" "$tmp/n2.out"
url2="$NODE_URL"
bench_wait_mounts "$pid2" "$tmp/n2.out" "$tmp/m1" "$tmp/m2"
mkdir "$tmp/m1/lat"
for ((i = 0; i < 300; i++)); do [[ -d "$tmp/m2/lat" ]] && break; sleep 0.1; done
[[ -d "$tmp/m2/lat" ]] || die "node 2 does not see node 1's directory"

say "latency: $N writes on node 1, read and watched on node 2"
lat="$(python3 - "$LF" "$tmp" "$N" <<'PY'
import json, os, subprocess, sys, time
lf, tmp, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] * 1000
# Baseline: readable through node 2's mount.
read = []
for i in range(n):
    body = f"read {i}\n"
    t0 = time.monotonic()
    with open(f"{tmp}/m1/lat/r{i}", "w") as f:
        f.write(body)
    t0 = time.monotonic()
    p = f"{tmp}/m2/lat/r{i}"
    while True:
        try:
            if open(p).read() == body: break
        except OSError: pass
        time.sleep(0.002)
    read.append(time.monotonic() - t0)
w = subprocess.Popen([lf, "-home", f"{tmp}/h2", "-json", "watch", f"{tmp}/m2/lat"],
                     stdout=subprocess.PIPE, text=True, bufsize=1)
time.sleep(2)
watch = []
for i in range(n):
    body = f"watched {i}\n"
    with open(f"{tmp}/m1/lat/w{i}", "w") as f:
        f.write(body)
    t0 = time.monotonic()
    want = f"{tmp}/m2/lat/w{i}"
    while True:
        e = json.loads(w.stdout.readline())
        if e.get("Path") == want and e.get("Size") == len(body): break
    watch.append(time.monotonic() - t0)
w.kill()
print(f"{pct(read,50):.0f} {pct(read,95):.0f} {pct(watch,50):.0f} {pct(watch,95):.0f}")
PY
)" || die "latency measurement failed"
read -r r50 r95 w50 w95 <<<"$lat"

say "1,000 watchers on node 2: at rest and under 100 writes/s, and without watchers"
token="$(cat "$tmp/h2/authtoken.secret")"
load="$(python3 - "$url2" "$token" "$pid2" <<'PY'
import json, os, random, selectors, socket, sys, threading, time, urllib.request
url, token, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = url.split("//")[1].split(":")
port = int(port)
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) // 1024
def write(i):
    body = json.dumps({"Selectors": [{"Name": f"bench-{i}"}], "Value": f"v{time.time()}"}).encode()
    r = urllib.request.Request(url + "/makerecord", body, {"Authorization": "Bearer " + token})
    urllib.request.urlopen(r).read()
def phase(secs, rate):
    c0, t0, made = cpu(), time.monotonic(), 0
    while time.monotonic() - t0 < secs:
        if rate:
            write(random.randrange(1000)); made += 1
            nxt = t0 + made / rate
            time.sleep(max(0, nxt - time.monotonic()))
        else:
            time.sleep(0.2)
    el = time.monotonic() - t0
    return (cpu() - c0) / el * 100, rss(), made / el if rate else 0, made
events = [0]
stop = threading.Event()
def hold(k):
    sel = selectors.DefaultSelector(); socks = []
    for i in range(k):
        s = socket.create_connection((host, port))
        b = json.dumps({"Selectors": [{"Name": f"bench-{i}"}], "Stream": True}).encode()
        s.sendall(b"POST /watch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
        s.setblocking(False); sel.register(s, selectors.EVENT_READ); socks.append(s)
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(0.2):
            d = key.fileobj.recv(65536)
            events[0] += d.count(b'"Kind"')
    for s in socks: s.close()
out = []
out += phase(10, 0)[:2]                          # baseline at rest, no watchers
b = phase(10, 100); out += b[:3]                 # baseline under writes
ready = threading.Event()
t = threading.Thread(target=hold, args=(1000,)); t.start(); ready.wait()
time.sleep(3)
out += phase(10, 0)[:2]                          # 1,000 watchers at rest
events[0] = 0
time.sleep(1)
w = phase(10, 100); out += w[:3]
time.sleep(3)
out += [w[3], events[0]]
stop.set(); t.join()
print(" ".join(f"{x:.1f}" if isinstance(x, float) else str(x) for x in out))
PY
)" || die "load measurement failed"
read -r c0 m0 c1 m1 rate1 c2 m2 c3 m3 rate3 made got <<<"$load"

cat <<EOF

LF watch figures ($(bench_label); $(nproc) cores; load avg $(cut -d' ' -f1 /proc/loadavg))

notification latency, write closed on node 1 -> ..., $N writes    p50 ms   p95 ms
  readable through node 2's mount (replication alone; baseline)   $r50      $r95
  lf watch line on node 2                                          $w50      $w95

node 2, 10 s per row                          CPU % of a core   RSS MiB   writes/s
  no watchers, at rest                         $c0              $m0
  no watchers, writes                          $c1              $m1       $rate1
  1,000 watchers, at rest                      $c2              $m2
  1,000 watchers, writes                       $c3              $m3       $rate3
events received by the watchers: $got for $made writes (one watcher per written selector)
EOF
