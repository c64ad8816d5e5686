#!/usr/bin/env bash
# Overhead benchmark for huatuo-bamai. It reports numbers and asserts nothing (except the profiling
# section's targets: exit 1 naming each one missed); `make test` does not run it.
# Each section prints a markdown table that can be pasted into docs/performance.md.
#
#   benches/overhead.sh                       all sections (about 10 minutes on 2 vCPUs)
#   SECTIONS=ab ROUNDS=20 benches/overhead.sh rerun one section with more rounds
#   SECTIONS=ab AB_WORKLOADS=ctx,storm ...     only some A/B workloads
#   SECTIONS=storm STORM_SECS=600 ...          the 10-minute storm (RSS must stay flat)
#   SECTIONS=events ROUNDS=10 ...              the event probes' hot paths (lossy TCP, ticks)
#   SECTIONS=profiling PROF_SECS=60 ...        continuous profiling off / 19 Hz / 99 Hz vs perf record
#
# Sections: startup, idle, hooks (bpf_stats per program), ab (five fixed workloads, agent off/on
# interleaved: ctx, syscall, net, blockio, storm), rate (agent overhead at a steady ~200k context
# switches/s), storm (UDP flood to a closed port with the adaptive sampler on: time back under
# budget, RSS), events (a lossy TCP transfer in a netns, agent off vs on with tcp_retransmit
# enabled: transfer time and the run cost of the tcp_retransmit and sched_tick programs, side by
# side in one run), profiling (one fixed workload with ~1000 distinct call paths, side by side:
# no agent, agent with continuous profiling off, at 19 Hz, at 99 Hz, and `perf record -F 99 -a
# -g` as the reference; checks the issue's targets and exits 1 when one fails). Load generators
# and samplers live in benches/overhead_tools.py.
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
PIPE_CPU=${PIPE_CPU:-1}          # CPU the A/B workloads and the rate load are pinned to
AB_WORKLOADS=${AB_WORKLOADS:-ctx,syscall,net,blockio,storm} # A/B workloads, run in this order each round
SYSCALL_LOOPS=${SYSCALL_LOOPS:-5000000} # perf bench syscall basic -l (getppid calls)
TCP_RTTS=${TCP_RTTS:-20000}      # 1-byte TCP round trips over 127.0.0.1 per net run
BLK_IOS=${BLK_IOS:-5000}         # 4 KiB O_DIRECT writes, then as many reads, per blockio run (loop device)
LOOP_DIR=${LOOP_DIR:-/dev/shm}   # where the loop device's backing file lives (tmpfs: no disk noise)
STORM_COUNT=${STORM_COUNT:-200000} # UDP datagrams to a closed port per A/B storm run
RATE_CS=${RATE_CS:-200000}       # rate: host context switches/s to hold
RATE_WARM=${RATE_WARM:-5}        # rate: seconds of load before the window
RATE_SECS=${RATE_SECS:-30}       # rate: measured window
STORM_SECS=${STORM_SECS:-60}     # storm: flood length (600 for the RSS check)
STORM_PRE=${STORM_PRE:-5}        # storm: seconds sampled before the flood
STORM_POST=${STORM_POST:-10}     # storm: seconds sampled after it
STORM_BUDGET=${STORM_BUDGET:-0.01} # storm: sampler.budget_ratio (fraction of host CPU)
STORM_CSV=${STORM_CSV:-}         # storm: also write the per-second samples to this CSV file
SETTLE_SECS=${SETTLE_SECS:-1}    # after /readyz, before an "on" measurement
AB_NOSTATS=${AB_NOSTATS:-1}      # A/B: also run the agent with agent.bpf_stats=false (when the config has it)
AB_SAMPLER=${AB_SAMPLER:-shipped} # A/B: "off" runs the "on" agents with sampler.enabled = false
READY_TIMEOUT=${READY_TIMEOUT:-30}
QUIET_PCT=${QUIET_PCT:-25}       # before each section, wait until the host is below this busy % ...
QUIET_WAIT=${QUIET_WAIT:-30}     # ... for at most this many seconds (then go on and say so)
LOSSY_MB=${LOSSY_MB:-64}         # events: MiB per lossy transfer
LOSSY_EVERY=${LOSSY_EVERY:-50}   # events: iptables drops every Nth packet towards the server
PROF_ARMS=${PROF_ARMS:-none,off,hz19,hz99,perf} # profiling: runs, in this order
PROF_PROCS=${PROF_PROCS:-3}      # profiling: workload processes (CPU-bound + syscalls, unpinned)
PROF_SPIN=${PROF_SPIN:-2000}     # profiling: loop iterations per leaf call (~5 µs), then a syscall
PROF_WINDOW=${PROF_WINDOW:-10}   # profiling: probes.profile.window_secs (shipped: 10)
PROF_WARM=${PROF_WARM:-12}       # profiling: seconds of workload before the window (one profile window done)
PROF_SECS=${PROF_SECS:-70}       # profiling: measured window (longer than the symbolizer refresh, 60 s)
PROF_MAX_19=${PROF_MAX_19:-0.3}  # profiling targets: % of host CPU added at 19 Hz ...
PROF_MAX_99=${PROF_MAX_99:-1.0}  # ... at 99 Hz ...
PROF_MAX_RSS=${PROF_MAX_RSS:-60} # ... and agent RSS in MB (10^6 bytes)
PROF_MIN_STACKS=${PROF_MIN_STACKS:-500} # ... with at least this many distinct stacks per 99 Hz window
PROF_SAMPLER=${PROF_SAMPLER:-off} # profiling: "shipped" keeps the adaptive sampler on in the agent runs
SECTIONS=${SECTIONS:-startup,idle,hooks,ab,rate,storm,events,profiling}
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
abw() { [[ ",$AB_WORKLOADS," == *",$1,"* ]]; }

[[ $(id -u) -eq 0 ]] || die "needs root (BPF programs, kernel.bpf_stats_enabled)"
command -v python3 >/dev/null || die "needs python3"
for s in ${SECTIONS//,/ }; do
    case $s in startup | idle | hooks | ab | rate | storm | events | profiling) ;; *) die "unknown section '$s' (startup, idle, hooks, ab, rate, storm, events, profiling)" ;; esac
