#!/usr/bin/env bash
# Scrape benchmark: the agent over a fixture tree with N containers (default 500), procfs/cgroupfs
# collectors only. Reports /metrics latency (sequential and concurrent), body size, series count,
# agent CPU while idle-collecting and RSS. A benchmark, not a test: it prints numbers.
#   benches/scrape.sh            # N=500
#   N=1000 SKIP_BUILD=1 benches/scrape.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-500}
SEQ_SCRAPES=${SEQ_SCRAPES:-50}
PARALLEL=${PARALLEL:-8}
PER_CLIENT=${PER_CLIENT:-20}
IDLE_SECS=${IDLE_SECS:-30}
PORT=${PORT:-19871}
BIN=target/release/huatuo-bamai

[[ "${SKIP_BUILD:-0}" == 1 ]] || cargo build --release --quiet
WORK=$(mktemp -d)
AGENT_PID=""
cleanup() { [[ -n "$AGENT_PID" ]] && kill "$AGENT_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "# generating a cgroup v2 fixture tree with $N containers in $WORK" >&2
cp -a tests/fixtures/cgroup-v2 "$WORK/root"
python3 - "$WORK/root" "$N" <<'PY'
import os, shutil, sys
root, n = sys.argv[1], int(sys.argv[2])
cg = os.path.join(root, "sys/fs/cgroup/system.slice")
template = next(d for d in os.listdir(cg) if d.startswith("docker-"))
tdir = os.path.join(cg, template)
tpid = int(open(os.path.join(tdir, "cgroup.procs")).read().split()[0])
tproc = os.path.join(root, "proc", str(tpid))
for i in range(n):
    cid = f"{i:08x}" * 8
    pid = 100000 + 2 * i
    d = os.path.join(cg, f"docker-{cid}.scope")
    shutil.copytree(tdir, d)
    with open(os.path.join(d, "cgroup.procs"), "w") as f:
        f.write(f"{pid}\n{pid + 1}\n")
    for p in (pid, pid + 1):
        if os.path.isdir(tproc):
            shutil.copytree(tproc, os.path.join(root, "proc", str(p)), symlinks=True)
PY

cat > "$WORK/agent.toml" <<EOT
[agent]
procfs_root = "$WORK/root/proc"
sysfs_root = "$WORK/root/sys"
[http]
listen = "127.0.0.1:$PORT"
[control]
socket = "$WORK/control.sock"
[events]
store_path = "$WORK/events.redb"
[containers]
kubelet_url = ""
docker_socket = ""
[probes.softirq]
enabled = false
[probes.runqlat]
enabled = false
[probes.iolatency]
enabled = false
[probes.memory_reclaim]
enabled = false
EOT

"$BIN" --config "$WORK/agent.toml" 2>"$WORK/agent.log" &
AGENT_PID=$!
for _ in $(seq 1 200); do
    curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 0.05
done
for _ in $(seq 1 200); do
    count=$(curl -sf "127.0.0.1:$PORT/containers/json" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))' 2>/dev/null || echo 0)
    [[ "$count" -ge "$N" ]] && break
    sleep 0.1
done
echo "# containers discovered: $count" >&2
sleep 12 # two collector ticks (interval 5 s) so rate families exist

cpu_ticks() { awk '{print $14 + $15}' "/proc/$AGENT_PID/stat"; }
hz=$(getconf CLK_TCK)

body=$(curl -sf "127.0.0.1:$PORT/metrics")
bytes=${#body}
series=$(grep -vc '^#' <<<"$body")
container_series=$(grep -v '^#' <<<"$body" | grep -c 'container_name=' || true)

times=()
for _ in $(seq 1 "$SEQ_SCRAPES"); do
    times+=("$(curl -sf -o /dev/null -w '%{time_total}' "127.0.0.1:$PORT/metrics")")
done
seq_stats=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %.1f ms, p90 %.1f ms, max %.1f ms", a[int((NR+1)/2)]*1000, a[int(NR*0.9)]*1000, a[NR]*1000}')

start_ticks=$(cpu_ticks)
start=$(date +%s.%N)
for _ in $(seq 1 "$PARALLEL"); do
    ( for _ in $(seq 1 "$PER_CLIENT"); do curl -sf -o /dev/null -w '%{time_total}\n' "127.0.0.1:$PORT/metrics"; done ) >>"$WORK/par.txt" &
done
wait $(jobs -p | grep -v "^$AGENT_PID$") 2>/dev/null || true
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
par_ticks=$(( $(cpu_ticks) - start_ticks ))
par_stats=$(sort -n "$WORK/par.txt" | awk '{a[NR]=$1} END {printf "median %.1f ms, p90 %.1f ms, max %.1f ms over %d scrapes", a[int((NR+1)/2)]*1000, a[int(NR*0.9)]*1000, a[NR]*1000, NR}')
per_scrape_ms=$(echo "scale=2; $par_ticks * 1000 / $hz / ($PARALLEL * $PER_CLIENT)" | bc)

idle_start=$(cpu_ticks)
sleep "$IDLE_SECS"
idle_ticks=$(( $(cpu_ticks) - idle_start ))
idle_pct=$(echo "scale=3; $idle_ticks * 100 / $hz / $IDLE_SECS" | bc)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT_PID/status")

cat <<EOT

## Scrape benchmark: $N fixture containers ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs)
| measure | value |
|---|---|
| containers discovered | $count |
| /metrics body | $bytes bytes, $series series ($container_series with container labels) |
| sequential scrapes ($SEQ_SCRAPES) | $seq_stats |
| concurrent scrapes ($PARALLEL clients x $PER_CLIENT) | $par_stats in ${elapsed}s |
| agent CPU per scrape (concurrent run) | ${per_scrape_ms} ms |
| agent CPU collecting, no scrapes (${IDLE_SECS}s) | ${idle_pct}% of one CPU |
| agent RSS | $((rss_kb / 1024)) MiB |
EOT
