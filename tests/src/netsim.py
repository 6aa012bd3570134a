"""The link of the namespace test bed (tests/src/netns.rs): a user-space Ethernet switch
over one TAP device per network namespace that delays every frame and drops a share of
them, because this kernel has no netem (see ../shared/notes/netns.md).

Usage: python3 netsim.py TAP...   (root; creates the TAP devices, prints "ready")
Commands on stdin, one per line, each answered "ok" on stdout:
  link DELAY_MS LOSS_PERCENT   one-way delay of every frame, share of frames dropped
  cut PORT                     frames from or to that port are dropped (a cut cable)
  heal PORT                    undoes cut
  stats                        answers "ok FORWARDED DROPPED"
The switch stops when stdin closes (its owner went away) or on "quit".

Python, not Rust: opening a TAP device takes an ioctl, which the workspace's
`unsafe_code = "forbid"` rules out, and the standard library has everything needed.
Frames leave in arrival order (one constant delay per run), as on a real link."""

import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def main():
    names = sys.argv[1:]
    taps = [open_tap(n) for n in names]
    port_of = {fd: i for i, fd in enumerate(taps)}
    delay, loss = 0.0, 0.0
    cut = set()
    where = {}  # MAC address -> port
    queue = []  # (due, seq, port, frame)
    seq = 0
    forwarded = dropped = 0
    rng = random.Random(int(os.environ.get("NETSIM_SEED", "18")))
    stdin = sys.stdin.fileno()
    pending = b""
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    while True:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, port, frame = heapq.heappop(queue)
            if port in cut:
                dropped += 1
                continue
            try:
                os.write(taps[port], frame)
                forwarded += 1
            except OSError:
                dropped += 1  # the namespace side is down: the frame is lost
        timeout = max(0.0, queue[0][0] - now) if queue else None
        ready, _, _ = select.select(taps + [stdin], [], [], timeout)
        for fd in ready:
            if fd == stdin:
                data = os.read(stdin, 4096)
                if not data:
                    return
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    words = line.decode().split()
                    if not words:
                        continue
                    if words[0] == "quit":
                        return
                    if words[0] == "link":
                        delay, loss = float(words[1]) / 1000.0, float(words[2]) / 100.0
                        out.write("ok\n")
                    elif words[0] == "cut":
                        cut.add(int(words[1]))
                        out.write("ok\n")
                    elif words[0] == "heal":
                        cut.discard(int(words[1]))
                        out.write("ok\n")
                    elif words[0] == "stats":
                        out.write("ok %d %d\n" % (forwarded, dropped))
                    else:
                        out.write("error unknown command %s\n" % words[0])
                    out.flush()
                continue
            src = port_of[fd]
            while True:
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if len(frame) < 14:
                    continue
                where[frame[6:12]] = src
                if src in cut:
                    dropped += 1
                    continue
                dst = where.get(frame[0:6])
                targets = [dst] if dst is not None else [p for p in range(len(taps)) if p != src]
                due = time.monotonic() + delay
                for t in targets:
                    if t == src:
                        continue
                    if loss > 0 and rng.random() < loss:
                        dropped += 1
                        continue
                    seq += 1
                    heapq.heappush(queue, (due, seq, t, frame))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
