#!/usr/bin/env python3
"""Raw fdatasync latency of this disk (issue #17, README "Performance"): 3 000 syncs after
a 200-byte append, then after a 200-byte overwrite of already written blocks, from one and
two threads. Usage: scripts/fdatasync-latency.py [DIR] (default /tmp/fdatasync-latency;
its files are removed afterwards)."""
import os
import sys
import threading
import time

N = 3000


def run(path, mode, out):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if mode == "overwrite":
        os.write(fd, b"\0" * (N * 256 + 4096))
        os.fsync(fd)
        os.lseek(fd, 0, 0)
    for _ in range(N):
        os.write(fd, b"x" * 200)
        t = time.perf_counter()
        os.fdatasync(fd)
        out.append(time.perf_counter() - t)
    os.close(fd)
    os.unlink(path)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/fdatasync-latency"
    os.makedirs(d, exist_ok=True)
    for mode in ("append", "overwrite"):
        for threads in (1, 2):
            outs = [[] for _ in range(threads)]
            ts = [threading.Thread(target=run, args=(os.path.join(d, f"f{i}"), mode, outs[i])) for i in range(threads)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            lat = sorted(sum(outs, []))
            pct = " ".join(f"p{p}={lat[int(len(lat) * p / 100) - 1] * 1e3:.3f}ms" for p in (50, 90, 99, 100))
            print(f"{mode} threads={threads} {len(lat) / (time.perf_counter() - t0):.0f} syncs/s {pct}")
    os.rmdir(d)


if __name__ == "__main__":
    main()