done
for w in ${AB_WORKLOADS//,/ }; do
    case $w in ctx | syscall | net | blockio | storm) ;; *) die "unknown A/B workload '$w' (ctx, syscall, net, blockio, storm)" ;; esac
done

# The agent must run with the shipped defaults: drop environment overrides.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(HUATUO_|RUST_LOG$)' || true)

# ---- state and cleanup ------------------------------------------------------------------------------
TMP=$(mktemp -d /tmp/bench-XXXXXX)
PIDS_FILE="$TMP/pids"     # every agent and load generator we start: "pid starttime" a line
: >"$PIDS_FILE"
STATS_PREV=""             # kernel.bpf_stats_enabled before we touched it ("" = untouched)
LOOP_DEV=""               # loop device of the blockio workload, and its backing file
LOOP_IMG=""
LOSSY_NS=""               # network namespace of the events section

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
            if ours "$p" "$st"; then kill -TERM "$p" 2>/dev/null || true; fi
        done <"$PIDS_FILE"
        sleep 0.5
        while read -r p st; do
            if ours "$p" "$st"; then kill -KILL "$p" 2>/dev/null || true; fi
        done <"$PIDS_FILE"
    fi
    if [[ -n "$LOOP_DEV" ]]; then
        losetup -d "$LOOP_DEV" || echo "overhead.sh: could not detach $LOOP_DEV" >&2
    fi
    [[ -z "$LOOP_IMG" ]] || rm -f "$LOOP_IMG"
    [[ -z "$LOSSY_NS" ]] || ip netns del "$LOSSY_NS" 2>/dev/null || echo "overhead.sh: could not delete netns $LOSSY_NS" >&2
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
if has profiling; then command -v gcc >/dev/null 2>&1 || missing+=(gcc); fi
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
        log "apt-get failed; sections needing ${missing[*]} will be skipped"
fi
HAVE_PERF=0
if command -v perf >/dev/null 2>&1 && perf_ok; then HAVE_PERF=1; fi
command -v bpftool >/dev/null 2>&1 || die "needs bpftool"

# Every selected workload checks its tools now, not ten minutes into the run.
needs=()
need() { needs+=("$1"); }
pinned() { has ab || has rate; }
if pinned && ! command -v taskset >/dev/null 2>&1; then need "taskset (util-linux), to pin the A/B and rate loads"; fi
if has ab; then
    if abw ctx && [[ $HAVE_PERF != 1 ]]; then need "ab workload ctx: 'perf bench sched pipe' (Debian package linux-perf)"; fi
    if abw syscall && ! { command -v perf >/dev/null 2>&1 && perf bench syscall basic -l 100 >/dev/null 2>&1; }; then
        need "ab workload syscall: 'perf bench syscall basic' (linux-perf, perf 5.10 or newer)"
    fi
    if abw blockio; then
        for t in losetup dd; do command -v "$t" >/dev/null 2>&1 || need "ab workload blockio: $t"; done
        [[ -e /dev/loop-control ]] || need "ab workload blockio: loop devices (/dev/loop-control; modprobe loop)"
        [[ -d "$LOOP_DIR" && -w "$LOOP_DIR" ]] || need "ab workload blockio: writable LOOP_DIR ($LOOP_DIR)"
    fi
fi
if has rate && [[ $HAVE_PERF != 1 ]]; then need "section rate: 'perf bench sched pipe' (Debian package linux-perf)"; fi
if has storm || has rate || has events; then command -v curl >/dev/null 2>&1 || need "sections rate/storm/events: curl"; fi
if has events; then for t in ip iptables; do command -v "$t" >/dev/null 2>&1 || need "section events: $t"; done; fi
if has profiling; then
    for t in gcc curl; do command -v "$t" >/dev/null 2>&1 || need "section profiling: $t"; done
    [[ ",$PROF_ARMS," != *",perf,"* || $HAVE_PERF == 1 ]] || need "section profiling: perf (Debian package linux-perf) for the perf record reference"
    for a in ${PROF_ARMS//,/ }; do
        case $a in none | off | hz19 | hz99 | perf) ;; *) die "unknown profiling run '$a' (none, off, hz19, hz99, perf)" ;; esac
    done
