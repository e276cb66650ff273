"""`ticketflow report`: KPIs computed from hand-made ticket rows on SQLite and PostgreSQL, groups,
comparisons of two ruleset versions and of two periods with their direction, CSV/JSON shapes, and
an HTML file that is self-contained."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.cli import main
from engine.report import build_comparison, build_report, selections_for_compare
from engine.report.html import to_html
from engine.report.kpi import percentile
from engine.report.render import to_csv, to_text
from engine.store import Store
from engine.store.tables import SurveyAnswerRow, TicketEventRow, TicketRow

OLD, NEW = "aaaa11112222", "bbbb33334444"
WEEK1, WEEK2 = datetime(2026, 11, 2, tzinfo=timezone.utc), datetime(2026, 11, 9, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def h(day: datetime, hours: float) -> datetime:
    return day + timedelta(hours=hours)


def clock(state: str, elapsed: int, target: int, breached_at: datetime | None = None) -> dict:
    return {"state": state, "elapsed_seconds": elapsed, "target_seconds": target,
            "breached_at": breached_at.isoformat() if breached_at else None}


def ticket(tid: str, ruleset: str, channel: str, priority: str, category: str, opened: datetime, *, team: str = "general-support",
           agent: str = "li.lei", first_response: datetime | None = None, resolved: datetime | None = None, status: str = "open",
           reopen_count: int = 0, tier: str = "agent", sla: dict | None = None) -> TicketRow:
    return TicketRow(ticket_id=tid, status=status, priority=priority, category=category, channel=channel, customer_id=f"cust-{tid}",
                     team=team, assignee=agent, ruleset_version=ruleset, sla_policy="p2-high", escalation_tier=tier,
                     reopen_count=reopen_count, opened_at=opened, first_response_at=first_response, resolved_at=resolved,
                     closed_at=resolved + timedelta(hours=2) if resolved and status == "closed" else None, sla=sla or {},
                     updated_at=NOW)


def seed(store: Store) -> None:
    """Week 1 under the old rules (4 tickets), week 2 under the new ones (3 tickets)."""
    d1, d2 = WEEK1, WEEK2
    rows = [
        ticket("O1", OLD, "email", "P2", "delivery", h(d1, 9), first_response=h(d1, 9.5), resolved=h(d1, 13), status="closed",
               sla={"first_response": clock("fulfilled", 1800, 3600), "resolution": clock("fulfilled", 14400, 43200)}),
        ticket("O2", OLD, "wechat", "P1", "complaint", h(d1, 10), team="complaints", agent="chen.jie", first_response=h(d1, 11),
               resolved=h(d1, 34), status="closed", reopen_count=1, tier="senior",
               sla={"first_response": clock("breached", 3600, 1800, h(d1, 10.5)), "resolution": clock("fulfilled", 14000, 43200)}),
        ticket("O3", OLD, "web", "P3", "refund", h(d1, 11), first_response=h(d1, 11 + 1 / 6), sla={"first_response": clock("fulfilled", 600, 14400)}),
        ticket("O4", OLD, "email", "P3", "delivery", h(d1, 12), status="assigned", sla={"first_response": clock("running", 100, 14400)}),
        ticket("N1", NEW, "email", "P2", "delivery", h(d2, 9), first_response=h(d2, 9 + 5 / 60), resolved=h(d2, 10), status="closed",
               sla={"first_response": clock("fulfilled", 300, 3600), "resolution": clock("fulfilled", 3600, 43200)}),
        ticket("N2", NEW, "wechat", "P1", "complaint", h(d2, 10), team="complaints", agent="chen.jie", first_response=h(d2, 10 + 1 / 6),
               resolved=h(d2, 12), status="surveying", sla={"first_response": clock("fulfilled", 600, 1800)}),
        ticket("N3", NEW, "phone", "P2", "billing", h(d2, 11), first_response=h(d2, 11 + 2 / 60), resolved=h(d2, 11.5), status="resolved",
               sla={"first_response": clock("fulfilled", 120, 3600)}),
    ]
    events = [("O1", "assigned", {"team": "general-support", "agent": "li.lei"}), ("O2", "assigned", {"agent": "wang.fang"}),
              ("O2", "assigned", {"agent": "chen.jie"}), ("O3", "assigned", {"agent": "li.lei"}),
              ("N1", "assigned", {"agent": "li.lei"}), ("N2", "assigned", {"agent": "wang.fang"}), ("N2", "assigned", {"agent": "chen.jie"}),
              ("N3", "assigned", {"agent": "li.lei"}), ("N3", "status", {"status": "pending_customer"}), ("N1", "status", {"status": "open"})]
    answers = [("O1", "csat", 5, h(d1, 15)), ("O2", "csat", 2, h(d1, 36)), ("N1", "csat", 4, h(d2, 12)), ("N2", "csat", 5, h(d2, 14)),
               ("N3", "nps", 9, h(d2, 13))]
    with store.session() as s:
        for r in rows:
            s.add(r)
        for seq, (tid, kind, data) in enumerate(events):
            s.add(TicketEventRow(ticket_id=tid, seq=seq, at=h(d1, 9), kind=kind, data=data))
        for tid, kind, score, at in answers:
            s.add(SurveyAnswerRow(ticket_id=tid, resolution=0, kind=kind, score=score, customer_id=f"cust-{tid}", answered_at=at))
        s.commit()


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store.open(db_url)
    seed(s)
    return s


def approx(value):
    return pytest.approx(value, rel=1e-9, abs=1e-9)


def test_kpis_of_a_period(store):
    doc = build_report(store, WEEK1, WEEK1 + timedelta(days=3), now=NOW)
    k = doc["overall"]
    assert k["volume"] == 4
    assert k["first_response_p50"] == approx(1800) and k["first_response_p90"] == approx(3240)  # of 600, 1800, 3600
    assert k["first_response_business_p50"] == approx(1800)
    assert k["resolution_p50"] == approx(50400) and k["resolution_p90"] == approx(79200)  # of 4 h and 24 h
    assert k["resolution_business_p50"] == approx(14200)
    assert k["resolved"] == 2 and k["resolution_rate"] == approx(0.5)
    assert k["first_contact_resolution_rate"] == approx(0.5)  # O2 was escalated, reopened and handed on
    assert k["sla"]["first_response"] == {"met": 2, "breached": 1, "compliance": approx(2 / 3)}  # O4 still running
    assert k["sla"]["resolution"]["compliance"] == approx(1.0)
    assert k["escalation_rate"] == approx(0.25) and k["reopen_rate"] == approx(0.5)
    assert k["csat_mean"] == approx(3.5) and k["csat_distribution"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}
    assert k["nps"] is None and k["nps_responses"] == 0
    assert k["complaints"] == 1 and k["complaint_rate"] == approx(0.25)
    assert k["backlog"] == {"total": 2, "by_age": {"<1h": 0, "1-4h": 0, "4-24h": 0, "1-3d": 2, "3-7d": 0, ">7d": 0}}
    assert sum(b["opened"] for b in doc["trend"]["buckets"]) == 4
    assert [r["version"] for r in doc["rulesets"]] == [OLD]


def test_kpis_by_dimension(store):
    doc = build_report(store, None, NOW, by="channel", now=NOW)
    groups = {g["key"]: g["kpis"] for g in doc["groups"]}
    assert set(groups) == {"email", "wechat", "web", "phone"}
    assert groups["email"]["volume"] == 3 and groups["email"]["backlog"]["total"] == 1  # O4
    assert groups["phone"]["nps"] == approx(100.0)
    by_ruleset = {g["key"]: g["kpis"]["volume"] for g in build_report(store, None, NOW, by="ruleset", now=NOW)["groups"]}
    assert by_ruleset == {OLD: 4, NEW: 3}
    agents = {g["key"] for g in build_report(store, None, NOW, by="agent", now=NOW)["groups"]}
    assert agents == {"li.lei", "chen.jie"}
    assert "By channel" in to_text(doc)


def test_compare_two_ruleset_versions_shows_the_direction(store):
    before, after = selections_for_compare(store, "aaaa", "bbbb", None, NOW, NOW)
    doc = build_comparison(store, before, after, NOW)
    assert doc["kind"] == "ruleset"
    rows = {c["kpi"]: c for c in doc["changes"]}
    assert rows["volume"]["before"] == 4 and rows["volume"]["after"] == 3
    assert (rows["volume"]["direction"], rows["volume"]["assessment"]) == ("down", None)
    frt = rows["first_response_p50"]
    assert (frt["before"], frt["after"], frt["change"]) == (approx(1800), approx(300), approx(-1500))
    assert (frt["direction"], frt["assessment"]) == ("down", "better")
    assert (rows["resolution_rate"]["direction"], rows["resolution_rate"]["assessment"]) == ("up", "better")
    assert (rows["sla_first_response_compliance"]["after"], rows["sla_first_response_compliance"]["assessment"]) == (approx(1.0), "better")
    assert (rows["complaint_rate"]["direction"], rows["complaint_rate"]["assessment"]) == ("up", "worse")
    assert (rows["escalation_rate"]["direction"], rows["escalation_rate"]["assessment"]) == ("down", "better")
    assert (rows["csat_mean"]["change"], rows["csat_mean"]["assessment"]) == (approx(1.0), "better")
    assert (rows["nps"]["before"], rows["nps"]["direction"]) == (None, "n/a")
    assert (rows["backlog"]["before"], rows["backlog"]["after"]) == (2, 0)  # each version's own unresolved tickets
    text = to_text(doc)
    assert f"ruleset {OLD}" in text and f"ruleset {NEW}" in text
    assert "▼ better" in text and "▲ worse" in text


def test_compare_two_periods(store):
    before, after = selections_for_compare(store, "2026-11-02..2026-11-05", "2026-11-09..2026-11-12", None, NOW, NOW)
    doc = build_comparison(store, before, after, NOW)
    assert doc["kind"] == "period"
    rows = {c["kpi"]: c for c in doc["changes"]}
    assert (rows["volume"]["before"], rows["volume"]["after"]) == (4, 3)
    # The backlog is what was unresolved at each period's end, whenever it was opened.
    assert (rows["backlog"]["before"], rows["backlog"]["after"]) == (2, 2)
    assert (rows["backlog_>7d"]["before"], rows["backlog_>7d"]["after"]) == (0, 2)


def test_csv_and_json_shapes(store, db_url, monkeypatch, capsys):
    monkeypatch.setenv("TICKETFLOW_DB_URL", db_url)
    assert main(["report", "--since", "2026-11-01", "--until", "2026-11-20", "--by", "priority", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["group"] for r in rows] == ["(all)", "P2", "P1", "P3"]  # largest group first
    assert rows[0]["volume"] == "7" and rows[0]["resolution_rate"] == "0.714286"
    assert {"first_response_p50", "first_response_p90", "resolution_p50", "sla_first_response_compliance", "csat_mean", "nps",
            "csat_5", "backlog", "backlog_>7d", "first_contact_resolution_rate", "escalation_rate", "reopen_rate"} <= set(rows[0])

    assert main(["report", "--compare", "aaaa1111", "bbbb3333", "--csv"]) == 0
    changes = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(changes[0]) == ["kpi", "label", "unit", "before", "after", "change", "relative_change", "direction", "assessment"]
    assert next(c for c in changes if c["kpi"] == "first_response_p50")["assessment"] == "better"

    assert main(["report", "--since", "2026-11-01", "--until", "2026-11-20", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"report", "period", "overall", "groups", "trend", "rulesets", "by", "ruleset"}
    assert doc["period"]["since"] == "2026-11-01T00:00:00+00:00" and doc["overall"]["volume"] == 7
    assert main(["report", "--compare", "aaaa", "bbbb", "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert set(cmp) >= {"kind", "before", "after", "changes"} and cmp["before"]["ruleset"] == OLD


def assert_self_contained(page: str, charts: bool = True) -> None:
    assert page.startswith("<!DOCTYPE html>") and ("<svg" in page) == charts
    lowered = page.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert "<script" not in lowered and "<link" not in lowered and "src=" not in lowered and "@import" not in lowered


def test_html_report_is_one_self_contained_file(store, db_url, monkeypatch, tmp_path: Path, capsys):
    monkeypatch.setenv("TICKETFLOW_DB_URL", db_url)
    out = tmp_path / "report.html"
    assert main(["report", "--since", "2026-11-01", "--until", "2026-11-20", "--by", "team", "--html", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text("utf-8")
    assert_self_contained(page)
    for section in ("summary", "trends", "sla", "satisfaction", "breakdown", "definitions"):
        assert f'id="{section}"' in page
    assert page.count("<svg") >= 6 and "Tickets opened and resolved" in page and "CSAT distribution" in page

    cmp = tmp_path / "compare.html"
    assert main(["report", "--compare", "aaaa", "bbbb", "--html", str(cmp)]) == 0
    page = cmp.read_text("utf-8")
    assert_self_contained(page)
    assert "Change by KPI" in page and 'class="better"' in page and 'class="worse"' in page


def test_an_empty_store_reports_without_data(db_url):
    doc = build_report(Store.open(db_url), None, NOW, now=NOW)
    assert doc["overall"]["volume"] == 0 and doc["overall"]["first_response_p50"] is None
    assert "no data" in to_html(doc) and to_csv(doc).count("\n") == 2
    assert_self_contained(to_html(doc), charts=False)  # nothing to draw: each chart says so


def test_usage_errors_and_unknown_versions(store, db_url, monkeypatch, capsys):
    monkeypatch.setenv("TICKETFLOW_DB_URL", db_url)
    assert main(["report", "--by", "weather"]) == 2
    assert main(["report", "--json", "--csv"]) == 2
    assert main(["report", "--since", "last tuesday"]) == 2
    assert main(["report", "--compare", "aaaa", "2026-11-01..2026-11-02"]) == 2
    capsys.readouterr()
    assert main(["report", "--compare", "aaaa", "cccc"]) == 1
    err = capsys.readouterr().err
    assert "no tickets pinned to ruleset 'cccc'" in err and OLD in err and "Traceback" not in err


def test_percentile_interpolates_between_ranks():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.9) == 7
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([10, 0, 20], 0.9) == pytest.approx(18)
