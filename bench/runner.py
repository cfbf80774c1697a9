#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/runner.py -- run the luaws benchmark matrix and write the report.

bench/run.sh installs and builds, then runs this under Debian's /usr/bin/python3
(standard library only). For each repeat, for each scenario, for each server
(in an order that rotates per repeat, so no server always runs first or last):
start a fresh server pinned to core 0, run build/bench/loadgen pinned to core 1
(or to core 0 too for the same-core scenario) with --pid so it samples the
server's CPU time and RSS at the edges of its own window, stop the server by
its PID. Then take per-metric medians over the repeats, compare against luaws
(or node ws while luaws is absent), and write bench/results/latest.md (tables),
latest.png (gnuplot chart) and latest.raw (every loadgen JSON line).

The compressed scenarios (deflate=True: c100x1kz, c100x1kzn, idle10kz, idle10kzn) run
only the servers that speak permessage-deflate, each started with its
compressed command (zcmd): luaws's examples/echo.lua --compression, node ws
with perMessageDeflate, Python websockets with its default compression. The
generator offers the extension and requires it (bench/loadgen.c --deflate).
They run over ws:// only (the wss servers below have no zcmd).

Peers besides luaws and the c_echo floor: node ws, Python websockets, lua-http,
lua-resty-websocket in nginx (resty: bench/peers/resty_echo.conf, filled in per
run into a fresh prefix, one process with master_process off) and libwebsockets
(lws: build/bench/lws_echo from bench/peers/lws_echo.c). Each has a check() that
gives the skip reason when it is not installed.

Headlines (pick_headlines): every echo table has the server's CPU µs per message
beside msg/s; in a throughput scenario whose generator was above GEN_BOUND_PCT
(90%) of its core in the runs of any server, the headline of the summary table
and the chart is the server's CPU per message (handshake: cycles per server
CPU-s) instead of msg/s, and the report says which and why for each scenario.

Design criteria: every wait is bounded (server start, generator, stop, and a
whole-run budget); traffic goes only to 127.0.0.1 (plus 127.0.0.2-4 as extra
source addresses in the idle scenario); a server that is missing is skipped and
the table says why; nothing is stopped by name.

wss: the c100x16 and c100x16k scenarios also run luaws, c_echo and node ws over
TLS (luaws-wss, c_echo-wss, node-wss: loadgen --tls against a certificate this
script makes with openssl in build/bench-tls/), interleaved with the plain runs
of the same scenarios, and the report gets a "wss" section (between
<!-- wss:begin --> and <!-- wss:end -->) with the ratios wss/ws and luaws/node
over TLS, and c_echo's wss/ws as the floor of the first.
BENCH_WSS=none leaves TLS out; BENCH_WSS=only runs just those two scenarios
with luaws (callback and coroutine), c_echo and node ws, each over ws and wss
(sixteen runs per repeat), and writes bench/results/wss.md and wss.raw (not committed)
instead of latest.md. BENCH_TLS_KEY=ecdsa (P-256, the default) or rsa (2048
bits) picks the server certificate.