fi
if ((${#needs[@]})); then
    printf 'overhead.sh: missing: %s\n' "${needs[@]}" >&2
    die "install the above, or leave those parts out (SECTIONS=..., AB_WORKLOADS=...)"
fi

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
cp "$ROOT/benches/overhead_tools.py" "$TMP/tools.py"
TOOLS="$TMP/tools.py"
PY=$(python3 -c 'import sys; print(sys.executable)') # the interpreter itself, not a pyenv shim

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

AGENT_PID=""
AGENT_PORT=""
AGENT_CONFIG=""           # config of the next start_agent ("" = $CONFIG, the shipped one)
start_agent() { # start_agent [VAR=VALUE ...]: extra environment for this agent
    AGENT_PORT=$(free_port)
    env HUATUO_EVENTS__STORE_PATH="$TMP/events-$AGENT_PORT.redb" "$@" "$BIN" --config "${AGENT_CONFIG:-$CONFIG}" --listen "127.0.0.1:$AGENT_PORT" --control-socket "$TMP/agent-$AGENT_PORT.sock" \
        </dev/null >>"$TMP/agent.log" 2>&1 &
    AGENT_PID=$!
    track "$AGENT_PID"
}
wait_ready() {
    local deadline=$(($(date +%s) + READY_TIMEOUT))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$AGENT_PORT/readyz" || true) == 20[04] ]]; do
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
# bpf_stats_on: keep kernel BPF run-time statistics on until the section restores them
bpf_stats_on() {
    STATS_PREV=$(sysctl -n kernel.bpf_stats_enabled)
    sysctl -qw kernel.bpf_stats_enabled=1
}
bpf_stats_restore() {
    [[ -n "$STATS_PREV" ]] || return 0
    sysctl -qw kernel.bpf_stats_enabled="$STATS_PREV"
    STATS_PREV=""
}
# metric NAME: sum of a family's samples on the running agent's /metrics ("n/a" when absent)
metric() {
    curl -s --max-time 2 "http://127.0.0.1:$AGENT_PORT/metrics" | awk -v n="$1" '
        index($0, n) == 1 && (substr($0, length(n) + 1, 1) == "{" || substr($0, length(n) + 1, 1) == " ") { s += $NF; k++ }
        END { if (k) printf "%.10g\n", s; else print "n/a" }'
}

# ---- A/B workloads: each prints one number (its unit in WL_UNIT), or nothing if the run failed ----
declare -A WL_UNIT=([ctx]="µs/op" [syscall]="ns/call" [net]="µs/round trip" [blockio]="µs/IO" [storm]="µs/datagram")
declare -A WL_DESC=(
    [ctx]="perf bench sched pipe -l $PIPE_LOOPS (one op = 2 context switches)"
    [syscall]="perf bench syscall basic -l $SYSCALL_LOOPS (getppid)"
    [net]="$TCP_RTTS 1-byte TCP round trips over 127.0.0.1, two processes"
    [blockio]="dd $BLK_IOS × 4 KiB O_DIRECT writes then reads on a loop device"
    [storm]="$STORM_COUNT UDP datagrams to a closed 127.0.0.1 port, as fast as possible"
)
wl_ctx() { pipe_usecs; }
wl_syscall() {
    { taskset -c "$PIPE_CPU" perf bench syscall basic -l "$SYSCALL_LOOPS" 2>/dev/null || true; } |
        awk -v n="$SYSCALL_LOOPS" '/Total time/ {printf "%.2f\n", $3 * 1e9 / n}'
}
wl_net() { taskset -c "$PIPE_CPU" "$PY" "$TOOLS" tcp-rr "$TCP_RTTS" || true; }
wl_storm() { { taskset -c "$PIPE_CPU" "$PY" "$TOOLS" udp-flood --count "$STORM_COUNT" || true; } | awk '{print $2}'; }
wl_blockio() {
    local t0 t1
    t0=$(now_ns)
    taskset -c "$PIPE_CPU" dd if=/dev/zero of="$LOOP_DEV" bs=4k count="$BLK_IOS" oflag=direct status=none || return 0
    taskset -c "$PIPE_CPU" dd if="$LOOP_DEV" of=/dev/null bs=4k count="$BLK_IOS" iflag=direct status=none || return 0
    t1=$(now_ns)
    calc "($t1 - $t0) / 1e3 / (2 * $BLK_IOS)"
}
# loop_setup: a loop device over a file in LOOP_DIR (tmpfs by default: the device, not a disk, is measured)
loop_setup() {
    local mib=$(((BLK_IOS * 4 + 1023) / 1024 + 1))
    LOOP_IMG=$(mktemp "$LOOP_DIR/huatuo-bench-XXXXXX.img")
    dd if=/dev/zero of="$LOOP_IMG" bs=1M count="$mib" status=none
    LOOP_DEV=$(losetup -f --show "$LOOP_IMG") || die "losetup failed (blockio workload)"
    udevadm settle 2>/dev/null || sleep 1 # udev's own reads of a new device are not the workload
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
            if r.status == 204:
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
    echo "### Start-up to /readyz (204), $N runs, poll every 10 ms"
    echo
    echo "| measure | median | min | max |"
    echo "|---|---|---|---|"
    echo "| exec → first 204 on /readyz | $s_med ms | $s_min ms | $s_max ms |"
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

# ---- 4. end-to-end A/B: five fixed workloads, agent off and on interleaved ---------------------------
if has ab; then
    quiet=$(wait_quiet)
    read -ra wls <<<"${AB_WORKLOADS//,/ }"
    ab_note=""
    if [[ $AB_SAMPLER == off ]]; then
        grep -q '^\[sampler\]' "$CONFIG" || die "AB_SAMPLER=off: the config has no [sampler] section"
        cp "$CONFIG" "$TMP/ab.toml"
        "$PY" "$TOOLS" set-config "$TMP/ab.toml" sampler enabled=false
        ab_note=" (sampler.enabled = false)"
    fi
    modes=(off on)
    # agent.bpf_stats keeps kernel run-time stats on for the agent's lifetime: measure it separately.
    if [[ $AB_NOSTATS == 1 ]] && grep -qE '^[[:space:]]*bpf_stats[[:space:]]*=' "$CONFIG"; then modes+=(nostats); fi
    if abw blockio; then loop_setup; fi
    log "A/B: $ROUNDS interleaved rounds (${modes[*]}) of ${wls[*]}, pinned to CPU $PIPE_CPU${LOOP_DEV:+; loop device $LOOP_DEV}"
    load_before=$(loadavg)
    for m in "${modes[@]}"; do
        for w in "${wls[@]}"; do : >"$TMP/ab-$m-$w"; : >"$TMP/agent-$m-$w"; done
    done
    for w in "${wls[@]}"; do "wl_$w" >/dev/null; done # warm-up
    foreign_max=0
    stats_leaks=0
    h0=$(host_cpu)
    for ((r = 0; r < ROUNDS; r++)); do
        # rotate the order every round so drift hits every arm alike
        order=()
        for ((k = 0; k < ${#modes[@]}; k++)); do order+=("${modes[(r + k) % ${#modes[@]}]}"); done
        line=""
        for mode in "${order[@]}"; do
            if [[ $mode != off ]]; then
                [[ $AB_SAMPLER == off ]] && AGENT_CONFIG="$TMP/ab.toml"
                if [[ $mode == nostats ]]; then start_agent HUATUO_AGENT__BPF_STATS=false; else start_agent; fi
                AGENT_CONFIG=""
                wait_ready
                sleep "$SETTLE_SECS"
                f=$(foreign_progs "$AGENT_PID")
                ((f > foreign_max)) && foreign_max=$f
            fi
            line+=" $mode:"
            leaked=0
            for w in "${wls[@]}"; do
                if [[ $mode == off ]]; then
                    u=$("wl_$w")
                else
                    # agent CPU, BPF run time and RSS over exactly this workload's run
                    read -r w0 c0 _ b0 _ < <("$PY" "$TOOLS" snap "$AGENT_PID" "$TMP/threads") || { tail -20 "$TMP/agent.log" >&2; die "agent $AGENT_PID gone"; }
                    u=$("wl_$w")
                    read -r w1 c1 e1 b1 rss < <("$PY" "$TOOLS" snap "$AGENT_PID" "$TMP/threads") || { tail -20 "$TMP/agent.log" >&2; die "agent $AGENT_PID gone"; }
                    echo "$((w1 - w0)) $((c1 - c0)) $((b1 - b0)) $rss $e1" >>"$TMP/agent-$mode-$w"
                    # run time only moves while someone (sysctl, another agent's stats fd) keeps stats on
                    if [[ $mode == nostats ]] && ((b1 > b0)); then leaked=1; fi
                fi
                if [[ -n "$u" ]]; then echo "$u" >>"$TMP/ab-$mode-$w"; else log "round $((r + 1)): $w ($mode) gave no number"; fi
                line+=" $w ${u:-?}"
            done
            stats_leaks=$((stats_leaks + leaked))
            if [[ $mode != off ]]; then stop_agent; fi
        done
        log "round $((r + 1))/$ROUNDS:$line, load $(loadavg)"
    done
    h1=$(host_cpu)
    read -r busy steal < <(host_busy_pct "$h0" "$h1")
    echo "### End-to-end A/B: ${wls[*]}; agent off vs on$ab_note, $ROUNDS interleaved rounds, pinned to CPU $PIPE_CPU"
    echo
    declare -A units=()
    for w in "${wls[@]}"; do units[$w]="${WL_UNIT[$w]}"; done
    # table on stdout, one "workload|summary" line a workload on fd 3
    "$PY" - "$TMP" "$NCPU" "$HZ" "${modes[*]}" "${wls[*]}" "$(for w in "${wls[@]}"; do printf '%s\t' "${units[$w]}"; done)" 3>"$TMP/ab-summary" <<'PY'
import os, statistics, sys
tmp, ncpu, hz, modes, wls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(), sys.argv[5].split()
units = dict(zip(wls, sys.argv[6].split("\t")))
out3 = os.fdopen(3, "w")
def nums(path):
    return [float(x) for x in open(path).read().split()]
def rng(xs, f):
    return f"{f % statistics.median(xs)} ({f % min(xs)}–{f % max(xs)})" if xs else "n/a"
ns = "nostats" in modes
head = "| workload | unit | off: median (min–max) | on: median (min–max) | on/off |"
head += " on, bpf_stats=false: median | its ratio |" if ns else ""
head += " agent CPU, % of host (on) | agent BPF, % of host (on) | agent RSS MiB (on): median / max |"
print(head)
print("|" + "---|" * (head.count("|") - 1))
for w in wls:
    f = "%.2f" if w == "syscall" else "%.3f"
    v = {m: nums(f"{tmp}/ab-{m}-{w}") for m in modes}
    med = {m: statistics.median(v[m]) if v[m] else None for m in modes}
    ratio = lambda m: f"{med[m] / med['off']:.3f}" if med[m] and med["off"] else "n/a"
    # agent cost summed over every "on" run of this workload: Δwall Δticks Δbpf_ns rss Δschedstat_ns
    a = [[float(x) for x in l.split()] for l in open(f"{tmp}/agent-on-{w}") if l.strip()]
    wall = sum(x[0] for x in a) / 1e9
    # schedstat has ns resolution (a 10 ms tick is most of a short run's agent CPU); ticks for reference
    cpu = (f"{100.0 * sum(max(0, x[4]) for x in a) / 1e9 / (wall * ncpu):.3f} % "
           f"(ticks: {100.0 * sum(x[1] for x in a) / hz / (wall * ncpu):.2f} %)") if wall else "n/a"
    bpf = f"{100.0 * sum(x[2] for x in a) / 1e9 / (wall * ncpu):.3f} %" if wall else "n/a"
    rss = [x[3] / 1024 for x in a]
    rss_s = f"{statistics.median(rss):.1f} / {max(rss):.1f}" if rss else "n/a"
    row = f"| {w} | {units[w]} | {rng(v['off'], f)} | {rng(v['on'], f)} | {ratio('on')} |"
    if ns:
        row += f" {f % med['nostats'] if med['nostats'] else 'n/a'} | {ratio('nostats')} |"
    row += f" {cpu} | {bpf} | {rss_s} |"
    print(row)
    extra = ""
    if w == "ctx" and med["on"] and med["off"]:
        extra = f" ({(med['on'] - med['off']) * 1000 / 2:.0f} ns per context switch)"
    summ = f"off {f % med['off'] if med['off'] else 'n/a'}, on {f % med['on'] if med['on'] else 'n/a'} {units[w]}, ratio {ratio('on')}{extra}; agent CPU {cpu}, BPF {bpf} of host"
    if ns and med["nostats"]:
        summ += f"; with bpf_stats=false ratio {ratio('nostats')}"
    out3.write(f"{w}|{summ}\n")
print()
for w in wls:
    print(f"* runs of {w}: " + "; ".join(f"{m} " + " ".join(open(f"{tmp}/ab-{m}-{w}").read().split()) for m in modes))
PY
    echo
    for w in "${wls[@]}"; do echo "* $w: ${WL_DESC[$w]}"; done
    echo
    leak=""
    [[ " ${modes[*]} " == *" nostats "* ]] &&
        leak="bpf_stats was on anyway (someone else held it) in $stats_leaks of $ROUNDS bpf_stats=false rounds;"
    echo "agent CPU = Δ(Σ /proc/PID/task/*/schedstat; utime+stime ticks in brackets) and agent BPF = Δ(Σ run_time_ns of its programs, bpftool) over the workload's runs with the agent on, ÷ (wall × $NCPU CPUs);" \
        "$leak host busy/steal $busy % / $steal %; other on_* programs loaded (max): $foreign_max; host busy before: $quiet %; load before: $load_before, after: $(loadavg)"
    echo
    while IFS='|' read -r w text; do SUMMARY[ab_$w]=$text; done <"$TMP/ab-summary"
    if [[ -n "$LOOP_DEV" ]]; then losetup -d "$LOOP_DEV" && LOOP_DEV=""; fi
fi

# ---- 5. overhead at a steady context-switch rate ----------------------------------------------------
if has rate; then
    # Two arms when the build has the sampler: the shipped config (sampler on) and the raw cost
    # of every default probe at full rate (sampler off).
    rate_arms=(shipped)
    if grep -q '^\[sampler\]' "$CONFIG"; then
        rate_arms+=(nosampler)
        cp "$CONFIG" "$TMP/nosampler.toml"
        "$PY" "$TOOLS" set-config "$TMP/nosampler.toml" sampler enabled=false
    fi
    for arm in "${rate_arms[@]}"; do
        quiet=$(wait_quiet)
        log "rate ($arm): $RATE_CS context switches/s (paced perf bench sched pipe on CPU $PIPE_CPU), ${RATE_WARM}s warm-up, ${RATE_SECS}s window"
        load_before=$(loadavg)
        bpf_stats_on # run time of the agent's programs is counted whatever agent.bpf_stats says
        [[ $arm == nosampler ]] && AGENT_CONFIG="$TMP/nosampler.toml"
        start_agent
        AGENT_CONFIG=""
        wait_ready
        sleep "$SETTLE_SECS"
        if [[ $arm == nosampler && $(metric huatuo_bamai_overhead_ratio) != n/a ]]; then
            log "warning: sampler.enabled = false, yet the agent exports huatuo_bamai_overhead_ratio"
        fi
        "$PY" "$TOOLS" pace-pipe "$RATE_CS" "$((RATE_WARM + RATE_SECS + 2))" "$PIPE_CPU" >"$TMP/pace" &
        pace_pid=$!
        track "$pace_pid"
        in_bg sleep "$RATE_WARM"
        in_bg "$PY" "$TOOLS" monitor "$AGENT_PID" "$AGENT_PORT" "$RATE_SECS" "$TMP/rate-$arm.jsonl"
        wait "$pace_pid" || die "pace-pipe failed"
        bpf_stats_restore
        stop_agent
        label="all default probes, shipped config"
        [[ $arm == nosampler ]] && label="all default probes, sampler.enabled = false"
        echo "### Overhead at ~$RATE_CS context switches/s ($label, ${RATE_SECS}s window)"
        echo
        "$PY" "$TOOLS" report-rate "$TMP/rate-$arm.jsonl" "$NCPU" >"$TMP/rate.out"
        grep -v '^SUMMARY ' "$TMP/rate.out"
        echo
        echo "load: perf bench sched pipe pinned to CPU $PIPE_CPU, stopped and continued every 2 ms so the host's /proc/stat ctxt rate averages $RATE_CS/s ($(cat "$TMP/pace") achieved over the whole run);" \
            "agent total = (Δ agent utime+stime + Δ Σ run_time_ns of its BPF programs) ÷ (wall × $NCPU CPUs), sampled every second (one /metrics scrape a second included);" \
            "host busy before: $quiet %; load before: $load_before, after: $(loadavg)"
        echo
        read -r _ cs tot own < <(grep '^SUMMARY ' "$TMP/rate.out")
        [[ $own == n/a ]] || own="$(calc "$own") %"
        SUMMARY[rate_$arm]="$tot % of host at $cs switches/s (agent's own overhead_ratio: $own)"
    done
fi

# ---- 6. event storm with the adaptive sampler -------------------------------------------------------
if has storm; then
    quiet=$(wait_quiet)
    AGENT_CONFIG="$TMP/storm.toml"
    cp "$CONFIG" "$AGENT_CONFIG"
    if grep -q '^\[sampler\]' "$AGENT_CONFIG"; then
        "$PY" "$TOOLS" set-config "$AGENT_CONFIG" sampler enabled=true budget_ratio="$STORM_BUDGET"
        sampler="sampler on, budget_ratio = $STORM_BUDGET"
    else
        sampler="config has no [sampler] section (sampler not in this build): agent runs without it"
    fi
    "$BIN" --config "$AGENT_CONFIG" check-config >/dev/null 2>"$TMP/check.err" || { cat "$TMP/check.err" >&2; die "storm config rejected"; }
    log "storm: ${STORM_SECS}s UDP flood to a closed port on CPU $PIPE_CPU; $sampler; sampled every second from ${STORM_PRE}s before to ${STORM_POST}s after"
    load_before=$(loadavg)
    bpf_stats_on
    start_agent
    AGENT_CONFIG=""
    wait_ready
    sleep "$SETTLE_SECS"
    "$PY" "$TOOLS" monitor "$AGENT_PID" "$AGENT_PORT" "$((STORM_PRE + STORM_SECS + STORM_POST))" "$TMP/storm.jsonl" &
    mon_pid=$!
    track "$mon_pid"
    in_bg sleep "$STORM_PRE"
    s0=$(now_ns)
    in_bg taskset -c "$PIPE_CPU" "$PY" "$TOOLS" udp-flood --secs "$STORM_SECS" >"$TMP/flood"
    s1=$(now_ns)
    wait "$mon_pid" || die "monitor failed"
    dw_total=$(metric huatuo_bamai_dropwatch_total)
    dw_supp=$(metric huatuo_bamai_dropwatch_suppressed_total)
    bpf_stats_restore
    stop_agent
    read -r sent per_dgram <"$TMP/flood" || die "the UDP flood reported nothing"
    echo "### Event storm: UDP to a closed port for ${STORM_SECS}s ($sampler)"
    echo
    "$PY" "$TOOLS" report-storm "$TMP/storm.jsonl" "$NCPU" "$STORM_BUDGET" "$s0" "$s1" "$STORM_CSV" >"$TMP/storm.out"
    grep -v '^SUMMARY ' "$TMP/storm.out"
    echo "flood: one python sender pinned to CPU $PIPE_CPU, $sent datagrams ($(calc "1 / $per_dgram * 1e6" .0f)/s, every one a NO_SOCKET drop);" \
        "huatuo_bamai_dropwatch_total $dw_total, huatuo_bamai_dropwatch_suppressed_total $dw_supp at the end;" \
        "agent total = (Δ agent CPU (schedstat) + Δ Σ run_time_ns of its BPF programs) ÷ (1 s × $NCPU CPUs), t relative to the flood's start;" \
        "host busy before: $quiet %; load before: $load_before, after: $(loadavg)${STORM_CSV:+; samples in $STORM_CSV}"
    echo
    read -r _ first settled amed amax rss0 rss1 slope < <(grep '^SUMMARY ' "$TMP/storm.out")
    fmt() { if [[ $1 == n/a ]]; then echo "n/a"; else echo "$(calc "$1") %"; fi; }
    [[ $first == never ]] || first="+$first s"
    [[ $settled == never ]] || settled="+$settled s"
    SUMMARY[storm_time]="first under budget: $first; under for good from: $settled (budget $(calc "100 * $STORM_BUDGET" .2f) % of host)"
    SUMMARY[storm_after]="median $(fmt "$amed"), max $(fmt "$amax") of host"
    SUMMARY[storm_rss]="$rss0 → $rss1 MiB over ${STORM_SECS}s, second half trend $slope MiB/min"
fi

# ---- 7. event probes' hot paths: a lossy TCP transfer, agent off vs on (tcp_retransmit enabled) ------
if has events; then
    quiet=$(wait_quiet)
    LOSSY_NS="huatuo-bench-$$"
    ip netns add "$LOSSY_NS"
    ip -n "$LOSSY_NS" link set lo mtu 1500 up
    lport=$(free_port)
    ip netns exec "$LOSSY_NS" iptables -A INPUT -p tcp --dport "$lport" -m statistic --mode nth --every "$LOSSY_EVERY" --packet 1 -j DROP
    lossy() { ip netns exec "$LOSSY_NS" taskset -c "$PIPE_CPU" "$PY" "$TOOLS" tcp-bulk "$LOSSY_MB" "$lport" || true; }
    log "events: $ROUNDS interleaved rounds of a $LOSSY_MB MiB transfer with every ${LOSSY_EVERY}th packet dropped, agent off / on (tcp_retransmit enabled)"
    load_before=$(loadavg)
    : >"$TMP/ev-off"; : >"$TMP/ev-on"; : >"$TMP/ev-progs"
    lossy >/dev/null # warm-up
    for ((r = 0; r < ROUNDS; r++)); do
        order=(off on)
        ((r % 2)) && order=(on off)
        for mode in "${order[@]}"; do
            if [[ $mode == off ]]; then
                lossy >>"$TMP/ev-off"
                continue
            fi
            start_agent HUATUO_PROBES__TCP_RETRANSMIT__ENABLED=true
            wait_ready
            sleep "$SETTLE_SECS"
            p0=$("$PY" "$TOOLS" prog-stats "$AGENT_PID")
            t0=$(now_ns)
            lossy >>"$TMP/ev-on"
            t1=$(now_ns)
            p1=$("$PY" "$TOOLS" prog-stats "$AGENT_PID")
            docs=$(metric huatuo_bamai_tcp_retransmit_total)
            echo "$p0|$p1|$((t1 - t0))|$docs" >>"$TMP/ev-progs"
            stop_agent
        done
        log "round $((r + 1))/$ROUNDS: off $(tail -1 "$TMP/ev-off"), on $(tail -1 "$TMP/ev-on")"
    done
    echo "### Event probes' hot paths: $LOSSY_MB MiB over TCP with every ${LOSSY_EVERY}th packet dropped, agent off vs on (tcp_retransmit enabled), $ROUNDS interleaved rounds"
    echo
    "$PY" - "$TMP" "$NCPU" 3>"$TMP/ev-summary" <<'PY'
import json, os, statistics, sys
tmp, ncpu = sys.argv[1], int(sys.argv[2])
out3 = os.fdopen(3, "w")
def col(path, i):
    return [float(l.split()[i]) for l in open(path) if len(l.split()) > i]
off, on = col(f"{tmp}/ev-off", 0), col(f"{tmp}/ev-on", 0)
rt_off, rt_on = col(f"{tmp}/ev-off", 1), col(f"{tmp}/ev-on", 1)
med = lambda xs: statistics.median(xs) if xs else float("nan")
rng = lambda xs: f"{med(xs):.0f} ({min(xs):.0f}–{max(xs):.0f})" if xs else "n/a"
print("| measure | agent off | agent on (tcp_retransmit enabled) | on/off |")
print("|---|---|---|---|")
ratio = med(on) / med(off) if off and on else float("nan")
print(f"| transfer, µs per MiB: median (min–max) | {rng(off)} | {rng(on)} | {ratio:.3f} |")
print(f"| RetransSegs per transfer (median) | {med(rt_off):.0f} | {med(rt_on):.0f} | |")
print()
acc, wall, counted = {}, 0, []
for line in open(f"{tmp}/ev-progs"):
    p0, p1, dt, docs = line.strip().split("|")
    p0, p1 = json.loads(p0), json.loads(p1)
    wall += int(dt)
    counted.append(docs)
    for name, (ns, cnt) in p1.items():
        b = p0.get(name, [0, 0])
        a = acc.setdefault(name, [0, 0])
        a[0] += ns - b[0]
        a[1] += cnt - b[1]
print("| program (agent on, during the transfers) | runs/s of the window (the tool's start-up included) | ns/run | CPU, % of host |")
print("|---|---|---|---|")
show = ["on_tcp_retransmit_skb", "on_tcp_retransmit_synack", "on_drop_flow", "on_kfree_skb",
        "on_hrtimer_expire_entry", "on_tick_stop"]
total_ns = sum(v[0] for v in acc.values())
for name in show + sorted(set(acc) - set(show)):
    if name not in acc:
        continue
    ns, cnt = acc[name]
    if name not in show and ns < total_ns * 0.05:
        continue
    per = f"{ns / cnt:.0f}" if cnt else "n/a"
    print(f"| {name} | {cnt / (wall / 1e9):,.0f} | {per} | {100.0 * ns / (wall * ncpu):.3f} % |")
print(f"| **all agent programs** | {sum(v[1] for v in acc.values()) / (wall / 1e9):,.0f} | | {100.0 * total_ns / (wall * ncpu):.3f} % |")
def cost(name):
    ns, cnt = acc.get(name, [0, 0])
    return f"{ns / cnt:.0f} ns" if cnt else "n/a"
out3.write(f"lossy|on/off {ratio:.3f}; on_tcp_retransmit_skb {cost('on_tcp_retransmit_skb')}, on_drop_flow {cost('on_drop_flow')}, on_hrtimer_expire_entry {cost('on_hrtimer_expire_entry')} per run\n")
PY
    echo
    echo "on_kfree_skb is dropwatch's (on by default), on_drop_flow tcp_retransmit's own kfree_skb program (drop_location), on_hrtimer_expire_entry/on_tick_stop sched_tick's;" \
        "runs and ns from bpf_stats (Δ run_cnt / run_time_ns over the transfers); host busy before: $quiet %; load before: $load_before, after: $(loadavg)"
    echo
    SUMMARY[events]=$(cut -d'|' -f2 "$TMP/ev-summary")
    ip netns del "$LOSSY_NS"
    LOSSY_NS=""
fi

# ---- 8. continuous profiling vs perf record, side by side on one workload ----------------------------
PROF_FAILED=""
if has profiling; then
    quiet=$(wait_quiet)
    IFS=, read -r -a prof_arms <<<"$PROF_ARMS"
    "$PY" "$TOOLS" gen-stacks "$TMP/stacks.c"
    gcc -O1 -g0 -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls \
        -o "$TMP/stacks" "$TMP/stacks.c" || die "profiling: could not build the workload"
    for arm in off hz19 hz99; do
        cp "$CONFIG" "$TMP/prof-$arm.toml"
        case $arm in
            off) set -- continuous=false ;;
            hz19) set -- continuous=true frequency_hz=19 ;;
            hz99) set -- continuous=true frequency_hz=99 ;;
        esac
        "$PY" "$TOOLS" set-config "$TMP/prof-$arm.toml" probes.profile enabled=true window_secs="$PROF_WINDOW" "$@"
        # The adaptive sampler would throttle the profile probe (1 sample in N) when the host's
        # load makes the agent's total go over its budget: measure the frequency asked for.
        if [[ $PROF_SAMPLER != shipped ]] && grep -q '^\[sampler\]' "$TMP/prof-$arm.toml"; then
            "$PY" "$TOOLS" set-config "$TMP/prof-$arm.toml" sampler enabled=false
        fi
        "$BIN" --config "$TMP/prof-$arm.toml" check-config >/dev/null 2>"$TMP/check.err" || { cat "$TMP/check.err" >&2; die "profiling: config of $arm rejected"; }
    done
    log "profiling: runs ${PROF_ARMS}; $PROF_PROCS workload processes, ${PROF_WARM}s warm-up, ${PROF_SECS}s window each"
    load_before=$(loadavg)
    bpf_stats_on
    # prof_workload SECS: PROF_PROCS workload processes in the background; their calls/s go to $TMP/prof-$arm.work
    prof_workload() {
        : >"$TMP/prof-$arm.work"
        local i
        WORK_PIDS=()
        for ((i = 0; i < PROF_PROCS; i++)); do
            "$TMP/stacks" "$1" "$PROF_SPIN" >>"$TMP/prof-$arm.work" &
            WORK_PIDS+=($!)
            track "$!"
        done
    }
    for arm in "${prof_arms[@]}"; do
        busy_before=$(wait_quiet)
        total_secs=$((PROF_WARM + PROF_SECS + 1))
        pid="" port=0
        case $arm in
            off | hz19 | hz99)
                AGENT_CONFIG="$TMP/prof-$arm.toml"
                start_agent
                AGENT_CONFIG=""
                wait_ready
                pid=$AGENT_PID port=$AGENT_PORT
                ;;
            perf)
                perf record -F 99 -a -g -o "$TMP/perf.data" -- sleep "$((total_secs + 1))" </dev/null >"$TMP/perf.log" 2>&1 &
                perf_wrapper=$!
                track "$perf_wrapper"
                sleep 1
                pid=$perf_wrapper # perf record itself (it forks only the `sleep` workload)
                ;;
        esac
        prof_workload "$total_secs"
        in_bg sleep "$PROF_WARM"
        if [[ -n "$pid" ]]; then
            in_bg "$PY" "$TOOLS" monitor "$pid" "$port" "$PROF_SECS" "$TMP/prof-$arm.jsonl"
        else
            in_bg sleep "$PROF_SECS"
        fi
        # What the run saw: distinct stacks per window, read back from the agent (or perf.data).
        case $arm in
            none) echo '{"note": "–"}' >"$TMP/prof-$arm.json" ;;
            off) echo "{\"note\": \"no windows (continuous off)\", $(awk '/^(VmHWM|RssAnon|RssFile):/{printf "\"%s\": %s, ", $1, $2}' /proc/"$pid"/status | sed 's/:"/"/g; s/, $//')}" >"$TMP/prof-$arm.json" ;;
            hz19 | hz99)
                deadline=$(($(date +%s) + PROF_WINDOW + 30))
                until curl -sf --max-time 10 "http://127.0.0.1:$port/v1/profile?window=last&type=cpu&format=folded" >"$TMP/prof-$arm.folded"; do
                    (($(date +%s) < deadline)) || { tail -20 "$TMP/agent.log" >&2; die "profiling: no continuous window from the agent ($arm)"; }
                    sleep 1
                done
                "$PY" - "$TMP" "$arm" "$port" "$pid" <<'PY' >"$TMP/prof-$arm.json"
