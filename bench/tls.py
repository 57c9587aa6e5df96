#!/usr/bin/env python3
"""Benchmark of TLS on the TCP source: tcp -> file sink for the same LINES lines (bench/lines.h)
with and without TLS, in one run, from one sender (bench/tls_loadgen, --plain or TLS 1.3 with
the certificate checked), and once more with `openssl s_client` as the sender, to show what it
is worth as a load generator. Prints lines/s, MiB/s, sluice's CPU seconds and peak RSS for
each (the median round's and the best), and the ratio TLS / plain within each round, with the
median of those. Not a test: exits 1 only when a run fails (lines lost, sluice
exited, no progress).

Wall time runs from the sender's first byte (for s_client: from its start, handshake
included) to the poll of GET /metrics at which sluice_sink_events_total reached LINES (+-2 ms
near the end). Certificates (EC P-256) are made with the openssl CLI in the work dir.

Run by bench/tls.sh (which builds); environment: LINES (2,000,000), REPEAT (1; the median
lines/s of the rounds is reported), CONNECTIONS (1), API_PORT (19608), TCP_PORT (15180),
MAX_BYTES_MIB (64), FILE_SINK_BATCH (default { timeout = "20ms" } as in bench.py), BENCH_TMP
(the work dir's parent; default /dev/shm, so the sink writes memory), KEEP=1 keeps the work dir,
SCENARIOS (comma list of tcp-plain, tcp-tls, s_client; default all three), SLUICE (another
binary to measure, default build-release/sluice).
"""
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-release")
SLUICE = os.environ.get("SLUICE", os.path.join(BUILD, "sluice"))
LOADGEN = os.path.join(BUILD, "bench", "tls_loadgen")
LOGS = os.path.join(ROOT, "tests", "data", "real_logs")
LINES = int(os.environ.get("LINES", "2000000"))
REPEAT = max(1, int(os.environ.get("REPEAT", "1")))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "1"))
API_PORT = int(os.environ.get("API_PORT", "19608"))
TCP_PORT = int(os.environ.get("TCP_PORT", "15180"))
MAX_BYTES_MIB = int(os.environ.get("MAX_BYTES_MIB", "64"))
FILE_SINK_BATCH = os.environ.get("FILE_SINK_BATCH", '{ timeout = "20ms" }')
SCENARIOS = os.environ.get("SCENARIOS", "tcp-plain,tcp-tls,s_client").split(",")
STALL_SECONDS = 60
CLK_TCK = os.sysconf("SC_CLK_TCK")