Usage: bench/runner.py [--list]
Environment: BENCH_DURATION, BENCH_WARMUP, BENCH_REPEATS, BENCH_SERVERS,
BENCH_SCENARIOS, BENCH_BUDGET, BENCH_RESULTS, BENCH_WSS, BENCH_TLS_KEY (see
bench/run.sh).
"""
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "bench")
LOADGEN = os.path.join(BUILD, "loadgen")
# BENCH_RESULTS: another directory for the report (a partial or trial run that
# must not replace bench/results/latest.md); bench/fanout.py follows it too.
RESULTS = os.path.abspath(os.environ.get("BENCH_RESULTS") or os.path.join(ROOT, "bench", "results"))
LOGS = os.path.join(RESULTS, "logs")

DURATION = float(os.environ.get("BENCH_DURATION", "5"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
BUDGET = float(os.environ.get("BENCH_BUDGET", "3600"))
QUIET_WAIT = float(os.environ.get("BENCH_QUIET_WAIT", "20"))     # per run, seconds
QUIET_TOTAL = float(os.environ.get("BENCH_QUIET_TOTAL", "300"))  # per benchmark, seconds
QUIET_PCT = 25.0  # other processes above this share of one core count as "busy"
SERVER_CPU = "0"
GEN_CPU = "1"
WSS = os.environ.get("BENCH_WSS", "")          # "" (with the matrix), "none", "only"
TLS_KEY = os.environ.get("BENCH_TLS_KEY", "ecdsa")  # ecdsa (P-256) or rsa (2048)
TLS_DIR = os.path.join(ROOT, "build", "bench-tls")
WSS_SCENARIOS = ("c100x16", "c100x16k")      # the scenarios that also run over TLS
WSS_MARK_BEGIN, WSS_MARK_END = "<!-- wss:begin -->", "<!-- wss:end -->"
START_TIMEOUT = 15.0  # seconds for a server to start listening
STOP_TIMEOUT = 3.0    # seconds after SIGTERM before SIGKILL


def _lua_module_ok(lua, module):
    if not shutil.which(lua):
        return False
    r = subprocess.run([lua, "-e", f'require "{module}"'], capture_output=True, timeout=10)
    return r.returncode == 0


def _check_luaws():
    if not os.path.exists(os.path.join(ROOT, "examples", "echo.lua")):
        return "examples/echo.lua not in this tree"
    if os.path.exists(os.path.join(BUILD, "luaws-build.failed")):
        return "`make all` failed (build/bench/luaws-build.log)"
    if not os.path.exists(os.path.join(ROOT, "build", "luaws", "core.so")):
        return "build/luaws/core.so missing (run `make`)"
    if not shutil.which("lua5.4"):
        return "lua5.4 not installed"
    return None


def _check_c_echo():
    return None if os.access(os.path.join(BUILD, "c_echo"), os.X_OK) else "build/bench/c_echo not built"


def _check_node():
    if not shutil.which("node"):
        return "node not installed"
    if not os.path.isdir(os.path.join(ROOT, "bench", "peers", "node_modules", "ws")):
        return "ws not installed (cd bench/peers && npm ci)"
    return None


def _check_python():
    r = subprocess.run(["/usr/bin/python3", "-c", "import websockets"], capture_output=True, timeout=10)
    return None if r.returncode == 0 else "python3-websockets not installed"


def _zcheck_luaws():
    try:
        with open(os.path.join(ROOT, "examples", "echo.lua")) as f:
            if "--compression" in f.read():
                return None
    except OSError:
        pass
    return "examples/echo.lua has no --compression (permessage-deflate not in this tree)"


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so",
                 "/usr/lib/nginx/modules/ngx_http_lua_module.so")
RESTY_WS = "/usr/share/lua/5.1/nginx/websocket/server.lua"   # Debian's lua-nginx-websocket


def _check_resty():
    if not os.access(NGINX, os.X_OK):
        return "nginx not installed"
    for m in NGINX_MODULES:
        if not os.path.exists(m):
            return f"{m} missing (apt-get install libnginx-mod-http-lua)"
    if not os.path.exists(RESTY_WS):
        return "lua-resty-websocket missing (apt-get install lua-nginx-websocket)"
    return None


def _setup_resty(port, tag):
    """A fresh nginx prefix for one run: bench/peers/resty_echo.conf with the
    port, the prefix and the peers directory filled in. Returns (fills, dir)."""
    prefix = tempfile.mkdtemp(prefix=f"luaws-resty-{tag}-")
    peers = os.path.join(ROOT, "bench", "peers")
    with open(os.path.join(peers, "resty_echo.conf")) as f:
        conf = f.read()
    for k, v in (("{port}", str(port)), ("{prefix}", prefix), ("{peers}", peers)):
        conf = conf.replace(k, v)
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write(conf)
    return {"{prefix}": prefix}, prefix


def _check_lws():
    if os.access(os.path.join(BUILD, "lws_echo"), os.X_OK):
        return None
    if not os.path.exists("/usr/include/libwebsockets.h"):
        return "libwebsockets-dev not installed (build/bench/lws_echo not built)"
    return "build/bench/lws_echo not built (make -f bench/Makefile.inc bench-tools)"


def _check_luahttp():
    if not shutil.which("lua5.1"):
        return "lua5.1 not installed"
    if not _lua_module_ok("lua5.1", "http.websocket"):
        return "lua-http not importable under lua5.1 (apt-get install lua-http)"
    return None


TLS_CERT = {}  # "cert", "key": the PEM files, once made


def _tls_cert():
    """Make (once) a self-signed certificate for 127.0.0.1 and localhost in
    build/bench-tls/: ECDSA P-256 by default (its signature, the server's work
    in each handshake, is far cheaper than RSA's), RSA 2048 with
    BENCH_TLS_KEY=rsa. Returns a skip reason or None."""
    if TLS_KEY not in ("ecdsa", "rsa"):
        return f"BENCH_TLS_KEY must be ecdsa or rsa, not {TLS_KEY!r}"
    cert = os.path.join(TLS_DIR, f"{TLS_KEY}-cert.pem")
    key = os.path.join(TLS_DIR, f"{TLS_KEY}-key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        if not shutil.which("openssl"):
            return "openssl (the command) not installed"
        os.makedirs(TLS_DIR, exist_ok=True)
        newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if TLS_KEY == "ecdsa"
                  else ["-newkey", "rsa:2048"])
        r = subprocess.run(["openssl", "req", "-x509"] + newkey +
                           ["-sha256", "-nodes", "-days", "365", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                            "-keyout", key + ".tmp", "-out", cert + ".tmp"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return "openssl req failed: " + r.stderr.strip()[-200:]
        os.replace(key + ".tmp", key)
        os.replace(cert + ".tmp", cert)
    TLS_CERT.update(cert=cert, key=key)
    return None


def _check_luaws_wss():
    why = _check_luaws()
    if why:
        return why
    with open(os.path.join(ROOT, "examples", "echo.lua")) as f:
        if "--tls-cert" not in f.read():
            return "examples/echo.lua has no --tls-cert option in this tree"
    return _tls_cert()


def _check_node_wss():
    return _check_node() or _tls_cert()


def _check_c_echo_wss():
    return _check_c_echo() or _tls_cert()


# Each server: key, label, argv ({port}, {cert}, {key} are filled in),
# check() -> skip reason or None. tls=True: loadgen talks wss:// to it, only in
# WSS_SCENARIOS, and it shows only in the wss section; plain= the key of the
# same server over ws://. Each TLS entry follows its plain one, so the rotation
# keeps them next to each other.
SERVERS = [
    dict(key="luaws", label="luaws (callback)",
         cmd=["lua5.4", "examples/echo.lua", "--port", "{port}"], check=_check_luaws,
         zcmd=["lua5.4", "examples/echo.lua", "--port", "{port}", "--compression"], zcheck=_zcheck_luaws),
    dict(key="luaws-wss", label="luaws wss (callback)", tls=True, plain="luaws",
         cmd=["lua5.4", "examples/echo.lua", "--port", "{port}", "--tls-cert", "{cert}",
              "--tls-key", "{key}"], check=_check_luaws_wss),
    dict(key="luaws-co", label="luaws (coroutine)",
         cmd=["lua5.4", "examples/echo.lua", "--port", "{port}", "--coroutine"], check=_check_luaws),
    dict(key="luaws-co-wss", label="luaws wss (coroutine)", tls=True, plain="luaws-co",
         cmd=["lua5.4", "examples/echo.lua", "--port", "{port}", "--coroutine", "--tls-cert",
              "{cert}", "--tls-key", "{key}"], check=_check_luaws_wss),
    dict(key="c_echo", label="c_echo (epoll floor)",
         cmd=[os.path.join(BUILD, "c_echo"), "{port}"], check=_check_c_echo),
    dict(key="c_echo-wss", label="c_echo wss (TLS floor)", tls=True, plain="c_echo",
         cmd=[os.path.join(BUILD, "c_echo"), "{port}", "--tls", "{cert}", "{key}"],
         check=_check_c_echo_wss),
    dict(key="node", label="node ws",
         cmd=["node", "bench/peers/node_echo.js", "{port}"], check=_check_node,
         zcmd=["node", "bench/peers/node_echo.js", "{port}", "--deflate"]),
    dict(key="node-wss", label="node ws on https", tls=True, plain="node",
         cmd=["node", "bench/peers/node_echo.js", "{port}", "--tls", "{cert}", "{key}"],
         check=_check_node_wss),
    dict(key="python", label="python websockets",
         cmd=["/usr/bin/python3", "bench/peers/py_echo.py", "{port}"], check=_check_python,
         zcmd=["/usr/bin/python3", "bench/peers/py_echo.py", "{port}", "--deflate"]),
    dict(key="luahttp", label="lua-http (lua5.1)",
         cmd=["lua5.1", "bench/peers/luahttp_echo.lua", "{port}"], check=_check_luahttp),
    # nginx in one process (master_process off), so the PID is the one that serves
    dict(key="resty", label="lua-resty-websocket (nginx)",
         cmd=[NGINX, "-p", "{prefix}", "-c", "{prefix}/nginx.conf", "-e", "stderr"],
         check=_check_resty, setup=_setup_resty),
    dict(key="lws", label="libwebsockets",
         cmd=[os.path.join(BUILD, "lws_echo"), "{port}"], check=_check_lws),
]

# kind picks the table layout; head is the headline metric; better says which way is good;
# deflate=True: only servers with a zcmd, started with it (permessage-deflate on).
SCENARIOS = [
    dict(key="lat1", title="1 connection x 16 B ping-pong (server core 0, generator core 1)",
         kind="echo", head="lat_p50_us", better="lower",
         args=["--conns", "1", "--size", "16", "--inflight", "1"]),
    dict(key="lat1same", title="1 connection x 16 B ping-pong, server and generator on core 0",
         kind="echo", head="lat_p50_us", better="lower", same_core=True,
         args=["--conns", "1", "--size", "16", "--inflight", "1"]),
    dict(key="c100x16", title="100 connections x 16 B, 1 in flight each",
         kind="echo", head="rate", better="higher",
         args=["--conns", "100", "--size", "16", "--inflight", "1"]),
    dict(key="c100x1k", title="100 connections x 1 KiB binary, 1 in flight each",
         kind="echo", head="rate", better="higher",
         args=["--conns", "100", "--size", "1024", "--inflight", "1"]),
    dict(key="c100x16k", title="100 connections x 16 KiB binary, 1 in flight each",
         kind="echo", head="rate", better="higher",
         args=["--conns", "100", "--size", "16384", "--inflight", "1"]),
    dict(key="c100x16kt", title="100 connections x 16 KiB text (ASCII), 1 in flight each",
         kind="echo", head="rate", better="higher",
         args=["--conns", "100", "--size", "16384", "--inflight", "1", "--text"]),
    dict(key="c1x1m", title="1 connection x 1 MiB binary messages",
         kind="echo", head="mb_per_s", better="higher",
         args=["--conns", "1", "--size", "1048576", "--inflight", "1"]),
    dict(key="c100x1kz", title="100 connections x 1 KiB JSON-like text, permessage-deflate "
         "(offered as a browser does: context takeover both ways)",
         kind="zecho", head="rate", better="higher", deflate=True,
         args=["--conns", "100", "--size", "1024", "--inflight", "1", "--json", "--deflate", "takeover"]),
    dict(key="c100x1kzn", title="100 connections x 1 KiB JSON-like text, permessage-deflate "
         "with server_no_context_takeover and client_no_context_takeover",
         kind="zecho", head="rate", better="higher", deflate=True,
         args=["--conns", "100", "--size", "1024", "--inflight", "1", "--json", "--deflate",
               "no-context-takeover"]),
    dict(key="idle10k", title="10,000 idle connections (server RSS growth per connection)",
         kind="idle", head="rss_per_conn_b", better="lower", duration=2.0, connect_timeout=30.0,
         args=["--mode", "idle", "--conns", "10000", "--parallel", "500", "--src-count", "4"]),
    # The compressed idle scenarios echo one 1 KiB JSON message per connection
    # first, so the server has had to keep whatever context it keeps between
    # messages; idle10k1 is the same without compression, their baseline.
    dict(key="idle10k1", title="10,000 idle connections after one 1 KiB JSON echo each, no compression",
         kind="idle", head="rss_per_conn_b", better="lower", duration=2.0, connect_timeout=60.0,
         only=["luaws", "node", "python"],
         args=["--mode", "idle", "--conns", "10000", "--parallel", "500", "--src-count", "4",
               "--json", "--size", "1024", "--idle-echo", "1"]),
    dict(key="idle10kz", title="10,000 idle connections after one 1 KiB JSON echo each, "
         "permessage-deflate with context takeover",
         kind="idle", head="rss_per_conn_b", better="lower", duration=2.0, connect_timeout=60.0,
         deflate=True, base="idle10k1",
         args=["--mode", "idle", "--conns", "10000", "--parallel", "500", "--src-count", "4",
               "--json", "--size", "1024", "--idle-echo", "1", "--deflate", "takeover"]),
    dict(key="idle10kzn", title="10,000 idle connections after one 1 KiB JSON echo each, "
         "permessage-deflate with server_no_context_takeover and client_no_context_takeover",
         kind="idle", head="rss_per_conn_b", better="lower", duration=2.0, connect_timeout=60.0,
         deflate=True, base="idle10k1",
         args=["--mode", "idle", "--conns", "10000", "--parallel", "500", "--src-count", "4",
               "--json", "--size", "1024", "--idle-echo", "1", "--deflate", "no-context-takeover"]),
    dict(key="handshake", title="Handshakes per second (16 parallel clients: connect, upgrade, close)",
         kind="handshake", head="rate", better="higher",
         args=["--mode", "handshake", "--conns", "16"]),
]

HEAD_NAMES = {"lat_p50_us": "p50 RTT", "rate": "rate", "mb_per_s": "MB/s", "rss_per_conn_b": "B/conn",
              "server_us_per_msg": "server CPU µs/msg", "ops_per_cpu_s": "cycles per server CPU-s"}
# The headline rule (issue 14): in a throughput scenario (echo with many messages,
# compressed echo, handshake), when the generator was above GEN_BOUND_PCT of its
# core in the run of any server (the median of its repeats), msg/s measures the
# generator as much as the server, so the headline becomes the server's own CPU
# per message (per handshake cycle: cycles per server CPU-second).
GEN_BOUND_PCT = 90.0
CPU_HEAD = {"echo": ("server_us_per_msg", "lower"), "zecho": ("server_us_per_msg", "lower"),
            "handshake": ("ops_per_cpu_s", "higher")}


def throughput(sc):
    return sc["kind"] in CPU_HEAD and sc["head"] != "lat_p50_us"


def pick_headlines(servers, table):
    """Set sc["hl"] = (metric, better, why) for every scenario, by the rule above."""
    for sc in SCENARIOS:
        if not throughput(sc):
            sc["hl"] = (sc["head"], sc["better"], "not a throughput scenario")
            continue
        gens = [(table[(s["key"], sc["key"])].get("gen_cpu_pct"), s["label"]) for s in servers
                if not s.get("tls") and isinstance(table.get((s["key"], sc["key"])), dict)]
        gens = [(g, l) for g, l in gens if g is not None]
        top = max(gens) if gens else None
        metric, better = CPU_HEAD[sc["kind"]]
        if top and top[0] > GEN_BOUND_PCT:
            sc["hl"] = (metric, better, f"gen CPU {top[0]:.0f}% (> {GEN_BOUND_PCT:.0f}%) with {top[1]}")
        else:
            sc["hl"] = (sc["head"], sc["better"],
                        f"gen CPU at most {top[0]:.0f}% (≤ {GEN_BOUND_PCT:.0f}%, with {top[1]})" if top
                        else "no run")


def log(msg):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_snapshot():
    """{pid: (comm, utime+stime ticks)} for every user-space process (not kernel threads)."""
    snap = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        rp = st.rfind(")")
        fields = st[rp + 2:].split()
        comm = st[st.find("(") + 1:rp]
        if fields[1] == "2" or d == "2":  # ppid 2: a kernel thread
            continue
        snap[int(d)] = (comm, int(fields[11]) + int(fields[12]))
    return snap


def foreign_cpu(before, after, ours):
    """CPU seconds used between two snapshots by processes that are not ours."""
    used = {}
    for pid, (comm, t1) in after.items():
        if pid in ours or pid not in before:
            continue
        d = (t1 - before[pid][1]) / CLK_TCK
        if d > 0:
            used[(pid, comm)] = d
    return used


def stat_busy():
    """(user+nice+system, steal) CPU seconds of the whole machine from /proc/stat.
    irq and softirq are left out: loopback traffic runs the receiver's softirq in
    the sender's context, and with IRQ time accounting the kernel books it there
    rather than on the benchmark's processes."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return ((v[0] + v[1] + v[2]) / CLK_TCK, v[7] / CLK_TCK)


def machine_other(b0, b1, ours_s):
    """CPU seconds the whole machine was busy between two stat_busy() readings,
    less ours_s (the benchmark's own processes): unlike foreign_cpu, this also
    counts processes that started and ended in between (test suites, compilers)."""
    if not b0 or not b1:
        return None
    return max(0.0, b1[0] - b0[0] - ours_s)


def self_cpu():
    """CPU seconds of this runner and its reaped children."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def wait_quiet(limit):
    """Wait (at most limit seconds) until everything outside the benchmark uses less than
    QUIET_PCT of a core over half a second. Returns the seconds waited."""
    t0 = time.monotonic()
    while True:
        a, b0, c0 = cpu_snapshot(), stat_busy(), self_cpu()
        time.sleep(0.5)
        used = sum(foreign_cpu(a, cpu_snapshot(), {os.getpid()}).values())
        m = machine_other(b0, stat_busy(), self_cpu() - c0)
        if m is not None:
            used = max(used, m)
        waited = time.monotonic() - t0
        if 100.0 * used / 0.5 < QUIET_PCT:
            return max(0.0, waited - 0.5)  # the one sample is not waiting
        if waited >= limit:
            return waited
        time.sleep(min(1.5, max(0.0, limit - waited)))


def wait_ready(proc, port, logpath, timeout):
    """Ready when the server printed a 'listening' line or accepts TCP; bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with open(logpath, "rb") as f:
                if b"listening" in f.read():
                    return True
        except OSError:
            pass
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc):
    """SIGTERM to the server's own PID, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


def run_one(srv, sc, rep):
    port = free_port()
    tag = f"{srv['key']}-{sc['key']}-{rep}"
    logpath = os.path.join(LOGS, tag + ".log")
    argv = srv["zcmd"] if sc.get("deflate") else srv["cmd"]
    fill = {"{port}": str(port), "{cert}": TLS_CERT.get("cert", ""), "{key}": TLS_CERT.get("key", "")}
    scratch = None
    if srv.get("setup"):   # a server that needs files made for the run (nginx's prefix)
        more, scratch = srv["setup"](port, tag)
        fill.update(more)

    def filled(a):
        for k, v in fill.items():
            a = a.replace(k, v)
        return a
    cmd = ["taskset", "-c", SERVER_CPU] + [filled(a) for a in argv]
    scheme = "wss" if srv.get("tls") else "ws"
    try:
        with open(logpath, "wb") as logf:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
    except OSError:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    try:
        if not wait_ready(proc, port, logpath, START_TIMEOUT):
            return None, f"did not start (see {os.path.relpath(LOGS, ROOT)}/{tag}.log)"
        duration = sc.get("duration", DURATION)
        connect_timeout = sc.get("connect_timeout", 10.0)
        gen_cpu = SERVER_CPU if sc.get("same_core") else GEN_CPU
        gen = ["taskset", "-c", gen_cpu, LOADGEN, "--url", f"{scheme}://127.0.0.1:{port}/ws",
               "--pid", str(proc.pid), "--duration", str(duration), "--warmup", str(WARMUP),
               "--connect-timeout", str(connect_timeout), "--quiet"] + sc["args"]
        limit = connect_timeout + WARMUP + duration + 20
        before, t_before = cpu_snapshot(), time.monotonic()
        b0, c0 = stat_busy(), self_cpu()
        try:
            genp = subprocess.Popen(gen, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = genp.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            genp.kill()
            genp.communicate()
            return None, "generator timed out"
        elapsed = time.monotonic() - t_before
        after = cpu_snapshot()
        b1, c1 = stat_busy(), self_cpu()
        other = foreign_cpu(before, after, {os.getpid(), proc.pid, genp.pid})
        srv_s = ((after.get(proc.pid, (0, 0))[1] - before.get(proc.pid, (0, 0))[1]) / CLK_TCK
                 if proc.pid in before else 0.0)
        machine = machine_other(b0, b1, srv_s + (c1 - c0))  # c1 - c0: us and the reaped generator
        r = subprocess.CompletedProcess(gen, genp.returncode, out, err)
        lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
        if r.returncode != 0 or not lines:
            return None, f"generator failed: {r.stderr.strip()[-200:]}"
        res = json.loads(lines[-1])
        if res.get("mode") == "echo" and res.get("ops") == 0 and res.get("open", 0) > 0 \
                and res.get("errors") == 0:
            return None, (f"stalled: {res['open']} connections open, no message echoed in the "
                          f"{res['window_s']:.1f} s window, no error; server CPU "
                          f"{res['server_cpu_s']:.2f} s, alive: {proc.poll() is None}")
        res["human"] = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        res["server_alive"] = proc.poll() is None
        if res.get("ops") and res.get("gen_cpu_s") is not None:
            res["gen_us_per_msg"] = 1e6 * res["gen_cpu_s"] / res["ops"]
        if res.get("ops") and res.get("server_cpu_s") is not None and res["server_cpu_s"] >= 0:
            res["server_us_per_msg"] = 1e6 * res["server_cpu_s"] / res["ops"]
        if res.get("window_s") and res.get("gen_cpu_s") is not None:
            res["gen_cpu_pct"] = 100.0 * res["gen_cpu_s"] / res["window_s"]
        res["other_cpu_pct"] = 100.0 * sum(other.values()) / elapsed if elapsed > 0 else None
        if machine is not None and elapsed > 0:
            # the larger of the two: the process list names them, the machine-wide
            # count also sees the short-lived ones
            res["other_cpu_pct"] = max(res["other_cpu_pct"], 100.0 * machine / elapsed)
            res["steal_pct"] = 100.0 * (b1[1] - b0[1]) / elapsed
        res["other_top"] = sorted(((c, round(v, 2)) for (_, c), v in other.items()),
                                  key=lambda x: -x[1])[:3]
        return res, None
    finally:
        stop(proc)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return int(st[st.rfind(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def median(vals):
    vals = [v for v in vals if v is not None and v >= 0]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}x"


def errs_cell(a):
    """A row's errors: the sum, its kinds, crashes and runs short of REPEATS."""
    errs = str(a["errors"])
    if a["err_kinds"]:
        errs += " (" + ", ".join(f"{k} {v}" for k, v in sorted(a["err_kinds"].items())) + ")"
    if a["crashed"]:
        errs += f"; server died in {a['crashed']} run(s)"
    if a["n"] < REPEATS:
        errs += f"; {a['n']}/{REPEATS} runs"
    return errs


