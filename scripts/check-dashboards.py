#!/usr/bin/env python3
"""Validates Grafana dashboard JSON with Grafana's own schema models (PyPI grafana-foundation-sdk)
and prints every panel query as JSON lines {"dashboard", "panel", "expr"} for tests/dashboards.rs
to run against a real Prometheus.

Fails (exit 1, naming the panel) on: a file the SDK cannot decode, a panel type or datasource
query the SDK does not know as the expected one, an empty expression, or a variable used in a
query that the dashboard does not define.
"""
import json
import re
import sys

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus, stat, timeseries

BUILTIN = {"__rate_interval", "__interval", "__range", "__all"}
OPTIONS = {"timeseries": timeseries.Options, "stat": stat.Options}


def main(paths):
    plugins.register_default_plugins()
    errors = []
    for path in paths:
        with open(path) as f:
            raw = json.load(f)
        board = model.Dashboard.from_json(raw)
        defined = {v.name for v in (board.templating.list_val or [])}
        for p in board.panels or []:
            if isinstance(p, model.RowPanel):
                continue
            where = f"{path}: panel {p.title!r}"
            expected = OPTIONS.get(p.type_val)
            if expected is None:
                errors.append(f"{where}: panel type {p.type_val!r} not one of {sorted(OPTIONS)}")
                continue
            if not isinstance(p.options, expected):
                errors.append(f"{where}: options decode as {type(p.options).__name__}, not {expected.__name__}")
            for t in p.targets or []:
                ds = t.datasource
                ds = ds.get("type") if isinstance(ds, dict) else getattr(ds, "type_val", None)
                if ds != "prometheus":
                    errors.append(f"{where}: query datasource {ds!r}, not prometheus")
                if not isinstance(t, prometheus.Dataquery):
                    errors.append(f"{where}: query decodes as {type(t).__name__}, not prometheus.Dataquery")
                    continue
                if not t.expr.strip():
                    errors.append(f"{where}: empty expr")
                for var in re.findall(r"\$\{?(\w+)", t.expr):
                    if var not in defined and var not in BUILTIN:
                        errors.append(f"{where}: uses ${var}, which the dashboard does not define")
                print(json.dumps({"dashboard": board.uid, "panel": p.title, "expr": t.expr}))
    if errors:
        sys.exit("\n".join(errors))


if __name__ == "__main__":
    main(sys.argv[1:])
