# shellcheck shell=bash
# Section 3. per-hook cost with bpf_stats
# Sourced by benches/overhead.sh (its knobs, tools and helpers) when SECTIONS has 'hooks'.

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