def other_cpu_cell(a):
    """A row's other CPU: the median, and the worst run when it reached 20%."""
    oc = fmt(a["other_cpu_pct"]) + "%"
    if a["other_cpu_max"] >= 20:
        oc += f" (max {a['other_cpu_max']:.0f}%)"
    return oc


def aggregate(runs, head):
    """Per-metric medians over the successful repeats; errors are summed; the
    headline's spread is (max - min) / median over the repeats."""
    ok = [r for r in runs if r is not None]
    if not ok:
        return None
    keys = ["rate", "mb_per_s", "lat_p50_us", "lat_p99_us", "lat_p999_us", "server_cpu_s",
            "ops_per_cpu_s", "gen_cpu_s", "window_s", "open", "open_s", "rss_before_kb",
            "rss_after_kb", "rss_per_conn_b", "other_cpu_pct", "wire_tx_per_msg", "wire_rx_per_msg",
            "gen_us_per_msg", "steal_pct", "server_us_per_msg", "gen_cpu_pct"]
    agg = {k: median([r.get(k) for r in ok]) for k in keys}
    agg["deflate"] = next((r.get("deflate") for r in ok if r.get("deflate")), "")
    # quiet runs: other processes and hypervisor steal together under QUIET_PCT of a core
    quiet = [r for r in ok if (r.get("other_cpu_pct") or 0) + (r.get("steal_pct") or 0) < QUIET_PCT]
    agg["quiet_n"] = len(quiet)
    agg["quiet_rate"] = median([r.get("rate") for r in quiet]) if quiet else None
    agg["quiet_us_msg"] = median([1e6 * r["server_cpu_s"] / r["ops"] for r in quiet
                                  if r.get("ops") and r.get("server_cpu_s", -1) >= 0]) if quiet else None
    agg["other_cpu_max"] = max((r.get("other_cpu_pct") or 0) for r in ok)
    agg["errors"] = sum(r["errors"] for r in ok)
    agg["n"] = len(ok)
    agg["crashed"] = sum(1 for r in ok if not r.get("server_alive", True))
    err_kinds = {}
    for r in ok:
        for k, v in r["err"].items():
            if v:
                err_kinds[k] = err_kinds.get(k, 0) + v
    agg["err_kinds"] = err_kinds
    agg["tls"] = sorted({" ".join(str(r["tls"].get(k, "?")) for k in ("version", "cipher", "group", "server_key"))
                         for r in ok if r.get("tls")})
    agg["spreads"] = {}
    for m in {head, "server_us_per_msg", "ops_per_cpu_s"}:
        hv = [r[m] for r in ok if r.get(m) is not None and r[m] >= 0]
        agg["spreads"][m] = (max(hv) - min(hv)) / agg[m] if len(hv) > 1 and agg.get(m) else None
    agg["spread"] = agg["spreads"][head]
    return agg


