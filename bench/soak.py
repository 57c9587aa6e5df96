#!/usr/bin/env python3
"""sluice soak benchmark (Python 3 standard library only). Run it through bench/soak, which
builds sluice (Release) and bench/soak_sender.cpp first; see docs/BENCHMARKS.md, "Soak".

For SOAK_SECONDS, four sources run at once, each fed RATE lines a second by its own
soak_sender process (paced in 10 ms ticks):
  tcp    one connection, newline-framed text                       (lossless: backpressure)
  udp    one socket, one RFC 3164 datagram per line, codec syslog  (lossy: drops are counted)
  zmq    one PUSH peer into sluice's bound PULL socket              (lossless: backpressure)
  file   a file the sender appends to, renamed away (logrotate `create`) at ROTATE_AT
                                                                   (lossless: backpressure)
into two sinks that take every source: a file sink (out.log, text) and a SQLite sink (soak.db),
both at sluice's default batch settings, with a 64 MiB queue that blocks when full.

Every line carries its source's tag and a sequence number ("tcp 0000001234 <real log line>",
the text of bench/lines.h after the tag), so loss, duplicates and corruption are checked
exactly. Every LOCK_EVERY seconds, starting at LOCK_FIRST, a separate process (python3,
sqlite3) runs BEGIN EXCLUSIVE on soak.db and holds it LOCK_SECONDS, then commits.
sluice's RSS (VmRSS of /proc/PID/status, and its parts) and GET /metrics are sampled every
SAMPLE_SECONDS.

At the end the senders stop, the script waits until every line sent is read (udp: read +
dropped) and both sinks' lag is 0, takes the last RSS, sends SIGTERM and waits for the exit
code. Then it reads out.log and soak.db. Criteria (exit 1 if any fails):
  - RSS at the end <= RSS_TOLERANCE (1.05) x RSS at the first sample at or after 60 s;
  - tcp, zmq, file: every id sent is in out.log exactly once, and in soak.db exactly once,
    with the text that was sent, and nothing else is there;
  - udp: sent = stored + sluice_events_dropped_total{source="udp"} (all reasons) in both
    sinks, no duplicates, no corruption;
  - every lock was taken and held, and stalled the SQLite sink (its error count rose);
  - the udp rows decoded (syslog codec); nothing else stored; the sink counters match;
  - no source errors and no failed sink (where the binary exports sluice_source_errors_total
    and sluice_sink_up);
  - the file source saw every rotation; sluice drained (lag 0) and exited 0 after SIGTERM.

Environment: SOAK_SECONDS (600), RATE (2000 lines/s per source), LOCK_EVERY (60),
LOCK_SECONDS (10), LOCK_FIRST (LOCK_EVERY / 2: so the first minute holds one whole lock and
its drain, as every later minute does), SAMPLE_SECONDS (1), ROTATE_AT (comma list of seconds;
default SOAK_SECONDS / 2), RSS_TOLERANCE (1.05), RSS_AT (60: the baseline RSS sample),
DRAIN_TIMEOUT (120 s), UDP_CODEC (syslog; "text" sends the bare tagged lines), SLUICE (the
binary; default build-release/sluice), SOAK_WORK (the work directory, made by bench/soak;
else one is made under SOAK_TMP, default /dev/shm), KEEP=1 (keep the work directory).
"""

import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-release")
SLUICE = os.environ.get("SLUICE") or os.path.join(BUILD, "sluice")
SENDER = os.path.join(BUILD, "bench", "soak_sender")
LOGS = os.path.join(ROOT, "tests", "data", "real_logs")


def env_float(name, default):
    value = os.environ.get(name, "")
    return float(value) if value.strip() else float(default)


SOAK_SECONDS = env_float("SOAK_SECONDS", 600)
RATE = int(env_float("RATE", 2000))
LOCK_EVERY = env_float("LOCK_EVERY", 60)
LOCK_SECONDS = env_float("LOCK_SECONDS", 10)
LOCK_FIRST = env_float("LOCK_FIRST", LOCK_EVERY / 2)
SAMPLE_SECONDS = env_float("SAMPLE_SECONDS", 1)
RSS_TOLERANCE = env_float("RSS_TOLERANCE", 1.05)
RSS_AT = env_float("RSS_AT", 60)
DRAIN_TIMEOUT = env_float("DRAIN_TIMEOUT", 120)
UDP_CODEC = os.environ.get("UDP_CODEC", "syslog")
ROTATE_AT = [float(x) for x in
             (os.environ.get("ROTATE_AT") or f"{SOAK_SECONDS / 2:g}").split(",") if x.strip()]
