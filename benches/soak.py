#!/usr/bin/env python3
"""Soak: the agent (shipped config, every default probe) under a mixed load for SOAK_SECS
(600), its RSS and open fds sampled every SAMPLE_SECS (10). Reports both series' least-squares
slope over the time after WARM_SECS (60) and fails when either is not flat:
RSS growth over the window > max(2 MiB, 3 % of its mean), or fd growth > 2.

Load, all at once: TCP connects to a closed port (dropwatch documents, rate-limited), UDP to a
closed port, short-lived processes (fork/exec/exit: containers' task scans, runqlat), 4 KiB
fsync'd writes (block IO), a scrape of /metrics every second and of /v1/events every 5 s.

Usage (root): benches/soak.py [AGENT_BIN] [CONFIG]; `make soak` runs it with the release build.
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overhead_tools import rss_kib  # noqa: E402

SOAK_SECS = int(os.environ.get("SOAK_SECS", "600"))
SAMPLE_SECS = int(os.environ.get("SAMPLE_SECS", "10"))
WARM_SECS = int(os.environ.get("WARM_SECS", "60"))
PORT = int(os.environ.get("AGENT_PORT", "29704"))


def closed_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope(points):
    """Least-squares slope of (t, v) points, per second."""
    ts = [t for t, _ in points]
    vs = [v for _, v in points]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def every(period, stop, work):
    def run():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                work()
            except OSError:
                pass
            stop.wait(max(0.0, period - (time.monotonic() - t0)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def main():
    agent_bin = sys.argv[1] if len(sys.argv) > 1 else "target/release/huatuo-bamai"
    config = sys.argv[2] if len(sys.argv) > 2 else "config/huatuo-bamai.toml"
    work = tempfile.mkdtemp(prefix="huatuo-soak-")
    env = dict(os.environ)
    env.update(
        {
            "HUATUO_HTTP__LISTEN": f"127.0.0.1:{PORT}",
            "HUATUO_CONTROL__SOCKET": f"{work}/control.sock",
            "HUATUO_EVENTS__STORE_PATH": f"{work}/events.redb",
        }
    )
    log = open(f"{work}/agent.log", "w")
    agent = subprocess.Popen([agent_bin, "--config", config], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{PORT}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"{base}/readyz", timeout=1).status == 204:
                break
        except OSError:
            time.sleep(0.2)
    else:
        agent.kill()
        sys.exit(f"soak: the agent did not become ready (log: {work}/agent.log)")

    stop = threading.Event()
    tcp_port, udp_port = closed_port(socket.SOCK_STREAM), closed_port(socket.SOCK_DGRAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    scrapes = {"metrics": 0, "events": 0, "failed": 0}

    def connect_closed():
        for _ in range(20):
            try:
                socket.create_connection(("127.0.0.1", tcp_port), timeout=0.2).close()
            except OSError:
                pass

    def scrape(path, key):
        def run():
            try:
                urllib.request.urlopen(f"{base}{path}", timeout=5).read()
                scrapes[key] += 1
            except OSError:
                scrapes["failed"] += 1

        return run

    io_file = open(f"{work}/io.bin", "wb")

    def write_sync():
        io_file.seek(0)
        io_file.write(os.urandom(4096))
        io_file.flush()
        os.fsync(io_file.fileno())

    threads = [
        every(0.1, stop, connect_closed),  # ~200 TCP drops/s
        every(0.01, stop, lambda: [udp.sendto(b"x", ("127.0.0.1", udp_port)) for _ in range(10)]),
        every(0.05, stop, lambda: subprocess.run(["/bin/true"], check=False)),  # 20 processes/s
        every(0.02, stop, write_sync),  # 50 fsync'd writes/s
        every(1.0, stop, scrape("/metrics", "metrics")),
        every(5.0, stop, scrape("/v1/events?limit=100", "events")),
    ]

    samples = []
    t0 = time.monotonic()
    print(f"soak: {SOAK_SECS} s, sampling every {SAMPLE_SECS} s (agent pid {agent.pid}, {work})")
    while time.monotonic() - t0 < SOAK_SECS:
        if agent.poll() is not None:
            sys.exit(f"soak: the agent exited ({agent.returncode}); log: {work}/agent.log")
        t = time.monotonic() - t0
        samples.append((t, rss_kib(agent.pid), fds(agent.pid)))
        time.sleep(SAMPLE_SECS)
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    agent.terminate()
    agent.wait(timeout=30)

    window = [s for s in samples if s[0] >= WARM_SECS] or samples
    span = window[-1][0] - window[0][0]
    rss_slope = slope([(t, r) for t, r, _ in window])  # KiB/s
    fd_slope = slope([(t, f) for t, _, f in window])
    rss_mean = statistics.fmean(r for _, r, _ in window)
    rss_growth = rss_slope * span
    fd_growth = fd_slope * span
    print("| t (s) | RSS (MiB) | fds |")
    print("|---:|---:|---:|")
    for t, r, f in samples[:: max(1, len(samples) // 12)] + [samples[-1]]:
        print(f"| {t:.0f} | {r / 1024:.1f} | {f} |")
    print()
    print(f"window {window[0][0]:.0f}-{window[-1][0]:.0f} s ({len(window)} samples):")
    print(
        f"  RSS mean {rss_mean / 1024:.1f} MiB, min {min(r for _, r, _ in window) / 1024:.1f}, "
        f"max {max(r for _, r, _ in window) / 1024:.1f}; slope {rss_slope * 60:.1f} KiB/min "
        f"= {rss_growth / 1024:+.2f} MiB over the window"
    )
    print(f"  fds {min(f for *_, f in window)}-{max(f for *_, f in window)}; slope {fd_slope * 60:.3f}/min = {fd_growth:+.1f} over the window")
    print(f"  scrapes: {scrapes['metrics']} /metrics, {scrapes['events']} /v1/events, {scrapes['failed']} failed")
    failures = []
    if rss_growth > max(2048, 0.03 * rss_mean):
        failures.append(f"RSS grew {rss_growth / 1024:.2f} MiB")
    if fd_growth > 2:
        failures.append(f"fds grew {fd_growth:.1f}")
    if scrapes["failed"]:
        failures.append(f"{scrapes['failed']} scrapes failed")
    if failures:
        sys.exit("soak: FAILED: " + "; ".join(failures))
    print("soak: flat")


if __name__ == "__main__":
    main()