def pct(cpu, window):
    if cpu is None or not window:
        return None
    return 100.0 * cpu / window


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def env_lines():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT)
            return (r.stdout.strip() or r.stderr.strip()) or "?"
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    def deb(pkg):
        v = out(["dpkg-query", "-W", "-f=${Version}", pkg])
        return "not installed" if "no packages found" in v else v

    ws_ver = "?"
    try:
        with open(os.path.join(ROOT, "bench/peers/node_modules/ws/package.json")) as f:
            ws_ver = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        pass
    return [
        f"- machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}",
        f"- commit: `{out(['git', 'rev-parse', '--short', 'HEAD'])}`"
        f" ({out(['git', 'rev-parse', '--abbrev-ref', 'HEAD'])})",
        f"- node {out(['node', '--version'])} with ws {ws_ver}; python websockets "
        f"{out(['/usr/bin/python3', '-c', 'import websockets; print(websockets.__version__)'])}; "
        f"lua-http {out(['dpkg-query', '-W', '-f=${Version}', 'lua-http'])} on "
        f"{out(['lua5.1', '-v']).split(' Copyright')[0] or '?'}",
        f"- lua-resty-websocket {deb('lua-nginx-websocket')} (Debian lua-nginx-websocket) in "
        f"{out([NGINX, '-v']).replace('nginx version: ', '')} ({deb('nginx')}) with lua-nginx-module "
        f"{deb('libnginx-mod-http-lua')} on LuaJIT {deb('libluajit2-5.1-2')}; libwebsockets "
        f"{deb('libwebsockets-dev')} (Debian libwebsockets-dev, bench/peers/lws_echo.c)",
    ]


def not_in(s, sc):
    """True when server s is not part of scenario sc at all (no row, n/a)."""
    if sc.get("only") and s["key"] not in sc["only"]:
        return True
    return bool(sc.get("deflate") and not s.get("zcmd"))


def z_skip(s, sc):
    """Why server s does not run scenario sc (None when it does)."""
    if not_in(s, sc):
        return "not in this scenario"
    return s.get("zskip") if sc.get("deflate") else None


def kib(v):
    return None if v is None else v / 1024.0


def z_targets(table):
    """The issue-12 acceptance lines that the runner can check."""
    rows = []
    a, n, p = (table.get((k, "c100x1kz")) for k in ("luaws", "node", "python"))
    if a and n:
        r = ratio(a["rate"], n["rate"])
        extra = f"; python websockets {fmt(p['rate'])} msg/s ({fmt_ratio(ratio(a['rate'], p['rate']))})" if p else ""
        rows.append(f"| compressed 1 KiB JSON, 100 connections: ≥ 2x node ws msg/s | {fmt(a['rate'])} vs "
                    f"{fmt(n['rate'])} msg/s: {fmt_ratio(r)}{extra}; wire from the server "
                    f"{fmt(a['wire_rx_per_msg'])} vs {fmt(n['wire_rx_per_msg'])} B/msg (1,028 uncompressed) | "
                    f"{'yes' if r is not None and r >= 2 else 'no'} |")
    else:
        rows.append("| compressed 1 KiB JSON: ≥ 2x node ws msg/s | not measured | - |")
    a, n, p = (table.get((k, "c100x1kzn")) for k in ("luaws", "node", "python"))
    if a:
        rows.append(f"| the same without context takeover (c100x1kzn): quoted | {fmt(a['rate'])} msg/s"
                    + (f" vs node ws {fmt(n['rate'])} ({fmt_ratio(ratio(a['rate'], n['rate']))})" if n else "")
                    + (f", python websockets {fmt(p['rate'])} ({fmt_ratio(ratio(a['rate'], p['rate']))})" if p else "")
                    + f"; wire from the server {fmt(a['wire_rx_per_msg'])} B/msg | - |")
    u = table.get(("luaws", "idle10k1"))
    u0 = table.get(("luaws", "idle10k"))
    for key, what in (("idle10kzn", "no context takeover"), ("idle10kz", "context takeover")):
        z = table.get(("luaws", key))
        if z and u:
            r = ratio(z["rss_per_conn_b"], u["rss_per_conn_b"])
            want = "within 2x of uncompressed" if key == "idle10kzn" else "quoted"
            holds = ("yes" if r is not None and r <= 2 else "no") if key == "idle10kzn" else "-"
            also = ""
            if u0:
                also = (f"; {fmt_ratio(ratio(z['rss_per_conn_b'], u0['rss_per_conn_b']))} of idle10k "
                        f"({fmt(u0['rss_per_conn_b'])} B/conn, no message at all)")
            rows.append(f"| 10,000 idle compressed connections after one message, {what}: {want} | "
                        f"{fmt(z['rss_per_conn_b'])} vs {fmt(u['rss_per_conn_b'])} B/conn uncompressed "
                        f"after one message: {fmt_ratio(r)}{also} | {holds} |")
        else:
            rows.append(f"| 10,000 idle compressed connections, {what} | not measured | - |")
    return rows


