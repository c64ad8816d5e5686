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
# Sections (one file each in benches/sections/; a new one is a file there plus its name in
# SECTIONS below): startup, idle, hooks (bpf_stats per program), ab (five fixed workloads, agent off/on
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
    [[ -f "$ROOT/benches/sections/$s.sh" ]] ||
        die "unknown section '$s' ($(cd "$ROOT/benches/sections" && ls -- *.sh | sed 's/\.sh$//' | paste -sd, | sed 's/,/, /g'))"
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

# ---- sections: one file each under benches/sections/, run in the order of SECTIONS ---------------
PROF_FAILED=""  # the profiling section names each target it missed here
for s in ${SECTIONS//,/ }; do
    # shellcheck source=/dev/null
    source "$ROOT/benches/sections/$s.sh"
done

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
