#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/fanout.py -- the fan-out scenarios of `make bench` (bench/fanout.sh runs this).

Four scenarios, each run with a fresh set of server processes pinned to core 0
and build/bench/fanout (or loadgen) pinned to core 1, the servers interleaved
and their order rotated per repeat, medians over the repeats:

  inproc  one server process, 1 publisher to N subscribers (default 10,000):
          luaws (bench/peers/luaws_fanout.lua: topic "all", server:publish)
          beside node ws (bench/peers/node_fanout.js: a loop over wss.clients)
          and two C references: c_echo --fanout, the floor of one writev per
          delivery (what luaws and node ws do), and c_echo --fanout-corked,
          which queues and writes each subscriber once per loop turn, so a
          burst of publishes leaves in one send per subscriber.
  redis   two server processes joined by one redis-server (started here on a
          free loopback port, on core 0 too, stopped by its PID), subscribers
          split over both, the publisher on the first: luaws with
          listen{backplane=...} beside socket.io with @socket.io/redis-adapter
          (bench/peers/sio_fanout.js, io.emit).
  inprocz the inproc scenario with permessage-deflate: 1 KiB JSON-like text
          (fanout --json --deflate: every connection, publisher included,
          agreed on server_no_context_takeover and client_no_context_takeover,
          so one compressed frame can serve them all), luaws
          (luaws_fanout.lua --compression) beside node ws (node_fanout.js
          --deflate: perMessageDeflate, each send compressed on its own).
  mem     10,000 idle connections to luaws_fanout.lua (loadgen --mode idle):
          subscribed to "all" (--mode sub), the same open handler without
          the subscribe (--mode open), no open handler (--mode bare). The cost
          of a subscription is sub - open.

