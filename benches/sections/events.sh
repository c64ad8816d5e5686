# shellcheck shell=bash
# Section 7. event probes' hot paths: a lossy TCP transfer, agent off vs on (tcp_retransmit enabled)
# Sourced by benches/overhead.sh (its knobs, tools and helpers) when SECTIONS has 'events'.

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
