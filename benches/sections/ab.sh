# shellcheck shell=bash
# Section 4. end-to-end A/B: five fixed workloads, agent off and on interleaved
# Sourced by benches/overhead.sh (its knobs, tools and helpers) when SECTIONS has 'ab'.

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