import json, re, sys, urllib.request
tmp, arm, port, pid = sys.argv[1:5]
lines = [l for l in open(f"{tmp}/prof-{arm}.folded") if l.strip()]
samples = sum(int(l.rsplit(" ", 1)[1]) for l in lines)
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
m = {}
for l in body.splitlines():
    if l.startswith(("huatuo_bamai_profile_", "huatuo_bamai_overhead_ratio ")):
        k, v = l.rsplit(" ", 1)
        m[k] = v
st = {l.split(":")[0]: int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith(("VmHWM:", "RssAnon:", "RssFile:"))}
# distinct stacks of the newest window; earlier windows are counted by huatuo_bamai_profile_windows_total
print(json.dumps({"windows": [len(lines)], "window_samples": samples, "metrics": m, **st}))
PY
                ;;
        esac
        for p in "${WORK_PIDS[@]}"; do wait "$p" || die "profiling: a workload process failed"; done
        case $arm in
            off | hz19 | hz99) stop_agent ;;
            perf)
                kill -INT "$perf_wrapper" 2>/dev/null || true
                wait "$perf_wrapper" 2>/dev/null || true
                "$PY" "$TOOLS" perf-stacks "$TMP/perf.data" "$PROF_WINDOW" >"$TMP/prof-perf.json" || echo '{"note": "perf script failed"}' >"$TMP/prof-perf.json"
                ;;
        esac
        log "profiling $arm: workload $(paste -sd' ' "$TMP/prof-$arm.work") calls/s; host busy before $busy_before %"
    done
    bpf_stats_restore
    echo "### Continuous profiling vs perf record: $PROF_PROCS processes of a workload with $((8 * 8 * 16)) distinct call paths, ${PROF_SECS}s window per run"
    echo
    "$PY" "$TOOLS" report-profiling "$TMP" "$NCPU" "${prof_arms[@]}" >"$TMP/prof.out"
    grep -v '^SUMMARY ' "$TMP/prof.out"
    echo "workload: \`benches/overhead_tools.py gen-stacks\` (8 × 8 × 16 functions, one random path per call, each leaf spins $PROF_SPIN loop iterations then calls getppid or writes 8 bytes to /dev/null), built with frame pointers, $PROF_PROCS unpinned processes, started after the agent and measured from +${PROF_WARM}s;" \
        "host CPU = (Δ utime+stime of the agent or of \`perf record\`, schedstat in brackets + Δ Σ run_time_ns of the BPF programs it holds) ÷ (wall × $NCPU CPUs), sampled every second (a /metrics scrape a second included for the agent);" \
        "\`perf record\`'s in-kernel sampling and unwinding are charged to the interrupted tasks, not to perf: the workload's calls/s against the baseline shows that part for both;" \
        "distinct stacks: symbolised folded lines (comm + frames, pids merged) of the newest ${PROF_WINDOW}s window (\`GET /v1/profile?window=last&format=folded\`), for perf distinct (comm, addresses) per ${PROF_WINDOW}s of \`perf script\`, whole windows only;" \
        "probes.profile.window_secs = $PROF_WINDOW, every other key as shipped; load before: $load_before, after: $(loadavg)"
    echo
    sumjson=$(sed -n 's/^SUMMARY //p' "$TMP/prof.out")
    checks=$("$PY" - "$sumjson" "$PROF_MAX_19" "$PROF_MAX_99" "$PROF_MAX_RSS" "$PROF_MIN_STACKS" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); max19, max99, max_rss, min_st = (float(x) for x in sys.argv[2:6])
