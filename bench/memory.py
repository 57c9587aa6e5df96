#!/usr/bin/env python3
"""sluice memory figures (standard library only). Run it through bench/memory.sh, which builds
the Release binary and loadgen first.

Four measurements, each a fresh `sluice run` in a temp dir with a config equal to the built-in
default (tcp and zmq sources, file and SQLite sinks, HTTP API) on the ports below:
  bare     a program that loads sluice's shared libraries (its DT_NEEDED list) and does
           nothing: the floor no setting of sluice can go under
  idle     1,000 lines through both sinks, then idle: VmRSS, RssAnon, RssFile, threads
  locked   queue.max_bytes = 4MiB, another connection holds BEGIN EXCLUSIVE on logs.db, a
           client keeps sending: VmHWM while the queue is full and the source paused
  burst    queue.max_bytes = MAX_BYTES_MIB (64), the database locked, loadgen sends LINES
           (2,000,000) lines: VmHWM with the queue full; then the lock goes and the sink
           drains the backlog at full speed: VmHWM at the end. Reported minus max_bytes.

Environment: SLUICE (the binary to measure, default build-release/sluice), LINES (2000000),
MAX_BYTES_MIB (64), API_PORT (19698), TCP_PORT (15270), ZMQ_PORT (15271), KEEP=1 (keep the temp
dir), BENCH_TMP (parent of the temp dir, /tmp).
"""

import http.client
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-release")
SLUICE = os.environ.get("SLUICE", os.path.join(BUILD, "sluice"))
LOADGEN = os.path.join(BUILD, "bench", "loadgen")
LOGS = os.path.join(ROOT, "tests", "data", "real_logs")

LINES = int(os.environ.get("LINES", "2000000"))
MAX_BYTES_MIB = int(os.environ.get("MAX_BYTES_MIB", "64"))
API_PORT = int(os.environ.get("API_PORT", "19698"))
TCP_PORT = int(os.environ.get("TCP_PORT", "15270"))
ZMQ_PORT = int(os.environ.get("ZMQ_PORT", "15271"))
MIB = 1 << 20

BARE_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    puts("ready");
    fflush(stdout);
    pause();
    return 0;
}
"""


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        text = f.read()
    fields = {}
    for key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
        m = re.search(rf"^{key}:\s+(\d+)", text, re.M)
        fields[key] = int(m.group(1)) * (1024 if key != "Threads" else 1)
    return fields


def thread_names(pid):
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            name = f.read().strip()
        names[name] = names.get(name, 0) + 1
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(names.items()))


def biggest_mappings(pid, n=8):
    rss = {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split()
                name = os.path.basename(parts[5]) if len(parts) > 5 else "(anonymous)"
            elif line.startswith("Rss:"):
                rss[name] = rss.get(name, 0) + int(line.split()[1])
    top = sorted(rss.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{k} {v / 1024:.1f}" for k, v in top)


def mib(b):
    return f"{b / MIB:.1f}"


def bare_reference(work):
    """RSS of a do-nothing program that loads the same shared libraries as sluice."""
    out = subprocess.run(["readelf", "-d", SLUICE], capture_output=True, text=True,
                         check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
    src = os.path.join(work, "bare.c")
    binary = os.path.join(work, "bare")
    with open(src, "w") as f:
        f.write(BARE_C)
    subprocess.run(["cc", "-O2", "-o", binary, src, "-Wl,--no-as-needed"] +
                   [f"-l:{lib}" for lib in needed], check=True)
    proc = subprocess.Popen([binary], stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        time.sleep(0.2)
        return status(proc.pid), biggest_mappings(proc.pid)
    finally:
        proc.kill()
        proc.wait()


class Daemon:
    def __init__(self, work, max_bytes_mib):
        self.work = work
        self.data = os.path.join(work, "data")
        cfg = os.path.join(work, "sluice.toml")
        with open(cfg, "w") as f:
            f.write(f'data_dir = "{self.data}"\n\n'
                    f'[api]\naddress = "127.0.0.1:{API_PORT}"\n\n'
                    f'[queue]\nmax_bytes = "{max_bytes_mib}MiB"\nwhen_full = "block"\n\n'
                    f'[sources.tcp]\ntype = "tcp"\naddress = "127.0.0.1:{TCP_PORT}"\n\n'
                    f'[sources.zmq]\ntype = "zmq"\nendpoint = "tcp://127.0.0.1:{ZMQ_PORT}"\n'
                    f'socket = "pull"\nbind = true\n\n'
                    f'[sinks.file]\ntype = "file"\npath = "logs/sluice.log"\n\n'
                    f'[sinks.sqlite]\ntype = "sqlite"\npath = "logs.db"\n')
        self.log = open(os.path.join(work, "sluice.log"), "w")
        self.proc = subprocess.Popen([SLUICE, "run", "-c", cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=work)
        self.wait("the API", lambda: self.metric("sluice_queue_bytes") is not None, 30)

    def metrics(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=2)
            conn.request("GET", "/metrics")
            body = conn.getresponse().read().decode()
            conn.close()
            return body
        except OSError:
            return ""

    def metric(self, name):
        m = re.search(rf"^{re.escape(name)}\s+(\S+)", self.metrics(), re.M)
        return float(m.group(1)) if m else None

    def wait(self, what, done, timeout=120):
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None:
                sys.exit(f"sluice exited ({self.proc.returncode}) waiting for {what}")
            if time.monotonic() > deadline:
                sys.exit(f"timed out waiting for {what}")
            time.sleep(0.05)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def send_lines(n, prefix):
    with socket.create_connection(("127.0.0.1", TCP_PORT)) as s:
        s.sendall(b"".join(f"{prefix}-{i:07d} an idle daemon's line\n".encode()
                           for i in range(n)))


class SteadySender(threading.Thread):
    """Keeps sending lines while the daemon reads them (or not)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", TCP_PORT))
        self.sock.settimeout(0.1)
        self.stop = False

    def run(self):
        chunk = b"".join(f"mem-{i:07d} {'x' * 180}\n".encode() for i in range(256))
        while not self.stop:
            try:
                self.sock.send(chunk)
            except socket.timeout:
                pass
            except OSError:
                return
        self.sock.close()