EXTENSIONS = """[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
"""


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_certs(work):
    """A CA and a server certificate it signed for 127.0.0.1."""
    d = os.path.join(work, "certs")
    os.makedirs(d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write(EXTENSIONS)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for args in (
        ["req", "-x509", "-new", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=bench CA", "-config", "ext.cnf", "-extensions", "ca"],
        ["req", "-new", *key, "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost", "-config", "ext.cnf"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-set_serial", "2", "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf",
         "-extensions", "server"],
    ):
        subprocess.run(["openssl", *args], cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return {name: os.path.join(d, name) for name in ("ca.pem", "server.pem", "server.key")}


def port_accepts(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def write_config(work, tls, certs):
    data = os.path.join(work, "data")
    source = f'type = "tcp"\naddress = "127.0.0.1:{TCP_PORT}"\n'
    if tls:
        source += (f'tls = {{ cert = "{certs["server.pem"]}", '
                   f'key = "{certs["server.key"]}" }}\n')
    sink = '[sinks.out]\ntype = "file"\npath = "out.log"\n'
    if FILE_SINK_BATCH:
        sink += f"batch = {FILE_SINK_BATCH}\n"
    path = os.path.join(work, "sluice.toml")
    with open(path, "w") as f:
        f.write(f'data_dir = "{data}"\n\n[api]\naddress = "127.0.0.1:{API_PORT}"\n\n'
                f'[queue]\nmax_bytes = "{MAX_BYTES_MIB}MiB"\nwhen_full = "block"\n\n'
                f'[sources.bench]\n{source}\n{sink}')
    return path, data


def metric(body, name, label, value):
    m = re.search(r'^' + name + r'\{[^}]*' + label + '="' + re.escape(value) + r'"[^}]*\}\s+(\S+)',
                  body, re.M)
    return int(float(m.group(1))) if m else None


def get_metrics(conn_box):
    for _ in range(2):
        try:
            if conn_box[0] is None:
                conn_box[0] = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=2)
            conn_box[0].request("GET", "/metrics")
            resp = conn_box[0].getresponse()
            return resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            if conn_box[0] is not None:
                conn_box[0].close()
            conn_box[0] = None
    return ""


def proc_figures(pid):
    """(VmHWM bytes, utime + stime seconds) of a live process."""
    with open(f"/proc/{pid}/status") as f:
        hwm = int(re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M).group(1)) * 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return hwm, (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_sender(name, certs, lines_file):
    if name == "s_client":
        start_ns = time.time_ns()
        with open(lines_file, "rb") as stdin:
            proc = subprocess.Popen(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{TCP_PORT}", "-quiet",
                 "-no_ign_eof", "-nocommands", "-verify_return_error", "-verify_ip", "127.0.0.1",
                 "-CAfile", certs["ca.pem"]],
                stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return proc, start_ns
    mode = ["--plain"] if name == "tcp-plain" else ["--ca", certs["ca.pem"]]
    proc = subprocess.Popen([LOADGEN, "--logs", LOGS, "--lines", str(LINES), "--port",
                             str(TCP_PORT), "--connections", str(CONNECTIONS), *mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, None


def finish_sender(proc, start_ns):
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise BenchError(f"the sender failed ({proc.returncode}): {err}")
    if start_ns is not None:
        return {"start_ns": start_ns, "send_cpu": None}
    kv = dict(line.split("=", 1) for line in out.split())
    return {"start_ns": int(kv["start_ns"]), "send_cpu": float(kv["send_cpu_seconds"])}


def run(name, work, certs, lines_file, expected_bytes):
    if port_accepts(API_PORT) or port_accepts(TCP_PORT):
        raise BenchError(f"port {API_PORT} or {TCP_PORT} is in use; set API_PORT / TCP_PORT")
    shutil.rmtree(os.path.join(work, "data"), ignore_errors=True)
    cfg, data = write_config(work, name != "tcp-plain", certs)
    log_path = os.path.join(work, "sluice.log")
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([SLUICE, "run", "-c", cfg], stdout=log_file,
                                stderr=subprocess.STDOUT, cwd=work)
    conn = [None]
    sender = None
    try:
        deadline = time.monotonic() + 30
        while metric(get_metrics(conn), "sluice_sink_events_total", "sink", "out") is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"sluice did not start (exit {proc.poll()})")
            time.sleep(0.05)
        sender, start_ns = start_sender(name, certs, lines_file)
        landed, last, last_progress, peak_rss = 0, -1, time.monotonic(), 0
        while True:
            landed = metric(get_metrics(conn), "sluice_sink_events_total", "sink", "out") or landed
            now_ns = time.time_ns()
            if landed >= LINES:
                break
            if proc.poll() is not None:
                raise BenchError(f"sluice exited ({proc.returncode}) at {landed} lines")
            if sender.poll() not in (None, 0):
                raise BenchError(f"the sender failed ({sender.returncode}) at {landed} lines")
            if landed != last:
                last, last_progress = landed, time.monotonic()
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise BenchError(f"no progress for {STALL_SECONDS}s at {landed} of {LINES}")
            peak_rss = max(peak_rss, proc_figures(proc.pid)[0])
            time.sleep(0.002 if landed >= LINES * 0.97 else 0.02)
        rss, cpu = proc_figures(proc.pid)
        sent = finish_sender(sender, start_ns)
        wall = (now_ns - sent["start_ns"]) / 1e9
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        size = os.path.getsize(os.path.join(data, "out.log"))
        if size != expected_bytes:
            raise BenchError(f"out.log has {size} bytes, {expected_bytes} were sent")
        return {"name": name, "wall": wall, "lines_s": LINES / wall,
                "mib_s": expected_bytes / wall / (1 << 20), "cpu": cpu,
                "rss": max(peak_rss, rss), "sender_cpu": sent["send_cpu"]}
    finally:
        if conn[0] is not None:
            conn[0].close()
        for p in (sender, proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def machine():
    with open("/proc/cpuinfo") as f:
        m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
    with open("/proc/meminfo") as f:
        kb = int(re.search(r"^MemTotal:\s+(\d+)", f.read(), re.M).group(1))
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    return (f"{os.cpu_count()} CPUs, {m.group(1) if m else 'unknown'}, {kb / 1048576:.1f} GiB "
            f"RAM, {os.uname().release}, {openssl.strip()}")


def main():
    for path in (SLUICE, LOADGEN):
        if not os.access(path, os.X_OK):
            log(f"{path} is missing: run bench/tls.sh")
            return 1
    base = os.environ.get("BENCH_TMP", "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp")
    work = tempfile.mkdtemp(prefix="sluice-tls-bench-", dir=base)
    try:
        certs = make_certs(work)
        lines_file = os.path.join(work, "lines.txt")
        subprocess.run([LOADGEN, "--logs", LOGS, "--lines", str(LINES), "--out", lines_file,
                        "--no-send"], check=True, stdout=subprocess.DEVNULL)
        expected_bytes = os.path.getsize(lines_file)
        load = os.getloadavg()
        results = {name: [] for name in SCENARIOS}
        for round_ in range(REPEAT):
            for name in SCENARIOS:
                r = run(name, work, certs, lines_file, expected_bytes)
                log(f"  round {round_ + 1} {name}: {r['lines_s']:,.0f} lines/s, "
                    f"{r['mib_s']:.1f} MiB/s, sluice CPU {r['cpu']:.2f} s")
                results[name].append(r)
        print(f"machine: {machine()}")
        print(f"load average at start: {'/'.join(f'{x:.2f}' for x in load)}, at end: "
              f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{LINES:,} lines ({expected_bytes / 1048576:.1f} MiB), {CONNECTIONS} connection(s), "
              f"tcp -> file sink, median of {REPEAT} round(s)")
        print(f"{'scenario':<10} {'lines/s':>12} {'MiB/s':>8} {'wall s':>7} {'sluice CPU s':>13} "
              f"{'peak RSS MiB':>13} {'sender CPU s':>13} {'best lines/s':>13}")
        median = {}
        for name, runs in results.items():
            r = sorted(runs, key=lambda x: x["lines_s"])[len(runs) // 2]
            median[name] = r
            sender = "-" if r["sender_cpu"] is None else f"{r['sender_cpu']:.2f}"
            best = max(x["lines_s"] for x in runs)
            print(f"{name:<10} {r['lines_s']:>12,.0f} {r['mib_s']:>8.1f} {r['wall']:>7.2f} "
                  f"{r['cpu']:>13.2f} {r['rss'] / 1048576:>13.1f} {sender:>13} {best:>13,.0f}")
        # Ratios within each round, whose runs follow each other: on shared vCPUs a slow
        # round slows both, which a ratio of medians taken from different rounds would not see.
        for a, b, what in (("tcp-tls", "tcp-plain", "TLS / plain"),
                           ("s_client", "tcp-tls", "s_client / tls_loadgen")):
            if a in results and b in results:
                speed = [x["lines_s"] / y["lines_s"] for x, y in zip(results[a], results[b])]
                cpu = [x["cpu"] / max(y["cpu"], 1e-9) for x, y in zip(results[a], results[b])]
                print(f"{what}: lines/s x{statistics.median(speed):.2f} (per round: "
                      f"{', '.join(f'{v:.2f}' for v in speed)}), sluice CPU "
                      f"x{statistics.median(cpu):.2f}")
        return 0
    except (BenchError, subprocess.SubprocessError, OSError) as e:
        log(f"bench failed: {e}")
        return 1
    finally:
        if os.environ.get("KEEP") == "1":
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