KEEP = os.environ.get("KEEP") == "1"

SOURCES = ("tcp", "udp", "zmq", "file")
LOSSLESS = ("tcp", "zmq", "file")
SINKS = ("out", "db")
MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The lock: a process of its own, as another application holding the database would be.
LOCK_CODE = r"""
import json, sqlite3, sys, time
path, hold, report = sys.argv[1], float(sys.argv[2]), sys.argv[3]
requested = time.time()
con = sqlite3.connect(path, timeout=120, isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
acquired = time.time()
time.sleep(hold)
con.execute("COMMIT")
released = time.time()
con.close()
with open(report, "w") as f:
    json.dump({"requested": requested, "acquired": acquired, "released": released}, f)
"""


class Interrupted(BaseException):
    pass


class SoakError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ processes

class Children:
    """Every process this script starts, stopped by PID at the end whatever happens. Each
    PID also goes to WORK/pids, so bench/soak can stop what is left if this script dies."""

    def __init__(self, work):
        self.work = work
        self.procs = []
        self.api = None  # closed first: sluice's exit waits for an idle keep-alive connection

    def start(self, name, cmd, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        # A session of its own: a Ctrl-C reaches this script (through bench/soak), which
        # then stops each child in order, not every child at once.
        proc = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.procs.append((name, proc))
        with open(os.path.join(self.work, "pids"), "a") as f:
            f.write(f"{proc.pid}\n")
        return proc

    def stop_all(self):
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.api is not None:
            self.api.close()
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    t = time.time()
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=10)
                    if os.environ.get("SOAK_DEBUG"):
                        log(f"stopped {name} in {time.time() - t:.2f} s")
                except subprocess.TimeoutExpired:
                    log(f"{name} (pid {proc.pid}) ignored SIGTERM for 10 s: SIGKILL")
                    proc.kill()
                    proc.wait()
                except ProcessLookupError:
                    pass


def free_ports():
    """Three free TCP ports (API, tcp source, ZeroMQ) and a free UDP port on 127.0.0.1."""
    held = []
    ports = []
    try:
        for kind in (socket.SOCK_STREAM,) * 3 + (socket.SOCK_DGRAM,):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", 0))
            held.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in held:
            s.close()
    return ports


