#!/usr/bin/env bash
# Overhead benchmark for huatuo-bamai. It reports numbers and asserts nothing; `make test` does not run it.
# Each section prints a markdown table that can be pasted into docs/performance.md.
#
#   benches/overhead.sh                       all sections (about 5 minutes on 2 vCPUs)
#   SECTIONS=ab ROUNDS=20 benches/overhead.sh rerun one section with more rounds
#
# Needs root (BPF, kernel.bpf_stats_enabled). Uses only 127.0.0.1.
set -euo pipefail

# ---- knobs ------------------------------------------------------------------------------------------
N=${N:-10}                       # start-up runs
ROUNDS=${ROUNDS:-10}             # A/B rounds, agent off and on interleaved
WARM_SECS=${WARM_SECS:-20}       # agent uptime before idle RSS is read
IDLE_SECS=${IDLE_SECS:-30}       # idle CPU window
HOOK_SECS=${HOOK_SECS:-10}       # per-hook load window (bpf_stats on only during this)
UDP_PPS=${UDP_PPS:-20000}        # loopback UDP packets per second during the per-hook window (NET_RX softirqs)
IO_IOPS=${IO_IOPS:-200}          # 4 KiB O_DIRECT writes per second to a temp file during that window (block hooks)
PIPE_LOOPS=${PIPE_LOOPS:-50000}  # perf bench sched pipe -l, one op = 2 context switches
PIPE_CPU=${PIPE_CPU:-1}          # CPU both pipe tasks are pinned to in the A/B test
SETTLE_SECS=${SETTLE_SECS:-1}    # after /readyz, before an "on" measurement
AB_NOSTATS=${AB_NOSTATS:-1}      # A/B: also run the agent with agent.bpf_stats=false (when the config has it)
READY_TIMEOUT=${READY_TIMEOUT:-30}
QUIET_PCT=${QUIET_PCT:-25}       # before each section, wait until the host is below this busy % ...
QUIET_WAIT=${QUIET_WAIT:-30}     # ... for at most this many seconds (then go on and say so)
SECTIONS=${SECTIONS:-startup,idle,hooks,ab}
SKIP_BUILD=${SKIP_BUILD:-0}
BIN=${BIN:-target/release/huatuo-bamai}
CONFIG=${CONFIG:-config/huatuo-bamai.toml}

