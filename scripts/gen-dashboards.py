#!/usr/bin/env python3
"""Generates huatuo-bamai's Grafana dashboards (deploy/grafana/dashboards/*.json).

One source for the three boards, so every panel has the same shape and the test
(tests/dashboards.rs) can run every query against a real Prometheus. Run `make dashboards`
after editing; the test fails when the JSON files differ from what this script writes.
"""
import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
HOST = 'host=~"$host",region=~"$region"'
CONT = 'host=~"$host",region=~"$region",container_host=~"$container"'
RATE = "$__rate_interval"


def panel(title, exprs, unit="short", kind="timeseries", legend="{{host}}", description=""):
    """A panel; `exprs` is a list of (expr, legend) or plain exprs (legend = `legend`)."""
    targets = []
    for i, e in enumerate(exprs):
        expr, leg = e if isinstance(e, tuple) else (e, legend)
        targets.append({"datasource": DS, "expr": expr, "legendFormat": leg, "refId": chr(65 + i)})
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": targets,
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def variable(name, query, label, multi=True):
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": multi,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard(uid, title, description, rows, container_var=False):
    panels, y = [], 0
    for r in rows:
        header, items = r[0], r[1:]
        panels.append({**row(header), "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "id": len(panels) + 1})
        y += 1
        for i, p in enumerate(items):
            p = dict(p, id=len(panels) + 1, gridPos={"h": 8, "w": 8, "x": (i % 3) * 8, "y": y + (i // 3) * 8})
            panels.append(p)
        y += ((len(items) + 2) // 3) * 8
    templating = [
        {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus",
         "current": {"text": "Prometheus", "value": "prometheus"}},
        variable("region", "label_values(huatuo_bamai_up, region)", "Region"),
        variable("host", 'label_values(huatuo_bamai_up{region=~"$region"}, host)', "Host"),
    ]
    if container_var:
        templating.append(variable(
            "container",
            'label_values(huatuo_bamai_cpu_util_container_total{host=~"$host"}, container_host)',
            "Container"))
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["huatuo-bamai"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": templating},
        "panels": panels,
    }


def hist_p(metric, q, sel, by="host"):
    return (f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{sel}}}[{RATE}])))",
            f"p{int(q * 100)} {{{{{by}}}}}")


HOST_BOARD = dashboard(
    "huatuo-bamai-host", "huatuo-bamai / Host",
    "Host view of huatuo-bamai: CPU, scheduling, PSI, memory and reclaim, network, block IO.",
    [
        ["CPU and scheduling",
         panel("CPU utilisation", [(f"huatuo_bamai_cpu_util_usr{{{HOST}}}", "usr {{host}}"),
                                   (f"huatuo_bamai_cpu_util_sys{{{HOST}}}", "sys {{host}}"),
                                   (f"huatuo_bamai_cpu_util_total{{{HOST}}}", "total {{host}}")], "percent"),
         panel("Load average", [(f"huatuo_bamai_loadavg_load1{{{HOST}}}", "1m {{host}}"),
                                (f"huatuo_bamai_loadavg_load5{{{HOST}}}", "5m {{host}}"),
                                (f"huatuo_bamai_loadavg_load15{{{HOST}}}", "15m {{host}}")]),
         panel("Run-queue latency", [hist_p("huatuo_bamai_runqlat_latency_seconds", 0.5, HOST),
                                     hist_p("huatuo_bamai_runqlat_latency_seconds", 0.99, HOST)], "s",
               description="Wakeup-to-run delay of every task (BPF, sched tracepoints)."),
         panel("Softirq latency", [hist_p("huatuo_bamai_softirq_latency_seconds", 0.99, HOST, "host, type")], "s",
               description="Raise-to-entry delay per softirq vector."),
         panel("Scheduler tick stalls", [f"rate(huatuo_bamai_sched_tick_total{{{HOST}}}[{RATE}])"], "ops",
               description="Ticks later than probes.sched_tick.threshold (interrupts off)."),
         panel("CPU pressure (PSI)", [(f"huatuo_bamai_pressure_cpu_some_avg10{{{HOST}}}", "some {{host}}")],
               "percentunit"),
         ],
        ["Memory",
         panel("Memory pressure (PSI)", [(f"huatuo_bamai_pressure_memory_some_avg10{{{HOST}}}", "some {{host}}"),
                                         (f"huatuo_bamai_pressure_memory_full_avg10{{{HOST}}}", "full {{host}}")],
               "percentunit"),
         panel("Free / file / anon pages", [
             (f"huatuo_bamai_memory_vmstat_nr_free_pages{{{HOST}}} * 4096", "free {{host}}"),
             (f"(huatuo_bamai_memory_vmstat_nr_active_file{{{HOST}}} + huatuo_bamai_memory_vmstat_nr_inactive_file{{{HOST}}}) * 4096", "file {{host}}"),
             (f"(huatuo_bamai_memory_vmstat_nr_active_anon{{{HOST}}} + huatuo_bamai_memory_vmstat_nr_inactive_anon{{{HOST}}}) * 4096", "anon {{host}}")],
               "bytes", description="Assumes 4 KiB pages."),
         panel("Reclaim scans", [(f"rate(huatuo_bamai_memory_vmstat_pgscan_kswapd{{{HOST}}}[{RATE}])", "kswapd {{host}}"),
                                 (f"rate(huatuo_bamai_memory_vmstat_pgscan_direct{{{HOST}}}[{RATE}])", "direct {{host}}")],
               "ops"),
         panel("Direct reclaim stalls (events)", [f"rate(huatuo_bamai_memory_reclaim_events_total{{{HOST}}}[{RATE}])"], "ops"),
         panel("Dirty / writeback pages", [(f"huatuo_bamai_memory_vmstat_nr_dirty{{{HOST}}}", "dirty {{host}}"),
                                           (f"huatuo_bamai_memory_vmstat_nr_writeback{{{HOST}}}", "writeback {{host}}")]),
         panel("Allocation stalls", [f"rate(huatuo_bamai_memory_vmstat_allocstall_normal{{{HOST}}}[{RATE}])"], "ops"),
         ],
        ["Network",
         panel("Receive / transmit", [
             (f"sum by (host) (rate(huatuo_bamai_netdev_receive_bytes_total{{{HOST}}}[{RATE}]))", "rx {{host}}"),
             (f"sum by (host) (rate(huatuo_bamai_netdev_transmit_bytes_total{{{HOST}}}[{RATE}]))", "tx {{host}}")],
               "Bps"),
         panel("TCP segments and retransmits", [
             (f"rate(huatuo_bamai_netstat_Tcp_InSegs{{{HOST}}}[{RATE}])", "in {{host}}"),
             (f"rate(huatuo_bamai_netstat_Tcp_OutSegs{{{HOST}}}[{RATE}])", "out {{host}}"),
             (f"rate(huatuo_bamai_netstat_Tcp_RetransSegs{{{HOST}}}[{RATE}])", "retrans {{host}}")], "ops"),
         panel("Packet drops (dropwatch)", [(f"sum by (host) (rate(huatuo_bamai_dropwatch_total{{{HOST}}}[{RATE}]))", "{{host}}")],
               "ops", description="kfree_skb drops the dropwatch probe saw (after its reason filter)."),
         panel("Sockets", [(f"huatuo_bamai_sockstat_sockets_used{{{HOST}}}", "used {{host}}"),
                           (f"huatuo_bamai_sockstat_TCP_inuse{{{HOST}}}", "tcp inuse {{host}}"),
                           (f"huatuo_bamai_sockstat_TCP_tw{{{HOST}}}", "tcp tw {{host}}")]),
         panel("Listen drops / overflows", [
             (f"rate(huatuo_bamai_netstat_TcpExt_ListenDrops{{{HOST}}}[{RATE}])", "drops {{host}}"),
             (f"rate(huatuo_bamai_netstat_TcpExt_ListenOverflows{{{HOST}}}[{RATE}])", "overflows {{host}}")], "ops"),
         panel("ARP entries", [f"huatuo_bamai_arp_entries{{{HOST}}}"]),
         ],
        ["Block IO",
         panel("IO pressure (PSI)", [(f"huatuo_bamai_pressure_io_some_avg10{{{HOST}}}", "some {{host}}"),
                                     (f"huatuo_bamai_pressure_io_full_avg10{{{HOST}}}", "full {{host}}")], "percentunit"),
         panel("Disk throughput", [
             (f"rate(huatuo_bamai_diskio_read_bytes_total{{{HOST}}}[{RATE}])", "read {{host}} {{device}}"),
             (f"rate(huatuo_bamai_diskio_written_bytes_total{{{HOST}}}[{RATE}])", "write {{host}} {{device}}")], "Bps"),
         panel("Device latency d2c / q2c p99", [
             hist_p("huatuo_bamai_iolatency_blkdisk_d2c_seconds", 0.99, HOST, "host, disk"),
             hist_p("huatuo_bamai_iolatency_blkdisk_q2c_seconds", 0.99, HOST, "host, disk")], "s",
               description="BPF block tracepoints: driver-to-completion and queue-to-completion."),
         ],
    ])

CONTAINER_BOARD = dashboard(
    "huatuo-bamai-container", "huatuo-bamai / Container",
    "Per-container view: CPU and throttling, run-queue waits, memory, network, sockets.",
    [
        ["CPU",
         panel("CPU of its quota", [(f"huatuo_bamai_cpu_util_container_total{{{CONT}}}", "{{container_name}}")], "percent"),
         panel("Cores allowed", [(f"huatuo_bamai_cpu_util_container_cores{{{CONT}}}", "{{container_name}}")]),
         panel("Throttled time", [(f"rate(huatuo_bamai_cpu_stat_container_throttled_time{{{CONT}}}[{RATE}]) / 1e9", "{{container_name}}")],
               "percentunit", description="Seconds throttled per second (CFS quota)."),
         panel("Run-queue waits by zone", [(f"sum by (container_name, zone) (rate(huatuo_bamai_runqlat_container_latency{{{CONT}}}[{RATE}]))",
                                            "{{container_name}} zone {{zone}}")], "ops",
               description="Zones 0-3 are upstream's latency buckets (runqlat probe)."),
         panel("Runnable / D-state tasks", [
             (f"huatuo_bamai_loadavg_container_nr_running{{{CONT}}}", "running {{container_name}}"),
             (f"huatuo_bamai_loadavg_container_nr_uninterruptible{{{CONT}}}", "D {{container_name}}")]),
         ],
        ["Memory and events",
         panel("Direct reclaim stalls", [(f"huatuo_bamai_memory_reclaim_container_directstall{{{CONT}}}", "{{container_name}}")]),
         panel("Anon / file memory", [
             (f"huatuo_bamai_memory_vmstat_container_active_anon{{{CONT}}} + huatuo_bamai_memory_vmstat_container_inactive_anon{{{CONT}}}", "anon {{container_name}}"),
             (f"huatuo_bamai_memory_vmstat_container_active_file{{{CONT}}} + huatuo_bamai_memory_vmstat_container_inactive_file{{{CONT}}}", "file {{container_name}}")],
               "bytes"),
         panel("OOM kills", [(f"increase(huatuo_bamai_oom_container_total{{{CONT}}}[1h])", "{{container_name}} {{latest_victim_comm}}")],
               description="Per container, with the latest victim's comm."),
         ],
        ["Network",
         panel("Receive / transmit", [
             (f"rate(huatuo_bamai_netdev_container_receive_bytes_total{{{CONT}}}[{RATE}])", "rx {{container_name}} {{device}}"),
             (f"rate(huatuo_bamai_netdev_container_transmit_bytes_total{{{CONT}}}[{RATE}])", "tx {{container_name}} {{device}}")], "Bps"),
         panel("TCP retransmits", [(f"rate(huatuo_bamai_netstat_container_Tcp_RetransSegs{{{CONT}}}[{RATE}])", "{{container_name}}")], "ops"),
         panel("Sockets", [(f"huatuo_bamai_sockstat_container_sockets_used{{{CONT}}}", "{{container_name}}")]),
         ],
    ], container_var=True)

AGENT_BOARD = dashboard(
    "huatuo-bamai-agent", "huatuo-bamai / Agent",
    "The agent itself: readiness, parts, overhead and adaptive sampling, events and their sinks.",
    [
        ["Health",
         panel("Ready", [(f"huatuo_bamai_up{{{HOST}}}", "{{host}}")], kind="stat"),
         panel("Parts not running", [(f"sum by (host, state) (huatuo_bamai_actor_state{{{HOST},state!=\"running\"}})", "{{host}} {{state}}")],
               description="Parts per state other than running (inactive: the kernel lacks a feature)."),
         panel("Restarts", [(f"increase(huatuo_bamai_actor_restarts_total{{{HOST}}}[1h])", "{{host}} {{actor}}")]),
         panel("Start-up", [(f"huatuo_bamai_startup_seconds{{{HOST}}}", "wall {{host}}"),
                            (f"huatuo_bamai_startup_cpu_seconds{{{HOST}}}", "cpu {{host}}")], "s", kind="stat"),
         panel("Resident memory", [(f"huatuo_bamai_process_resident_memory_bytes{{{HOST}}}", "{{host}}")], "bytes"),
         panel("Open fds / threads", [(f"huatuo_bamai_process_open_fds{{{HOST}}}", "fds {{host}}"),
                                      (f"huatuo_bamai_process_threads{{{HOST}}}", "threads {{host}}")]),
         ],
        ["Overhead and adaptive sampling",
         panel("Overhead vs budget", [(f"huatuo_bamai_overhead_ratio{{{HOST}}}", "overhead {{host}}"),
                                      (f"huatuo_bamai_overhead_budget_ratio{{{HOST}}}", "budget {{host}}")], "percentunit"),
         panel("Overhead parts", [(f"huatuo_bamai_overhead_part_ratio{{{HOST}}}", "{{host}} {{part}}")], "percentunit"),
         panel("Per-probe overhead", [(f"huatuo_bamai_probe_overhead_ratio{{{HOST}}}", "{{host}} {{probe}}")], "percentunit"),
         panel("Sampling divisors", [(f"huatuo_bamai_probe_sampling_divisor{{{HOST}}}", "{{host}} {{probe}}")],
               description="1 = every event; N = one event in N kept (and counted N times)."),
         panel("BPF run time by program", [(f"sum by (host, probe) (rate(huatuo_bamai_bpf_prog_run_seconds_total{{{HOST}}}[{RATE}]))", "{{host}} {{probe}}")],
               "percentunit"),
         panel("Collector success", [(f"min by (host) (huatuo_bamai_scrape_collector_success{{{HOST}}})", "{{host}}")]),
         ],
        ["Events",
         panel("Events by type", [(f"sum by (host, tracer) (rate(huatuo_bamai_events_published_total{{{HOST}}}[{RATE}]))", "{{host}} {{tracer}}")],
               "ops"),
         panel("Event store", [(f"huatuo_bamai_event_store_documents{{{HOST}}}", "documents {{host}}")]),
         panel("Event store size", [(f"huatuo_bamai_event_store_bytes{{{HOST}}}", "{{host}}")], "bytes"),
         panel("Elasticsearch pending / spool", [
             (f"huatuo_bamai_event_es_pending_documents{{{HOST}}}", "pending {{host}}"),
             (f"huatuo_bamai_event_es_spool_documents{{{HOST}}}", "spool {{host}}")],
               description="Documents not delivered yet; the spool holds them while the cluster is unreachable."),
         panel("Elasticsearch connected", [(f"huatuo_bamai_event_es_connected{{{HOST}}}", "{{host}}")], kind="stat"),
         panel("Documents sinks lost", [(f"sum by (host, sink) (increase(huatuo_bamai_event_sink_dropped_total{{{HOST}}}[1h]))", "{{host}} {{sink}}")]),
         ],
    ])

BOARDS = {"huatuo-bamai-host.json": HOST_BOARD, "huatuo-bamai-container.json": CONTAINER_BOARD,
          "huatuo-bamai-agent.json": AGENT_BOARD}


def main():
    check = "--check" in sys.argv
    stale = []
    for name, board in BOARDS.items():
        text = json.dumps(board, indent=2, sort_keys=True) + "\n"
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        sys.exit("stale (run make dashboards): " + ", ".join(stale))


if __name__ == "__main__":
    main()