def head_cell(sc, a, b, metric=None):
    """'value (ratio to the baseline)' for the summary table."""
    metric = metric or sc["hl"][0]
    v = a.get(metric)
    r = ratio(v, b.get(metric) if b else None)
    digits = {"lat_p50_us": 1, "mb_per_s": 1, "server_us_per_msg": 2}.get(metric, 0)
    return f"{fmt(v, digits)} ({fmt_ratio(r)})"


def handshake_lines(servers, table):
    """Handshake churn (issue 14 item 5): connect-upgrade-close cycles per server
    CPU-second, beside c_echo's (the same SHA-1 per handshake, nothing else)."""
    if not any(sc["key"] == "handshake" for sc in SCENARIOS):
        return ""
    ce = table.get(("c_echo", "handshake"))
    md = ["Handshake churn: connect → upgrade → close cycles per server CPU-second (c_echo does "
          "the same SHA-1 and nothing else; target: luaws ≥ c_echo):", "",
          "| server | cycles/s | server CPU | cycles per server CPU-s | server CPU µs/cycle | "
          "÷ c_echo (per CPU-s) | gen CPU |", "|---|---|---|---|---|---|---|"]
    for s in servers:
        if s.get("tls") or s.get("skip"):
            continue
        a = table.get((s["key"], "handshake"))
        if not isinstance(a, dict):
            continue
        per = a.get("ops_per_cpu_s")
        md.append(f"| {s['label']} | {fmt(a['rate'])} | {fmt(pct(a['server_cpu_s'], a['window_s']))}% | "
                  f"{fmt(per)} | {fmt(a.get('server_us_per_msg'), 1)} | "
                  f"{fmt_ratio(ratio(per, ce.get('ops_per_cpu_s') if ce else None))} | "
                  f"{fmt(a.get('gen_cpu_pct'))}% |")
    for k in ("luaws", "luaws-co"):
        a = table.get((k, "handshake"))
        if isinstance(a, dict) and ce:
            v = ratio(a.get("ops_per_cpu_s"), ce.get("ops_per_cpu_s"))
            md.append("")
            md.append(f"- target, {k}: ≥ c_echo's cycles per server CPU-s: {fmt_ratio(v)}: "
                      f"{_holds(v, 1.0)}")
    return "\n".join(md)


def write_report(servers, skipped, table, baseline, started, finished, notes):
    wss_section = write_wss_section(servers, table, started, finished) if any(
        s.get("tls") for s in servers) and any(sc["key"] in WSS_SCENARIOS for sc in SCENARIOS) else ""
    servers = [s for s in servers if not s.get("tls")]
    base = next(s for s in servers if s["key"] == baseline)
    blabel = base["label"]
    md = []
    md.append("# luaws benchmark: latest run")
    md.append("")
    md.append(f"Generated by `make bench` (bench/run.sh) on {started:%Y-%m-%d %H:%M} "
              f"in {(finished - started).total_seconds() / 60:.1f} min.")
    md.append("")
    md += env_lines()
    md.append(f"- method: a fresh server per run, pinned with `taskset -c {SERVER_CPU}`; "
              f"build/bench/loadgen on core {GEN_CPU} (core {SERVER_CPU} in the same-core "
              f"scenario); {WARMUP:g} s warm-up, {DURATION:g} s window (idle: 2 s hold); "
              f"{REPEATS} repeats, servers interleaved; every number is the median of the "
              f"repeats; errors are summed over them.")
    md.append("- spread: (max - min) / median of the headline over the repeats; this 2-core VM is "
              "noisy (see bench/NOTES.md), so read a ratio within the spread as a tie.")
    md.append("- other CPU: CPU time used by processes outside the benchmark (not the server, "
              "the generator or this runner) while the generator ran, in % of one core (median "
              "of the repeats; the worst is shown when it reached 20%). The machine has 2 cores, "
              "so anything here competes with the server or the generator.")
    md.append("- server CPU is utime+stime from /proc/PID/stat over the window (100% = the "
              "server's core was saturated); \"gen CPU\" is the generator's own, so a row where "
              "gen CPU is near 100% measures the generator, not the server.")
    if any(sc.get("deflate") for sc in SCENARIOS):
        md.append("- compressed scenarios (c100x1kz, c100x1kzn, idle10kz, idle10kzn): only the servers that speak "
                  "permessage-deflate, each with compression on (luaws `examples/echo.lua --compression`, "
                  "node ws `perMessageDeflate: true`, Python websockets' default `compression=\"deflate\"`). "
                  "The generator offers it as a browser does (`permessage-deflate; client_max_window_bits`; "
                  "c100x1kzn and idle10kzn add `server_no_context_takeover; client_no_context_takeover`) and counts a 101 "
                  "without it as a handshake error. Its 1 KiB messages come from 512 deterministic JSON-like "
                  "texts, deflated at zlib level 6 within the window the server allowed. Wire bytes are what "
                  "crossed the generator's sockets in the window per echoed message, frame headers and "
                  "masks included (uncompressed: 1,032 B to the server, 1,028 B back). \"agreed\" is the "
                  "server's answer. The compressed idle scenarios first echo one such message on every "
                  "connection (`--idle-echo 1`), so what a server keeps between messages is in the figure; "
                  "idle10k1 does the same without compression and is their baseline.")
    if baseline == "luaws":
        md.append(f"- ratios: each server's headline metric divided by **{blabel}**.")
    else:
        md.append(f"- ratios: luaws did not run, so each server's headline metric is divided by "
                  f"**{blabel}** instead.")
    md.append("")
    if skipped:
        md.append("Skipped servers:")
        for s, why in skipped:
            md.append(f"- {s['label']}: {why}")
        md.append("")
    for n in notes:
        md.append(f"- {n}")
    if notes:
        md.append("")

    # Summary: one headline per scenario.
    md.append("## Summary (headline metric per scenario)")
    md.append("")
    hs = next((sc for sc in SCENARIOS if sc["key"] == "handshake"), None)
    hdr = ["server"] + [f"{sc['key']}: {HEAD_NAMES[sc['hl'][0]]}" for sc in SCENARIOS]
    if hs and hs["hl"][0] != "ops_per_cpu_s":
        hdr.append("handshake: cycles per server CPU-s")
    md.append("| " + " | ".join(hdr) + " |")
    md.append("|" + "---|" * len(hdr))
    for s in servers:
        cells = [s["label"]]
        for sc in SCENARIOS:
            if s.get("skip"):
                cells.append("skipped")
                continue
            if z_skip(s, sc):
                cells.append("n/a" if not_in(s, sc) else "skipped")
                continue
            a = table.get((s["key"], sc["key"]))
            b = table.get((baseline, sc["key"]))
            if not a:
                cells.append("failed")
                continue
            cells.append(head_cell(sc, a, b))
        if hs and hs["hl"][0] != "ops_per_cpu_s":
            a, b = table.get((s["key"], "handshake")), table.get((baseline, "handshake"))
            cells.append(head_cell(hs, a, b, "ops_per_cpu_s") if a and not s.get("skip") else "-")
        md.append("| " + " | ".join(cells) + " |")
    md.append("")
    md.append("Headline of each scenario (the rule: in a throughput scenario, the server's CPU per "
              f"message, or cycles per server CPU-s for handshake, when the generator was above "
              f"{GEN_BOUND_PCT:.0f}% of its core in the run of any server; else msg/s, MB/s or cycles/s; "
              "latency and idle scenarios keep theirs):")
    md.append("")
    for sc in SCENARIOS:
        m, better, why = sc["hl"]
        md.append(f"- {sc['key']}: {HEAD_NAMES[m]} ({better} is better): {why}")
    md.append("")
    md.append(handshake_lines(servers, table))
    md.append("")
    md.append("Metrics: lat1/lat1same p50 round trip in µs (lower is better); c100x16, c100x1k, "
              "c100x16k, c100x16kt, c100x1kz, c100x1kzn messages/s, or the server's CPU µs per "
              "message (lower is better); c1x1m MB/s echoed, or µs per message; idle10k, idle10k1, "
              "idle10kz, idle10kzn server RSS bytes per idle connection (lower is better); handshake "
              "completed cycles/s, or cycles per server CPU-s. In parentheses: value ÷ "
              f"{blabel} (for µs, latency and bytes, below 1x is better). n/a: not part of that scenario (c100x1kz, c100x1kzn, "
              "idle10kz, idle10kzn are compressed; idle10k1 is their uncompressed baseline).")
    md.append("")
    if any(sc.get("deflate") for sc in SCENARIOS):
        md.append("## permessage-deflate targets (issue 12)")
        md.append("")
        md.append("| target | measured | holds |")
        md.append("|---|---|---|")
        md += z_targets(table)
        md.append("")

    for sc in SCENARIOS:
        md.append(f"## {sc['title']}")
        md.append("")
        md.append("`loadgen " + " ".join(sc["args"]) + "`")
        md.append("")
        hm = sc["hl"][0]
        hn = HEAD_NAMES[hm]
        if throughput(sc):
            md.append(f"Headline: {hn} ({sc['hl'][1]} is better; {sc['hl'][2]}).")
            md.append("")
        if sc["kind"] == "echo":
            cols = ["server", "msg/s", "server CPU µs/msg", "MB/s", "p50 µs", "p99 µs", "p99.9 µs",
                    "server CPU", "gen CPU", "gen CPU µs/msg", "other CPU", "errors", f"{hn} spread",
                    f"{hn} ÷ {blabel}"]
        elif sc["kind"] == "zecho":
            cols = ["server", "msg/s", "server CPU µs/msg", "p50 µs", "p99 µs", "server CPU",
                    "wire B/msg to server", "wire B/msg from server", "1 KiB ÷ wire from server",
                    "gen CPU", "other CPU", "errors", "agreed", f"{hn} spread", f"{hn} ÷ {blabel}"]
        elif sc["kind"] == "idle":
            cols = ["server", "open", "all open after s", "RSS before MiB", "RSS after MiB",
                    "bytes/conn"] + ([f"÷ uncompressed ({sc['base']})"] if sc.get("base") else []) + \
                   ["other CPU", "errors", f"{hn} spread", f"{hn} ÷ {blabel}"]
        else:
            cols = ["server", "handshakes/s", "connect→101 p50 µs", "p99 µs", "server CPU",
                    "handshakes per server CPU-s", "server CPU µs/cycle", "÷ c_echo (per CPU-s)",
                    "gen CPU", "other CPU", "errors", f"{hn} spread", f"{hn} ÷ {blabel}"]
        md.append("| " + " | ".join(cols) + " |")
        md.append("|" + "---|" * len(cols))
        for s in servers:
            if not_in(s, sc):
                continue  # not part of this scenario (e.g. speaks no permessage-deflate)
            if s.get("skip") or z_skip(s, sc):
                md.append(f"| {s['label']} | skipped: {s.get('skip') or z_skip(s, sc)} |" + " |" * (len(cols) - 2))
                continue
            a = table.get((s["key"], sc["key"]))
            if not a:
                why = table.get(("why", s["key"], sc["key"]), "no successful run")
                md.append(f"| {s['label']} | failed: {why} |" + " |" * (len(cols) - 2))
                continue
            b = table.get((baseline, sc["key"]))
            r = fmt_ratio(ratio(a.get(hm), b.get(hm) if b else None))
            spr = a["spreads"].get(hm)
            sp = "-" if spr is None else f"{100 * spr:.0f}%"
            oc = other_cpu_cell(a)
            errs = errs_cell(a)
            w = a["window_s"]
            if sc["kind"] == "echo":
                row = [s["label"], fmt(a["rate"]), fmt(a.get("server_us_per_msg"), 2),
                       fmt(a["mb_per_s"], 2), fmt(a["lat_p50_us"], 1),
                       fmt(a["lat_p99_us"], 1), fmt(a["lat_p999_us"], 1),
                       fmt(pct(a["server_cpu_s"], w)) + "%", fmt(a.get("gen_cpu_pct")) + "%",
                       fmt(a.get("gen_us_per_msg"), 2), oc, errs, sp, r]
            elif sc["kind"] == "zecho":
                wr = a["wire_rx_per_msg"]
                row = [s["label"], fmt(a["rate"]), fmt(a.get("server_us_per_msg"), 2),
                       fmt(a["lat_p50_us"], 1), fmt(a["lat_p99_us"], 1),
                       fmt(pct(a["server_cpu_s"], w)) + "%",
                       fmt(a["wire_tx_per_msg"]), fmt(wr),
                       "-" if not wr or wr <= 0 else f"{1024 / wr:.2f}x",
                       fmt(a.get("gen_cpu_pct")) + "%", oc, errs,
                       (a.get("deflate") or "-").replace("permessage-deflate; ", ""), sp, r]
            elif sc["kind"] == "idle":
                mib = lambda kb: None if kb is None else kb / 1024.0
                row = [s["label"], fmt(a["open"]), fmt(a["open_s"], 2), fmt(mib(a["rss_before_kb"]), 1),
                       fmt(mib(a["rss_after_kb"]), 1), fmt(a["rss_per_conn_b"])]
                if sc.get("base"):
                    u = table.get((s["key"], sc["base"]))
                    row.append(fmt_ratio(ratio(a["rss_per_conn_b"], u["rss_per_conn_b"] if u else None)))
                row += [oc, errs, sp, r]
            else:
                ce = table.get(("c_echo", sc["key"]))
                row = [s["label"], fmt(a["rate"]), fmt(a["lat_p50_us"], 1), fmt(a["lat_p99_us"], 1),
                       fmt(pct(a["server_cpu_s"], w)) + "%", fmt(a["ops_per_cpu_s"]),
                       fmt(a.get("server_us_per_msg"), 1),
                       fmt_ratio(ratio(a["ops_per_cpu_s"], ce["ops_per_cpu_s"] if ce else None)),
                       fmt(a.get("gen_cpu_pct")) + "%", oc, errs, sp, r]
            md.append("| " + " | ".join(row) + " |")
        md.append("")
    md.append("![relative performance](latest.png)")
    md.append("")
    if wss_section:
        md.append(wss_section)
    return "\n".join(md)


