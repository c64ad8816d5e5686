# shellcheck shell=bash
# Section 8. continuous profiling vs perf record, side by side on one workload
# Sourced by benches/overhead.sh (its knobs, tools and helpers) when SECTIONS has 'profiling'.

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