Each message of S bytes (16 B and 1 KiB) goes to every connection, the
publisher's own included; the closed loop keeps at most FANOUT_WINDOW
messages out. Reported: deliveries/s, server CPU (utime+stime of the server
processes, from /proc at the window's edges) per delivery, latencies; ratios to
node ws and socket.io. Nothing is asserted.

Output: a section of bench/results/latest.md between <!-- fanout:begin --> and
<!-- fanout:end --> (replaced there, or appended), fanout.raw (every JSON line),
and the servers' logs in bench/results/logs/fanout-*.log.

Environment: FANOUT_SCENARIOS (inproc,redis,mem,inprocz), FANOUT_SERVERS (luaws,node,floor,corked,sio),
FANOUT_SUBS (10000), FANOUT_SIZES (16,1024), FANOUT_ZSIZES (1024: inprocz), FANOUT_WINDOW (8), FANOUT_DURATION
(3 s), FANOUT_WARMUP (1 s), FANOUT_REPEATS (BENCH_REPEATS or 3), FANOUT_BUDGET
(720 s: no run starts after that), FANOUT_QUIET_TOTAL (90 s of waiting in all
for other processes to leave the CPU; BENCH_QUIET_WAIT per run, as in runner.py).
"""
import datetime
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402  (helpers: cpu snapshots, quiet wait, medians, formatting)
from runner import ROOT, BUILD, RESULTS, LOGS, log, median, fmt, fmt_ratio, ratio  # noqa: E402

FANOUT = os.path.join(BUILD, "fanout")
LOADGEN = os.path.join(BUILD, "loadgen")

SUBS = int(os.environ.get("FANOUT_SUBS", "10000"))
SIZES = [int(x) for x in os.environ.get("FANOUT_SIZES", "16,1024").split(",") if x]
ZSIZES = [int(x) for x in os.environ.get("FANOUT_ZSIZES", "1024").split(",") if x]
WINDOW = int(os.environ.get("FANOUT_WINDOW", "8"))
DURATION = float(os.environ.get("FANOUT_DURATION", "3"))
WARMUP = float(os.environ.get("FANOUT_WARMUP", "1"))
REPEATS = int(os.environ.get("FANOUT_REPEATS", os.environ.get("BENCH_REPEATS", "3")))
BUDGET = float(os.environ.get("FANOUT_BUDGET", "720"))
QUIET_WAIT = float(os.environ.get("BENCH_QUIET_WAIT", "20"))
QUIET_TOTAL = float(os.environ.get("FANOUT_QUIET_TOTAL", "90"))
SERVER_CPU, GEN_CPU = "0", "1"
START_TIMEOUT = 20.0
SIO_PATH = "/socket.io/?EIO=4&transport=websocket"
MEM_CONNS = 10000
MARK_BEGIN, MARK_END = "<!-- fanout:begin -->", "<!-- fanout:end -->"


def _check_luaws():
    if not os.path.exists(os.path.join(ROOT, "build", "luaws", "core.so")):
        return "build/luaws/core.so missing (run `make`)"
    if os.path.exists(os.path.join(BUILD, "luaws-build.failed")):
        return "`make all` failed (build/bench/luaws-build.log)"
    if not shutil.which("lua5.4"):
        return "lua5.4 not installed"
    return None


def _check_node():
    if not shutil.which("node"):
        return "node not installed"
    if not os.path.isdir(os.path.join(ROOT, "bench", "peers", "node_modules", "ws")):
        return "ws not installed (cd bench/peers && npm ci)"
    return None


def _check_sio():
    why = _check_node()
    if why:
        return why
    for m in ("socket.io", "@socket.io/redis-adapter", "ioredis"):
        if not os.path.isdir(os.path.join(ROOT, "bench", "peers", "node_modules", m)):
            return f"{m} not installed (cd bench/peers && npm ci)"
    return None


def _check_floor():
    return None if os.access(os.path.join(BUILD, "c_echo"), os.X_OK) else "build/bench/c_echo not built"


def _check_luaws_z():
    """luaws must know the compression option (issue 12) for the compressed run."""
    try:
        with open(os.path.join(ROOT, "lua", "luaws", "options.lua")) as f:
            if "compression" in f.read():
                return None
    except OSError:
        pass
    return "this luaws has no compression option"


def _check_redis():
    return None if shutil.which("redis-server") else "redis-server not installed (apt-get install redis-server)"


LUAWS = ["lua5.4", "bench/peers/luaws_fanout.lua"]

# Per scenario, the contenders: key, label, how many server processes, argv
# ({port}, {redis} filled in), the generator's protocol and path, checks.
INPROC = [
    dict(key="luaws", label="luaws (server:publish)", procs=1, cmd=LUAWS + ["{port}"],
         proto="ws", path="/ws", checks=[_check_luaws]),
    dict(key="node", label="node ws (loop over wss.clients)", procs=1,
         cmd=["node", "bench/peers/node_fanout.js", "{port}"], proto="ws", path="/ws",
         checks=[_check_node]),
    dict(key="floor", label="c_echo --fanout (epoll floor)", procs=1,
         cmd=[os.path.join(BUILD, "c_echo"), "{port}", "--fanout"], proto="ws", path="/ws",
         checks=[_check_floor]),
    dict(key="corked", label="c_echo --fanout-corked (one send per subscriber per loop turn)", procs=1,
         cmd=[os.path.join(BUILD, "c_echo"), "{port}", "--fanout-corked"], proto="ws", path="/ws",
         checks=[_check_floor]),
]
REDIS = [
    dict(key="luaws", label="luaws x2 + Redis backplane", procs=2,
         cmd=LUAWS + ["{port}", "--backplane", "redis://127.0.0.1:{redis}"], proto="ws", path="/ws",
         checks=[_check_luaws, _check_redis]),
    dict(key="sio", label="socket.io x2 + redis-adapter", procs=2,
         cmd=["node", "bench/peers/sio_fanout.js", "{port}", "{redis}"], proto="sio", path=SIO_PATH,
         checks=[_check_sio, _check_redis]),
]
INPROCZ = [
    dict(key="luaws", label="luaws (server:publish, compression = true)", procs=1,
         cmd=LUAWS + ["{port}", "--compression"], proto="ws", path="/ws", gen=["--json", "--deflate"],
         checks=[_check_luaws, lambda: _check_luaws_z()]),
    dict(key="node", label="node ws (perMessageDeflate, loop over wss.clients)", procs=1,
         cmd=["node", "bench/peers/node_fanout.js", "{port}", "--deflate"], proto="ws", path="/ws",
         gen=["--json", "--deflate"], checks=[_check_node]),
]
MEM = [
    dict(key="sub", label="luaws, subscribed to one topic", cmd=LUAWS + ["{port}", "--mode", "sub"]),
    dict(key="open", label="luaws, open handler, no subscription", cmd=LUAWS + ["{port}", "--mode", "open"]),
    dict(key="bare", label="luaws, no open handler", cmd=LUAWS + ["{port}", "--mode", "bare"]),
]


def wait_line(proc, logpath, text, deadline):
    """True once the log holds `text` (bounded; False if the process died)."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with open(logpath, "rb") as f:
                if text in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def wait_tcp(proc, port, deadline):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Procs:
    """Processes started for one run; stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.list = []

    def start(self, argv, tag):
        logpath = os.path.join(LOGS, f"fanout-{tag}.log")
        with open(logpath, "wb") as logf:
            p = subprocess.Popen(["taskset", "-c", SERVER_CPU] + argv, cwd=ROOT, stdout=logf,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.list.append(p)
        return p, logpath

    def stop(self):
        for p in reversed(self.list):
            runner.stop(p)


def start_redis(procs, tag):
    port = runner.free_port()
    p, logpath = procs.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                             tag + "-redis")
    if not wait_tcp(p, port, time.monotonic() + START_TIMEOUT):
        return None, None
    return p, port


def gen_run(argv, limit):
    """Run a generator pinned to GEN_CPU; (json, human, pid) or (None, why, pid)."""
    try:
        g = subprocess.Popen(["taskset", "-c", GEN_CPU] + argv, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        out, err = g.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        g.kill()
        g.communicate()
        return None, "generator timed out", g.pid
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if g.returncode != 0 or not lines:
        return None, "generator failed: " + err.strip()[-300:], g.pid
    human = err.strip().splitlines()[-1] if err.strip() else ""
    return json.loads(lines[-1]), human, g.pid


def measured(fn, ours_extra):
    """Run fn() -> (res, why, gen_pid, server_pids); add the CPU other processes used."""
    before, t0 = runner.cpu_snapshot(), time.monotonic()
    res, why, gpid, spids = fn()
    elapsed = time.monotonic() - t0
    if res is not None:
        other = runner.foreign_cpu(before, runner.cpu_snapshot(),
                                   {os.getpid(), gpid} | set(spids) | ours_extra)
        res["other_cpu_pct"] = 100.0 * sum(other.values()) / elapsed if elapsed > 0 else None
        res["other_top"] = sorted(((c, round(v, 2)) for (_, c), v in other.items()),
                                  key=lambda x: -x[1])[:3]
    return res, why


def run_fanout(srv, size, rep, scen):
    """One fan-out run: redis (if two processes), the servers, the generator."""
    procs = Procs()
    tag = f"{scen}-{srv['key']}-{size}-{rep}"
    try:
        rpid, rport = None, None
        if srv["procs"] > 1:
            rp, rport = start_redis(procs, tag)
            if rp is None:
                return None, "redis-server did not start", None, []
            rpid = rp.pid
        ports, pids = [], []
        deadline = time.monotonic() + START_TIMEOUT
        for i in range(srv["procs"]):
            port = runner.free_port()
            argv = [a.replace("{port}", str(port)).replace("{redis}", str(rport)) for a in srv["cmd"]]
            p, logpath = procs.start(argv, f"{tag}-{i}")
            ports.append(port)
            pids.append(p.pid)
            # "listening" comes once the server (and its backplane or adapter) is ready
            if not wait_line(p, logpath, b"listening", deadline):
                return None, f"server did not start ({os.path.relpath(LOGS, ROOT)}/fanout-{tag}-{i}.log)", None, pids
        argv = [FANOUT] + srv.get("gen", []) + ["--proto", srv["proto"], "--subs", str(SUBS), "--size", str(size),
                "--window", str(WINDOW), "--duration", str(DURATION), "--warmup", str(WARMUP),
                "--settle", "0.5", "--stall-timeout", "5", "--parallel", "500", "--src-count", "4",
                "--connect-timeout", "40", "--pid", ",".join(str(p) for p in pids), "--quiet"]
        if rpid:
            argv += ["--aux-pid", str(rpid)]
        for port in ports:
            argv += ["--url", f"ws://127.0.0.1:{port}{srv['path']}"]
        res, why, gpid = gen_run(argv, 40 + 0.5 + WARMUP + DURATION + 20)
        if res is not None:
            res["human"] = why
            res["alive"] = all(p.poll() is None for p in procs.list)
            why = None
        return res, why, gpid, [p.pid for p in procs.list]
    finally:
        procs.stop()


def run_mem(mode, rep):
    procs = Procs()
    tag = f"mem-{mode['key']}-{rep}"
    try:
        port = runner.free_port()
        p, logpath = procs.start([a.replace("{port}", str(port)) for a in mode["cmd"]], tag)
        if not wait_line(p, logpath, b"listening", time.monotonic() + START_TIMEOUT):
            return None, f"server did not start ({os.path.relpath(LOGS, ROOT)}/fanout-{tag}.log)", None, [p.pid]
        argv = [LOADGEN, "--url", f"ws://127.0.0.1:{port}/ws", "--mode", "idle", "--conns",
                str(MEM_CONNS), "--parallel", "500", "--src-count", "4", "--duration", "2",
                "--warmup", "0", "--connect-timeout", "30", "--pid", str(p.pid), "--quiet"]
        res, why, gpid = gen_run(argv, 30 + 2 + 20)
        if res is not None:
            res["human"] = why
            res["alive"] = p.poll() is None
            why = None
        return res, why, gpid, [p.pid]
    finally:
        procs.stop()


def agg(runs, keys, head):
    ok = [r for r in runs if r]
    if not ok:
        return None
    a = {k: median([r.get(k) for r in ok]) for k in keys}
    a["errors"] = sum(r["errors"] for r in ok)
    kinds = {}
    for r in ok:
        for k, v in r["err"].items():
            if v:
                kinds[k] = kinds.get(k, 0) + v
    a["err_kinds"] = kinds
    a["n"] = len(ok)
    a["died"] = sum(1 for r in ok if not r.get("alive", True))
    a["other_cpu_max"] = max((r.get("other_cpu_pct") or 0) for r in ok)
    hv = [r[head] for r in ok if r.get(head) is not None and r[head] >= 0]
    a["spread"] = (max(hv) - min(hv)) / a[head] if len(hv) > 1 and a[head] else None
    a["runs"] = [r.get(head) for r in ok]
    return a


FKEYS = ["rate", "msg_rate", "server_cpu_s", "us_per_delivery", "aux_cpu_s", "aux_us_per_delivery",
         "gen_cpu_s", "window_s", "dlat_p50_us", "dlat_p99_us", "flat_p50_us", "flat_p99_us",
         "open", "open_s", "other_cpu_pct", "wire_per_delivery"]
MKEYS = ["open", "open_s", "rss_before_kb", "rss_after_kb", "rss_per_conn_b", "other_cpu_pct"]


def errs_cell(a, reps):
    s = str(a["errors"])
    if a["err_kinds"]:
        s += " (" + ", ".join(f"{k} {v}" for k, v in sorted(a["err_kinds"].items())) + ")"
    if a["died"]:
        s += f"; a server died in {a['died']} run(s)"
    if a["n"] < reps:
        s += f"; {a['n']}/{reps} runs"
    return s


def pct(cpu, win):
    return None if cpu is None or not win else 100.0 * cpu / win


def oc_cell(a):
    s = fmt(a["other_cpu_pct"]) + "%"
    if a["other_cpu_max"] >= 20:
        s += f" (max {a['other_cpu_max']:.0f}%)"
    return s


def ms(v):
    return None if v is None else v / 1000.0


def fanout_table(md, title, cmd_line, servers, table, scen, base_key, base_label, cpu_note, sizes=None):
    sizes = sizes or SIZES
    md.append(f"### {title}")
    md.append("")
    md.append(cmd_line)
    md.append("")
    cols = ["server", "size", "deliveries/s", "messages/s to all", "server CPU", "server CPU µs per delivery"]
    if scen == "redis":
        cols += ["redis CPU µs per delivery"]
    if scen == "inprocz":
        cols += ["wire B/delivery"]
    cols += ["delivery p50 ms", "p99 ms", "last delivery p50 ms", "gen CPU", "other CPU", "errors",
             "spread", f"deliveries/s ÷ {base_label}", f"CPU per delivery: {base_label} ÷ this"]
    md.append("| " + " | ".join(cols) + " |")
    md.append("|" + "---|" * len(cols))
    for size in sizes:
        for s in servers:
            if s.get("skip"):
                md.append(f"| {s['label']} | {size} B | skipped: {s['skip']} |" + " |" * (len(cols) - 3))
                continue
            a = table.get((scen, s["key"], size))
            if not a:
                why = table.get(("why", scen, s["key"], size), "no successful run")
                md.append(f"| {s['label']} | {size} B | failed: {why} |" + " |" * (len(cols) - 3))
                continue
            b = table.get((scen, base_key, size))
            w = a["window_s"]
            row = [s["label"], f"{size} B", fmt(a["rate"]), fmt(a["msg_rate"], 1),
                   fmt(pct(a["server_cpu_s"], w)) + "%" + cpu_note, fmt(a["us_per_delivery"], 2)]
            if scen == "redis":
                row += [fmt(a["aux_us_per_delivery"], 3)]
            if scen == "inprocz":
                row += [fmt(a["wire_per_delivery"])]
            row += [fmt(ms(a["dlat_p50_us"]), 1), fmt(ms(a["dlat_p99_us"]), 1), fmt(ms(a["flat_p50_us"]), 1),
                    fmt(pct(a["gen_cpu_s"], w)) + "%", oc_cell(a), errs_cell(a, REPEATS),
                    "-" if a["spread"] is None else f"{100 * a['spread']:.0f}%",
                    fmt_ratio(ratio(a["rate"], b["rate"] if b else None)),
                    fmt_ratio(ratio(b["us_per_delivery"] if b else None, a["us_per_delivery"]))]
            md.append("| " + " | ".join(row) + " |")
    md.append("")


def target_rows(table):
    rows = []

    def fan(scen, base, want, what):
        for size in SIZES:
            a, b = table.get((scen, "luaws", size)), table.get((scen, base, size))
            if not a or not b:
                rows.append(f"| {what}, {size} B | ≥ {want:g}x | not measured | - |")
                continue
            r = ratio(a["rate"], b["rate"])
            rc = ratio(b["us_per_delivery"], a["us_per_delivery"])
            holds = "yes" if r is not None and r >= want else "no"
            extra = ""
            f = table.get((scen, "floor", size))
            if f:
                extra = (f"; the C floor reaches {fmt_ratio(ratio(f['rate'], b['rate']))} "
                         f"({fmt_ratio(ratio(b['us_per_delivery'], f['us_per_delivery']))} per delivery), "
                         f"luaws is at {fmt_ratio(ratio(a['rate'], f['rate']))} of it")
            k = table.get((scen, "corked", size))
            if k:
                extra += (f"; corked C: {fmt_ratio(ratio(k['rate'], b['rate']))} "
                          f"({fmt_ratio(ratio(b['us_per_delivery'], k['us_per_delivery']))} per delivery)")
            rows.append(f"| {what}, {size} B | ≥ {want:g}x | {fmt(a['rate'])} vs {fmt(b['rate'])} "
                        f"deliveries/s: {fmt_ratio(r)} (server CPU per delivery {fmt_ratio(rc)}){extra} | {holds} |")
    fan("inproc", "node", 4, "in-process fan-out vs node ws")
    fan("redis", "sio", 3, "through Redis vs socket.io redis-adapter")
    for size in ZSIZES:
        a, b = table.get(("inprocz", "luaws", size)), table.get(("inprocz", "node", size))
        u = table.get(("inproc", "luaws", size))
        if not a:
            rows.append(f"| compressed fan-out, {size} B JSON | quoted | not measured | - |")
            continue
        vs = ""
        if b:
            vs = (f" vs node ws {fmt(b['rate'])} ({fmt_ratio(ratio(a['rate'], b['rate']))}; server CPU per "
                  f"delivery {fmt(a['us_per_delivery'], 2)} vs {fmt(b['us_per_delivery'], 2)} µs: "
                  f"{fmt_ratio(ratio(b['us_per_delivery'], a['us_per_delivery']))})")
        un = ""
        if u:
            un = (f"; uncompressed luaws {size} B: {fmt(u['rate'])} deliveries/s, "
                  f"{fmt(u['us_per_delivery'], 2)} µs per delivery")
        rows.append(f"| compressed fan-out, {size} B JSON, no context takeover (one compression per "
                    f"publish) | quoted | {fmt(a['rate'])} deliveries/s{vs}; wire {fmt(a['wire_per_delivery'])} "
                    f"B per delivery{un} | - |")
    s, o = table.get(("mem", "sub")), table.get(("mem", "open"))
    if s and o:
        d = s["rss_per_conn_b"] - o["rss_per_conn_b"]
        rows.append(f"| RSS of one subscription per idle connection (10,000) | ≤ +256 B | "
                    f"{fmt(s['rss_per_conn_b'])} vs {fmt(o['rss_per_conn_b'])} B/conn: {d:+,.0f} B | "
                    f"{'yes' if d <= 256 else 'no'} |")
    else:
        rows.append("| RSS of one subscription per idle connection | ≤ +256 B | not measured | - |")
    return rows


def write_report(table, servers_by_scen, started, wall, notes, scenarios):
    md = [MARK_BEGIN, "## Fan-out: 1 publisher to {:,} subscribers (bench/fanout.sh)".format(SUBS), ""]
    md.append(f"Generated by bench/fanout.sh on {started:%Y-%m-%d %H:%M} in {wall / 60:.1f} min. "
              f"Method: fresh server processes per run pinned to core {SERVER_CPU} (redis-server too), "
              f"build/bench/fanout on core {GEN_CPU}; {SUBS:,} subscriber connections plus one "
              f"publisher, every message goes to all {SUBS + 1:,} (the publisher's own copy "
              f"included); closed loop with at most {WINDOW} messages out; {WARMUP:g} s warm-up, "
              f"{DURATION:g} s window; {REPEATS} repeats, servers interleaved; medians. Every delivery "
              "is checked (length, content, order: no gap, no repeat). Server CPU is utime+stime of "
              "the server processes over the window (redis-server's is its own column); µs per "
              "delivery = server CPU ÷ deliveries. Ratios: deliveries/s ÷ the baseline, and the "
              "baseline's CPU per delivery ÷ this one's (both: higher is better for luaws). The window "
              "matters: with several messages out, a server that coalesces each subscriber's writes "
              "(c_echo --fanout-corked) sends several messages per syscall, where luaws, node ws, "
              "socket.io and the plain floor make one send per delivery (bench/NOTES.md).")
    md.append("")
    for n in notes:
        md.append(f"- {n}")
    if notes:
        md.append("")
    md.append("| target (issue) | want | measured | holds |")
    md.append("|---|---|---|---|")
    md += target_rows(table)
    md.append("")
    if "inproc" in scenarios:
        fanout_table(md, "In one process: luaws server:publish vs node ws (and the C floor)",
                     f"`fanout --subs {SUBS} --size S --window {WINDOW}` against bench/peers/luaws_fanout.lua, "
                     "bench/peers/node_fanout.js and c_echo --fanout / --fanout-corked", servers_by_scen["inproc"], table, "inproc", "node",
                     "node ws", "")
    if "redis" in scenarios:
        fanout_table(md, "Across two processes through one redis-server: luaws backplane vs socket.io redis-adapter",
                     f"`fanout --proto ws|sio --url A --url B --subs {SUBS} --size S --window {WINDOW}` "
                     "(subscribers split over A and B, the publisher on A; socket.io: each message is "
                     "`42[\"msg\",\"<S bytes>\"]`)", servers_by_scen["redis"], table, "redis", "sio",
                     "socket.io", " (2 procs, 1 core)")
    if "inprocz" in scenarios:
        fanout_table(md, "In one process with permessage-deflate (no context takeover): luaws vs node ws",
                     f"`fanout --json --deflate --subs {SUBS} --size S --window {WINDOW}` against "
                     "bench/peers/luaws_fanout.lua --compression and bench/peers/node_fanout.js --deflate; "
                     "every connection agreed on server_no_context_takeover and client_no_context_takeover; "
                     "wire bytes are what the client received per delivery (frame headers included; "
                     "uncompressed the 1 KiB message is 1,028 B)",
                     servers_by_scen["inprocz"], table, "inprocz", "node", "node ws", "", sizes=ZSIZES)
    if "mem" in scenarios:
        md.append(f"### Memory: server RSS per idle connection at {MEM_CONNS:,} connections")
        md.append("")
        md.append(f"`loadgen --mode idle --conns {MEM_CONNS} --parallel 500 --src-count 4` against "
                  "bench/peers/luaws_fanout.lua --mode sub|open|bare")
        md.append("")
        cols = ["server", "open", "RSS before MiB", "RSS after MiB", "bytes/conn", "vs open handler only",
                "other CPU", "errors", "spread"]
        md.append("| " + " | ".join(cols) + " |")
        md.append("|" + "---|" * len(cols))
        o = table.get(("mem", "open"))
        for m in MEM:
            a = table.get(("mem", m["key"]))
            if not a:
                why = table.get(("why", "mem", m["key"]), "no successful run")
                md.append(f"| {m['label']} | failed: {why} |" + " |" * (len(cols) - 2))
                continue
            d = "-" if not o else f"{a['rss_per_conn_b'] - o['rss_per_conn_b']:+,.0f} B"
            mib = lambda kb: None if kb is None else kb / 1024.0  # noqa: E731
            md.append("| " + " | ".join([m["label"], fmt(a["open"]), fmt(mib(a["rss_before_kb"]), 1),
                                         fmt(mib(a["rss_after_kb"]), 1), fmt(a["rss_per_conn_b"]), d,
                                         oc_cell(a), errs_cell(a, REPEATS),
                                         "-" if a["spread"] is None else f"{100 * a['spread']:.0f}%"]) + " |")
        md.append("")
    md.append(MARK_END)
    return "\n".join(md) + "\n"


def splice(section):
    """Put the section into latest.md between the markers (appended if absent)."""
    path = os.path.join(RESULTS, "latest.md")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        text = "# luaws benchmark: latest run\n\n"
    b, e = text.find(MARK_BEGIN), text.find(MARK_END)
    if b >= 0 and e > b:
        text = text[:b] + section.rstrip("\n") + text[e + len(MARK_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def main():
    scenarios = [x for x in os.environ.get("FANOUT_SCENARIOS", "inproc,redis,mem,inprocz").split(",") if x]
    only = [x for x in os.environ.get("FANOUT_SERVERS", "").split(",") if x]
    for t in (FANOUT, LOADGEN):
        if not os.access(t, os.X_OK):
            sys.exit(f"fanout: {t} missing; run make bench-tools")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    os.makedirs(LOGS, exist_ok=True)

    servers_by_scen = {"inproc": [dict(s) for s in INPROC], "redis": [dict(s) for s in REDIS],
                       "inprocz": [dict(s) for s in INPROCZ]}
    for scen, lst in servers_by_scen.items():
        for s in lst:
            if only and s["key"] not in only:
                s["skip"] = "not in FANOUT_SERVERS"
                continue
            for c in s["checks"]:
                why = c()
                if why:
                    s["skip"] = why
                    log(f"fanout: skipping {s['label']}: {why}")
                    break
    mem_skip = _check_luaws()

    started = datetime.datetime.now()
    t0 = time.monotonic()
    snap0 = runner.cpu_snapshot()
    runs, table, notes = {}, {}, []
    waited = 0.0
    budget_hit = 0
    raw = open(os.path.join(RESULTS, "fanout.raw"), "w")

    def one(key, label, fn):
        nonlocal waited, budget_hit
        if time.monotonic() - t0 > BUDGET:
            budget_hit += 1
            runs.setdefault(key, []).append(None)
            return
        if QUIET_WAIT > 0 and waited < QUIET_TOTAL:
            w = runner.wait_quiet(min(QUIET_WAIT, QUIET_TOTAL - waited))
            waited += w
            if w > 1:
                log(f"waited {w:.0f} s for other processes to quieten")
        res, why = measured(fn, set())
        runs.setdefault(key, []).append(res)
        if res:
            log(f"{label}: {res['human']}")
            raw.write(json.dumps(dict(res, key=list(key))) + "\n")
            raw.flush()
        else:
            log(f"{label}: FAILED: {why}")
            table[("why",) + key] = why

    for rep in range(REPEATS):
        for scen in ("inproc", "redis", "inprocz"):
            if scen not in scenarios:
                continue
            active = [s for s in servers_by_scen[scen] if not s.get("skip")]
            for size in (ZSIZES if scen == "inprocz" else SIZES):
                order = active[rep % len(active):] + active[:rep % len(active)] if active else []
                for s in order:
                    one((scen, s["key"], size), f"rep {rep + 1}/{REPEATS} {scen} {s['key']} {size} B",
                        lambda s=s, size=size, scen=scen: run_fanout(s, size, rep, scen))
        if "mem" in scenarios and not mem_skip:
            order = MEM[rep % len(MEM):] + MEM[:rep % len(MEM)]
            for m in order:
                one(("mem", m["key"]), f"rep {rep + 1}/{REPEATS} mem {m['key']}",
                    lambda m=m: run_mem(m, rep))
    raw.close()
    wall = time.monotonic() - t0

    for key, v in runs.items():
        if key[0] == "mem":
            a = agg(v, MKEYS, "rss_per_conn_b")
        else:
            a = agg(v, FKEYS, "rate")
        if a:
            table[key] = a
    if mem_skip and "mem" in scenarios:
        table[("why", "mem", "sub")] = mem_skip
    if waited > 1:
        notes.append(f"the runs waited {waited:.0f} s in all (at most {QUIET_WAIT:.0f} s a run, "
                     f"{QUIET_TOTAL:.0f} s in total) for other processes to drop below "
                     f"{runner.QUIET_PCT:.0f}% of a core.")
    mine = {os.getpid()} | {pid for pid in runner.cpu_snapshot() if runner._ppid(pid) == os.getpid()}
    other = runner.foreign_cpu(snap0, runner.cpu_snapshot(), mine)
    by_name = {}
    for (_, comm), v in other.items():
        by_name[comm] = by_name.get(comm, 0) + v
    total = sum(by_name.values())
    top = ", ".join(f"{c} {v:.0f} s" for c, v in sorted(by_name.items(), key=lambda x: -x[1])[:5])
    per_run = [r.get("other_cpu_pct") for v in runs.values() for r in v if r and r.get("other_cpu_pct") is not None]
    med_other = median(per_run)
    if med_other is not None and med_other > 10:
        notes.append(f"**Warning: the machine was not quiet: while the generators ran, processes outside "
                     f"the benchmark used {med_other:.0f}% of a core (median over the runs; the worst "
                     f"{max(per_run):.0f}%). With 2 cores that takes CPU from the server or the "
                     "generator, so deliveries/s are low and noisy here; CPU per delivery is the "
                     "steadier figure. Rerun on a quiet machine before drawing conclusions.**")
    notes.append(f"other processes used {total:.0f} CPU-s between the first and the last snapshot "
                 f"({100 * total / wall if wall else 0:.0f}% of a core; top: {top or 'none'}); processes that "
                 "started and ended in between (test suites) are missed there, but not in the per-run "
                 "\"other CPU\" column.")
    if budget_hit:
        notes.append(f"the {BUDGET:.0f} s budget ran out: {budget_hit} runs were not started.")
    section = write_report(table, servers_by_scen, started, wall, notes, scenarios)
    splice(section)
    print()
    print(section)
    log(f"fanout: wrote its section of {os.path.relpath(RESULTS, ROOT)}/latest.md (and fanout.raw) in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