def _quiet(a, b):
    """'; quiet runs: ...' for a target line, when both sides had quiet runs."""
    if not (a.get("quiet_n") and b.get("quiet_n")):
        return ""
    return (f"; quiet runs only ({a['quiet_n']} and {b['quiet_n']}): {fmt(a['quiet_rate'])} vs "
            f"{fmt(b['quiet_rate'])} msg/s, {fmt_ratio(ratio(a['quiet_rate'], b['quiet_rate']))}")


def _holds(v, want):
    return "-" if v is None else ("yes" if v >= want else "no")


def write_wss_section(servers, table, started, finished):
    """The wss section: the TLS runs beside the plain runs of the same scenarios,
    from the same interleaved run; between WSS_MARK_BEGIN and WSS_MARK_END."""
    by_key = {s["key"]: s for s in servers}
    tls_srv = [s for s in servers if s.get("tls")]
    scen = [sc for sc in SCENARIOS if sc["key"] in WSS_SCENARIOS]
    rows = []
    for s in tls_srv:
        rows += ([by_key[s["plain"]]] if s["plain"] in by_key else []) + [s]
    get = lambda k, sc: table.get((k, sc["key"]))
    us_msg = lambda a: None if not a or not a.get("ops_per_cpu_s") else 1e6 / a["ops_per_cpu_s"]
    negotiated = sorted({t for s in tls_srv for sc in scen for t in ((get(s["key"], sc) or {}).get("tls") or [])})
    md = [WSS_MARK_BEGIN, "## wss: the 100 x 16 B and 100 x 16 KiB echoes over TLS", ""]
    md.append(f"Generated by bench/runner.py on {started:%Y-%m-%d %H:%M} "
              f"(run took {(finished - started).total_seconds() / 60:.1f} min). The TLS runs "
              f"(`loadgen --tls`, wss://) are interleaved with the plain ws runs of the same "
              f"scenarios in the same run, servers rotating per repeat; {REPEATS} repeats, "
              f"medians; server on core {SERVER_CPU}, loadgen on core {GEN_CPU}.")
    md.append("")
    key_name = {"ecdsa": "ECDSA P-256 (prime256v1)", "rsa": "RSA 2048"}.get(TLS_KEY, TLS_KEY)
    md.append(f"- certificate: {key_name}, self-signed for localhost and 127.0.0.1, made with "
              f"`openssl req -x509` into build/bench-tls/ (BENCH_TLS_KEY={TLS_KEY}); not verified "
              f"by loadgen. Every connection makes one full handshake (no resumption), before "
              f"the window.")
    md.append("- negotiated (loadgen's report, OpenSSL's default TLS 1.3 suites on both ends): "
              + ("; ".join(f"`{t}`" for t in negotiated) if negotiated else "-"))
    md.append("- luaws wss: the same examples/echo.lua as the ws rows, with `--tls-cert FILE "
              "--tls-key FILE` (`luaws.listen{ tls = { certificate = ..., key = ... } }`), callback "
              "and `--coroutine`; node: bench/peers/node_echo.js --tls, ws on "
              "`https.createServer({cert, key})`; c_echo wss: bench/c_echo.c --tls, the floor "
              "(read ahead, SSL_read, SSL_write, records gathered into one write(2)).")
    if LOADAVG:
        md.append("- /proc/loadavg (1, 5, 15 min) at the start and the end of the run: "
                  + " -> ".join(f"`{x}`" for x in LOADAVG))
    steal = [a.get("steal_pct") for a in table.values() if isinstance(a, dict) and a.get("steal_pct") is not None]
    md.append("- other CPU: the larger of what the processes outside the benchmark used (from "
              "/proc/PID/stat) and what the whole machine was busy (/proc/stat user+nice+system) "
              "less the server, loadgen and the runner, over each run, as % of one core; "
              "the median, and the worst run"
              + (f"; hypervisor steal {fmt(median(steal))}% of a core (median of the rows)" if steal else "")
              + ".")
    md.append("- server CPU µs per message: the server's utime+stime over the window ÷ messages "
              "echoed (softirq time that the kernel does not charge to the process is not in it); "
              "gen µs per message: loadgen's own. A row with gen CPU near 100% is bound by the "
              "generator, which pays for TLS as well.")
    md.append("")

    def r(num, den):
        return ratio(num, den)

    lw, lwt, nd, ndt = "luaws", "luaws-wss", "node", "node-wss"
    tgt = [("| target (issue 13 item 7) | want | measured | holds |"), "|---|---|---|---|"]
    for sc in scen:
        a, b, c = get(lwt, sc), get(lw, sc), get(ndt, sc)
        size = "16 B" if sc["key"] == "c100x16" else "16 KiB"
        if a and b:
            v = r(a["rate"], b["rate"])
            tgt.append(f"| luaws wss ≥ 0.5x luaws ws, 100 x {size} | ≥ 0.5x | {fmt(a['rate'])} vs "
                       f"{fmt(b['rate'])} msg/s: {fmt_ratio(v)} (server CPU per message "
                       f"{fmt(us_msg(a), 2)} vs {fmt(us_msg(b), 2)} µs: ws÷wss "
                       f"{fmt_ratio(r(us_msg(b), us_msg(a)))}){_quiet(a, b)} | {_holds(v, 0.5)} |")
        if a and c:
            v = r(a["rate"], c["rate"])
            tgt.append(f"| luaws wss ≥ 2x node ws over TLS, 100 x {size} | ≥ 2x | {fmt(a['rate'])} vs "
                       f"{fmt(c['rate'])} msg/s: {fmt_ratio(v)} (server CPU per message "
                       f"{fmt(us_msg(a), 2)} vs {fmt(us_msg(c), 2)} µs: node÷luaws "
                       f"{fmt_ratio(r(us_msg(c), us_msg(a)))}){_quiet(a, c)} | {_holds(v, 2.0)} |")
    for sc in scen:   # what the simplest TLS echo gets in the same run: the floor of the ratio
        a, b = get("c_echo-wss", sc), get("c_echo", sc)
        size = "16 B" if sc["key"] == "c100x16" else "16 KiB"
        if a and b:
            tgt.append(f"| (the floor: c_echo wss ÷ c_echo ws, 100 x {size}) | - | {fmt(a['rate'])} vs "
                       f"{fmt(b['rate'])} msg/s: {fmt_ratio(r(a['rate'], b['rate']))} (server CPU per "
                       f"message {fmt(us_msg(a), 2)} vs {fmt(us_msg(b), 2)} µs){_quiet(a, b)} | - |")
    md += tgt
    md.append("")
    md.append("| scenario | server | msg/s | MB/s | p50 µs | p99 µs | server CPU | server CPU µs/msg | "
              "gen CPU | gen CPU µs/msg | other CPU | errors | msg/s spread | wss ÷ ws (msg/s) | "
              "luaws ÷ node, same transport (msg/s) | luaws ÷ node (CPU per msg) | "
              "quiet runs only: msg/s (n); server µs/msg; ratios |")
    md.append("|" + "---|" * 17)
    for sc in scen:
        for s in rows:
            a = get(s["key"], sc)
            if s.get("skip"):
                md.append(f"| {sc['key']} | {s['label']} | skipped: {s['skip']} |" + " |" * 14)
                continue
            if not a:
                why = table.get(("why", s["key"], sc["key"]), "no successful run")
                md.append(f"| {sc['key']} | {s['label']} | failed: {why} |" + " |" * 14)
                continue
            w = a["window_s"]
            plain = get(s["plain"], sc) if s.get("tls") else None
            wss_ws = fmt_ratio(r(a["rate"], plain["rate"])) if plain else "-"
            base = s["plain"] if s.get("tls") else s["key"]
            peer = None
            if base in ("luaws", "luaws-co"):
                peer = get(ndt if s.get("tls") else nd, sc)
                ln = fmt_ratio(r(a["rate"], peer["rate"]) if peer else None)
                lc = fmt_ratio(r(us_msg(peer), us_msg(a)) if peer else None)
            else:
                ln = lc = "-"
            errs = errs_cell(a)
            oc = other_cpu_cell(a)
            if a.get("steal_pct") is not None:
                oc += f"; steal {fmt(a['steal_pct'])}%"
            sp = "-" if a["spread"] is None else f"{100 * a['spread']:.0f}%"
            qr = (f"{fmt(a['quiet_rate'])} ({a['quiet_n']}); {fmt(a['quiet_us_msg'], 2)} µs"
                  if a.get("quiet_n") else "- (0)")
            if a.get("quiet_n") and plain and plain.get("quiet_n"):
                qr += f"; wss ÷ ws {fmt_ratio(r(a['quiet_rate'], plain['quiet_rate']))}"
            if a.get("quiet_n") and base in ("luaws", "luaws-co") and peer and peer.get("quiet_n"):
                qr += f"; ÷ node {fmt_ratio(r(a['quiet_rate'], peer['quiet_rate']))}"
            md.append("| " + " | ".join([
                sc["key"], s["label"], fmt(a["rate"]), fmt(a["mb_per_s"], 2), fmt(a["lat_p50_us"], 1),
                fmt(a["lat_p99_us"], 1), fmt(pct(a["server_cpu_s"], w)) + "%", fmt(us_msg(a), 2),
                fmt(pct(a["gen_cpu_s"], w)) + "%", fmt(a.get("gen_us_per_msg"), 2), oc, errs, sp,
                wss_ws, ln, lc, qr]) + " |")
    md.append("")
    md.append("Ratios: wss ÷ ws is the same server's msg/s over TLS ÷ over plain TCP; luaws ÷ node "
              "compares luaws with node ws on the same transport (the wss row against node on "
              "https); the CPU column is node's server CPU per message ÷ luaws's (higher: luaws "
              "is cheaper). Quiet runs: those where other processes and hypervisor steal "
              f"together took under {QUIET_PCT:.0f}% of a core (the same bound as the wait "
              "before each run); their medians, and the ratios of those medians. "
              "See bench/NOTES.md (\"wss\") for what bounds these figures.")
    md.append(WSS_MARK_END)
    return "\n".join(md) + "\n"