out = []
def check(name, ok, text):
    out.append(f"{'ok' if ok else 'FAIL'}|{name}|{text}")
for arm, limit in (("hz19", max19), ("hz99", max99)):
    r = s.get(arm)
    if r and r["added"] is not None:
        check(f"{arm} adds ≤ {limit} % of host CPU", r["added"] <= limit, f"{r['added']:+.3f} % (total {r['total']:.3f} %)")
for arm, r in s.items():
    if arm != "perf":
        mb = r["rss_max"] * 1048576 / 1e6
        anon = f"; RssAnon at the end {r['anon_end'] * 1024 / 1e6:.1f} MB" if r.get("anon_end") else ""
        check(f"{arm} RSS ≤ {max_rss:g} MB", mb <= max_rss, f"{mb:.1f} MB ({r['rss_max']:.1f} MiB) max VmRSS in the window{anon}")
if "hz99" in s:
    st = s["hz99"]["stacks_min"]
    check(f"hz99 ≥ {min_st:g} distinct stacks per window", st is not None and st >= min_st, f"{st}")
print("\n".join(out))
PY
)
    echo "| check | result | |"
    echo "|---|---|---|"
    while IFS='|' read -r verdict name text; do
        echo "| $name | $text | $verdict |"
        [[ $verdict == ok ]] || PROF_FAILED+="${PROF_FAILED:+; }$name: $text"
    done <<<"$checks"
    echo
    SUMMARY[profiling]=$(echo "$checks" | awk -F'|' '{printf "%s%s: %s (%s)", (NR > 1 ? "; " : ""), $2, $3, $1}')
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
for w in ctx syscall net blockio storm; do
    [[ -n "${SUMMARY[ab_$w]:-}" ]] && echo "| A/B $w: ${WL_DESC[$w]} | report | ${SUMMARY[ab_$w]} |"
