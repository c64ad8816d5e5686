#!/usr/bin/env python3
"""Extracts the queries of upstream HUATUO's Grafana dashboards into small fixtures.

Usage: scripts/extract-dashboard-queries.py <dir with upstream's build/docker/grafana/dashboards/*.json> <out dir>

For each Prometheus dashboard (metrics-host, metrics-container, metrics-disk-io) it writes
`<name>.json`: [{"panel", "expr", "metrics": [huatuo_bamai_* names]}]. For the event dashboard
(autotracing-event) it writes `autotracing-event.json`: [{"panel", "query", "tracer_names",
"fields"}] where `fields` are the document paths the panel's table shows (columns of its
organize transformation that are not excluded) or its query filters on (`tracer_data.x:`).
tests/dashboards.rs checks every one against what our agent produces.
"""
import json
import pathlib
import re
import sys

METRIC = re.compile(r"huatuo_bamai_[A-Za-z0-9_]+")
TRACER = re.compile(r"tracer_name:([A-Za-z0-9_]+)")
FIELD_FILTER = re.compile(r"(tracer_data\.[A-Za-z0-9_.]+):")
# Columns Grafana's Elasticsearch datasource adds itself, not document fields.
META = {"_id", "_index", "_type", "_source", "highlight", "sort", "es_index_time"}


def panels(node, title=None):
    """Yields (panel title, panel dict) for every panel, rows' nested panels included."""
    if isinstance(node, dict):
        if "targets" in node:
            yield node.get("title") or title or "", node
        for value in node.values():
            yield from panels(value, node.get("title", title))
    elif isinstance(node, list):
        for item in node:
            yield from panels(item, title)


def prometheus(dashboard):
    out = []
    seen = set()
    for title, panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not isinstance(expr, str) or not METRIC.search(expr):
                continue
            key = (title, expr)
            if key in seen:
                continue
            seen.add(key)
            out.append({"panel": title, "expr": expr, "metrics": sorted(set(METRIC.findall(expr)))})
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        names = sorted(set(METRIC.findall(query)) - {"huatuo_bamai_"})
        if names:
            out.append({"panel": "variable " + variable.get("name", ""), "expr": query, "metrics": names})
    return out


def shown_fields(panel):
    fields = set()
    for transformation in panel.get("transformations", []):
        options = transformation.get("options", {})
        excluded = {k for k, v in options.get("excludeByName", {}).items() if v}
        for key in ("indexByName", "renameByName"):
            fields |= set(options.get(key, {}))
        fields -= excluded
    return sorted(f for f in fields if f not in META)


def events(dashboard):
    out = []
    for title, panel in panels(dashboard):
        for target in panel.get("targets", []):
            query = target.get("query")
            if not isinstance(query, str) or "tracer_name" not in query:
                continue
            fields = set(FIELD_FILTER.findall(query))
            if any(m.get("type") == "raw_data" or m.get("type") == "logs" for m in target.get("metrics", [])):
                fields |= set(shown_fields(panel))
            out.append({
                "panel": title,
                "query": query,
                "tracer_names": sorted(set(TRACER.findall(query))),
                "fields": sorted(fields),
            })
    return out


def main():
    source, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("metrics-host", "metrics-container", "metrics-disk-io"):
        dashboard = json.loads((source / f"{name}.json").read_text())
        (dest / f"{name}.json").write_text(json.dumps(prometheus(dashboard), indent=1) + "\n")
    dashboard = json.loads((source / "autotracing-event.json").read_text())
    (dest / "autotracing-event.json").write_text(json.dumps(events(dashboard), indent=1) + "\n")


if __name__ == "__main__":
    main()
