# shellcheck shell=bash
# Section 2. idle RSS and CPU
# Sourced by benches/overhead.sh (its knobs, tools and helpers) when SECTIONS has 'idle'.

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
