#!/usr/bin/env python3
"""Benchmark of the file source: tail -> file sink for a pre-written file of LINES lines (the
same real lines as every scenario, bench/lines.h), and the same split over 100 files, each
against `cp` of the same files in the same run as the bare baseline (cp's best of three;
input in the page cache for both). Prints lines/s, MB/s, peak RSS and the ratios; exits 1 when a target is missed:
  tail-1, tail-100   >= 0.40 of cp's lines/s;   peak RSS <= max_bytes + 48 MiB.

Run by bench/tail.sh (which builds); environment: LINES (2,000,000), REPEAT (1),
MAX_BYTES_MIB (64), API_PORT (19598), FILE_SINK_BATCH (file sink batch table, default
{ timeout = "20ms" } as in bench.py), BENCH_TMP (the work dir's parent; default /dev/shm, so
both cp and sluice read and write memory only), KEEP=1 keeps the work dir.
"""
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-release")
SLUICE = os.path.join(BUILD, "sluice")
LOADGEN = os.path.join(BUILD, "bench", "loadgen")
LOGS = os.path.join(ROOT, "tests", "data", "real_logs")
LINES = int(os.environ.get("LINES", "2000000"))
REPEAT = max(1, int(os.environ.get("REPEAT", "1")))
MAX_BYTES_MIB = int(os.environ.get("MAX_BYTES_MIB", "64"))
API_PORT = int(os.environ.get("API_PORT", "19598"))
FILE_SINK_BATCH = os.environ.get("FILE_SINK_BATCH", '{ timeout = "20ms" }')
TARGET = 0.40
RSS_LIMIT = (MAX_BYTES_MIB + 48) << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_inputs(work):
    """One file of LINES lines, and the same lines split into 100 files."""
    one = os.path.join(work, "one")
    many = os.path.join(work, "many")
    os.makedirs(one)
    os.makedirs(many)
    path = os.path.join(one, "app.log")
    subprocess.run([LOADGEN, "--logs", LOGS, "--lines", str(LINES), "--format", "text",
                    "--out", path, "--no-send"], check=True, stdout=subprocess.DEVNULL)
    with open(path, "rb") as f:
        lines = f.readlines()
    per = (len(lines) + 99) // 100
    for i in range(100):
        with open(os.path.join(many, f"app{i:03d}.log"), "wb") as f:
            f.writelines(lines[i * per:(i + 1) * per])
    return {"tail-1": one, "tail-100": many}, os.path.getsize(path)


def warm(directory):
    """Input in the page cache, and no dirty pages left from an earlier run: otherwise the
    kernel's writeback throttling lands on whichever run comes next (cp varied 3-26 M
    lines/s without the sync)."""
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as f:
            while f.read(1 << 20):
                pass
    os.sync()


def bench_cp(directory, work, tries=3):
    """cp's best of `tries`: the shared vCPUs make single runs swing several fold, and the
    best is what the machine can do, so the ratio errs against sluice."""
    files = sorted(os.path.join(directory, n) for n in os.listdir(directory))
    best = None
    for _ in range(tries):
        out = os.path.join(work, "cp-out")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        warm(directory)
        start = time.perf_counter()
        subprocess.run(["cp"] + files + [out], check=True)
        wall = time.perf_counter() - start
        shutil.rmtree(out)
        best = wall if best is None else min(best, wall)
    return best


def metric(body, name, label):
    m = re.search(r"^" + name + r"\{[^}]*" + label + r"\}\s+(\S+)", body, re.M)
    return float(m.group(1)) if m else None


def proc_figures(pid):
    with open(f"/proc/{pid}/status") as f:
        hwm = int(re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M).group(1)) * 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return hwm, (int(fields[11]) + int(fields[12])) / CLK_TCK


