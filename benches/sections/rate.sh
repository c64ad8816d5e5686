# shellcheck shell=bash
# Section 5. overhead at a steady context-switch rate
# Sourced by benches/overhead.sh (its knobs, tools and helpers) when SECTIONS has 'rate'.

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
