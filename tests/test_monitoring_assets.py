"""deploy/monitoring: the Prometheus alert rules and the Grafana dashboard.

With `promtool` on PATH (Debian's prometheus package) the rules are checked and unit-tested by it
(alerts.test.yml) and every dashboard query is parsed by it; the package is never installed from
here. Without it the structural checks below still run: the shape of each rule and panel, and that
every metric name a query uses is one engine/metrics.py exposes (or Prometheus' own `up`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from engine import metrics
from engine.paths import PROJECT_ROOT

MONITORING = PROJECT_ROOT / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERT_TESTS = MONITORING / "alerts.test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
BUILTIN = {"up"}  # series Prometheus itself writes for every scrape target
KNOWN = metrics.metric_names() | BUILTIN
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "and", "or", "unless", "bool",
                # aggregation operators, which may take `by (...)` before their parentheses
                "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"}
DURATION = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and label names left out)."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals: label values, regexes
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range and subquery windows
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)  # label lists
    e = re.sub(r"\boffset\s+-?\d+\w*", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group(0) in PROMQL_WORDS:
            continue  # a function call or a keyword
        names.add(m.group(0))
    return names


def balanced(expr: str) -> bool:
    stack, pairs = [], {")": "(", "]": "[", "}": "{"}
    for ch in re.sub(r'"(?:\\.|[^"\\])*"', '""', expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def families(names: set[str]) -> set[str]:
    return {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in names if n.startswith("ticketflow_")}


def test_the_promql_reader_finds_metric_names():
    expr = ('100 * sum by (metric) (increase(ticketflow_sla_breaches_total{policy=~"p1.*"}[1h] offset 1d)) '
            '/ on() group_left() clamp_min(sum(max by (priority, status) (ticketflow_backlog_tickets)), 1) and up{job="x"} == 0 '
            '+ 1e-9 * sum without (le) (ticketflow_queue_length)')
    assert promql_metric_names(expr) == {"ticketflow_sla_breaches_total", "ticketflow_backlog_tickets", "up", "ticketflow_queue_length"}
    assert not balanced("sum(rate(x[5m])")


# ---- alert rules -------------------------------------------------------------------------------


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text("utf-8"))
    assert isinstance(doc, dict) and isinstance(doc.get("groups"), list) and doc["groups"]
    rules = []
    names = set()
    for group in doc["groups"]:
        assert isinstance(group.get("name"), str) and group["name"] not in names, group
        names.add(group["name"])
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["rules"], group["name"]
        rules += group["rules"]
    return rules


def test_alert_rules_are_well_formed_and_use_our_metrics():
    rules = alert_rules()
    alerts = [r["alert"] for r in rules]
    assert len(alerts) == len(set(alerts))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        expr = rule["expr"]
        assert isinstance(expr, str) and expr.strip() and balanced(expr), rule["alert"]
        assert DURATION.match(str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        used = promql_metric_names(expr)
        assert used and used <= KNOWN, (rule["alert"], used - KNOWN)
    used = {n for r in rules for n in promql_metric_names(r["expr"])}
    # The four: SLA breach rate, backlog growth, CSAT drop, worker down.
    assert {"ticketflow_sla_breaches_total", "ticketflow_backlog_tickets", "ticketflow_survey_score_sum", "up"} <= used


def test_every_alert_has_a_promtool_unit_test():
    tests = yaml.safe_load(ALERT_TESTS.read_text("utf-8"))
    assert tests["rule_files"] == ["alerts.yml"]
    tested = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"]}
    assert tested == {r["alert"] for r in alert_rules()}
    for t in tests["tests"]:
        for series in t["input_series"]:
            name = series["series"].split("{", 1)[0]
            assert name in KNOWN, name


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus); structural checks ran instead")
def test_promtool_checks_and_unit_tests_the_rules():
    check = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run([PROMTOOL, "test", "rules", ALERT_TESTS.name], cwd=MONITORING, capture_output=True, text=True, timeout=300)
    assert unit.returncode == 0, unit.stdout + unit.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH")
def test_promtool_parses_every_dashboard_query(tmp_path: Path):
    exprs = [t["expr"] for p in panels() for t in p.get("targets", [])]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), "utf-8")
    check = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


# ---- Grafana dashboard -------------------------------------------------------------------------


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text("utf-8"))


def panels() -> list[dict]:
    return dashboard()["panels"]


def test_dashboard_is_a_grafana_dashboard():
    d = dashboard()
    assert d["title"] and d["uid"] and isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 30
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        assert p["type"] in {"row", "stat", "timeseries", "bargauge", "table"} and p["title"], p
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not (mine & cells), f"panel {p['title']!r} overlaps another"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert p["targets"] and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and balanced(t["expr"]), (p["title"], t["expr"])
            for var in re.findall(r"\$(\w+)", t["expr"]):
                assert var in variables, (p["title"], var)


def test_dashboard_queries_use_only_our_metrics_and_show_all_of_them():
    used: set[str] = set()
    for p in panels():
        for t in p.get("targets", []):
            names = promql_metric_names(t["expr"])
            assert names and names <= KNOWN, (p["title"], names - KNOWN)
            used |= names
    for v in dashboard()["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", v["query"]["query"])
            assert m and m.group(1) in KNOWN, v["name"]
    assert families(used) == families(metrics.metric_names()), families(metrics.metric_names()) - families(used)
