# shellcheck shell=bash
# Section 6. event storm with the adaptive sampler
# Sourced by benches/overhead.sh (its knobs, tools and helpers) when SECTIONS has 'storm'.

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