def proc_net_bound(proto, port):
    for name in (proto, proto + "6"):
        try:
            with open(f"/proc/net/{name}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and \
                            (proto == "udp" or fields[3] == "0A"):
                        return True
        except OSError:
            pass
    return False


def udp_socket_drops(port):
    """The kernel's own drop count (sk_drops, the last column of /proc/net/udp) for the
    socket bound to `port`, or None."""
    for name in ("udp", "udp6"):
        try:
            with open(f"/proc/net/{name}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return int(fields[-1])
        except (OSError, ValueError, IndexError):
            pass
    return None


def proc_memory(pid):
    """VmRSS, its parts (anon, file, shmem) and VmHWM in bytes; utime+stime in seconds;
    threads and open file descriptors."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
            elif key == "Threads":
                out[key] = int(value)
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


# -------------------------------------------------------------------------------- metrics

METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(body):
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        if m:
            labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(metrics, name, **labels):
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def metric_sum(metrics, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


class Api:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read().decode()
                if resp.status != 200:
                    raise SoakError(f"GET {path}: HTTP {resp.status}")
                return body
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")

    def metrics(self):
        return parse_metrics(self.get("/metrics"))

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# -------------------------------------------------------------------------- expected text

def source_lines():
    """bench/lines.h's read_source_lines: every non-empty line of tests/data/real_logs/*.log,
    files in name order, one trailing '\\r' stripped."""
    lines = []
    for path in sorted(glob.glob(os.path.join(LOGS, "*.log"))):
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            for line in f.read().split(b"\n"):
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    lines.append(line)
    return lines


def text_suffixes():
    """What bench/lines.h's append_text_line puts after the 11-byte "SEQ10 " prefix, per
    source line: the line cut to 250 - 11 bytes, or padded to 80 - 11 with " | " and its own
    text repeated."""
    out = []
    for body in source_lines():
        s = body[:250 - 11]
        if 11 + len(s) < 80:
            s += b" | "
            k = 0
            while 11 + len(s) < 80:
                s += body[k % len(body):k % len(body) + 1]
                k += 1
        out.append(s)
    return out


# --------------------------------------------------------------------------------- checks

def parse_line(line):
    """(tag, seq, the tagged text) of a stored line, or None. A syslog line's tagged text
    follows its "soak[PID]: " header."""
    if line.startswith(b"<"):
        k = line.find(b"]: ")
        if k < 0:
            return None
        line = line[k + 3:]
    sp = line.find(b" ")
    if sp <= 0 or len(line) < sp + 12 or line[sp + 11:sp + 12] != b" ":
        return None
    digits = line[sp + 1:sp + 11]
    if not digits.isdigit():
        return None
    return line[:sp].decode("ascii", "replace"), int(digits), line


class Tally:
    """Per source, how often each id 0..sent-1 was stored; plus what should not be there."""

    def __init__(self, sent, suffixes):
        self.counts = {s: bytearray(sent[s]) for s in SOURCES}
        self.suffixes = suffixes
        self.unexpected = 0  # unparsable, unknown tag, id never sent, or a wrong source column
        self.corrupt = {s: 0 for s in SOURCES}  # id right, text not what was sent
        self.examples = []

    def add(self, raw, source_column=None):
        parsed = parse_line(raw)
        if parsed is None or parsed[0] not in self.counts or \
                parsed[1] >= len(self.counts[parsed[0]]) or \
                (source_column is not None and source_column != parsed[0]):
            self.unexpected += 1
            if len(self.examples) < 5:
                self.examples.append(raw[:120])
            return
        tag, seq, text = parsed
        c = self.counts[tag]
        if c[seq] < 255:
            c[seq] += 1
        want = b"%s %010d %s" % (tag.encode(), seq, self.suffixes[seq % len(self.suffixes)])
        if text != want:
            self.corrupt[tag] += 1
            if len(self.examples) < 5:
                self.examples.append(raw[:120])

    def figures(self, source):
        c = self.counts[source]
        missing = c.count(0)
        once = c.count(1)
        stored = len(c) - missing
        duplicates = sum(c) - stored  # copies beyond the first
        return {"stored": stored, "missing": missing, "duplicates": duplicates, "once": once}


def check_file_sink(path, sent, suffixes):
    tally = Tally(sent, suffixes)
    with open(path, "rb") as f:
        for line in f:
            tally.add(line[:-1] if line.endswith(b"\n") else line)
    return tally


def check_db(path, sent, suffixes):
    tally = Tally(sent, suffixes)
    extra = {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        for source, message in db.execute("SELECT source, CAST(message AS BLOB) FROM logs"):
            tally.add(bytes(message), source)
        extra["rows"] = db.execute("SELECT count(*) FROM logs").fetchone()[0]
        extra["udp_decoded"] = db.execute(
            "SELECT count(*) FROM logs WHERE source = 'udp' AND app = 'soak' "
            "AND facility = 16 AND severity = 6 AND ts IS NOT NULL").fetchone()[0]
        extra["files"] = [r[0] for r in db.execute(
            "SELECT DISTINCT file FROM logs WHERE source = 'file'")]
    return tally, extra


# ---------------------------------------------------------------------------------- setup

def write_config(work, ports, input_path):
    api, tcp, zmq, udp = ports
    cfg = os.path.join(work, "sluice.toml")
    udp_codec = f'codec = "{UDP_CODEC}"\n' if UDP_CODEC != "text" else ""
    with open(cfg, "w") as f:
        f.write(f"""# bench/soak.py: every source into both sinks, sluice's defaults otherwise
data_dir = "{work}/data"
shutdown_timeout = "60s"

[api]
address = "127.0.0.1:{api}"

[queue]
max_bytes = "64MiB"
when_full = "block"

[sources.tcp]
type = "tcp"
address = "127.0.0.1:{tcp}"
framing = "newline"

[sources.udp]
type = "udp"
address = "127.0.0.1:{udp}"
{udp_codec}
[sources.zmq]
type = "zmq"
endpoint = "tcp://127.0.0.1:{zmq}"
socket = "pull"
bind = true

[sources.file]
type = "file"
include = ["{input_path}"]

[sinks.out]
type = "file"
path = "out.log"

[sinks.db]
type = "sqlite"
path = "soak.db"
""")
    return cfg


def wait_ready(proc, api, ports, log_path, timeout=30):
    _, tcp, zmq, udp = ports
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SoakError(f"sluice exited with {proc.returncode} at start; {log_path} "
                            "(KEEP=1 keeps it) ends:\n"
                            + tail_text(log_path))
        try:
            api.get("/health")
            if proc_net_bound("tcp", tcp) and proc_net_bound("tcp", zmq) and \
                    proc_net_bound("udp", udp):
                return
        except (OSError, http.client.HTTPException, SoakError):
            pass
        time.sleep(0.1)
    raise SoakError(f"sluice not ready after {timeout} s; see {log_path}")


def tail_text(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def read_kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep:
                out[key] = value
    return out


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}, Linux {os.uname().release}"


# ------------------------------------------------------------------------------------ run

def run(work):
    for tool in (SLUICE, SENDER):
        if not os.access(tool, os.X_OK):
            raise SoakError(f"{tool} is missing: run bench/soak, which builds it")
    children = Children(work)
    try:
        return soak(work, children)
    finally:
        children.stop_all()


def soak(work, children):
    ports = free_ports()
    api_port, tcp_port, zmq_port, udp_port = ports
    indir = os.path.join(work, "in")
    os.makedirs(indir)
    input_path = os.path.join(indir, "app.log")
    open(input_path, "wb").close()
    cfg = write_config(work, ports, input_path)
    data = os.path.join(work, "data")
    db_path = os.path.join(data, "soak.db")
    out_path = os.path.join(data, "out.log")
    sluice_log = os.path.join(work, "sluice.log")
    api = Api(api_port)
    children.api = api

    locks_planned = []
    t = LOCK_FIRST
    while t + LOCK_SECONDS <= SOAK_SECONDS:
        locks_planned.append(t)
        t += LOCK_EVERY
    log(f"soak: {SOAK_SECONDS:g} s, {RATE} lines/s per source ({', '.join(SOURCES)}), "
        f"locks at {', '.join(f'{x:g}' for x in locks_planned) or 'none'} s for "
        f"{LOCK_SECONDS:g} s, rotation at {', '.join(f'{x:g}' for x in ROTATE_AT)} s; "
        f"work dir {work}")
    log(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")

    check = subprocess.run([SLUICE, "validate", "-c", cfg], capture_output=True, text=True)
    if check.returncode != 0:
        raise SoakError(f"sluice validate -c {cfg}: exit {check.returncode}: "
                        f"{check.stdout}{check.stderr}")
    with open(sluice_log, "w") as lf:
        sluice = children.start("sluice", [SLUICE, "run", "--config", cfg],
                                stdout=lf, stderr=subprocess.STDOUT)
    wait_ready(sluice, api, ports, sluice_log)

    # The senders, all at once.
    senders = {}
    reports = {}
    for src in SOURCES:
        reports[src] = os.path.join(work, f"{src}.report")
        cmd = [SENDER, "--proto", src, "--tag", src, "--rate", str(RATE), "--logs", LOGS,
               "--report", reports[src]]
        if src == "tcp":
            cmd += ["--port", str(tcp_port)]
        elif src == "udp":
            cmd += ["--port", str(udp_port)] + (["--syslog"] if UDP_CODEC == "syslog" else [])
        elif src == "zmq":
            cmd += ["--endpoint", f"tcp://127.0.0.1:{zmq_port}"]
        else:
            cmd += ["--path", input_path, "--rotate-at", ",".join(f"{x:g}" for x in ROTATE_AT)]
        with open(os.path.join(work, f"{src}.stderr"), "w") as ef:
            senders[src] = children.start(f"sender {src}", cmd, stdout=subprocess.DEVNULL,
                                          stderr=ef)
    t0 = time.time()

    samples = []
    locks = []  # {"planned", "proc", "report"}
    pending = list(locks_planned)
    next_sample = t0
    next_progress = t0 + 30
    csv = open(os.path.join(work, "samples.csv"), "w")
    csv.write("t,vmrss,rss_anon,rss_file,rss_shmem,metrics_rss,cpu,queue_events,queue_bytes,"
              "lag_out,lag_db,lag_seconds_db,db_errors,paused_tcp,paused_zmq,paused_file\n")

    def take_sample():
        now = time.time()
        mem = proc_memory(sluice.pid)
        m = api.metrics()
        s = {"t": now - t0, "mem": mem, "m": m, "load": os.getloadavg()[0]}
        samples.append(s)
        csv.write(",".join(str(x) for x in (
            f"{s['t']:.2f}", mem.get("VmRSS"), mem.get("RssAnon"), mem.get("RssFile"),
            mem.get("RssShmem"), int(metric(m, "process_resident_memory_bytes")),
            f"{mem['cpu']:.2f}", int(metric(m, "sluice_queue_events")),
            int(metric(m, "sluice_queue_bytes")),
            int(metric(m, "sluice_sink_lag_events", sink="out")),
            int(metric(m, "sluice_sink_lag_events", sink="db")),
            f"{metric(m, 'sluice_sink_lag_seconds', sink='db'):.3f}",
            int(metric(m, "sluice_sink_errors_total", sink="db")),
            int(metric(m, "sluice_source_paused", source="tcp")),
            int(metric(m, "sluice_source_paused", source="zmq")),
            int(metric(m, "sluice_source_paused", source="file")))) + "\n")
        return s

    while True:
        now = time.time()
        if now - t0 >= SOAK_SECONDS:
            break
        if sluice.poll() is not None:
            raise SoakError(f"sluice exited with {sluice.returncode} during the soak; "
                            f"see {sluice_log}:\n{tail_text(sluice_log)}")
        for src, proc in senders.items():
            if proc.poll() is not None:
                raise SoakError(f"sender {src} exited with {proc.returncode}: "
                                f"{tail_text(os.path.join(work, src + '.stderr'))}")
        if pending and now - t0 >= pending[0]:
            planned = pending.pop(0)
            report = os.path.join(work, f"lock-{len(locks) + 1}.json")
            with open(report + ".stderr", "w") as ef:
                proc = children.start(f"lock {len(locks) + 1}",
                                      [sys.executable, "-c", LOCK_CODE, db_path,
                                       str(LOCK_SECONDS), report],
                                      stdout=subprocess.DEVNULL, stderr=ef)
            locks.append({"planned": planned, "proc": proc, "report": report})
            log(f"  t={now - t0:6.1f} s: lock {len(locks)} (pid {proc.pid})")
        if now >= next_sample:
            s = take_sample()
            next_sample += SAMPLE_SECONDS
            if next_sample < now:
                next_sample = now + SAMPLE_SECONDS
            if now >= next_progress:
                next_progress += 30
                m = s["m"]
                log(f"  t={s['t']:6.1f} s: RSS {s['mem']['VmRSS'] / MIB:.1f} MiB, queue "
                    f"{int(metric(m, 'sluice_queue_events'))} events / "
                    f"{metric(m, 'sluice_queue_bytes') / MIB:.1f} MiB, lag out "
                    f"{int(metric(m, 'sluice_sink_lag_events', sink='out'))} db "
                    f"{int(metric(m, 'sluice_sink_lag_events', sink='db'))} "
                    f"({metric(m, 'sluice_sink_lag_seconds', sink='db'):.1f} s), "
                    f"load {os.getloadavg()[0]:.2f}")
        wake = min([next_sample, t0 + SOAK_SECONDS] +
                   ([t0 + pending[0]] if pending else []))
        time.sleep(max(0.0, min(wake - time.time(), 0.5)))

    # Stop the load; let every lock finish.
    load_end = samples[-1] if samples else None
    for src, proc in senders.items():
        proc.send_signal(signal.SIGTERM)
    sent = {}
    sender_info = {}
    for src, proc in senders.items():
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise SoakError(f"sender {src} did not finish within 120 s of SIGTERM")
        if rc != 0:
            raise SoakError(f"sender {src} exited with {rc}: "
                            f"{tail_text(os.path.join(work, src + '.stderr'))}")
        kv = read_kv(reports[src])
        sent[src] = int(kv["sent"])
        sender_info[src] = kv
    stopped_at = time.time()
    for i, lk in enumerate(locks, 1):
        rc = lk["proc"].wait(timeout=LOCK_SECONDS + 150)
        if rc != 0:
            raise SoakError(f"lock {i} exited with {rc}: {tail_text(lk['report'] + '.stderr')}")
        with open(lk["report"]) as f:
            lk.update(json.load(f))
    log(f"  t={stopped_at - t0:6.1f} s: senders stopped; sent "
        + ", ".join(f"{s} {sent[s]}" for s in SOURCES) + "; draining")

    # Drain: every line sent read (udp: read or counted as dropped), both sinks at lag 0.
    drained = False
    stable = 0
    deadline = time.time() + DRAIN_TIMEOUT
    m = None
    while time.time() < deadline:
        m = api.metrics()
        read = {s: metric(m, "sluice_source_events_total", source=s) for s in SOURCES}
        dropped_udp = metric_sum(m, "sluice_events_dropped_total", source="udp")
        ok = all(read[s] >= sent[s] for s in LOSSLESS) and \
            read["udp"] + dropped_udp >= sent["udp"] and \
            all(metric(m, "sluice_sink_lag_events", sink=k) == 0 for k in SINKS)
        stable = stable + 1 if ok else 0
        if stable >= 3:
            drained = True
            break
        time.sleep(0.2)
    drain_seconds = time.time() - stopped_at
    final_sample = take_sample()
    socket_drops = udp_socket_drops(udp_port)
    csv.close()
    final = final_sample["m"]
    log(f"  drained: {drained} after {drain_seconds:.1f} s; SIGTERM")

    # No API connection may stay open: sluice's HTTP server waits for an idle keep-alive
    # connection to time out (5 s) before it exits.
    api.close()
    term_at = time.time()
    sluice.send_signal(signal.SIGTERM)
    try:
        exit_code = sluice.wait(timeout=90)
    except subprocess.TimeoutExpired:
        exit_code = None
    shutdown_seconds = time.time() - term_at

    log(f"  sluice exited {exit_code} after {shutdown_seconds:.2f} s; checking out.log "
        f"({os.path.getsize(out_path) / 1e6:.0f} MB) and soak.db "
        f"({os.path.getsize(db_path) / 1e6:.0f} MB) ...")
    check_start = time.time()
    suffixes = text_suffixes()
    file_tally = check_file_sink(out_path, sent, suffixes)
    db_tally, db_extra = check_db(db_path, sent, suffixes)
    log(f"  checked in {time.time() - check_start:.1f} s")

    return print_report(work, locals())


# --------------------------------------------------------------------------------- report

def print_report(work, r):
    samples = r["samples"]
    final = r["final"]
    sent = r["sent"]
    verdicts = []

    def verdict(name, ok, detail):
        verdicts.append((name, ok, detail))

    # RSS
    base = next((s for s in samples if s["t"] >= RSS_AT), None)
    end = r["final_sample"]
    after = [s for s in samples if base is not None and s["t"] >= base["t"]]
    peak_hwm = end["mem"]["VmHWM"]
    peak_sample = max(samples, key=lambda s: s["mem"]["VmRSS"])
    mib = lambda b: f"{b / MIB:.1f}"  # noqa: E731
    ratio = end["mem"]["VmRSS"] / base["mem"]["VmRSS"] if base else float("nan")

    print()
    print(f"## sluice soak: {SOAK_SECONDS:g} s, {RATE} lines/s per source")
    print()
    print(f"machine: {machine()}; work dir on {os.path.dirname(work)}; load average at the "
          f"end {os.getloadavg()[0]:.2f}; sluice {r['exit_code']!s} after SIGTERM")
    cpu_used = end["mem"]["cpu"] - samples[0]["mem"]["cpu"]
    span = end["t"] - samples[0]["t"]
    print(f"sluice CPU: {cpu_used:.1f} s over {span:.0f} s ({100 * cpu_used / span:.0f}% of "
          f"one CPU); drain after the senders stopped {r['drain_seconds']:.1f} s; shutdown "
          f"{r['shutdown_seconds']:.1f} s")
    print()
    loads = [s["load"] for s in samples]
    print(f"load average (1 min) during the run: {min(loads):.2f}–{max(loads):.2f}")
    print()
    print("| RSS | MiB | anon | file | shmem | threads | fds | at |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    rows = [("first sample", samples[0]), (f"at {RSS_AT:g} s: after the first minute (baseline)", base),
            ("highest sample", peak_sample), ("end of load", r["load_end"]),
            ("end, drained (compared)", end)]
    for label, s in rows:
        if s is None:
            continue
        mem = s["mem"]
        print(f"| {label} | {mib(mem['VmRSS'])} | {mib(mem.get('RssAnon', 0))} | "
              f"{mib(mem.get('RssFile', 0))} | {mib(mem.get('RssShmem', 0))} | "
              f"{mem.get('Threads', '?')} | {mem.get('fds', '?')} | {s['t']:.0f} s |")
    print(f"| peak (VmHWM, or the highest sample if higher) | "
          f"{mib(max(peak_hwm, peak_sample['mem']['VmRSS']))} | | | | | | |")
    if after:
        lo = min(s["mem"]["VmRSS"] for s in after)
        hi = max(s["mem"]["VmRSS"] for s in after)
        print(f"| range from the baseline on | {mib(lo)}–{mib(hi)} | | | | | | |")
    print()
    verdict("RSS end / after first minute",
            base is not None and ratio <= RSS_TOLERANCE,
            f"{ratio:.3f} ({mib(end['mem']['VmRSS'])} / "
            f"{mib(base['mem']['VmRSS']) if base else '?'} MiB; limit {RSS_TOLERANCE:.2f})"
            if base else f"no sample at {RSS_AT:g} s (run longer)")

    # Locks
    print("| lock | planned s | acquired s (wait) | held s | db errors during | db lag peak s "
          "| db back under 1 s lag, s after release |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    t0 = r["t0"]
    all_locks_ok = bool(r["locks"])
    for i, lk in enumerate(r["locks"], 1):
        acq, rel = lk["acquired"] - t0, lk["released"] - t0
        nxt = r["locks"][i]["acquired"] - t0 if i < len(r["locks"]) else float("inf")
        window = [s for s in samples if acq - 1 <= s["t"] < nxt]
        before = [s for s in samples if s["t"] <= acq]
        err0 = metric(before[-1]["m"], "sluice_sink_errors_total", sink="db") if before else 0
        during = [s for s in samples if acq <= s["t"] <= rel + 6]
        err1 = max((metric(s["m"], "sluice_sink_errors_total", sink="db") for s in during),
                   default=err0)
        lag_peak = max((metric(s["m"], "sluice_sink_lag_seconds", sink="db") for s in window),
                       default=0)
        recovered = next((s["t"] - rel for s in window
                          if s["t"] > rel and
                          metric(s["m"], "sluice_sink_lag_seconds", sink="db") < 1.0), None)
        held = rel - acq
        ok = held >= LOCK_SECONDS - 0.05 and err1 > err0
        all_locks_ok = all_locks_ok and ok
        lk["errors"] = err1 - err0
        print(f"| {i} | {lk['planned']:.0f} | {acq:.1f} ({lk['acquired'] - lk['requested']:.3f}) "
              f"| {held:.2f} | {int(err1 - err0)} | {lag_peak:.1f} | "
              f"{'%.1f' % recovered if recovered is not None else 'never'} |")
    print()
    verdict(f"{len(r['locks'])} locks of {LOCK_SECONDS:g} s, each stalling the db sink",
            all_locks_ok and len(r["locks"]) == len(r["locks_planned"]),
            f"{len(r['locks'])} taken; db sink errors "
            f"{int(metric(final, 'sluice_sink_errors_total', sink='db'))}, retries "
            f"{int(metric(final, 'sluice_sink_retries_total', sink='db'))}")

    # Sources
    qpeak_b = max(metric(s["m"], "sluice_queue_bytes") for s in samples)
    qpeak_e = max(metric(s["m"], "sluice_queue_events") for s in samples)
    print(f"queue peak: {int(qpeak_e)} events, {qpeak_b / MIB:.1f} MiB (max_bytes 64 MiB); "
          f"file sink batches {int(metric(final, 'sluice_sink_batches_total', sink='out'))}, "
          f"db batches {int(metric(final, 'sluice_sink_batches_total', sink='db'))}")
    print()
    print("| source | sent | read | dropped (queue_full / evicted / kernel) | out.log: stored, "
          "missing, dup | soak.db: stored, missing, dup | corrupt (out / db) | paused s | "
          "sender behind (max lines) |")
    print("|---|---:|---:|---|---|---|---|---:|---:|")
    ff, df = {}, {}
    for src in SOURCES:
        ff[src] = r["file_tally"].figures(src)
        df[src] = r["db_tally"].figures(src)
        drops = [metric(final, "sluice_events_dropped_total", source=src, reason=x)
                 for x in ("queue_full", "evicted", "kernel")]
        print(f"| {src} | {sent[src]} | "
              f"{int(metric(final, 'sluice_source_events_total', source=src))} | "
              f"{' / '.join(str(int(d)) for d in drops)} | "
              f"{ff[src]['stored']}, {ff[src]['missing']}, {ff[src]['duplicates']} | "
              f"{df[src]['stored']}, {df[src]['missing']}, {df[src]['duplicates']} | "
              f"{r['file_tally'].corrupt[src]} / {r['db_tally'].corrupt[src]} | "
              f"{metric(final, 'sluice_source_backpressure_seconds_total', source=src):.1f} | "
              f"{r['sender_info'][src].get('max_behind', '?')} |")
    print(f"file column of the file source's rows: {', '.join(map(str, r['db_extra']['files']))}"
          f"; rotations by rename seen: "
          f"{int(metric(final, 'sluice_file_rotations_total', source='file', kind='rename'))}")
    print()
    for src in LOSSLESS:
        ok = all(t[src]["missing"] == 0 and t[src]["duplicates"] == 0 for t in (ff, df)) and \
            r["file_tally"].corrupt[src] == 0 and r["db_tally"].corrupt[src] == 0
        verdict(f"{src}: every id exactly once in out.log and soak.db", ok,
                f"{sent[src]} sent; out.log {ff[src]['stored']} ({ff[src]['missing']} missing, "
                f"{ff[src]['duplicates']} duplicate); soak.db {df[src]['stored']} "
                f"({df[src]['missing']} missing, {df[src]['duplicates']} duplicate)")
    dropped_udp = int(metric_sum(final, "sluice_events_dropped_total", source="udp"))
    ok = all(sent["udp"] == t["udp"]["stored"] + dropped_udp and t["udp"]["duplicates"] == 0
             for t in (ff, df)) and r["file_tally"].corrupt["udp"] == 0 and \
        r["db_tally"].corrupt["udp"] == 0
    verdict("udp: sent = stored + dropped (every drop counted)", ok,
            f"{sent['udp']} sent = {ff['udp']['stored']} in out.log / {df['udp']['stored']} in "
            f"soak.db + {dropped_udp} dropped (the socket's own drop count in /proc/net/udp: "
            f"{r['socket_drops']})")
    unexpected = r["file_tally"].unexpected + r["db_tally"].unexpected
    verdict("nothing else stored", unexpected == 0,
            f"{r['file_tally'].unexpected} unexpected lines in out.log, "
            f"{r['db_tally'].unexpected} rows in soak.db"
            + (f"; e.g. {r['file_tally'].examples[:2] + r['db_tally'].examples[:2]}"
               if unexpected or any(r['file_tally'].corrupt.values()) else ""))
    if UDP_CODEC == "syslog":
        decode_errors = int(metric(final, "sluice_decode_errors_total", source="udp"))
        decoded = r["db_extra"]["udp_decoded"]
        verdict("udp: syslog decoded", decode_errors == 0 and decoded == df["udp"]["stored"],
                f"{decoded} rows with app, facility, severity and ts; {decode_errors} decode "
                "errors")
    rotations_done = int(r["sender_info"]["file"].get("rotations", 0))
    seen = int(metric(final, "sluice_file_rotations_total", source="file", kind="rename"))
    verdict("file source: every rename rotation seen", rotations_done >= 1 and
            seen == rotations_done, f"{rotations_done} done, {seen} seen (kind=rename)")
    verdict("drained to lag 0, exit 0 after SIGTERM", r["drained"] and r["exit_code"] == 0,
            f"drained {r['drained']} in {r['drain_seconds']:.1f} s; exit code "
            f"{r['exit_code']}")
    # Newer binaries export these (sluice_source_errors_total, sluice_sink_up); older ones
    # do not, and then there is nothing to check.
    src_errors = int(metric_sum(final, "sluice_source_errors_total"))
    ups = [v for s in samples + [end] for (n, _), v in s["m"].items() if n == "sluice_sink_up"]
    down = sum(1 for v in ups if v != 1)
    verdict("no source errors, no sink failed", src_errors == 0 and down == 0,
            f"sluice_source_errors_total {src_errors}; sluice_sink_up 0 in {down} of "
            f"{len(ups)} readings" if ups or any(
                n == "sluice_source_errors_total" for n, _ in final) else
            "(this binary exports neither sluice_source_errors_total nor sluice_sink_up)")
    sink_ok = int(metric(final, "sluice_sink_events_total", sink="out")) == \
        sum(ff[s]["stored"] + ff[s]["duplicates"] for s in SOURCES) + \
        r["file_tally"].unexpected and \
        int(metric(final, "sluice_sink_events_total", sink="db")) == r["db_extra"]["rows"]
    verdict("sink counters match what is stored", sink_ok,
            f"out {int(metric(final, 'sluice_sink_events_total', sink='out'))}, db "
            f"{int(metric(final, 'sluice_sink_events_total', sink='db'))} events; soak.db "
            f"{r['db_extra']['rows']} rows")

    print("| criterion | result | figures |")
    print("|---|---|---|")
    for name, ok, detail in verdicts:
        print(f"| {name} | {'PASS' if ok else '**FAIL**'} | {detail} |")
    failed = [n for n, ok, _ in verdicts if not ok]
    print()
    print("soak: " + ("PASS" if not failed else "FAIL: " + "; ".join(failed)))
    if r["exit_code"] != 0:
        print("sluice's log ends:\n" + tail_text(r["sluice_log"]))
    return 1 if failed else 0


def main():
    def interrupted(signum, frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:  # bench/soak forwards it as SIGTERM
        signal.signal(signal.SIGINT, interrupted)
    made = False
    work = os.environ.get("SOAK_WORK")
    if not work:
        base = os.environ.get("SOAK_TMP") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
        work = tempfile.mkdtemp(prefix="sluice-soak-", dir=base)
        made = True
    code = 1
    try:
        code = run(work)
    except Interrupted as e:
        log(f"soak: interrupted by signal {e.args[0]}; every process stopped")
        code = 128 + e.args[0]
    except (SoakError, OSError, subprocess.SubprocessError, http.client.HTTPException) as e:
        log(f"soak: FAIL: {e}")
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if KEEP:
            log(f"soak: work directory kept: {work}")
        elif made or os.environ.get("SOAK_WORK"):
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
