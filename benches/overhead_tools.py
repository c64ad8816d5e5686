#!/usr/bin/env python3
"""Load generators and samplers for benches/overhead.sh (standard library only).

    tcp-rr N                       N 1-byte TCP round trips over 127.0.0.1 (two processes) -> µs/op
    udp-flood --count N | --secs S UDP datagrams to a closed 127.0.0.1 port, as fast as possible
    tcp-bulk MIB PORT              MIB MiB over 127.0.0.1:PORT (in a lossy netns) -> µs/MiB, RetransSegs
    prog-stats PID                 {name: [run_time_ns, run_cnt]} of PID's BPF programs
                                   -> "sent µs/op"
    pace-pipe RATE SECS CPU        perf bench sched pipe on CPU, paced with SIGSTOP/SIGCONT so the
                                   host's context switches (/proc/stat ctxt) average RATE/s
                                   -> achieved switches/s
    snap PID STATE                 "wall_ns ticks sched_ns bpf_ns rss_kib" of an agent; sched_ns is
                                   its CPU time since the previous snap with the same STATE file
    monitor PID PORT SECS OUT      one JSON sample a second of an agent (CPU, BPF run time, RSS,
                                   host counters, its overhead metrics) to OUT
    report-rate FILE NCPU          summary of a monitor file under steady load
    report-storm FILE NCPU BUDGET START_NS END_NS [CSV]
                                   summary and timeline of a monitor file around an event storm
    gen-stacks OUT.c [TOPS MIDS LEAVES]
                                   C source of the profiling workload: TOPS x MIDS x LEAVES
                                   distinct call paths (default 8 x 8 x 16 = 1024), a leaf
                                   spins then makes a syscall (getppid or a write to /dev/null)
    perf-stacks PERF.DATA WINDOW_S distinct stacks per WINDOW_S of a `perf record -g` file
                                   (perf script) -> JSON {samples, windows: [distinct, ...]}
    report-profiling TMP NCPU ARMS...
                                   table of the profiling section from TMP/prof-ARM.* files
    set-config FILE SECTION KEY=VALUE...
                                   set keys of one [SECTION] of a TOML file in place (added when
                                   missing; values are written as given, TOML syntax)

Independent overhead = (agent CPU + run time of the agent's BPF programs) / (wall x nproc): the
agent's own figure (huatuo_bamai_overhead_ratio) is printed next to it, never used for it.
"""
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HZ = os.sysconf("SC_CLK_TCK")


# ---- load generators --------------------------------------------------------------------------------
def tcp_rr_main(n):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    addr = srv.getsockname()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            recv, send = c.recv, c.send
            while True:
                b = recv(1)
                if not b:
                    break
                send(b)
        except OSError:
            code = 1
        os._exit(code)
    srv.close()
    c = socket.create_connection(addr)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    recv, send, msg = c.recv, c.send, b"x"
    for _ in range(100):  # warm the path (slow start, caches)
        send(msg)
        recv(1)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        send(msg)
        if not recv(1):
            raise SystemExit("tcp-rr: peer closed")
    t1 = time.perf_counter_ns()
    c.close()
    os.waitpid(pid, 0)
    print(f"{(t1 - t0) / n / 1e3:.3f}")


def snmp(field, proto="Tcp"):
    """Column FIELD of the PROTO: rows of this network namespace's /proc/net/snmp."""
    rows = [l.split() for l in open("/proc/net/snmp") if l.startswith(proto + ":")]
    return int(rows[1][rows[0].index(field)])


