#!/usr/bin/env python3
"""sluice NATS JetStream benchmark (standard library only). Run it through bench/nats.sh, which
builds the Release binary and the helpers (loadgen, nats_bare) first.

It starts its own nats-server cluster, one per replica count of REPLICAS_LIST: R1 is one node,
R3 three nodes with routes (server_name nK, cluster block, -js -sd STORE, as
tests/e2e/nats_cluster.cpp writes them), on free 127.0.0.1 ports, stores under the work dir
(BENCH_TMP, default /dev/shm: tmpfs, so the disk is not what is measured). It waits until every
node's /healthz says ok and, for R3, /jsz names a meta leader. Then, per cluster, with LINES
lines of 80-250 bytes (bench/lines.h, the lines loadgen sends) and PACK (64) lines per message
for the packed scenarios:

  bare-pub-1, bare-pub-packed
      nats_bare publish: js_PublishMsgAsync, MaxPending = IN_FLIGHT (4096), a Nats-Msg-Id per
      message, 1 / PACK lines per message; wall = first publish to js_PublishAsyncComplete.
  agent-1, agent-packed
      sluice: tcp source -> nats sink (events_per_message 1 / PACK, max_in_flight IN_FLIGHT,
      format FORMAT); loadgen sends the lines over one TCP connection; wall = loadgen's first
      byte to /status sinks[0].events_total = LINES.
  bare-consume-1, bare-consume-packed
      the stream filled first (untimed) by FILL (bare: nats_bare publish; agent: a sluice
      agent as above), then nats_bare consume: a durable pull consumer, Fetch batches of
      FETCH_BATCH (256), natsMsg_Ack each, the lines appended to a file; wall = process start
      to the last ack flushed.
  aggregator-1, aggregator-packed
      the stream filled the same way, then sluice: nats source (durable consumer, fetch_batch
      FETCH_BATCH) -> file sink; wall = sluice's start to /status sinks[0].events_total = LINES.

Every scenario gets a stream of its own (a new name; the previous one is deleted first, since
they all take subjects logs.*). Ratios: agent-X / bare-pub-X and aggregator-X / bare-consume-X
(target >= 0.80 each). Peak RSS is the measured process's VmHWM (for nats_bare publish it
includes the prebuilt lines, shown as buffer MiB); CPU s is its utime+stime (nats_bare: from its
clock's start; sluice: the whole process), server CPU s that of every nats-server node over the
timed window.

Environment: LINES (1000000), REPEAT (1; median lines/s reported, highest RSS), PACK (64),
IN_FLIGHT (4096), FETCH_BATCH (256), REPLICAS_LIST (1,3), SCENARIOS (comma list of the names
above, default all), FORMAT (text: the sink's format; json as alternative), FILL (bare | agent;
bare), MAX_BYTES (256MiB: queue.max_bytes), RETENTION (workqueue: every stream's, as the sink
creates it), MAX_ACK_PENDING (20000: both consumers', the source's default), NATS_SINK_BATCH (the nats
sink's batch, a TOML inline table; '' = sluice's defaults), STREAM_PRECREATE
(0; 1: nats_bare creates each agent stream first, as it does its own), KEEP=1 (keep the work
dir), BENCH_TMP (/dev/shm).

The aggregator's source reads with framing = "newline": a bare-filled packed message has no
Sluice-Events header, and newline framing splits it as the bare consumer counts it. With
FILL=agent (FORMAT=json for the real tier) the stream holds what the agent wrote instead, for
both consumers.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-release")
HELPERS = os.path.join(BUILD, "bench")
SLUICE = os.path.join(BUILD, "sluice")
NATS_BARE = os.path.join(HELPERS, "nats_bare")
LOADGEN = os.path.join(HELPERS, "loadgen")
LOGS = os.path.join(ROOT, "tests", "data", "real_logs")

LINES = int(os.environ.get("LINES", "1000000"))
REPEAT = max(1, int(os.environ.get("REPEAT", "1")))
PACK = int(os.environ.get("PACK", "64"))
IN_FLIGHT = int(os.environ.get("IN_FLIGHT", "4096"))
FETCH_BATCH = int(os.environ.get("FETCH_BATCH", "256"))
REPLICAS_LIST = [int(r) for r in os.environ.get("REPLICAS_LIST", "1,3").split(",") if r]
FORMAT = os.environ.get("FORMAT", "text")
FILL = os.environ.get("FILL", "bare")
MAX_BYTES = os.environ.get("MAX_BYTES", "256MiB")
PRECREATE = os.environ.get("STREAM_PRECREATE", "0") == "1"
SINK_BATCH = os.environ.get("NATS_SINK_BATCH", "")  # TOML inline table; '' = sluice's defaults
RETENTION = os.environ.get("RETENTION", "workqueue")  # the nats sink's default
MAX_ACK_PENDING = int(os.environ.get("MAX_ACK_PENDING", "20000"))  # the nats source's default
KEEP = os.environ.get("KEEP") == "1"
STALL_SECONDS = 60
CLK_TCK = os.sysconf("SC_CLK_TCK")

ALL = ["bare-pub-1", "bare-pub-packed", "agent-1", "agent-packed",
       "bare-consume-1", "aggregator-1", "bare-consume-packed", "aggregator-packed"]
SCENARIOS = [s.strip() for s in os.environ.get("SCENARIOS", ",".join(ALL)).split(",")
             if s.strip()]
BASES = {"agent-1": "bare-pub-1", "agent-packed": "bare-pub-packed",
         "aggregator-1": "bare-consume-1", "aggregator-packed": "bare-consume-packed"}
TARGET = 0.8


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def http_get(port, path, timeout=2):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        conn.close()
        return resp.status, body
    except (OSError, http.client.HTTPException):
        return None, ""


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def tail(path, n=800):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:].strip()
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------- cluster

def nats_server_binary():
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin"]:
        p = os.path.join(d, "nats-server")
        if d and os.access(p, os.X_OK):
            return p
    sys.exit("nats-server not found in PATH or /usr/sbin")


class Cluster:
    """R nats-server nodes with JetStream on 127.0.0.1 (R = 1: no cluster block)."""

    def __init__(self, nodes, work):
        self.dir = os.path.join(work, f"nats-r{nodes}")
        os.makedirs(self.dir)
        self.nodes = [{"client": free_port(), "cluster": free_port(), "monitor": free_port()}
                      for _ in range(nodes)]
        self.procs = []
        binary = nats_server_binary()
        for i, n in enumerate(self.nodes):
            routes = "".join(f"    nats-route://127.0.0.1:{m['cluster']}\n"
                             for j, m in enumerate(self.nodes) if j != i)
            cfg = (f"server_name: n{i}\nlisten: 127.0.0.1:{n['client']}\n"
                   f"http: 127.0.0.1:{n['monitor']}\n"
                   "jetstream {\n  max_memory_store: 256MB\n  max_file_store: 8GB\n}\n")
            if nodes > 1:
                cfg += (f"cluster {{\n  name: sluice-bench\n  listen: 127.0.0.1:{n['cluster']}\n"
                        f"  routes: [\n{routes}  ]\n}}\n")
            n["config"] = os.path.join(self.dir, f"n{i}.conf")
            n["log"] = os.path.join(self.dir, f"n{i}.log")
            with open(n["config"], "w") as f:
                f.write(cfg)
            with open(n["log"], "w") as lf:
                self.procs.append(subprocess.Popen(
                    [binary, "-c", n["config"], "-js", "-sd",
                     os.path.join(self.dir, f"n{i}-store")],
                    stdout=lf, stderr=subprocess.STDOUT, cwd=self.dir))
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            for i, p in enumerate(self.procs):
                if p.poll() is not None:
                    raise BenchError(f"nats-server n{i} exited ({p.returncode}): "
                                     f"{tail(self.nodes[i]['log'])}")
            ok = True
            for n in self.nodes:
                status, body = http_get(n["monitor"], "/healthz")
                if status != 200 or json.loads(body or "{}").get("status") != "ok":
                    ok = False
                    break
                if len(self.nodes) > 1:
                    status, body = http_get(n["monitor"], "/jsz")
                    leader = (json.loads(body).get("meta_cluster") or {}).get("leader") \
                        if status == 200 else None
                    if not leader:
                        ok = False
                        break
            if ok:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"nats cluster of {len(self.nodes)} not healthy after "
                                 f"{timeout}s")
            time.sleep(0.1)

    def urls(self):
        return [f"nats://127.0.0.1:{n['client']}" for n in self.nodes]

    def url_list(self):
        return ",".join(self.urls())

    def cpu(self):
        return sum(proc_cpu(p.pid) for p in self.procs)

    def rss(self):
        return sum(proc_hwm(p.pid) for p in self.procs)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ---------------------------------------------------------------------------- helpers

def nats_bare(args, timeout=900):
    proc = subprocess.run([NATS_BARE] + args, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise BenchError(f"nats_bare {args[0]} failed ({proc.returncode}): "
                         f"{proc.stderr.strip()[-600:]} {proc.stdout.strip()[-300:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) if args[0] != "stream" else None


def delete_stream(cluster, name):
    nats_bare(["stream", "--servers", cluster.url_list(), "--stream", name, "--delete"])


def create_stream(cluster, name, replicas):
    nats_bare(["stream", "--servers", cluster.url_list(), "--stream", name,
               "--subjects", "logs.*", "--replicas", str(replicas), "--retention", RETENTION])


def bare_publish(cluster, stream, replicas, per_message):
    return nats_bare(["publish", "--servers", cluster.url_list(), "--subject", "logs.app",
                      "--stream", stream, "--replicas", str(replicas),
                      "--retention", RETENTION, "--count", str(LINES),
                      "--in-flight", str(IN_FLIGHT), "--per-message", str(per_message),
                      "--logs", LOGS])


def result(name, lines, messages, wall, rss, cpu, server_cpu, note="", extra=None):
    r = {"name": name, "lines": lines, "messages": messages, "wall": wall,
         "lines_per_s": lines / wall, "msgs_per_s": messages / wall, "rss": rss, "cpu": cpu,
         "server_cpu": server_cpu, "note": note}
    r.update(extra or {})
    return r


def lines_file(tmp):
    path = os.path.join(tmp, "lines.text.txt")
    if not os.path.exists(path):
        subprocess.run([LOADGEN, "--logs", LOGS, "--lines", str(LINES), "--format", "text",
                        "--out", path, "--no-send"], check=True, stdout=subprocess.DEVNULL)
    return path


# ---------------------------------------------------------------------------- sluice

class Sluice:
    """One sluice process with a config; /status polled on its API port."""

    def __init__(self, work, name, source_toml, sink_toml):
        self.work = work
        self.api = free_port()
        self.data = os.path.join(work, f"{name}-data")
        text = (f'data_dir = "{self.data}"\n\n[api]\naddress = "127.0.0.1:{self.api}"\n\n'
                f'[queue]\nmax_bytes = "{MAX_BYTES}"\nwhen_full = "block"\n\n'
                f'{source_toml}\n{sink_toml}')
        self.cfg = os.path.join(work, f"{name}.toml")
        with open(self.cfg, "w") as f:
            f.write(text)
        self.log = os.path.join(work, f"{name}.log")
        self.start_ns = time.time_ns()
        with open(self.log, "w") as lf:
            self.proc = subprocess.Popen([SLUICE, "run", "-c", self.cfg], stdout=lf,
                                         stderr=subprocess.STDOUT, cwd=work)
        self.conn = None
        self.peak_rss = 0

    def status(self):
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.api, timeout=2)
                self.conn.request("GET", "/status")
                resp = self.conn.getresponse()
                body = resp.read()
                if resp.status == 200:
                    return json.loads(body)
                return None
            except (OSError, http.client.HTTPException, ValueError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
        return None

    def sink_events(self):
        st = self.status()
        try:
            return int(st["sinks"][0]["events_total"]), st
        except (TypeError, KeyError, IndexError, ValueError):
            return None, st

    def wait_api(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"sluice exited ({self.proc.returncode}) at start; log: "
                                 f"{tail(self.log)}")
            n, _ = self.sink_events()
            if n is not None:
                return
            time.sleep(0.02)
        raise BenchError(f"sluice's /status did not answer; log: {tail(self.log)}")

    def wait_events(self, expected):
        """Polls until sinks[0].events_total >= expected; returns (time_ns, last status)."""
        last, last_progress = -1, time.monotonic()
        while True:
            n, st = self.sink_events()
            now = time.time_ns()
            if n is not None and n >= expected:
                return now, st
            if self.proc.poll() is not None:
                raise BenchError(f"sluice exited ({self.proc.returncode}) at {n} events; log: "
                                 f"{tail(self.log)}")
            try:
                self.peak_rss = max(self.peak_rss, proc_hwm(self.proc.pid))
            except OSError:
                pass
            if n != last:
                last, last_progress = n, time.monotonic()
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise BenchError(f"no progress for {STALL_SECONDS}s at {n} of {expected} "
                                 f"events; log: {tail(self.log)}")
            time.sleep(0.002 if n is not None and n >= expected * 0.97 else 0.02)

    def figures(self):
        return max(self.peak_rss, proc_hwm(self.proc.pid)), proc_cpu(self.proc.pid)

    def stop(self):
        if self.conn is not None:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "killed after 60s"
        return self.proc.returncode


def nats_sink_toml(cluster, stream, replicas, per_message):
    servers = ", ".join(f'"{u}"' for u in cluster.urls())
    return (f'[sinks.bus]\ntype = "nats"\nservers = [{servers}]\nsubject = "logs.{{source}}"\n'
            f'stream = "{stream}"\nreplicas = {replicas}\nretention = "{RETENTION}"\n'
            f'format = "{FORMAT}"\n'
            f'events_per_message = {per_message}\nmax_in_flight = {IN_FLIGHT}\n'
            f'ack_timeout = "5s"\n' + (f"batch = {SINK_BATCH}\n" if SINK_BATCH else ""))


def run_agent(cluster, work, stream, replicas, per_message, name):
    """sluice tcp -> nats sink; loadgen sends LINES. Returns the result dict."""
    tcp = free_port()
    if PRECREATE:
        create_stream(cluster, stream, replicas)
    sl = Sluice(work, name, f'[sources.app]\ntype = "tcp"\naddress = "127.0.0.1:{tcp}"\n',
                nats_sink_toml(cluster, stream, replicas, per_message))
    gen = None
    try:
        sl.wait_api()
        deadline = time.monotonic() + 30
        while not port_accepts(tcp):
            if sl.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"sluice's tcp source did not listen; log: {tail(sl.log)}")
            time.sleep(0.02)
        cpu0 = cluster.cpu()
        gen = subprocess.Popen([LOADGEN, "--logs", LOGS, "--lines", str(LINES), "--port",
                                str(tcp), "--connections", "1"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        end_ns, st = sl.wait_events(LINES)
        server_cpu = cluster.cpu() - cpu0
        rss, cpu = sl.figures()
        out, err = gen.communicate(timeout=120)
        if gen.returncode != 0:
            raise BenchError(f"loadgen failed: {err.strip()}")
        kv = dict(line.split("=", 1) for line in out.split() if "=" in line)
        wall = (end_ns - int(kv["start_ns"])) / 1e9
        code = sl.stop()
        note = "" if code == 0 else f"exit {code} after SIGTERM"
        messages = (LINES + per_message - 1) // per_message
        return result(name, LINES, messages, wall, rss, cpu, server_cpu, note,
                      {"status_sink": st["sinks"][0] if st else None})
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill()
            gen.wait()
        sl.stop()


def run_aggregator(cluster, work, stream, name, lines_path):
    servers = ", ".join(f'"{u}"' for u in cluster.urls())
    cpu0 = cluster.cpu()
    sl = Sluice(work, name,
                f'[sources.bus]\ntype = "nats"\nservers = [{servers}]\nstream = "{stream}"\n'
                f'consumer = "aggregators"\nfetch_batch = {FETCH_BATCH}\n'
                f'max_ack_pending = {MAX_ACK_PENDING}\n'
                # A bare-filled packed message has no Sluice-Events header: one event per line.
                f'framing = "newline"\ncodec = "text"\n',
                '[sinks.out]\ntype = "file"\npath = "out.log"\n')
    try:
        end_ns, st = sl.wait_events(LINES)
        server_cpu = cluster.cpu() - cpu0
        rss, cpu = sl.figures()
        wall = (end_ns - sl.start_ns) / 1e9
        code = sl.stop()
        note = "" if code == 0 else f"exit {code} after SIGTERM"
        out = os.path.join(sl.data, "out.log")
        if not os.path.exists(out):
            out = os.path.join(work, "out.log")
        try:
            with open(out, "rb") as f:
                got = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b""))
            if got != LINES:
                note = (note + "; " if note else "") + f"out.log has {got} lines"
            elif FORMAT == "text" and os.path.getsize(out) != os.path.getsize(lines_path):
                note = (note + "; " if note else "") + (
                    f"out.log {os.path.getsize(out)} B, sent {os.path.getsize(lines_path)} B")
        except OSError as e:
            note = (note + "; " if note else "") + f"out.log: {e}"
        src = (st or {}).get("sources", [{}])[0] if st else {}
        return result(name, LINES, 0, wall, rss, cpu, server_cpu, note,
                      {"status_source": src})
    finally:
        sl.stop()


# ---------------------------------------------------------------------------- scenarios

def per_message_of(name):
    return PACK if name.endswith("-packed") else 1


def fill(cluster, work, stream, replicas, per_message, tag):
    """Fills `stream` with LINES lines, untimed; returns the number of messages."""
    if FILL == "agent":
        run_agent(cluster, work, stream, replicas, per_message, f"{tag}-fill")
        return (LINES + per_message - 1) // per_message
    r = bare_publish(cluster, stream, replicas, per_message)
    if r["acks"] != r["messages"]:
        raise BenchError(f"fill: {r['acks']} acks of {r['messages']}")
    return r["messages"]


def run_scenario(cluster, replicas, name, work, stream, tmp):
    pm = per_message_of(name)
    label = f"R{replicas} {name}"
    if name.startswith("bare-pub"):
        cpu0 = cluster.cpu()
        r = bare_publish(cluster, stream, replicas, pm)
        server_cpu = cluster.cpu() - cpu0
        note = "" if r["acks"] == r["messages"] and r["errors"] == 0 else (
            f"{r['acks']} acks, {r['errors']} errors (first {r['first_error']})")
        return result(label, r["lines"], r["messages"], r["seconds"], r["peak_rss_bytes"],
                      r["cpu_seconds"], server_cpu, note,
                      {"buffer": r["buffer_bytes"]})
    if name.startswith("agent"):
        r = run_agent(cluster, work, stream, replicas, pm, label.replace(" ", "-"))
        r["name"] = label
        return r
    messages = fill(cluster, work, stream, replicas, pm, label.replace(" ", "-"))
    if name.startswith("bare-consume"):
        cpu0 = cluster.cpu()
        spawn_ns = time.time_ns()
        r = nats_bare(["consume", "--servers", cluster.url_list(), "--stream", stream,
                       "--consumer", "bare", "--max-ack-pending", str(MAX_ACK_PENDING),
                       "--lines", str(LINES), "--batch",
                       str(FETCH_BATCH), "--out", os.path.join(work, "bare-consume.out")])
        server_cpu = cluster.cpu() - cpu0
        note = "" if r["lines"] == LINES else f"{r['lines']} lines"
        wall = (r["end_ns"] - spawn_ns) / 1e9
        return result(label, r["lines"], r["messages"], wall, r["peak_rss_bytes"],
                      r["cpu_seconds"], server_cpu, note)
    r = run_aggregator(cluster, work, stream, label.replace(" ", "-"), lines_file(tmp))
    r["name"] = label
    r["messages"] = messages
    r["msgs_per_s"] = messages / r["wall"]
    return r


# ---------------------------------------------------------------------------- report

def machine():
    model = "unknown"
    kb = 0
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            model = m.group(1) if m else model
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"^MemTotal:\s+(\d+)", f.read(), re.M).group(1))
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}, {kb / 1024 / 1024:.1f} GiB RAM, {os.uname().release}"


def report(results, runs, load_start, tmp_parent):
    by = {r["name"]: r for r in results}
    print()
    print(f"sluice NATS JetStream benchmark: {LINES} lines, {PACK} lines per packed message, "
          f"max in flight {IN_FLIGHT}, fetch batch {FETCH_BATCH}, sink format {FORMAT}, "
          f"fill by {FILL}, REPEAT={REPEAT}; stores in {tmp_parent}")
    print(f"machine: {machine()}; nats-server "
          f"{subprocess.run([nats_server_binary(), '--version'], capture_output=True, text=True).stdout.strip()}"
          f"; load average {'/'.join(f'{x:.2f}' for x in load_start)} at start, "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())} at end")
    print()
    print("| scenario | lines/s | msgs/s | wall s | peak RSS MiB | CPU s | server CPU s | ratio "
          "| note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    checks = []
    for r in results:
        rep, name = r["name"].split(" ", 1)
        base = BASES.get(name)
        q_text = ""
        if base and f"{rep} {base}" in by:
            q = r["lines_per_s"] / by[f"{rep} {base}"]["lines_per_s"]
            q_text = f"{q:.2f} of {base}"
            checks.append((q >= TARGET, f"{r['name']}: {q:.3f} of {base} lines/s "
                                        f"(target >= {TARGET:.2f})"))
        rss = f"{r['rss'] / 2**20:.1f}"
        if r.get("buffer"):
            rss += f" (buffer {r['buffer'] / 2**20:.0f})"
        print(f"| {r['name']} | {r['lines_per_s'] / 1e6:.3f} M | {r['msgs_per_s'] / 1e3:.1f} k | "
              f"{r['wall']:.3f} | {rss} | {r['cpu']:.2f} | {r['server_cpu']:.2f} | {q_text} | "
              f"{r['note']} |")
    print()
    if REPEAT > 1:
        print("per round, lines/s (M):")
        for name, rs in runs.items():
            print(f"  {name}: " + ", ".join(f"{r['lines_per_s'] / 1e6:.3f}" for r in rs))
        print("per round, ratio (same round):")
        for name, rs in runs.items():
            rep, short = name.split(" ", 1)
            base = runs.get(f"{rep} {BASES.get(short)}")
            if short in BASES and base and len(base) == len(rs):
                print(f"  {name} / {BASES[short]}: " + ", ".join(
                    f"{a['lines_per_s'] / b['lines_per_s']:.2f}" for a, b in zip(rs, base)))
        print()
    for r in results:
        if r["note"]:
            checks.append((False, f"{r['name']}: {r['note']}"))
    for ok, text in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    return all(ok for ok, _ in checks)


def main():
    unknown = [s for s in SCENARIOS if s not in ALL]
    if unknown:
        sys.exit(f"unknown scenarios {unknown}; known: {ALL}")
    needs_sluice = any(not s.startswith("bare") for s in SCENARIOS) or FILL == "agent"
    if needs_sluice and not os.access(SLUICE, os.X_OK):
        sys.exit(f"{SLUICE} is missing; build it first (bench/nats.sh does)")
    for exe in (NATS_BARE, LOADGEN):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe} is missing; bench/nats.sh compiles it")
    tmp_parent = os.environ.get("BENCH_TMP") or ("/dev/shm" if os.access("/dev/shm", os.W_OK)
                                                 else "/tmp")
    tmp = tempfile.mkdtemp(prefix="sluice-nats-bench-", dir=tmp_parent)
    log(f"work dir {tmp}; replicas {REPLICAS_LIST}; scenarios: {','.join(SCENARIOS)}")
    load_start = os.getloadavg()
    order = [f"R{r} {s}" for r in REPLICAS_LIST for s in SCENARIOS]
    runs = {name: [] for name in order}
    failed = []
    seq = 0
    try:
        for replicas in REPLICAS_LIST:
            cluster = Cluster(replicas, tmp)
            log(f"R{replicas}: nats-server x{replicas} up: {cluster.url_list()}")
            previous = None
            try:
                for i in range(REPEAT):
                    for name in SCENARIOS:
                        label = f"R{replicas} {name}"
                        if label in failed:
                            continue
                        seq += 1
                        stream = f"BENCH{seq}"
                        work = os.path.join(tmp, f"{seq}-R{replicas}-{name}.{i}")
                        os.makedirs(work)
                        log(f"{label} (round {i + 1} of {REPEAT}, stream {stream}, load "
                            f"{os.getloadavg()[0]:.2f}) ...")
                        try:
                            if previous:
                                delete_stream(cluster, previous)
                            previous = stream
                            r = run_scenario(cluster, replicas, name, work, stream, tmp)
                        except (BenchError, subprocess.SubprocessError, OSError, KeyError,
                                ValueError) as e:
                            log(f"  FAILED: {e}")
                            failed.append(label)
                            continue
                        finally:
                            if not KEEP:
                                shutil.rmtree(work, ignore_errors=True)
                        log(f"  {r['lines_per_s'] / 1e6:.3f} M lines/s, "
                            f"{r['msgs_per_s'] / 1e3:.1f} k msgs/s, wall {r['wall']:.3f} s, "
                            f"RSS {r['rss'] / 2**20:.1f} MiB, CPU {r['cpu']:.2f} s, server CPU "
                            f"{r['server_cpu']:.2f} s {r['note']}")
                        runs[label].append(r)
            finally:
                cluster.stop()
    finally:
        if not KEEP:
            shutil.rmtree(tmp, ignore_errors=True)
    results = []
    for name in order:
        if runs[name] and name not in failed:
            ordered = sorted(runs[name], key=lambda r: r["lines_per_s"])
            median = dict(ordered[(len(ordered) - 1) // 2])
            median["rss"] = max(r["rss"] for r in ordered)
            median["note"] = "; ".join(sorted({r["note"] for r in ordered if r["note"]}))
            results.append(median)
    ok = report(results, {n: runs[n] for n in order if n not in failed}, load_start, tmp_parent)
    for name in failed:
        print(f"FAIL  {name}: did not complete (see above)")
    sys.exit(0 if ok and not failed else 1)


if __name__ == "__main__":
    main()
