#!/usr/bin/env python3
"""Latency at sluice's default batch settings: a generator source at RATE lines/s (1,000 and
100,000 by default) into a file sink and a SQLite sink, both with their default `batch`, for
SECONDS (10) each; then p50 and p99 of sluice_sink_latency_seconds (receive time to written,
per event) as /status reports them, and the events written. Targets at 1,000 lines/s:
file p99 <= 50 ms, SQLite p99 <= 300 ms; exits 1 when one is missed.

Run by bench/latency.sh (which builds); environment: RATES ("1000,100000"), SECONDS (10),
API_PORT (19599), BENCH_TMP (the work dir's parent; default /dev/shm), KEEP=1 keeps it.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.environ.get("SLUICE", os.path.join(ROOT, "build-release", "sluice"))
RATES = [int(r) for r in os.environ.get("RATES", "1000,100000").split(",")]
SECONDS = float(os.environ.get("SECONDS", "10"))
API_PORT = int(os.environ.get("API_PORT", "19599"))
TARGETS = {"file": 0.050, "db": 0.300}  # p99 at 1,000 lines/s


def status():
    conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=5)
    conn.request("GET", "/status")
    body = conn.getresponse().read()
    conn.close()
    return json.loads(body)


def wait_healthy(proc):
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit("sluice exited early")
        try:
            status()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("sluice did not answer")


def run(work, rate):
    data = os.path.join(work, f"data-{rate}")
    config = os.path.join(work, f"latency-{rate}.toml")
    with open(config, "w") as f:
        f.write(f"""data_dir = "{data}"
[api]
address = "127.0.0.1:{API_PORT}"
[sources.gen]
type = "generator"
rate = {rate}
format = "syslog"
codec = "syslog"
[sinks.file]
type = "file"
path = "out.log"
[sinks.db]
type = "sqlite"
path = "logs.db"
""")
    proc = subprocess.Popen([SLUICE, "run", "--config", config, "--log-level", "warn"])
    try:
        wait_healthy(proc)
        time.sleep(SECONDS)
        snapshot = status()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {s["name"]: s for s in snapshot["sinks"]}


def main():
    work = tempfile.mkdtemp(prefix="sluice-latency.", dir=os.environ.get("BENCH_TMP", "/dev/shm"))
    failed = False
    try:
        print(f"latency at default batch settings, {SECONDS:.0f} s per rate, generator source")
        print("| rate lines/s | sink | events | p50 ms | p99 ms | target p99 |")
        print("|---:|---|---:|---:|---:|---|")
        for rate in RATES:
            sinks = run(work, rate)
            for name in ("file", "db"):
                s = sinks[name]
                p50 = s["latency_p50_seconds"] * 1e3
                p99 = s["latency_p99_seconds"] * 1e3
                target = ""
                if rate == 1000:
                    ok = s["latency_p99_seconds"] <= TARGETS[name]
                    failed = failed or not ok
                    target = f"<= {TARGETS[name] * 1e3:.0f} ms: {'PASS' if ok else 'FAIL'}"
                print(f"| {rate:,} | {name} | {s['events_total']:,} | {p50:.1f} | {p99:.1f} | "
                      f"{target} |")
    finally:
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
