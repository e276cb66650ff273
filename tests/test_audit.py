"""Audit: timelines built from histories alone, `audit` / `export` / `replay` as auditors run them.

The committed histories in tests/histories/ (v1, v2, v3 workflow code) are the fixtures: for the
ones whose workflow completed, the workflow's own final state (in the completion event) is the
oracle — the SLA events the timeline rebuilds, the clocks it recomputes and the decisions it reads
must be exactly the workflow's. Tickets still running (the history was exported before the last
workflow task finished) are checked for consistency instead. A real time-skipping server runs a
ticket through a priority change and a manual escalation, then `export` and `audit TICKET` read it
back from the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine import tickets
from engine.audit import build_timeline, export_ticket, fetch_history, read_history
from engine.audit.history import HistoryError, write_history
from engine.audit.report import render_html
from engine.audit.timeline import Timeline, TimelineError
from engine.intake import parse_event
from engine.models import AgentReply, EscalateCommand, ResolveCommand, SetPriorityCommand, SlaEvent, SurveyAnswer
from engine.sla import sla_state

ROOT = Path(__file__).resolve().parents[1]
HISTORY_DIR = ROOT / "tests" / "histories"
HISTORIES = sorted(HISTORY_DIR.glob("*.json"))
ESCALATED = ("breached-complaint", "escalated-on-hold")


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True,
                          encoding="utf-8", timeout=120, check=False)


def scenario(path: Path) -> tuple[str, str]:
    name, version = path.stem.rsplit("-", 1)
    return name, version


def timeline_of(path: Path) -> Timeline:
    return build_timeline(read_history(path))


def same_on_their_keys(mine: list[dict], theirs: list[dict]) -> None:
    """Older workflow code recorded fewer fields (v1 clocks have no `cycle`/`active`): compare
    every field the workflow recorded."""
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        assert {k: a.get(k) for k in b} == b


def check_against_result(tl: Timeline) -> None:
    """The workflow's final state is the oracle: SLA events, clocks and decisions must match."""
    result = tl.result
    assert result is not None
    same_on_their_keys([dataclasses.asdict(e) for e in tl.sla_events], result["sla_events"])
    assert tl.as_of.isoformat() == result["as_of"]
    same_on_their_keys(tl.clocks, result["sla"])
    # every decision the workflow recorded from a rules evaluation, with the time it recorded
    recorded = [(d["group"], d["rule_id"], d["ruleset_version"], d["at"]) for d in result["decisions"]
                if not d["rule_id"].startswith("manual:") and d["rule_id"] != "escalation"]
    read = [(e.details["group"], e.details["rule_id"], e.details["ruleset_version"], e.at.isoformat()) for e in tl.decisions]
    assert [r[:3] for r in read] == [r[:3] for r in recorded]
    # The time: the local activity's completion, which is the workflow's clock when it goes on in
    # the same task. Now and then the SDK hands the result to the next workflow task (seen once in
    # faq-handoff-compensated-v5, event 301: 35 ms later), and the history does not say so.
    late = [(r, w) for r, w in zip(read, recorded) if r[3] != w[3]]
    assert all(timedelta(0) < datetime.fromisoformat(w[3]) - datetime.fromisoformat(r[3]) < timedelta(seconds=1)
               for r, w in late) and len(late) <= 1, late
    assert (tl.status, tl.priority, tl.team, tl.assignee, tl.sla_policy) == (
        result["status"], result["priority"], result["team"], result["assignee"], result["sla_policy"])
    assert tl.sla_targets == result["sla_targets"]
    assert tl.escalation_tier == result.get("escalation_tier", "agent")


# ---- timelines from the committed histories -------------------------------------------------------