done
[[ -n "${SUMMARY[rate_shipped]:-}" ]] && echo "| all default probes at ~$RATE_CS context switches/s, shipped config | ≤ 0.5 % of host CPU | ${SUMMARY[rate_shipped]} |"
[[ -n "${SUMMARY[rate_nosampler]:-}" ]] && echo "| the same with the sampler off | report | ${SUMMARY[rate_nosampler]} |"
[[ -n "${SUMMARY[storm_time]:-}" ]] && echo "| event storm: back under the sampler budget | within 10 s, and stays | ${SUMMARY[storm_time]} |"
[[ -n "${SUMMARY[storm_after]:-}" ]] && echo "| event storm: overhead after that | ≤ budget | ${SUMMARY[storm_after]} |"
[[ -n "${SUMMARY[storm_rss]:-}" ]] && echo "| event storm: RSS | flat over a 10-minute storm | ${SUMMARY[storm_rss]} |"
[[ -n "${SUMMARY[events]:-}" ]] && echo "| event probes: $LOSSY_MB MiB lossy TCP transfer, tcp_retransmit on | report | ${SUMMARY[events]} |"
[[ -n "${SUMMARY[profiling]:-}" ]] && echo "| continuous profiling vs perf record | 19 Hz ≤ $PROF_MAX_19 %, 99 Hz ≤ $PROF_MAX_99 % of host added; RSS ≤ $PROF_MAX_RSS MB; ≥ $PROF_MIN_STACKS stacks/window | ${SUMMARY[profiling]} |"
echo
echo "load average at start: $START_LOAD, at end: $(loadavg); finished $(date -u '+%H:%M UTC')"
if [[ -n "$PROF_FAILED" ]]; then
    echo "overhead.sh: profiling targets failed: $PROF_FAILED" >&2
    exit 1
fi