LOADAVG = []  # /proc/loadavg's first three fields at the start and the end of the run


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def kept_fanout_section():
    """The fan-out section bench/fanout.py put into latest.md, kept when this
    rewrites the file (bench/run.sh then runs fanout.sh, which replaces it)."""
    try:
        with open(os.path.join(RESULTS, "latest.md")) as f:
            text = f.read()
    except OSError:
        return ""
    b, e = text.find("<!-- fanout:begin -->"), text.find("<!-- fanout:end -->")
    if b < 0 or e < b:
        return ""
    return "\n" + text[b:e + len("<!-- fanout:end -->")] + "\n"


def write_chart(servers, table, baseline):
    """Grouped bars: each scenario's headline relative to the baseline, higher is better."""
    if not shutil.which("gnuplot"):
        return "gnuplot not installed: no chart"
    ran = [s for s in servers if not s.get("skip") and not s.get("tls")]
    datpath = os.path.join(LOGS, "chart.dat")
    with open(datpath, "w") as f:
        f.write("scenario " + " ".join(f'"{s["label"]}"' for s in ran) + "\n")
        for sc in SCENARIOS:
            b = table.get((baseline, sc["key"]))
            row = [sc["key"] + ("(cpu)" if sc["hl"][0] != sc["head"] else "")]
            for s in ran:
                a = table.get((s["key"], sc["key"]))
                hm, better = sc["hl"][0], sc["hl"][1]
                v = a and a.get(hm)
                bv = b and b.get(hm)
                if not v or not bv:
                    row.append("NaN")
                elif better == "higher":
                    row.append(f"{v / bv:.4f}")
                else:
                    row.append(f"{bv / v:.4f}")
            f.write(" ".join(row) + "\n")
    blabel = next(s["label"] for s in servers if s["key"] == baseline)
    png = os.path.join(RESULTS, "latest.png")
    script = f"""
set terminal pngcairo size 1200,600 font "sans,10" noenhanced
set output "{png}"
set title "Relative to {blabel}: each scenario's headline; (cpu): server CPU per message, as the generator was above {GEN_BOUND_PCT:.0f}% of its core\\nhigher is better (latency, bytes/conn and CPU per message inverted); log scale"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y 10
set yrange [0.01:*]
set ytics ("0.01" 0.01, "0.03" 0.03, "0.1" 0.1, "0.3" 0.3, "1" 1, "3" 3, "10" 10, "30" 30, "100" 100)
set grid ytics
set key outside right top
set ylabel "x {blabel}"
set xtics nomirror
plot for [i=2:{len(ran) + 1}] "{datpath}" using i:xtic(1) title columnheader(i)
"""
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return "gnuplot failed: " + r.stderr.strip()[-300:]
    return None