@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_timeline_of_a_committed_history(path: Path) -> None:
    name, version = scenario(path)
    tl = timeline_of(path)
    assert tl.code_version == version
    assert tl.ticket_id.startswith("TF-")
    kinds = tl.kinds()
    assert kinds[0] == "received"

    # decisions: group, rule id among the matching ones, the ruleset version the ticket is pinned to, the trace
    groups = [e.details["group"] for e in tl.decisions]
    assert groups[:4] == ["classification", "priority", "routing", "sla_policy"]
    assert "survey" in groups
    for e in tl.decisions:
        d = e.details
        assert d["ruleset_version"] == tl.ruleset_version and len(d["ruleset_version"]) == 12
        if d["group"] == "faq" and not d["rule_ids"]:
            continue  # no FAQ entry matched: a decision too, with no rule
        assert d["rule_id"] and d["rule_id"] in d["rule_ids"]
        assert d["rule_id"] in e.summary and d["ruleset_version"] in e.summary
        matched = [t for t in d["trace"] if t.get("matched")]
        assert [t["rule_id"] for t in matched] == d["rule_ids"]
        for t in matched:  # the conditions that matched, each with the value it saw
            assert all({"field", "op", "expected", "actual"} <= set(leaf) for leaf in t["leaves"])
        assert len(d["why"]) == len(matched)
    sla_policy = [e for e in tl.decisions if e.details["group"] == "sla_policy"][-1]  # a priority change decides again
    assert tl.sla_policy == sla_policy.details["actions"]["policy"]

    assignment = next(e for e in tl.entries if e.kind == "assignment")
    assert assignment.details["agent"] and assignment.details["team"]
    if name != "faq-handoff-compensated":  # the FAQ bot answers before anyone is assigned
        assert kinds.index("assignment") < kinds.index("message sent")
    # every ticket here went through resolve and close, and all but one through a survey
    assert "resolve" in kinds and "close" in kinds
    close = next(e for e in tl.entries if e.kind == "close")
    if name == "recently-surveyed":  # surveyed minutes before for another ticket: once a month at most
        survey = next(e for e in tl.decisions if e.details["group"] == "survey")
        assert survey.details["rule_id"] == "no-survey-recently-surveyed"
        assert "survey sent" not in kinds and kinds.index("resolve") < kinds.index("close")
    else:
        assert kinds.index("resolve") < kinds.index("survey sent") < kinds.index("close")
    if name in ("surveyed", "escalated-on-hold", "faq-handoff-compensated", "lunch-breach"):
        assert "survey answered" in kinds and close.details["survey"]["score"] is not None
    elif name != "recently-surveyed":
        assert "survey expired" in kinds
    if name == "reopened-pending":
        assert "reopen" in kinds and "customer message" in kinds and tl.reopen_count == 1

    # escalations: the escalated tickets moved up tiers by rule (v2 code and later)
    escalations = [e for e in tl.entries if e.kind == "escalation"]
    if name in ESCALATED and version != "v1":
        assert [e.details["to"] for e in escalations] == ["senior", "other_department", "management"]
        assert all(e.details["rule_id"] for e in escalations)
        assert tl.escalation_tier == "management"
        assert "sla breach" in kinds and "staff notice" in kinds
    elif name == "lunch-breach":  # answered at 17:05, after one step up at the breach
        assert [(e.details["to"], e.details["rule_id"]) for e in escalations] == [("senior", "breach-to-senior")]
    else:
        assert escalations == []
    if version == "v1":
        assert "sla warning" not in kinds  # v1 code acted on breaches only

    # entries are in time order and each carries the clocks as they stood then
    times = [e.at for e in tl.entries]
    assert times == sorted(times)
    assert [e.seq for e in tl.entries] == list(range(1, len(tl.entries) + 1))
    policy_set = tl.entries[kinds.index("sla policy")].at  # no clock before the policy is known
    assert all(e.clocks == [] for e in tl.entries if e.at < policy_set)
    assert all(e.clocks for e in tl.entries if e.at >= policy_set)

    # every breach the timeline reports is a breach of the clock at that instant and at the end
    final = {c["metric"]: c for c in tl.clocks}
    for e in tl.entries:
        if e.kind == "sla breach":
            metric = e.details["metric"]
            assert final[metric]["breached_at"] is not None or final[metric]["cycle"] > e.details["cycle"]
            assert e.at.isoformat() == e.details["breached_at"]

    if tl.outcome == "completed":
        check_against_result(tl)
    else:
        assert tl.result is None and tl.outcome == "running"
        assert tl.as_of == max(e.at for e in tl.entries)
        assert tl.entries[-1].clocks == tl.clocks


def test_escalated_on_hold_timeline_pauses_the_clock_while_on_hold() -> None:
    tl = timeline_of(HISTORY_DIR / "escalated-on-hold-v3.json")
    hold, release = [e for e in tl.entries if e.kind == "hold"]
    assert {c["state"] for c in hold.clocks if c["state"] != "pending"} == {"paused"}
    assert (release.at - hold.at) >= timedelta(hours=2)
    # two hours on hold, none of it counted: the first warning comes 15 minutes after the release
    first_warning = next(e for e in tl.entries if e.kind == "sla warning")
    assert first_warning.details["metric"] == "first_response" and first_warning.details["fraction"] == 0.5
    assert timedelta(minutes=14, seconds=59) < first_warning.at - release.at < timedelta(minutes=15, seconds=1)
    fr = {c["metric"]: c for c in tl.clocks}["first_response"]
    assert fr["state"] == "breached" and fr["elapsed_seconds"] == 4 * 3600


