#!/usr/bin/env python3
"""Load generator for bench/net: plain HTTP/1.0 over TCP, stdlib only.

  netload.py stream  HOST PORT PATH SECONDS
      GETs PATH (a large file) again and again on one connection at a time
      and reads for SECONDS; prints the bytes received per second (all
      bytes, headers included) as MB/s (10^6 bytes).
  netload.py connect HOST PORT PATH SECONDS [PARALLEL]
      PARALLEL processes (default 1), each opening connections one after
      another for SECONDS: connect, GET PATH, read the whole answer, close.
      Prints completed connections per second (all processes together).

With CPU_REPORT=FILE in the environment, the CPU time the host's
processes used while measuring goes to FILE (user + system from
/proc/PID/stat, as percent of one CPU, largest first; processes that exit
meanwhile are missed): this run's by command name (those whose command line
or root names CPU_MARK, this client, and their descendants), kernel threads
(softirq work, kworkers: anyone's) and everyone else's as two sums.

Anything that goes wrong (refused, reset, a short or non-200 answer) is
counted; the figure is still printed, the error count goes to stderr and
the exit status is 1.
"""

import os
import socket
import sys
import time

BUF = 1 << 20


def request(path):
    return f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode()


def stream(host, port, path, seconds):
    buf = bytearray(BUF)
    view = memoryview(buf)
    req = request(path)
    total = 0
    errors = 0
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=10) as s:
                s.sendall(req)
                first = True
                while True:
                    n = s.recv_into(view)
                    if n == 0:
                        break
                    if first:
                        first = False
                        if not buf[:n].startswith(b"HTTP/1.") or b" 200 " not in buf[:20]:
                            errors += 1
                            break
                    total += n
                    if time.monotonic() >= deadline:
                        break
        except OSError as e:
            errors += 1
            print(f"netload: {e}", file=sys.stderr)
            if errors > 5:
                break
    elapsed = time.monotonic() - start
    return total / elapsed / 1e6, errors


def connect_worker(host, port, path, deadline, fd):
    req = request(path)
    done = 0
    errors = 0
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=10) as s:
                s.sendall(req)
                answer = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            if answer.startswith(b"HTTP/1.") and b" 200 " in answer[:20]:
                done += 1
            else:
                errors += 1
                last = f"answer {answer[:40]!r}"
        except OSError as e:
            errors += 1
            last = str(e)
            if errors > 20:
                break
    os.write(fd, f"{done} {errors} {last}\n".encode())


def connect(host, port, path, seconds, parallel):
    start = time.monotonic()
    deadline = start + seconds
    r, w = os.pipe()
    pids = []
    for _ in range(parallel):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                connect_worker(host, port, path, deadline, w)
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(w)
    for pid in pids:
        os.waitpid(pid, 0)
    elapsed = time.monotonic() - start
    done = errors = 0
    with os.fdopen(r) as f:
        for line in f:
            d, e, last = (line.rstrip("\n").split(" ", 2) + [""])[:3]
            done += int(d)
            errors += int(e)
            if last:
                print(f"netload: {last}", file=sys.stderr)
    return done / elapsed, errors


def cpu_snapshot():
    """{pid: (comm, ppid, ticks)} for every process now."""
    snap = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        snap[int(name)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]))
    return snap


def is_ours(pid, snap, mark, memo):
    """Whether pid belongs to this run: its command line or root names
    mark, it is this client, or its parent is ours."""
    if pid in memo:
        return memo[pid]
    memo[pid] = False
    ours = pid == os.getpid()
    if not ours and mark:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                ours = mark.encode() in f.read()
            ours = ours or os.readlink(f"/proc/{pid}/root").startswith(mark)
        except OSError:
            pass
    if not ours and pid in snap and snap[pid][1] > 1:
        ours = is_ours(snap[pid][1], snap, mark, memo)
    memo[pid] = ours
    return ours


def cpu_report(before, after, seconds, path):
    hz = os.sysconf("SC_CLK_TCK")
    mark = os.environ.get("CPU_MARK", "")
    memo = {}
    groups = {}
    for pid, (comm, ppid, ticks) in after.items():
        used = ticks - before[pid][2] if pid in before else ticks
        if pid == 2 or ppid == 2:
            key = "kernel-threads"
        elif is_ours(pid, after, mark, memo):
            key = comm
        else:
            key = "(others)"
        groups[key] = groups.get(key, 0) + used
    with open(path, "w") as f:
        for key, ticks in sorted(groups.items(), key=lambda kv: -kv[1]):
            pct = 100.0 * ticks / hz / seconds
            if pct >= 1:
                f.write(f"{key} {pct:.0f}%\n")


def main(argv):
    if len(argv) < 6 or argv[1] not in ("stream", "connect"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, host, port, path, seconds = argv[1], argv[2], int(argv[3]), argv[4], float(argv[5])
    report = os.environ.get("CPU_REPORT")
    before = cpu_snapshot() if report else None
    started = time.monotonic()
    if mode == "stream":
        value, errors = stream(host, port, path, seconds)
        print(f"{value:.1f}")
    else:
        parallel = int(argv[6]) if len(argv) > 6 else 1
        value, errors = connect(host, port, path, seconds, parallel)
        print(f"{value:.0f}")
    if report:
        cpu_report(before, cpu_snapshot(), time.monotonic() - started, report)
    if errors:
        print(f"netload: {errors} error(s) talking to {host}:{port}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