def lock_db(d):
    lock = sqlite3.connect(os.path.join(d.data, "logs.db"), isolation_level=None, timeout=10)
    lock.execute("BEGIN EXCLUSIVE")
    return lock


def measure_idle(work):
    d = Daemon(work, 64)
    try:
        send_lines(1000, "idle")
        d.wait("1000 rows", lambda: d.metric('sluice_sink_events_total{sink="sqlite"}') == 1000)
        time.sleep(1)
        return status(d.proc.pid), thread_names(d.proc.pid), biggest_mappings(d.proc.pid)
    finally:
        d.stop()


def measure_locked(work):
    d = Daemon(work, 4)
    lock = lock_db(d)
    sender = SteadySender()
    try:
        idle = status(d.proc.pid)
        sender.start()
        d.wait("the source to pause", lambda: d.metric('sluice_source_paused{source="tcp"}') == 1)
        time.sleep(3)
        return idle, status(d.proc.pid)
    finally:
        sender.stop = True
        sender.join()
        lock.close()
        d.stop()


def measure_burst(work):
    d = Daemon(work, MAX_BYTES_MIB)
    lock = lock_db(d)
    gen = subprocess.Popen([LOADGEN, "--logs", LOGS, "--lines", str(LINES), "--port",
                            str(TCP_PORT), "--connections", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        d.wait("the source to pause", lambda: d.metric('sluice_source_paused{source="tcp"}') == 1)
        time.sleep(3)
        full = status(d.proc.pid)
        queued = d.metric("sluice_queue_bytes")
        lock.rollback()
        lock.close()
        d.wait(f"{LINES} rows", lambda: d.metric('sluice_sink_events_total{sink="sqlite"}')
               == LINES, 600)
        return full, queued, status(d.proc.pid)
    finally:
        gen.kill()
        gen.wait()
        d.stop()


def main():
    for path in (SLUICE, LOADGEN):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is missing; bench/memory.sh builds it")
    tmp = tempfile.mkdtemp(prefix="sluice-memory-", dir=os.environ.get("BENCH_TMP", "/tmp"))
    try:
        parts = {}
        for name in ("bare", "idle", "locked", "burst"):
            parts[name] = os.path.join(tmp, name)
            os.makedirs(parts[name])
        bare, bare_maps = bare_reference(parts["bare"])
        idle, threads, idle_maps = measure_idle(parts["idle"])
        locked_idle, locked = measure_locked(parts["locked"])
        full, queued, drained = measure_burst(parts["burst"])
    finally:
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"sluice memory: {SLUICE}, {os.cpu_count()} CPUs, {os.uname().release}")
    print()
    print("| figure | MiB | RssAnon MiB | RssFile MiB | threads |")
    print("|---|---:|---:|---:|---:|")
    print(f"| bare: sluice's libraries loaded, nothing run (VmRSS) | {mib(bare['VmRSS'])} | "
          f"{mib(bare['RssAnon'])} | {mib(bare['RssFile'])} | 1 |")
    print(f"| idle, default config (VmRSS) | {mib(idle['VmRSS'])} | {mib(idle['RssAnon'])} | "
          f"{mib(idle['RssFile'])} | {idle['Threads']} |")
    print(f"| 4 MiB queue, locked database (VmHWM) | {mib(locked['VmHWM'])} | "
          f"{mib(locked['RssAnon'])} | {mib(locked['RssFile'])} | {locked['Threads']} |")
    print(f"| {MAX_BYTES_MIB} MiB queue full, locked (VmHWM - max_bytes) | "
          f"{mib(full['VmHWM'] - MAX_BYTES_MIB * MIB)} | {mib(full['RssAnon'])} | "
          f"{mib(full['RssFile'])} | {full['Threads']} |")
    print(f"| {MAX_BYTES_MIB} MiB backlog drained (VmHWM - max_bytes) | "
          f"{mib(drained['VmHWM'] - MAX_BYTES_MIB * MIB)} | {mib(drained['RssAnon'])} | "
          f"{mib(drained['RssFile'])} | {drained['Threads']} |")
    print()
    print(f"idle threads: {threads}")
    print(f"idle, largest mappings (MiB): {idle_maps}")
    print(f"bare, largest mappings (MiB): {bare_maps}")
    print(f"4 MiB locked: VmHWM {mib(locked['VmHWM'])} MiB = its idle VmRSS "
          f"{mib(locked_idle['VmRSS'])} MiB + {mib(locked['VmHWM'] - locked_idle['VmRSS'])} MiB")
    print(f"{MAX_BYTES_MIB} MiB burst: {LINES} lines, queue held {mib(queued)} MiB while locked")


if __name__ == "__main__":
    main()
