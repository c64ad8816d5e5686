# shellcheck shell=bash
# Section 1. start-up time to /readyz
# Sourced by benches/overhead.sh (its knobs, tools and helpers) when SECTIONS has 'startup'.

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