def test_lunch_breach_stays_where_the_first_policy_put_it() -> None:
    # Opened at 12:00:30 Shanghai, in p3-normal's lunch break; escalation at the 17:00 breach moved
    # it to p2-high, whose 7-day calendar is open at lunch. The workflow (v5) and the timeline count
    # the milliseconds before routing on p3-normal's calendar: the breach is 17:00 sharp. Workflows
    # before v5 counted them on the final policy's calendar, which this history shows is earlier.
    tl = timeline_of(HISTORY_DIR / "lunch-breach-v5.json")
    fr = next(c for c in tl.clocks if c["metric"] == "first_response")
    breach = datetime.fromisoformat(fr["breached_at"])
    assert breach.astimezone(ZoneInfo("Asia/Shanghai")).time() == time(17, 0)
    assert [e.at for e in tl.entries if e.kind == "sla breach"] == [breach]
    assert [e.details["policy"] for e in tl.entries if e.kind == "sla policy"] == ["p3-normal", "p2-high"]
    events = [SlaEvent(**e) for e in tl.result["sla_events"]]  # as the workflow recorded them
    assert [e.kind for e in events][:3] == ["opened", "status", "policy"]
    old = next(c for c in sla_state(events, tl.sla_targets, breach + timedelta(hours=1), legacy=True)
               if c.metric == "first_response")
    assert datetime.fromisoformat(old.breached_at) < breach


def test_the_final_result_is_not_needed(tmp_path: Path) -> None:
    """A running ticket's history (no completion event): cut a completed one before its end and
    the timeline up to that point is the same as the full one's."""
    data = json.loads((HISTORY_DIR / "reopened-pending-v3.json").read_text("utf-8"))
    events = data["events"]
    cut = next(i for i, e in enumerate(events) if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"
               and "reopen" in json.dumps(e))
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"events": events[:cut]}), "utf-8")
    part, full = timeline_of(partial), timeline_of(HISTORY_DIR / "reopened-pending-v3.json")
    assert part.outcome == "running" and part.result is None
    n = len(part.sla_events)
    assert n and part.sla_events == full.sla_events[:n]
    assert part.status == "resolved" and part.sla_policy == full.sla_policy