def tcp_bulk(mib, port):
    """MIB MiB from a client to a server on 127.0.0.1:PORT (run inside the lossy netns) ->
    "µs per MiB" and the netns's RetransSegs delta."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    pid = os.fork()
    if pid == 0:
        c, _ = srv.accept()
        while c.recv(1 << 16):
            pass
        os._exit(0)
    srv.close()
    before = snmp("RetransSegs")
    chunk = b"x" * (1 << 20)
    t0 = time.perf_counter_ns()
    c = socket.create_connection(("127.0.0.1", port))
    for _ in range(mib):
        c.sendall(chunk)
    c.close()
    os.waitpid(pid, 0)
    t1 = time.perf_counter_ns()
    print(f"{(t1 - t0) / mib / 1e3:.1f} {snmp('RetransSegs') - before}")


def closed_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more: every datagram is dropped (NO_SOCKET)
    return port


def udp_flood(count=None, secs=None):
    dst = ("127.0.0.1", closed_udp_port())
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # unconnected: the ICMP errors are ignored
    sendto, payload, batch, sent = tx.sendto, b"x" * 64, 1000, 0
    t0 = time.perf_counter_ns()
    end = t0 + int(secs * 1e9) if secs is not None else None
    while True:
        if count is not None and sent >= count:
            break
        if end is not None and time.perf_counter_ns() >= end:
            break
        k = batch if count is None else min(batch, count - sent)
        for _ in range(k):
            sendto(payload, dst)
        sent += k
    t1 = time.perf_counter_ns()
    print(f"{sent} {(t1 - t0) / max(sent, 1) / 1e3:.3f}")


def ctxt():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("ctxt "):
                return int(line.split()[1])
    raise SystemExit("no ctxt in /proc/stat")


def pace_pipe(rate, secs, cpu):
    """Bang-bang on the cumulative count: stop the pipe pair when the host is ahead of RATE x
    elapsed, continue it when behind. Every 2 ms, so the rate is steady at 1 s resolution."""
    p = subprocess.Popen(["perf", "bench", "sched", "pipe", "-l", "2000000000"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))

    def stop(*_):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop)
    running, c0, t0 = True, ctxt(), time.monotonic()
    try:
        while (el := time.monotonic() - t0) < secs:
            if p.poll() is not None:
                raise SystemExit(f"pace-pipe: perf bench sched pipe exited with {p.returncode}")
            ahead = ctxt() - c0 > rate * el
            if ahead and running:
                os.killpg(p.pid, signal.SIGSTOP)
                running = False
            elif not ahead and not running:
                os.killpg(p.pid, signal.SIGCONT)
                running = True
            time.sleep(0.002)
        print(f"{(ctxt() - c0) / (time.monotonic() - t0):.0f}")
    finally:
        try:
            os.killpg(p.pid, signal.SIGCONT)
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        p.wait()


# ---- samplers ---------------------------------------------------------------------------------------
def proc_stat_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(") ", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime + stime (dead threads included)


def thread_ns(pid):
    """{tid: ns on CPU} of PID's threads (schedstat: ns resolution, unlike the 10 ms ticks)."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                out[t] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def threads_delta(a, b):
    """CPU time between two thread_ns readings. Per thread, so a thread that exits in between
    loses only its own last interval instead of making the sum go backwards; new threads count
    from 0."""
    return sum(max(0, v - a.get(t, 0)) for t, v in b.items())


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def prog_ids(pid):
    ids = set()
    d = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(d):
        try:
            with open(f"{d}/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    return ids


def bpf_run_time(pid):
    """{prog id: [run_time_ns, run_cnt, name]} of the programs PID holds (bpftool, bpf_stats)."""
    ids = prog_ids(pid)
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True).stdout
    return {str(p["id"]): [p.get("run_time_ns", 0), p.get("run_cnt", 0), p.get("name", "")]
            for p in json.loads(out) if p["id"] in ids}


def host_counters():
    c = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:9]]
                c["cpu_total"] = sum(v)
                c["cpu_busy"] = sum(v) - v[3] - v[4] - v[7]  # minus idle, iowait, steal
            elif line.startswith("ctxt "):
                c["ctxt"] = int(line.split()[1])
    return c


SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def agent_metrics(port):
    """overhead_ratio (None when absent) and the sampling divisor of every probe that has one."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=0.8).read().decode()
    except OSError:
        return None, {}
    ratios, divisors = [], {}
    for line in body.splitlines():
        if not line.startswith("huatuo_bamai_overhead_ratio") and not line.startswith(
                "huatuo_bamai_probe_sampling_divisor"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if name == "huatuo_bamai_overhead_ratio":
            ratios.append((labels, value))
        elif name == "huatuo_bamai_probe_sampling_divisor":
            pm = re.search(r'probe="([^"]*)"', labels)
            if pm:
                divisors[pm.group(1)] = value
    ratio = None
    if ratios:  # the unlabelled-by-probe sample is the total; otherwise sum the per-probe ones
        total = [v for lab, v in ratios if "probe=" not in lab]
        ratio = total[0] if total else sum(v for _, v in ratios)
    return ratio, divisors


def snap(pid, state):
    t = time.time_ns()
    threads = thread_ns(pid)
    try:
        with open(state) as f:
            prev = json.load(f)
    except (OSError, ValueError):
        prev = threads
    with open(state, "w") as f:
        json.dump(threads, f)
    print(t, proc_stat_ticks(pid), threads_delta(prev, threads),
          sum(v[0] for v in bpf_run_time(pid).values()), rss_kib(pid))


def set_config(path, section, pairs):
    want = dict(p.split("=", 1) for p in pairs)
    out, cur, done = [], None, set()

    def flush():
        if cur == section:
            while out and not out[-1].strip():  # keep the blank line before the next section
                out.pop()
            out.extend(f"{k} = {v}" for k, v in want.items() if k not in done)
            out.append("")

    for line in open(path).read().splitlines():
        m = re.match(r"^\s*\[([^\]]+)\]", line)
        if m:
            flush()
            cur = m.group(1).strip()
        k = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if cur == section and k and k.group(1) in want:
            line = f"{k.group(1)} = {want[k.group(1)]}"
            done.add(k.group(1))
        out.append(line)
    if cur == section:
        flush()
    elif section not in {c for c in re.findall(r"(?m)^\s*\[([^\]]+)\]", "\n".join(out))}:
        out += ["", f"[{section}]"] + [f"{k} = {v}" for k, v in want.items()]
    with open(path, "w") as f:
        f.write("\n".join(out).rstrip("\n") + "\n")


def monitor(pid, port, secs, out):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    t0 = time.monotonic()
    with open(out, "w") as f:
        k = 0
        while not stop and time.monotonic() - t0 <= secs + 0.05:
            try:
                s = {"t_ns": time.time_ns(), "ticks": proc_stat_ticks(pid), "threads": thread_ns(pid),
                     "rss_kib": rss_kib(pid), "bpf": bpf_run_time(pid), **host_counters()}
            except (OSError, subprocess.CalledProcessError) as e:
                print(f"monitor: agent {pid} gone? {e}", file=sys.stderr)
                break
            s["ratio"], s["divisors"] = agent_metrics(port)
            f.write(json.dumps(s) + "\n")
            f.flush()
            k += 1
            time.sleep(max(0.0, t0 + k - time.monotonic()))


# ---- reports ----------------------------------------------------------------------------------------
def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def bpf_delta(a, b):
    """Run time added between two samples; a program loaded in between counts from 0."""
    return sum(max(0, v[0] - a.get(i, [0])[0]) for i, v in b.items())


def intervals(samples, ncpu):
    """Per sample interval: (mid time ns, end time ns, agent %, bpf %, total %, ratio, divisors, rss, cs/s).
    Percentages are of host capacity (all CPUs); agent CPU from schedstat (ns resolution)."""
    out = []
    for a, b in zip(samples, samples[1:]):
        dt = (b["t_ns"] - a["t_ns"]) / 1e9
        if dt <= 0:
            continue
        cap = dt * 1e9 * ncpu
        agent = 100.0 * threads_delta(a["threads"], b["threads"]) / cap
        bpf = 100.0 * bpf_delta(a["bpf"], b["bpf"]) / cap
        out.append({"mid": (a["t_ns"] + b["t_ns"]) / 2, "end": b["t_ns"], "agent": agent, "bpf": bpf,
                    "total": agent + bpf, "ratio": b["ratio"], "divisors": b["divisors"],
                    "rss": b["rss_kib"], "cs": (b["ctxt"] - a["ctxt"]) / dt})
    return out


def window(s, ncpu):
    """Whole-window figures over a list of samples (agent CPU from utime+stime: dead threads count;
    schedstat summed per interval as a cross-check)."""
    a, b = s[0], s[-1]
    dt = (b["t_ns"] - a["t_ns"]) / 1e9
    cap = dt * ncpu
    agent = 100.0 * (b["ticks"] - a["ticks"]) / HZ / cap
    agent_ns = 100.0 * sum(threads_delta(x["threads"], y["threads"]) for x, y in zip(s, s[1:])) / 1e9 / cap
    bpf = 100.0 * bpf_delta(a["bpf"], b["bpf"]) / 1e9 / cap
    busy = 100.0 * (b["cpu_busy"] - a["cpu_busy"]) / max(1, b["cpu_total"] - a["cpu_total"])
    return {"dt": dt, "agent": agent, "agent_ns": agent_ns, "bpf": bpf, "total": agent + bpf,
            "cs": (b["ctxt"] - a["ctxt"]) / dt, "busy": busy}


def pct(x, fmt="%.3f"):
    return "n/a" if x is None else (fmt % x) + " %"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def top_programs(a, b, ncpu, dt, k=4):
    rows = []
    for i, v in b["bpf"].items():
        d = max(0, v[0] - a["bpf"].get(i, [0])[0])
        n = max(0, v[1] - a["bpf"].get(i, [0, 0])[1])
        rows.append((d, n, v[2]))
    rows.sort(reverse=True)
    return ", ".join(f"{name} {100.0 * d / (dt * 1e9 * ncpu):.3f} % ({d / n:.0f} ns × {n / dt:.0f}/s)"
                     for d, n, name in rows[:k] if n)


def report_rate(path, ncpu):
    s = load(path)
    if len(s) < 3:
        raise SystemExit(f"report-rate: only {len(s)} samples in {path}")
    w = window(s, ncpu)
    iv = intervals(s, ncpu)
    tot = [x["total"] for x in iv]
    ratios = [x["ratio"] for x in iv if x["ratio"] is not None]
    print("| measure | value |")
    print("|---|---|")
    print(f"| context switches/s, host (/proc/stat ctxt) | {w['cs']:.0f} (per second: {min(x['cs'] for x in iv):.0f}–{max(x['cs'] for x in iv):.0f}) |")
    print(f"| agent process CPU (utime+stime), % of host | {w['agent']:.3f} % (schedstat: {w['agent_ns']:.3f} %) |")
    print(f"| agent BPF programs (Σ run_time_ns), % of host | {w['bpf']:.3f} % |")
    print(f"| **agent total, % of host ({ncpu} CPUs)** | **{w['total']:.3f} %** (per second: median {med(tot):.3f} %, {min(tot):.3f}–{max(tot):.3f} %) |")
    ratio = f"{100 * med(ratios):.3f} % (median of {len(ratios)} scrapes, {100 * min(ratios):.3f}–{100 * max(ratios):.3f} %)" if ratios else "n/a"
    print(f"| agent's own huatuo_bamai_overhead_ratio | {ratio} |")
    div = s[-1]["divisors"]
    print(f"| sampling divisors at the end | {', '.join(f'{k} {v:g}' for k, v in sorted(div.items())) or 'n/a'} |")
    print(f"| host busy, % of {ncpu} CPUs | {w['busy']:.1f} % |")
    print(f"| RSS start → end | {s[0]['rss_kib'] / 1024:.1f} → {s[-1]['rss_kib'] / 1024:.1f} MiB |")
    print()
    print(f"window {w['dt']:.1f} s, {len(s)} samples; most expensive programs: {top_programs(s[0], s[-1], ncpu, w['dt'])}")
    print(f"SUMMARY {w['cs']:.0f} {w['total']:.3f} {100 * med(ratios) if ratios else 'n/a'}")


def report_storm(path, ncpu, budget, start_ns, end_ns, csv=None):
    s = load(path)
    iv = intervals(s, ncpu)
    if not iv:
        raise SystemExit(f"report-storm: no samples in {path}")
    bud = 100.0 * budget
    rel = lambda t: (t - start_ns) / 1e9  # noqa: E731
    pre = [x for x in iv if x["end"] <= start_ns]
    during = [x for x in iv if x["mid"] >= start_ns and x["mid"] <= end_ns]
    post = [x for x in iv if x["mid"] > end_ns]
    if not during:
        raise SystemExit("report-storm: no samples during the storm")
    first_under = next((x for x in during if x["total"] <= bud), None)
    over = [x for x in during if x["total"] > bud]
    settled = rel(over[-1]["end"]) if over else 0.0  # under budget from here to the end of the storm
    stays = settled <= rel(during[-1]["end"]) - 1.5
    after = [x for x in during if first_under and x["end"] >= first_under["end"]]
    after10 = [x for x in during if rel(x["mid"]) >= 10]
    over10 = sum(1 for x in after10 if x["total"] > bud)
    ratios = [x["ratio"] for x in after if x["ratio"] is not None]
    # RSS: at the storm's start, end, and growth over the second half (warm-up excluded)
    rss0 = next((x["rss"] for x in reversed(pre)), during[0]["rss"])
    rss_end = during[-1]["rss"]
    half = [x for x in during if rel(x["mid"]) >= rel(end_ns) / 2]
    slope = None
    if len(half) >= 3:
        xs = [rel(x["mid"]) / 60 for x in half]
        ys = [x["rss"] / 1024 for x in half]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else None
    print("| measure | value |")
    print("|---|---|")
    print(f"| budget (sampler.budget_ratio) | {bud:.2f} % of host |")
    print(f"| agent total before the storm (median) | {pct(med([x['total'] for x in pre]))} |")
    print(f"| peak during the storm | {max(x['total'] for x in during):.3f} % at +{rel(max(during, key=lambda x: x['total'])['mid']):.0f} s |")
    print(f"| first second back under budget | {'+%.0f s' % rel(first_under['end']) if first_under else 'never'} |")
    print(f"| under budget for good from | {'+%.0f s' % settled if stays else 'not by the end of the storm'} |")
    if after:
        print(f"| after that: median / p90 / max | {med([x['total'] for x in after]):.3f} / "
              f"{sorted(x['total'] for x in after)[int(0.9 * (len(after) - 1))]:.3f} / {max(x['total'] for x in after):.3f} % |")
    print(f"| seconds over budget after +10 s | {over10} of {len(after10)} |")
    print(f"| agent's own overhead_ratio after that (median / max) | {pct(100 * med(ratios) if ratios else None)} / {pct(100 * max(ratios) if ratios else None)} |")
    print(f"| RSS at start → end (max) | {rss0 / 1024:.1f} → {rss_end / 1024:.1f} MiB ({max(x['rss'] for x in during) / 1024:.1f}) |")
    print(f"| RSS trend over the second half | {'n/a' if slope is None else '%+.2f MiB/min' % slope} |")
    if post:
        print(f"| after the storm (median) | {med([x['total'] for x in post]):.3f} %, divisors {fmt_div(post[-1]['divisors'])} |")
    print()
    # divisor timeline: every change of any probe's divisor
    changes, last = [], {}
    for x in iv:
        for k, v in sorted(x["divisors"].items()):
            if last.get(k) != v:
                if k in last or v != 1:
                    changes.append(f"+{rel(x['end']):.0f}s {k} {last.get(k, 1):g}→{v:g}")
                last[k] = v
    inside = [x for x in s if start_ns <= x["t_ns"] <= end_ns]
    if len(inside) >= 2:
        dt = (inside[-1]["t_ns"] - inside[0]["t_ns"]) / 1e9
        print(f"most expensive programs during the flood: {top_programs(inside[0], inside[-1], ncpu, dt)}")
        print()
    print("divisor changes: " + ("; ".join(changes) if changes else
                                ("none" if any(x["divisors"] for x in iv) else "n/a (no huatuo_bamai_probe_sampling_divisor)")))
    print()
    # compact timeline: every second for the first 15 s, then every 10 s
    print("| t (s) | agent total % | of which BPF % | agent's ratio % | dropwatch divisor | RSS MiB | cs/s |")
    print("|---|---|---|---|---|---|---|")
    shown = -1e9
    for x in iv:
        t = rel(x["mid"])
        if t < 15 or t - shown >= 10 or x is iv[-1]:
            shown = t
            r = "n/a" if x["ratio"] is None else f"{100 * x['ratio']:.3f}"
            d = x["divisors"].get("dropwatch")
            print(f"| {t:+.0f} | {x['total']:.3f} | {x['bpf']:.3f} | {r} | {'n/a' if d is None else '%g' % d} | {x['rss'] / 1024:.1f} | {x['cs']:.0f} |")
    print()
    if csv:
        with open(csv, "w") as f:
            f.write("t_s,agent_pct,bpf_pct,total_pct,agent_ratio,dropwatch_divisor,rss_kib,cs_per_s\n")
            for x in iv:
                f.write(f"{rel(x['mid']):.2f},{x['agent']:.4f},{x['bpf']:.4f},{x['total']:.4f},"
                        f"{'' if x['ratio'] is None else x['ratio']},{x['divisors'].get('dropwatch', '')},{x['rss']},{x['cs']:.0f}\n")
    fu = "never" if not first_under else f"{rel(first_under['end']):.0f}"
    print(f"SUMMARY {fu} {f'{settled:.0f}' if stays else 'never'} {med([x['total'] for x in after]) if after else 'n/a'} "
          f"{max(x['total'] for x in after) if after else 'n/a'} {rss0 / 1024:.1f} {rss_end / 1024:.1f} "
          f"{'n/a' if slope is None else '%.2f' % slope}")


# ---- profiling workload and report -----------------------------------------------------------------
def gen_stacks(out, tops=8, mids=8, leaves=16):
    """A CPU-bound + syscall workload with tops x mids x leaves distinct call paths, picked at
    random per call so every window sees many of them. Built with frame pointers; every call is
    followed by work so none becomes a tail call. argv: SECONDS SPIN; prints "calls/s"."""
    c = [
        "#define _GNU_SOURCE",
        "#include <fcntl.h>",
        "#include <stdio.h>",
        "#include <stdlib.h>",
        "#include <sys/syscall.h>",
        "#include <time.h>",
        "#include <unistd.h>",
        "static volatile unsigned long sink;",
        "static unsigned long spin;",
        "static int devnull;",
        "typedef void (*fn)(unsigned long);",
    ]
    for k in range(leaves):
        c.append(f"__attribute__((noinline)) void leaf_{k}(unsigned long r) {{"
                 f" for (unsigned long i = 0; i < spin; i++) sink += i ^ (r + {k});"
                 f" if (r & 0x100) syscall(SYS_getppid); else if (write(devnull, (const void *)&r, 8) < 0) sink++;"
                 f" sink++; }}")
    c.append("static fn leaves[] = {" + ", ".join(f"leaf_{k}" for k in range(leaves)) + "};")
    for j in range(mids):
        c.append(f"__attribute__((noinline)) void mid_{j}(unsigned long r) {{"
                 f" leaves[(r >> 12) % {leaves}](r); sink++; }}")
    c.append("static fn mids[] = {" + ", ".join(f"mid_{j}" for j in range(mids)) + "};")
    for i in range(tops):
        c.append(f"__attribute__((noinline)) void top_{i}(unsigned long r) {{"
                 f" mids[(r >> 20) % {mids}](r); sink++; }}")
    c.append("static fn tops[] = {" + ", ".join(f"top_{i}" for i in range(tops)) + "};")
    c.append("""static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 10;
    spin = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000;
    devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0) { perror("/dev/null"); return 1; }
    unsigned long x = 88172645463325252UL ^ (unsigned long)getpid(), calls = 0;
    double t0 = now(), t = t0;
    while (t - t0 < secs) {
        for (int n = 0; n < 256; n++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            tops[(x >> 28) % %TOPS%](x);
        }
        calls += 256;
        t = now();
    }
    printf("%.1f\\n", calls / (t - t0));
    return 0;
}""".replace("%TOPS%", str(tops)))
    with open(out, "w") as f:
        f.write("\n".join(c) + "\n")


def perf_stacks(data, window_s):
    """Distinct (comm, ips) stacks per window of a perf.data file, from `perf script`."""
    p = subprocess.run(["perf", "script", "-i", data, "-F", "comm,time,ip"], capture_output=True,
                       text=True, errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"perf script: {p.stderr.strip()[-300:]}")
    windows, samples, cur, t, comm = {}, 0, [], None, ""

    def flush():
        if t is not None:
            windows.setdefault(int(t // window_s), set()).add((comm, tuple(cur)))

    for line in p.stdout.splitlines():
        if not line.strip():
            flush()
            cur, t = [], None
        elif line[0] in " \t":
            cur.append(line.split()[0])
        else:
            m = re.match(r"^\s*(.*?)\s+(\d+\.\d+):\s*$", line)
            if m:
                flush()
                comm, t, cur = m.group(1), float(m.group(2)), []
                samples += 1
    flush()
    full = [len(v) for k, v in sorted(windows.items())][1:-1]  # the first and last are partial
    print(json.dumps({"samples": samples, "windows": full}))


def report_profiling(tmp, ncpu, arms):
    """One row per arm. Files per arm: prof-ARM.jsonl (monitor), prof-ARM.work (calls/s of each
    workload process), prof-ARM.json (stacks per window, profile metrics, VmHWM)."""
    labels = {"none": "no agent (baseline)", "off": "agent, continuous profiling off",
              "hz19": "agent, continuous profiling at 19 Hz", "hz99": "agent, continuous profiling at 99 Hz",
              "perf": "`perf record -F 99 -a -g`"}
    rows, res = [], {}
    for arm in arms:
        work = [float(x) for x in open(f"{tmp}/prof-{arm}.work").read().split()]
        extra = json.load(open(f"{tmp}/prof-{arm}.json"))
        r = {"work": sum(work), "extra": extra}
        if arm != "none":
            s = load(f"{tmp}/prof-{arm}.jsonl")
            if len(s) < 3:
                raise SystemExit(f"report-profiling: only {len(s)} samples for {arm}")
            w = window(s, ncpu)
            r.update(w)
            r["rss_max"] = max(x["rss_kib"] for x in s) / 1024
            # the profile probe's own programs (on_cpu_clock) vs everything the process holds
            a, b = s[0]["bpf"], s[-1]["bpf"]
            prof_ns = sum(max(0, v[0] - a.get(i, [0])[0]) for i, v in b.items() if v[2] == "on_cpu_clock")
            runs = sum(max(0, v[1] - a.get(i, [0, 0])[1]) for i, v in b.items() if v[2] == "on_cpu_clock")
            r["prof_bpf"] = 100.0 * prof_ns / 1e9 / (w["dt"] * ncpu)
            r["prof_runs"] = runs / w["dt"]
            r["prof_ns_run"] = prof_ns / runs if runs else None
        res[arm] = r
    base = res.get("none", {}).get("work")
    off = res.get("off", {}).get("total")
    ref = res.get("perf", {}).get("total")
    print("| run | host CPU, agent/perf process + its BPF (% of host, "
          f"{ncpu} CPUs) | of which BPF | added to `off` | added ÷ perf | on_cpu_clock runs/s, ns/run | "
          "RSS max in the window / VmHWM (MiB) | distinct stacks per window | workload calls/s (vs baseline) |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for arm in arms:
        r, e = res[arm], res[arm]["extra"]
        wk = f"{r['work']:,.0f}" + (f" ({r['work'] / base:.3f})" if base and arm != "none" else "")
        st = e.get("windows")
        st_s = (f"{min(st)}–{max(st)} ({len(st)} windows)" if st else e.get("note", "n/a"))
        if arm == "none":
            print(f"| {labels[arm]} | – | – | – | – | – | – | {st_s} | {wk} |")
            continue
        added = r["total"] - off if off is not None and arm in ("hz19", "hz99") else None
        if arm == "perf":
            ratio = "1"
        elif ref and added is not None:
            ratio = f"{added / ref:.2f} (total: {r['total'] / ref:.2f})"
        else:
            ratio = f"total: {r['total'] / ref:.2f}" if ref else "n/a"
        runs = (f"{r['prof_runs']:.0f}, {r['prof_ns_run']:.0f}" if r.get("prof_ns_run") else "–")
        hwm = e.get("VmHWM")
        split = (f" (anon {e['RssAnon'] / 1024:.1f} + file {e['RssFile'] / 1024:.1f} at the end)"
                 if "RssAnon" in e and "RssFile" in e else "")
        print(f"| {labels[arm]} | **{r['total']:.3f} %** (process {r['agent']:.3f} %, schedstat {r['agent_ns']:.3f} %) "
              f"| {r['bpf']:.3f} % | {'–' if added is None else '%+.3f %%' % added} | {ratio} | {runs} "
              f"| {r['rss_max']:.1f} / {'n/a' if hwm is None else '%.1f' % (hwm / 1024)}{split} | {st_s} | {wk} |")
        summary[arm] = {"total": r["total"], "added": added, "rss_max": r["rss_max"],
                        "anon_end": e.get("RssAnon"),
                        "stacks_min": min(st) if st else None, "busy": r["busy"]}
    print()
    for arm in arms:
        e = res[arm]["extra"]
        if e.get("metrics"):
            print(f"* {arm}: " + ", ".join(f"{k} {v}" for k, v in e["metrics"].items()))
    print()
    print("SUMMARY " + json.dumps(summary))


def fmt_div(d):
    return ", ".join(f"{k} {v:g}" for k, v in sorted(d.items())) or "n/a"


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    cmd, a = argv[0], argv[1:]
    if cmd == "tcp-rr":
        tcp_rr_main(int(a[0]))
    elif cmd == "tcp-bulk":
        tcp_bulk(int(a[0]), int(a[1]))
    elif cmd == "prog-stats":
        # {name: [run_time_ns, run_cnt]} of PID's programs, summed by name
        acc = {}
        for ns, cnt, name in bpf_run_time(int(a[0])).values():
            t = acc.setdefault(name, [0, 0])
            t[0] += ns
            t[1] += cnt
        print(json.dumps(acc))
    elif cmd == "udp-flood":
        if a[0] == "--count":
            udp_flood(count=int(a[1]))
        else:
            udp_flood(secs=float(a[1]))
    elif cmd == "pace-pipe":
        pace_pipe(float(a[0]), float(a[1]), int(a[2]))
    elif cmd == "snap":
        snap(int(a[0]), a[1])
    elif cmd == "gen-stacks":
        gen_stacks(a[0], *(int(x) for x in a[1:4]))
    elif cmd == "perf-stacks":
        perf_stacks(a[0], float(a[1]))
    elif cmd == "report-profiling":
        report_profiling(a[0], int(a[1]), a[2:])
    elif cmd == "set-config":
        set_config(a[0], a[1], a[2:])
    elif cmd == "monitor":
        monitor(int(a[0]), int(a[1]), float(a[2]), a[3])
    elif cmd == "report-rate":
        report_rate(a[0], int(a[1]))
    elif cmd == "report-storm":
        report_storm(a[0], int(a[1]), float(a[2]), int(a[3]), int(a[4]), a[5] if len(a) > 5 else None)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