def main():
    global SCENARIOS, GEN_CPU
    if "--list" in sys.argv:
        print("servers:   " + ", ".join(s["key"] for s in SERVERS))
        print("scenarios: " + ", ".join(sc["key"] for sc in SCENARIOS))
        return 0
    only_srv = [x for x in os.environ.get("BENCH_SERVERS", "").split(",") if x]
    only_sc = [x for x in os.environ.get("BENCH_SCENARIOS", "").split(",") if x]
    if WSS not in ("", "none", "only"):
        sys.exit("runner: BENCH_WSS must be none or only (or unset)")
    if WSS == "only":
        SCENARIOS = [sc for sc in SCENARIOS if sc["key"] in WSS_SCENARIOS]
        wss_keys = [k for s in SERVERS if s.get("tls") for k in (s["plain"], s["key"])]
        only_srv = [k for k in wss_keys if not only_srv or k in only_srv]
    if only_sc:
        SCENARIOS = [sc for sc in SCENARIOS if sc["key"] in only_sc]
    servers = [dict(s) for s in SERVERS if (not only_srv or s["key"] in only_srv)
               and not (WSS == "none" and s.get("tls"))]
    if not os.access(LOADGEN, os.X_OK):
        sys.exit("runner: build/bench/loadgen missing; run bench/run.sh")
    if os.cpu_count() < 2:
        log("only one core: the generator shares core 0 with the server")
        GEN_CPU = "0"
    # Servers inherit this: 10,000 idle connections need more than 1024 fds.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    os.makedirs(LOGS, exist_ok=True)

    skipped = []
    for s in servers:
        why = s["check"]()
        if why:
            s["skip"] = why
            skipped.append((s, why))
            log(f"skipping {s['label']}: {why}")
    for s in servers:
        if not s.get("skip") and s.get("zcheck"):
            why = s["zcheck"]()
            if why and any(sc.get("deflate") for sc in SCENARIOS):
                s["zskip"] = why
                log(f"compressed scenarios without {s['label']}: {why}")
    active = [s for s in servers if not s.get("skip")]
    if not active:
        sys.exit("runner: no server to benchmark")
    keys = [s["key"] for s in active if not s.get("tls")]
    baseline = "luaws" if "luaws" in keys else ("node" if "node" in keys else (keys or [None])[0])
    wss_only = WSS == "only" or baseline is None  # no plain server: only the wss section

    started = datetime.datetime.now()
    t0 = time.monotonic()
    LOADAVG.append(loadavg())
    snap0, busy0, self0 = cpu_snapshot(), stat_busy(), self_cpu()
    runs = {}
    notes = []
    budget_hit = 0
    waited_total = 0.0
    rawpath = os.path.join(RESULTS, "wss.raw" if wss_only else "latest.raw")
    with open(rawpath, "w") as raw:
        for rep in range(REPEATS):
            for sc in SCENARIOS:
                here = [s for s in active if not z_skip(s, sc)
                        and (not s.get("tls") or sc["key"] in WSS_SCENARIOS)]
                if not here:
                    continue
                order = here[rep % len(here):] + here[:rep % len(here)]
                for s in order:
                    if time.monotonic() - t0 > BUDGET:
                        budget_hit += 1
                        runs.setdefault((s["key"], sc["key"]), []).append(None)
                        continue
                    if QUIET_WAIT > 0 and waited_total < QUIET_TOTAL:
                        w = wait_quiet(min(QUIET_WAIT, QUIET_TOTAL - waited_total))
                        waited_total += w
                        if w > 1:
                            log(f"waited {w:.0f} s for other processes to quieten")
                    res, why = run_one(s, sc, rep)
                    runs.setdefault((s["key"], sc["key"]), []).append(res)
                    if res:
                        log(f"rep {rep + 1}/{REPEATS} {sc['key']:<9} {s['key']:<8} {res['human']}")
                        raw.write(json.dumps(dict(res, server=s["key"], scenario=sc["key"],
                                                  rep=rep)) + "\n")
                        raw.flush()
                    else:
                        log(f"rep {rep + 1}/{REPEATS} {sc['key']:<9} {s['key']:<8} FAILED: {why}")
                        runs.setdefault(("why", s["key"], sc["key"]), why)
    wall = time.monotonic() - t0
    if waited_total > 1:
        notes.append(f"before its runs the runner waited {waited_total:.0f} s in all (at most "
                     f"{QUIET_WAIT:.0f} s a run, {QUIET_TOTAL:.0f} s in total) for other processes "
                     f"to drop below {QUIET_PCT:.0f}% of a core.")
    # Processes started by this runner are its children (servers, generators, checks).
    mine = {os.getpid()} | {pid for pid in cpu_snapshot() if _ppid(pid) == os.getpid()}
    other = foreign_cpu(snap0, cpu_snapshot(), mine)
    by_name = {}
    for (_, comm), v in other.items():
        by_name[comm] = by_name.get(comm, 0) + v
    total = sum(by_name.values())
    machine = machine_other(busy0, stat_busy(), self_cpu() - self0)
    if machine is not None and machine > total:
        by_name["short-lived (machine-wide /proc/stat less the named ones)"] = machine - total
        total = machine
    top = ", ".join(f"{c} {v:.0f} s" for c, v in sorted(by_name.items(), key=lambda x: -x[1])[:5])
    if wall > 0 and total / wall > 0.10:
        notes.append(f"**Warning: the machine was not quiet. Processes outside the benchmark used "
                     f"{100 * total / wall:.0f}% of a core on average, so these numbers are "
                     f"lower and noisier than this machine can give. Rerun on a quiet machine "
                     f"before drawing conclusions.**")
    notes.append(f"other processes used {total:.0f} CPU-s during the {wall:.0f} s run "
                 f"({100 * total / wall:.0f}% of one core; top: {top or 'none'}). "
                 "The machine-wide count (/proc/stat) includes processes that started and "
                 "ended between snapshots; the per-run \"other CPU\" column says when.")
    if budget_hit:
        notes.append(f"the {BUDGET:.0f} s budget ran out: {budget_hit} runs were not started.")

    table = {}
    for (k, v) in runs.items():
        if k[0] == "why":
            table[k] = v
        else:
            sc = next(x for x in SCENARIOS if x["key"] == k[1])
            agg = aggregate(v, sc["head"])
            if agg:
                table[k] = agg
    finished = datetime.datetime.now()
    LOADAVG.append(loadavg())
    if wss_only:
        # A partial run: its own file (not committed); latest.md keeps the last full run.
        section = write_wss_section(servers, table, started, finished)
        for n in notes:
            section = section.replace(WSS_MARK_END, f"- {n}\n{WSS_MARK_END}")
        section = section.replace(WSS_MARK_BEGIN + "\n", "").replace(WSS_MARK_END + "\n", "")
        with open(os.path.join(RESULTS, "wss.md"), "w") as f:
            f.write("# luaws benchmark: wss only (BENCH_WSS=only)\n\n" + "\n".join(env_lines())
                    + "\n\n" + section)
        print()
        print(section)
        log(f"wrote {os.path.relpath(RESULTS, ROOT)}/wss.md and wss.raw in "
            f"{(time.monotonic() - t0) / 60:.1f} min")
        return 0
    pick_headlines(servers, table)
    chart_note = write_chart(servers, table, baseline)
    if chart_note:
        notes.append(chart_note)
    md = write_report(servers, skipped, table, baseline, started, finished, notes)
    md += kept_fanout_section()
    with open(os.path.join(RESULTS, "latest.md"), "w") as f:
        f.write(md)
    print()
    print(md)
    log(f"wrote {os.path.relpath(RESULTS, ROOT)}/latest.md, latest.png and latest.raw in "
        f"{(time.monotonic() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