def test_a_signal_not_handled_yet_is_shown_but_not_counted(tmp_path: Path) -> None:
    data = json.loads((HISTORY_DIR / "reopened-pending-v2.json").read_text("utf-8"))
    events = data["events"]
    signal = next(i for i, e in enumerate(events) if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED")
    partial = tmp_path / "signalled.json"
    partial.write_text(json.dumps({"events": events[: signal + 1]}), "utf-8")
    tl = timeline_of(partial)
    assert tl.entries[-1].kind == "signal pending" and "customer_message" in tl.entries[-1].summary
    assert "customer_message" not in [e.kind for e in tl.sla_events]
    assert tl.status == "pending_customer"


def test_html_is_one_self_contained_file() -> None:
    tl = timeline_of(HISTORY_DIR / "escalated-on-hold-v3.json")
    html = render_html(tl)
    assert html.startswith("<!DOCTYPE html>") and tl.ticket_id in html
    for external in ("http://", "https://", "<script", "<link", "src="):
        assert external not in html
    assert "p1-breach-to-senior" in html and "SLA clocks at" in html


def test_unreadable_histories_are_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"events": [', "utf-8")
    with pytest.raises(HistoryError, match=r"bad.json:1:\d+: not valid JSON"):
        read_history(bad)
    bad.write_text('{"nothing": []}', "utf-8")
    with pytest.raises(HistoryError, match="not a Temporal history"):
        read_history(bad)
    data = json.loads(HISTORIES[0].read_text("utf-8"))
    data["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"] = "IncidentWorkflow"
    bad.write_text(json.dumps(data), "utf-8")
    with pytest.raises(TimelineError, match="an IncidentWorkflow history, not a ticket"):
        build_timeline(read_history(bad))


def test_written_histories_read_back_the_same(tmp_path: Path) -> None:
    original = read_history(HISTORIES[0])
    copy = read_history(write_history(original, tmp_path / "copy.json"))
    assert list(copy.events) == list(original.events)


# ---- the commands ---------------------------------------------------------------------------------

def test_audit_history_json_through_the_cli() -> None:
    res = cli("audit", "--history", "tests/histories/breached-complaint-v3.json", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["ticket_id"].startswith("TF-") and data["code_version"] == "v3" and data["outcome"] == "completed"
    decisions = [e for e in data["entries"] if e["kind"] == "decision"]
    assert decisions and all(e["details"]["rule_id"] and e["details"]["ruleset_version"] == data["ruleset_version"] for e in decisions)
    assert any(e["details"]["group"] == "escalation" and e["details"]["actions"].get("tier_up") for e in decisions)
    kinds = {e["kind"] for e in data["entries"]}
    assert {"received", "assignment", "escalation", "sla warning", "sla breach", "survey sent", "close", "completed"} <= kinds
    clocks = {c["metric"]: c for c in data["clocks"]}
    assert clocks["first_response"]["state"] == "breached" and clocks["resolution"]["state"] == "breached"


def test_audit_history_table_and_html(tmp_path: Path) -> None:
    res = cli("audit", "--history", "tests/histories/escalated-on-hold-v3.json", "--hide", "timer,projection")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "TF-OPTJFDJFSC" in out and "p1-breach-to-senior" in out and "[ruleset 7db7bddfe6fa]" in out
    assert "SLA clocks at" in out and "first_response" in out
    assert "timer 1 set" not in out
    page = tmp_path / "out" / "audit.html"
    res = cli("audit", "--history", "tests/histories/escalated-on-hold-v3.json", "--html", str(page))
    assert res.returncode == 0, res.stderr
    assert page.read_text("utf-8").startswith("<!DOCTYPE html>")
    assert str(page) in res.stdout


def test_audit_usage_and_errors() -> None:
    res = cli("audit")
    assert res.returncode == 2
    res = cli("audit", "--history", "tests/histories/nope.json")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith("ticketflow: error: tests/histories/nope.json: cannot read")
    res = cli("audit", "--history", "tests/histories/surveyed-v1.json", "--at", "yesterday")
    assert res.returncode == 2


def test_replay_dir_of_committed_histories() -> None:
    res = cli("replay", "--dir", "tests/histories")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1] == f"{len(HISTORIES)} replayed, 0 failed"


def test_replay_names_the_tampered_history(tmp_path: Path) -> None:
    good = tmp_path / HISTORIES[0].name
    good.write_bytes(HISTORIES[0].read_bytes())
    data = json.loads(HISTORIES[-1].read_text("utf-8"))
    scheduled = next(e for e in data["events"] if "activityTaskScheduledEventAttributes" in e)
    scheduled["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "assign_someone_else"
    tampered = tmp_path / "tampered-copy.json"
    tampered.write_text(json.dumps(data), "utf-8")

    res = cli("replay", "--dir", str(tmp_path))
    assert res.returncode == 1
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == "2 replayed, 1 failed"
    failed = [line for line in lines if line.startswith("FAILED")]
    assert len(failed) == 1 and str(tampered) in failed[0]
    assert "ondeterminism" in failed[0] and "assign_someone_else" in failed[0]
    assert good.name not in res.stdout

    res = cli("replay", str(good), "--json")
    assert res.returncode == 0
    assert json.loads(res.stdout) == {"replayed": 1, "failed": 0, "failures": [], "ok": [str(good)]}


def test_replay_usage() -> None:
    assert cli("replay").returncode == 2
    assert cli("replay", "--dir", "tests/histories", "--query", "x").returncode == 2
    res = cli("replay", "--dir", "tests/data/does-not-exist")
    assert res.returncode == 1 and "not a directory" in res.stderr


# ---- against a real server ------------------------------------------------------------------------

async def _until(env, tid: str, *statuses: str):  # type: ignore[no-untyped-def]
    for _ in range(400):
        st = await tickets.state(env.client, tid)
        if st.status in statuses:
            return st
        await asyncio.sleep(0.05)
    raise AssertionError(f"{tid} stuck in {st.status}")


async def _cli_async(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "engine", *args, cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode("utf-8"), err.decode("utf-8")


async def test_export_and_audit_a_ticket_from_the_server(worker_env, tmp_path: Path) -> None:
    env, s = worker_env
    event = parse_event({
        "event_id": "audit-1", "channel": "email", "customer": {"id": "c-audit", "tier": "standard", "language": "en"},
        "subject": "Where is my parcel?", "body": "Order 5531 has not arrived yet.", "occurred_at": "2026-11-20T09:00:00+00:00",
    })
    tid = await tickets.submit(env.client, s.task_queue, event)
    st = await _until(env, tid, "open")
    assert st.priority != "P1"
    before = st.priority
    await tickets.set_priority(env.client, tid, SetPriorityCommand(priority="P1", by="lead.anna", reason="press enquiry"))
    st = await tickets.escalate(env.client, tid, EscalateCommand(by="lead.anna", reason="legal risk"))
    await tickets.reply(env.client, tid, AgentReply(agent=st.assignee, body="We are on it."))
    await tickets.resolve(env.client, tid, ResolveCommand(agent=st.assignee, note="found the parcel"))
    await env.sleep(timedelta(hours=3))
    await _until(env, tid, "surveying")
    await tickets.survey_answer(env.client, tid, SurveyAnswer(score=4))
    await _until(env, tid, "closed")
    await env.sleep(timedelta(days=8))  # the workflow ends once the reopen window has passed
    await tickets.handle(env.client, tid).result()

    # export with the library, audit the file: the workflow's own result is the oracle
    path = await export_ticket(env.client, tid, tmp_path / "export")
    assert path == tmp_path / "export" / f"{tid}.json"
    tl = build_timeline(read_history(path))
    assert tl.ticket_id == tid and tl.outcome == "completed" and tl.code_version == "v5"
    check_against_result(tl)
    change = next(e for e in tl.entries if e.kind == "priority change")
    assert (change.details["from"], change.details["to"], change.details["by"]) == (before, "P1", "lead.anna")
    policies = [e for e in tl.entries if e.kind == "sla policy"]
    assert len(policies) == 2 and "now p1-urgent" in policies[1].summary
    assert [e.kind for e in tl.sla_events].count("policy") == 2
    escalation = next(e for e in tl.entries if e.kind == "escalation")
    assert escalation.details["rule_id"] == "manual:lead.anna" and escalation.details["to"] == "senior"
    assert tl.escalation_tier == "senior"
    assert await fetch_history(env.client, tid) is not None

    # the commands against the same server
    address = env.client.service_client.config.target_host
    code, out, err = await _cli_async("--address", address, "audit", tid, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["ticket_id"] == tid and data["clocks"] == tl.clocks
    assert [e["kind"] for e in data["entries"]] == tl.kinds()

    code, out, err = await _cli_async("--address", address, "export", "--id", tid, "--out", str(tmp_path / "cli"))
    assert code == 0, err
    assert out.strip().splitlines()[-1] == f"1 history written to {tmp_path / 'cli'}"
    code, out, err = await _cli_async("replay", "--dir", str(tmp_path / "cli"))
    assert code == 0 and out.strip() == "1 replayed, 0 failed", out + err

    code, out, err = await _cli_async("--address", address, "audit", "TF-NOSUCHTICKET")
    assert code == 1 and err.strip() == "ticketflow: error: no ticket TF-NOSUCHTICKET on the server (namespace default)"


def test_a_replay_failure_says_which_step_of_the_history_it_points_at() -> None:
    # The SDK names the diverging step by event id or local-activity number; these two reasons are
    # what `ticketflow replay` printed for real workflow changes (an activity moved earlier, a timer
    # added before the routing evaluation) on the committed histories.
    from temporalio.client import WorkflowHistory

    from engine.audit.replay import history_context

    path = Path("tests/histories/surveyed-v4.json")
    history = WorkflowHistory.from_json(path.stem, path.read_text("utf-8"))
    moved = "[TMPRL1100] Nondeterminism error: No command scheduled for event HistoryEvent(id: 17, ActivityTaskScheduled)"
    assert history_context(history, moved) == "history event 17: activity task scheduled 'assign_agent'"
    added = "[TMPRL1100] Nondeterminism error: Missing associated machine for LocalActivity(2)"
    assert history_context(history, added) == "local activity 2 of the history: 'evaluate_rules' (event 15)"
    assert history_context(history, "Missing associated machine for LocalActivity(99)") == "the history records no local activity 99"
    assert history_context(history, "Activity type of scheduled event 'x' does not match") == ""