def bench_tail(name, directory, work, nbytes):
    data = os.path.join(work, "data-" + name)
    shutil.rmtree(data, ignore_errors=True)
    cfg = os.path.join(work, name + ".toml")
    with open(cfg, "w") as f:
        f.write(f'data_dir = "{data}"\n[api]\naddress = "127.0.0.1:{API_PORT}"\n'
                f'[queue]\nmax_bytes = "{MAX_BYTES_MIB}MiB"\n'
                f'[sources.files]\ntype = "file"\ninclude = ["{directory}/*.log"]\n'
                f'[sinks.out]\ntype = "file"\npath = "out.log"\nbatch = {FILE_SINK_BATCH}\n')
    warm(directory)
    log_path = os.path.join(work, name + ".log")
    with open(log_path, "w") as log_file:
        start = time.perf_counter()
        proc = subprocess.Popen([SLUICE, "run", "-c", cfg], stdout=log_file,
                                stderr=subprocess.STDOUT)
    conn = None
    done_at = None
    try:
        deadline = start + 600
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {proc.returncode}; see {log_path}")
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=2)
                conn.request("GET", "/metrics")
                body = conn.getresponse().read().decode()
            except (OSError, http.client.HTTPException):
                conn = None
                time.sleep(0.005)
                continue
            written = metric(body, "sluice_sink_events_total", 'sink="out"')
            if written is not None and written >= LINES:
                done_at = time.perf_counter()
                break
            time.sleep(0.005)
        if done_at is None:
            raise RuntimeError(f"{name}: not every line written in 600 s")
        rss, cpu = proc_figures(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    out = os.path.join(data, "out.log")
    size = os.path.getsize(out)
    if size != nbytes:
        raise RuntimeError(f"{name}: out.log has {size} bytes, the input {nbytes}")
    return done_at - start, rss, cpu


def main():
    for tool in (SLUICE, LOADGEN):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: run bench/tail.sh, which builds it")
    # On tmpfs by default: on this VM's disk, writeback throttling made cp's rate swing 10x
    # from one run to the next (3-33 M lines/s), whichever run it happened to land on.
    base = os.environ.get("BENCH_TMP") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    work = tempfile.mkdtemp(prefix="sluice-bench-tail-", dir=base)
    failed = False
    try:
        inputs, nbytes = make_inputs(work)
        log(f"{LINES} lines, {nbytes / 1e6:.1f} MB; work dir {work}")
        print(f"machine: {os.cpu_count()} CPUs, {os.uname().release}; work dir on "
              f"{os.path.dirname(work)}; {LINES} lines, {nbytes / 1e6:.1f} MB")
        rows = []
        for run in range(REPEAT):
            for name, directory in inputs.items():
                cp_wall = bench_cp(directory, work)
                wall, rss, cpu = bench_tail(name, directory, work, nbytes)
                ratio = cp_wall / wall
                ok = ratio >= TARGET and rss <= RSS_LIMIT
                rows.append((run + 1, name, cp_wall, wall, rss, cpu, ratio, ok))
                log(f"  run {run + 1} {name}: cp {LINES / cp_wall / 1e6:.2f} M lines/s, "
                    f"sluice {LINES / wall / 1e6:.2f} M lines/s ({ratio:.2f} of cp), "
                    f"peak RSS {rss / 2**20:.1f} MiB")
        print(f"| run | scenario | cp lines/s | sluice lines/s | sluice MB/s | ratio to cp "
              f"(target >= {TARGET:.2f}) | peak RSS MiB (limit {RSS_LIMIT >> 20}) | CPU s | |")
        print("|---|---|---|---|---|---|---|---|---|")
        for run, name, cp_wall, wall, rss, cpu, ratio, ok in rows:
            print(f"| {run} | {name} | {LINES / cp_wall / 1e6:.2f} M | {LINES / wall / 1e6:.2f} M "
                  f"| {nbytes / wall / 1e6:.0f} | {ratio:.2f} | {rss / 2**20:.1f} | {cpu:.2f} | "
                  f"{'pass' if ok else 'below'} |")
        # A run lasts a fraction of a second, so one run can land on a busy moment of the
        # shared vCPUs: the target is judged on the median run of each scenario.
        failed = False
        for name in inputs:
            mine = sorted((r for r in rows if r[1] == name), key=lambda r: r[6])
            mid = mine[len(mine) // 2]
            peak = max(r[4] for r in mine)
            ok = mid[6] >= TARGET and peak <= RSS_LIMIT
            failed = failed or not ok
            print(f"| median | {name} | {LINES / mid[2] / 1e6:.2f} M | {LINES / mid[3] / 1e6:.2f} M "
                  f"| {nbytes / mid[3] / 1e6:.0f} | {mid[6]:.2f} | {peak / 2**20:.1f} (peak of "
                  f"all) | {mid[5]:.2f} | {'pass' if ok else 'FAIL'} |")
    finally:
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