cd "$(dirname "$0")/.."
ROOT=$(pwd)
[[ "$BIN" == /* ]] || BIN="$ROOT/$BIN"
[[ "$CONFIG" == /* ]] || CONFIG="$ROOT/$CONFIG"
NCPU=$(nproc)
HZ=$(getconf CLK_TCK)

log() { echo "# $*" >&2; }
die() { echo "overhead.sh: $*" >&2; exit 1; }
has() { [[ ",$SECTIONS," == *",$1,"* ]]; }

[[ $(id -u) -eq 0 ]] || die "needs root (BPF programs, kernel.bpf_stats_enabled)"
command -v python3 >/dev/null || die "needs python3"

# The agent must run with the shipped defaults: drop environment overrides.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(HUATUO_|RUST_LOG$)' || true)

# ---- state and cleanup ------------------------------------------------------------------------------
TMP=$(mktemp -d /tmp/bench-XXXXXX)
PIDS_FILE="$TMP/pids"     # every agent and load generator we start: "pid starttime" a line
: >"$PIDS_FILE"
STATS_PREV=""             # kernel.bpf_stats_enabled before we touched it ("" = untouched)

starttime() { awk '{sub(/^.*\) /, ""); print $20}' /proc/"$1"/stat 2>/dev/null; }
track() { echo "$1 $(starttime "$1")" >>"$PIDS_FILE"; }
# ours PID START: PID is still the process we started (pids get reused)
ours() { [[ -n "$2" && "$(starttime "$1")" == "$2" ]]; }
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -s "$PIDS_FILE" ]]; then
        local p st
        while read -r p st; do
            ours "$p" "$st" && kill -TERM "$p" 2>/dev/null || true
        done <"$PIDS_FILE"
        sleep 0.5
        while read -r p st; do
            ours "$p" "$st" && kill -KILL "$p" 2>/dev/null || true
        done <"$PIDS_FILE"
    fi
    if [[ -n "$STATS_PREV" ]]; then
        sysctl -qw kernel.bpf_stats_enabled="$STATS_PREV" || echo "overhead.sh: could not restore kernel.bpf_stats_enabled=$STATS_PREV" >&2
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ------------------------------------------------------------------------------------------
perf_ok() { perf bench sched pipe -l 100 >/dev/null 2>&1; }
missing=()
command -v bpftool >/dev/null 2>&1 || missing+=(bpftool)
command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
        log "apt-get failed; sections needing ${missing[*]} will be skipped"
fi
HAVE_PERF=0
if command -v perf >/dev/null 2>&1 && perf_ok; then HAVE_PERF=1; fi
command -v bpftool >/dev/null 2>&1 || die "needs bpftool"

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "cargo build --release"
    cargo build --release >&2
fi
[[ -x "$BIN" ]] || die "no binary at $BIN (build it or unset SKIP_BUILD)"
# Run a private copy: a concurrent `cargo build` must not swap the binary between runs.
cp "$BIN" "$TMP/huatuo-bamai"
BIN="$TMP/huatuo-bamai"
cp "$CONFIG" "$TMP/config.toml"
CONFIG="$TMP/config.toml"

# ---- helpers ----------------------------------------------------------------------------------------
# stats: numbers on stdin -> "median min max" (printf format in $1, default %.3f)
stats() {
    python3 -c '
import statistics, sys
xs = [float(x) for x in sys.stdin.read().split()]
f = sys.argv[1]
print(" ".join(f % v for v in (statistics.median(xs), min(xs), max(xs))) if xs else "n/a n/a n/a")
' "${1:-%.3f}"
}
calc() { python3 -c "print(format($1, '${2:-.3f}'))"; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# host_cpu: "busy_jiffies steal_jiffies total_jiffies" from /proc/stat (busy excludes idle, iowait, steal)
host_cpu() { awk '/^cpu /{t=0; for(i=2;i<=9;i++) t+=$i; print t-$5-$6-$9, $9, t}' /proc/stat; }
# host_busy_pct BEFORE AFTER (host_cpu outputs) -> "busy% steal%" of all CPUs
host_busy_pct() {
    python3 -c '
import sys
a = [int(x) for x in sys.argv[1].split()]; b = [int(x) for x in sys.argv[2].split()]
t = (b[2] - a[2]) or 1
print("%.1f %.1f" % (100.0 * (b[0] - a[0]) / t, 100.0 * (b[1] - a[1]) / t))
' "$1" "$2"
}
now_ns() { date +%s%N; }
# in_bg CMD...: run CMD in the background and wait for it. bash runs a trap only after the
# foreground command ends; `wait` is interrupted at once, so SIGTERM gets a prompt cleanup.
in_bg() {
    "$@" <&0 & # explicit stdin: a background job would otherwise read /dev/null
    local p=$!
    track "$p"
    wait "$p"
}
# wait_quiet: other work on a small VM skews every number; wait (bounded) for it to calm down.
# Prints the host busy % of the last 2 s sample, for the section's notes.
wait_quiet() {
    local a b busy steal waited=0
    while :; do
        a=$(host_cpu); sleep 2; b=$(host_cpu)
        read -r busy steal < <(host_busy_pct "$a" "$b")
        if python3 -c "import sys; sys.exit(0 if $busy < $QUIET_PCT else 1)" || ((waited >= QUIET_WAIT)); then break; fi
        log "host $busy % busy, waiting for < $QUIET_PCT % ($waited/${QUIET_WAIT}s)"
        sleep 3; waited=$((waited + 5))
    done
    echo "$busy"
}
# foreign_progs PID: number of loaded on_* programs that are not PID's (other agents/tests on the box)
foreign_progs() {
    local mine
    mine=$(agent_prog_ids "${1:-0}" | tr '\n' ' ')
    bpftool prog show -j 2>/dev/null | python3 -c '
import json, sys
mine = set(int(x) for x in sys.argv[1].split())
print(sum(1 for p in json.load(sys.stdin) if p.get("name", "").startswith("on_") and p["id"] not in mine))
' "$mine"
}
# agent_prog_ids PID: BPF program ids held by PID (prog and link fds both carry prog_id)
agent_prog_ids() {
    [[ -d /proc/$1/fdinfo ]] || return 0
    grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -un
}

# prog_runcnt PID: sum of run_cnt over PID's BPF programs
prog_runcnt() {
    local ids
    ids=$(agent_prog_ids "$1" | tr '\n' ' ')
    bpftool prog show -j 2>/dev/null | python3 -c '
import json, sys
ids = set(int(x) for x in sys.argv[1].split())
print(sum(p.get("run_cnt", 0) for p in json.load(sys.stdin) if p["id"] in ids))
' "$ids"
}

AGENT_PID=""
AGENT_PORT=""
start_agent() { # start_agent [VAR=VALUE ...]: extra environment for this agent
    AGENT_PORT=$(free_port)
    env HUATUO_EVENTS__STORE_PATH="$TMP/events-$AGENT_PORT.redb" "$@" "$BIN" --config "$CONFIG" --listen "127.0.0.1:$AGENT_PORT" --control-socket "$TMP/agent-$AGENT_PORT.sock" \
        </dev/null >>"$TMP/agent.log" 2>&1 &
    AGENT_PID=$!
    track "$AGENT_PID"
}
wait_ready() {
    local deadline=$(($(date +%s) + READY_TIMEOUT))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$AGENT_PORT/readyz" || true) == 200 ]]; do
        kill -0 "$AGENT_PID" 2>/dev/null || { tail -20 "$TMP/agent.log" >&2; die "agent exited before /readyz"; }
        (($(date +%s) < deadline)) || { tail -20 "$TMP/agent.log" >&2; die "agent not ready after ${READY_TIMEOUT}s"; }
        sleep 0.05
    done
}
stop_agent() {
    [[ -n "$AGENT_PID" ]] || return 0
    kill -TERM "$AGENT_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
    AGENT_PID=""
}
# pipe_usecs: one pinned perf bench sched pipe run -> µs/op
pipe_usecs() {
    { taskset -c "$PIPE_CPU" perf bench sched pipe -l "$PIPE_LOOPS" 2>/dev/null || true; } | awk '/usecs\/op/{print $1}'
}

START_LOAD=$(loadavg)
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "## huatuo-bamai overhead — $START_DATE"
echo
echo "kernel $(uname -r), $NCPU CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM;"
echo "binary: $("$BIN" --version 2>/dev/null | head -1 || echo "$BIN"), git $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?');"
echo "load average at start: $START_LOAD; perf usable: $([[ $HAVE_PERF == 1 ]] && echo yes || echo no)"
echo

declare -A SUMMARY

# ---- 1. start-up time to /readyz --------------------------------------------------------------------
if has startup; then
    quiet=$(wait_quiet)
    log "start-up: $N runs"
    load_before=$(loadavg)
    python3 - "$BIN" "$CONFIG" "$TMP" "$N" "$READY_TIMEOUT" "$PIDS_FILE" >"$TMP/startup" <<'EOF'
import http.client, os, signal, socket, subprocess, sys, time
binary, config, tmp, n, timeout, pids_file = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def prog_ids(pid):
    ids = set()
    d = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(d):
        try:
            for line in open(f"{d}/{fd}"):
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
        except OSError:
            pass
    return len(ids)

log = open(f"{tmp}/agent.log", "ab")
for i in range(n):
    port = free_port()
    t0 = time.monotonic_ns()
    p = subprocess.Popen([binary, "--config", config, "--listen", f"127.0.0.1:{port}",
                          "--control-socket", f"{tmp}/start-{i}.sock"],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         env={**os.environ, "HUATUO_EVENTS__STORE_PATH": f"{tmp}/start-{i}.redb"})
    with open(f"/proc/{p.pid}/stat") as st, open(pids_file, "a") as f:
        f.write(f"{p.pid} {st.read().rsplit(') ', 1)[1].split()[19]}\n")
    ready = None
    while ready is None:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            r = c.getresponse(); r.read(); c.close()
            if r.status == 200:
                ready = time.monotonic_ns()
                break
        except OSError:
            pass
        if p.poll() is not None:
            log.flush()
            sys.stderr.write(open(f"{tmp}/agent.log", errors="replace").read()[-2000:])
            sys.exit(f"agent exited with {p.returncode} before /readyz")
        if time.monotonic_ns() - t0 > timeout * 1e9:
            p.kill(); sys.exit("agent not ready in time")
        time.sleep(0.01)
    progs = prog_ids(p.pid)
    t1 = time.monotonic_ns()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
    t2 = time.monotonic_ns()
    print(f"{(ready - t0) / 1e6:.1f} {(t2 - t1) / 1e6:.1f} {progs} {p.returncode}")
    time.sleep(0.2)
EOF
    read -r s_med s_min s_max < <(awk '{print $1}' "$TMP/startup" | stats %.1f)
    read -r q_med q_min q_max < <(awk '{print $2}' "$TMP/startup" | stats %.1f)
    progs=$(awk '{print $3}' "$TMP/startup" | sort -u | tr '\n' ' ')
    rcs=$(awk '{print $4}' "$TMP/startup" | sort -u | tr '\n' ' ')
    echo "### Start-up to /readyz (200), $N runs, poll every 10 ms"
    echo
    echo "| measure | median | min | max |"
    echo "|---|---|---|---|"
    echo "| exec → first 200 on /readyz | $s_med ms | $s_min ms | $s_max ms |"
    echo "| SIGTERM → exit | $q_med ms | $q_min ms | $q_max ms |"
    echo
    echo "runs (ms): $(awk '{print $1}' "$TMP/startup" | tr '\n' ' '); BPF programs held at ready: ${progs}; exit codes: ${rcs}; host busy before: $quiet %; load before: $load_before, after: $(loadavg)"
    echo
    SUMMARY[startup]="$s_med ms (min $s_min, max $s_max)"
fi

# ---- 2. idle RSS and CPU ----------------------------------------------------------------------------
if has idle; then
    quiet=$(wait_quiet)
    log "idle: RSS after ${WARM_SECS}s, CPU over ${IDLE_SECS}s"
    load_before=$(loadavg)
    t_start=$(now_ns)
    start_agent
    wait_ready
    ready_ms=$(calc "($(now_ns) - $t_start) / 1e6" .0f)
    in_bg sleep "$(calc "max(0, $WARM_SECS - ($(now_ns) - $t_start) / 1e9)" .2f)"
    status() { awk -v k="$1:" '$1 == k {print $2}' /proc/"$AGENT_PID"/status; }
    rss1=$(status VmRSS); anon1=$(status RssAnon); file1=$(status RssFile)
    threads=$(status Threads)
    cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' /proc/"$AGENT_PID"/stat; } # utime + stime
    sched_ns() { cat /proc/"$AGENT_PID"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
    c0=$(cpu_ticks); e0=$(sched_ns); h0=$(host_cpu); w0=$(now_ns)
    in_bg sleep "$IDLE_SECS"
    c1=$(cpu_ticks); e1=$(sched_ns); h1=$(host_cpu); w1=$(now_ns)
    rss2=$(status VmRSS); hwm=$(status VmHWM)
    stop_agent
    wall=$(calc "($w1 - $w0) / 1e9")
    cpu1=$(calc "100.0 * ($c1 - $c0) / $HZ / $wall")
    cpuh=$(calc "$cpu1 / $NCPU")
    sch1=$(calc "100.0 * ($e1 - $e0) / 1e9 / $wall")
    read -r busy steal < <(host_busy_pct "$h0" "$h1")
    mib() { calc "$1 / 1024" .1f; }
    mb() { calc "$1 * 1024 / 1e6" .1f; }
    echo "### Idle RSS and CPU (agent up ${WARM_SECS}s, CPU window ${wall}s)"
    echo
    echo "| measure | value |"
    echo "|---|---|"
    echo "| VmRSS after ${WARM_SECS} s | $(mib "$rss1") MiB ($(mb "$rss1") MB) |"
    echo "| of which RssAnon / RssFile | $(mib "$anon1") / $(mib "$file1") MiB |"
    echo "| VmRSS after $((WARM_SECS + IDLE_SECS)) s / VmHWM (peak) | $(mib "$rss2") / $(mib "$hwm") MiB |"
    echo "| threads | $threads |"
    echo "| agent CPU (utime+stime, ${HZ} Hz ticks), % of one CPU | $cpu1 % ($((c1 - c0)) ticks) |"
    echo "| agent CPU, % of host ($NCPU CPUs) | $cpuh % |"
    echo "| agent CPU from schedstat (ns resolution), % of one CPU | $sch1 % |"
    echo "| host busy / steal during window, % of $NCPU CPUs | $busy % / $steal % |"
    echo
    echo "ready after $ready_ms ms; host busy before: $quiet %; load before: $load_before, after: $(loadavg)"
    echo
    SUMMARY[rss]="$(mib "$rss1") MiB = $(mb "$rss1") MB (RssAnon $(mib "$anon1") MiB)"
    SUMMARY[cpu]="$cpu1 % of one CPU, $cpuh % of host (host busy $busy %)"
fi

# ---- 3. per-hook cost with bpf_stats ----------------------------------------------------------------
if has hooks; then
    quiet=$(wait_quiet)
    log "per-hook cost: ${HOOK_SECS}s of context switches + ${UDP_PPS} UDP pkt/s on loopback + ${IO_IOPS} direct writes/s"
    load_before=$(loadavg)
    start_agent
    wait_ready
    sleep 1
    ids=$(agent_prog_ids "$AGENT_PID" | tr '\n' ' ')
    [[ -n "$ids" ]] || die "agent $AGENT_PID holds no BPF programs"
    foreign=$(foreign_progs "$AGENT_PID")
    STATS_PREV=$(sysctl -n kernel.bpf_stats_enabled)
    sysctl -qw kernel.bpf_stats_enabled=1
    bpftool prog show -j >"$TMP/progs0.json"
    ctxt0=$(awk '/^ctxt/{print $2}' /proc/stat)
    netrx0=$(awk '/NET_RX:/{s=0; for(i=2;i<=NF;i++) s+=$i; print s}' /proc/softirqs)
    h0=$(host_cpu); w0=$(now_ns)
    python3 - "$HOOK_SECS" "$UDP_PPS" >"$TMP/udp" <<'EOF' &
import socket, sys, time
secs, pps = float(sys.argv[1]), int(sys.argv[2])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 0))  # never read: no ICMP
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst, payload, sent, batch = rx.getsockname(), b"x" * 64, 0, 100
start = time.monotonic()
while (now := time.monotonic() - start) < secs:
    for _ in range(batch):
        tx.sendto(payload, dst)
    sent += batch
    ahead = sent / pps - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
print(sent)
EOF
    udp_pid=$!
    track "$udp_pid"
    python3 - "$HOOK_SECS" "$IO_IOPS" "$TMP/io.dat" >"$TMP/io" <<'EOF' &
import mmap, os, sys, time
secs, iops, path = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
try:
    fd, sync = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600), False
except OSError:  # no O_DIRECT here (tmpfs): write + fdatasync still reaches the block layer
    fd, sync = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), True
buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
done, start = 0, time.monotonic()
while time.monotonic() - start < secs:
    os.pwrite(fd, buf, (done % 1024) * 4096)
    if sync:
        os.fdatasync(fd)
    done += 1
    ahead = done / iops - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
print(done)
EOF
    io_pid=$!
    track "$io_pid"
    if [[ $HAVE_PERF == 1 ]]; then
        load_kind="perf bench sched pipe (2 processes, unpinned)"
        # timeout signals its whole process group, so perf's forked child goes too.
        in_bg timeout -k 2 "$HOOK_SECS" perf bench sched pipe -l 2000000000 >/dev/null 2>&1 || true
    else
        load_kind="python pipe ping-pong (perf unavailable)"
        in_bg python3 - "$HOOK_SECS" <<'EOF' || true
import os, sys, time
secs = float(sys.argv[1]); r1, w1 = os.pipe(); r2, w2 = os.pipe()
if os.fork() == 0:
    os.close(w1); os.close(r2)  # else read(r1) never sees EOF
    while os.read(r1, 1):
        os.write(w2, b"x")
    os._exit(0)
os.close(r1); os.close(w2)
end = time.monotonic() + secs
while time.monotonic() < end:
    for _ in range(1000):
        os.write(w1, b"x"); os.read(r2, 1)
os.close(w1); os.wait()
EOF
    fi
    wait "$udp_pid" || true
    wait "$io_pid" || true
    w1=$(now_ns); h1=$(host_cpu)
    bpftool prog show -j >"$TMP/progs1.json"
    ctxt1=$(awk '/^ctxt/{print $2}' /proc/stat)
    netrx1=$(awk '/NET_RX:/{s=0; for(i=2;i<=NF;i++) s+=$i; print s}' /proc/softirqs)
    sysctl -qw kernel.bpf_stats_enabled="$STATS_PREV"
    STATS_PREV=""
    stop_agent
    wall=$(calc "($w1 - $w0) / 1e9")
    read -r busy steal < <(host_busy_pct "$h0" "$h1")
    echo "### Per-hook cost (bpf_stats, ${wall}s window, $NCPU CPUs)"
    echo
    python3 - "$TMP/progs0.json" "$TMP/progs1.json" "$ids" "$wall" "$NCPU" <<'EOF'
import json, sys
p0 = {p["id"]: p for p in json.load(open(sys.argv[1]))}
p1 = {p["id"]: p for p in json.load(open(sys.argv[2]))}
ids = [int(x) for x in sys.argv[3].split()]
wall, ncpu = float(sys.argv[4]), int(sys.argv[5])
print("| program | id | run_cnt | runs/s | run_time_ns | ns/run | CPU share (% of host) |")
print("|---|---|---|---|---|---|---|")
tc = tt = 0
for i in ids:
    if i not in p1 or not p1[i].get("name", "").startswith("on_"):
        continue
    a, b = p0.get(i, {}), p1[i]
    cnt = b.get("run_cnt", 0) - a.get("run_cnt", 0)
    ns = b.get("run_time_ns", 0) - a.get("run_time_ns", 0)
    tc += cnt; tt += ns
    per = f"{ns / cnt:.0f}" if cnt else "n/a"
    print(f"| {b['name']} | {i} | {cnt} | {cnt / wall:.0f} | {ns} | {per} | {100.0 * ns / (wall * 1e9 * ncpu):.4f} % |")
per = f"{tt / tc:.0f}" if tc else "n/a"
print(f"| **all agent programs** | | {tc} | {tc / wall:.0f} | {tt} | {per} | {100.0 * tt / (wall * 1e9 * ncpu):.4f} % |")
EOF
    echo
    udp_sent=$(cat "$TMP/udp" 2>/dev/null || echo 0)
    io_done=$(cat "$TMP/io" 2>/dev/null || echo 0)
    echo "load: $load_kind + python UDP to 127.0.0.1 ($(calc "$udp_sent / $wall" .0f) pkt/s sent) + 4 KiB direct writes to $TMP ($(calc "$io_done / $wall" .0f)/s);" \
        "$(calc "($ctxt1 - $ctxt0) / $wall" .0f) context switches/s and $(calc "($netrx1 - $netrx0) / $wall" .0f) NET_RX softirqs/s system-wide;" \
        "host busy/steal $busy % / $steal %; other on_* programs loaded: $foreign; host busy before: $quiet %; load before: $load_before, after: $(loadavg)"
    echo
    SUMMARY[hooks]=$(python3 - "$TMP/progs0.json" "$TMP/progs1.json" "$ids" <<'EOF'
import json, sys
p0 = {p["id"]: p for p in json.load(open(sys.argv[1]))}
p1 = {p["id"]: p for p in json.load(open(sys.argv[2]))}
out = []
for i in (int(x) for x in sys.argv[3].split()):
    if i in p1 and p1[i].get("name", "").startswith("on_"):
        cnt = p1[i].get("run_cnt", 0) - p0.get(i, {}).get("run_cnt", 0)
        ns = p1[i].get("run_time_ns", 0) - p0.get(i, {}).get("run_time_ns", 0)
        out.append(f"{p1[i]['name'][3:]} {ns / cnt:.0f}" if cnt else f"{p1[i]['name'][3:]} n/a")
print(", ".join(out) + " ns/run")
EOF
)
fi

# ---- 4. end-to-end A/B with perf bench sched pipe ---------------------------------------------------
if has ab; then
    if [[ $HAVE_PERF != 1 ]]; then
        echo "### End-to-end A/B: skipped (perf bench sched pipe does not run here)"
        echo
        SUMMARY[ab]="skipped (no perf)"
    else
        quiet=$(wait_quiet)
        modes=(off on)
        # agent.bpf_stats keeps kernel run-time stats on for the agent's lifetime: measure it separately.
        if [[ $AB_NOSTATS == 1 ]] && grep -qE '^[[:space:]]*bpf_stats[[:space:]]*=' "$CONFIG"; then modes+=(nostats); fi
        log "A/B: $ROUNDS interleaved rounds (${modes[*]}) of taskset -c $PIPE_CPU perf bench sched pipe -l $PIPE_LOOPS"
        load_before=$(loadavg)
        for m in "${modes[@]}"; do : >"$TMP/ab-$m"; done
        pipe_usecs >/dev/null # warm-up
        foreign_max=0
        stats_leaks=0
        h0=$(host_cpu)
        for ((r = 0; r < ROUNDS; r++)); do
            # rotate the order every round so drift hits every arm alike
            order=()
            for ((k = 0; k < ${#modes[@]}; k++)); do order+=("${modes[(r + k) % ${#modes[@]}]}"); done
            line=""
            for mode in "${order[@]}"; do
                if [[ $mode == off ]]; then
                    u=$(pipe_usecs)
                else
                    if [[ $mode == nostats ]]; then start_agent HUATUO_AGENT__BPF_STATS=false; else start_agent; fi
                    wait_ready
                    sleep "$SETTLE_SECS"
                    f=$(foreign_progs "$AGENT_PID")
                    ((f > foreign_max)) && foreign_max=$f
                    [[ $mode == nostats ]] && n0=$(prog_runcnt "$AGENT_PID")
                    u=$(pipe_usecs)
                    # run counts only move while someone (sysctl, another agent's stats fd) keeps stats on
                    if [[ $mode == nostats ]] && (($(prog_runcnt "$AGENT_PID") > n0)); then stats_leaks=$((stats_leaks + 1)); fi
                    stop_agent
                fi
                [[ -n "$u" ]] && echo "$u" >>"$TMP/ab-$mode"
                line+=" $mode $u"
            done
            log "round $((r + 1))/$ROUNDS:$line µs/op, load $(loadavg)"
        done
        h1=$(host_cpu)
        read -r busy steal < <(host_busy_pct "$h0" "$h1")
        declare -A med
        echo "### End-to-end A/B: taskset -c $PIPE_CPU perf bench sched pipe -l $PIPE_LOOPS, $ROUNDS interleaved rounds"
        echo
        echo "| agent | median µs/op | min | max | context switches/s (median) | vs off | added per context switch |"
        echo "|---|---|---|---|---|---|---|"
        for mode in "${modes[@]}"; do
            read -r m_med m_min m_max < <(stats %.3f <"$TMP/ab-$mode")
            med[$mode]=$m_med
            case $mode in
                off) label="off" ;;
                on) label="on, shipped config (all default probes)" ;;
                nostats) label="on, agent.bpf_stats=false" ;;
            esac
            if [[ $mode == off ]]; then
                vs="1.000"; add="—"
            else
                vs=$(calc "$m_med / ${med[off]}"); add="$(calc "($m_med - ${med[off]}) * 1000 / 2" .0f) ns"
            fi
            echo "| $label | $m_med | $m_min | $m_max | $(calc "2e6 / $m_med" .0f) | $vs | $add |"
        done
        echo
        runs=""
        for mode in "${modes[@]}"; do runs+="$mode: $(tr '\n' ' ' <"$TMP/ab-$mode"); "; done
        leak=""
        [[ " ${modes[*]} " == *" nostats "* ]] &&
            leak="bpf_stats was on anyway (someone else held it) in $stats_leaks of $ROUNDS bpf_stats=false runs;"
        echo "one op = 2 context switches, so added per switch = (median on − median off) / 2; runs (µs/op) $runs" \
            "$leak host busy/steal $busy % / $steal %; other on_* programs loaded (max): $foreign_max; host busy before: $quiet %; load before: $load_before, after: $(loadavg)"
        echo
        SUMMARY[ab]="off ${med[off]} µs/op, on ${med[on]} µs/op, ratio $(calc "${med[on]} / ${med[off]}") ($(calc "(${med[on]} - ${med[off]}) * 1000 / 2" .0f) ns per context switch)"
        if [[ -n "${med[nostats]:-}" ]]; then
            SUMMARY[ab]+="; with bpf_stats=false ${med[nostats]} µs/op, ratio $(calc "${med[nostats]} / ${med[off]}")"
        fi
    fi
fi

# ---- summary ----------------------------------------------------------------------------------------
echo "### Summary"
echo
echo "| measure | target | result |"
echo "|---|---|---|"
[[ -n "${SUMMARY[startup]:-}" ]] && echo "| start-up to /readyz (median) | < 1 s | ${SUMMARY[startup]} |"
[[ -n "${SUMMARY[rss]:-}" ]] && echo "| idle RSS after ${WARM_SECS} s | < 40 MB | ${SUMMARY[rss]} |"
[[ -n "${SUMMARY[cpu]:-}" ]] && echo "| agent CPU at idle | ≤ 1 % of one CPU | ${SUMMARY[cpu]} |"
[[ -n "${SUMMARY[hooks]:-}" ]] && echo "| cost per hook (bpf_stats, under load) | report | ${SUMMARY[hooks]} |"
[[ -n "${SUMMARY[ab]:-}" ]] && echo "| pipe A/B (context-switch heavy) | report | ${SUMMARY[ab]} |"
echo
echo "load average at start: $START_LOAD, at end: $(loadavg); finished $(date -u '+%H:%M UTC')"
