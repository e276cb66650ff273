"""Prometheus metrics: counts stay exact when activities retry and workflows replay, label values
carry no ticket, customer or agent id, and the endpoint serves the text format over real HTTP."""

from __future__ import annotations

import dataclasses
import socket
from concurrent.futures import ThreadPoolExecutor
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from temporalio.worker import Worker

from engine import metrics, tickets
from engine.activities.assignment import AssignmentActivities
from engine.activities.messaging import MessagingActivities
from engine.activities.projection import ProjectionActivities
from engine.activities.triage import RulesetRegistry, TriageActivities
from engine.agents import load_directory
from engine.intake import parse_event, raw_snapshot
from engine.models import (
    AgentReply,
    AssignmentRequest,
    EvaluationRequest,
    JournalEntry,
    OutgoingMessage,
    ProjectionUpdate,
    ResolveCommand,
    Survey,
    SurveyAnswer,
)
from engine.paths import PROJECT_ROOT
from engine.runner import build_worker
from engine.store import Store
from engine.store.directory import import_directory, set_status

DIRECTORY = load_directory(PROJECT_ROOT / "agents.yaml")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def m() -> metrics.TicketflowMetrics:
    """A fresh registry for the test; the process's default one afterwards."""
    fresh = metrics.use_registry(CollectorRegistry())
    yield fresh
    metrics.use_registry(REGISTRY)


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store.open(db_url)
    import_directory(s, DIRECTORY)
    return s


def value(m: metrics.TicketflowMetrics, name: str, **labels: str) -> float:
    return metrics.sample(name, labels, m.registry)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def update(events: list[JournalEntry], **over) -> ProjectionUpdate:
    base = dict(ticket_id="TF-METRICS1", status="open", channel="weibo", customer_id="cust-secret-42", customer_tier="vip",
                opened_at=at(0), priority="P1", category="complaint", team="complaints", assignee="chen.jie",
                ruleset_version="abc123def456", sla_policy="p1-urgent", events=events,
                sla={"first_response": {"state": "running", "elapsed_seconds": 0, "target_seconds": 1800, "breached_at": None}})
    base.update(over)
    return ProjectionUpdate(**base)


def stage(seq: int, name: str, seconds: float) -> JournalEntry:
    return JournalEntry(seq, at(seconds), "stage", {"stage": name})


def test_projecting_the_same_update_twice_counts_once(m, store):
    acts = ProjectionActivities(store)
    first = update([stage(0, "receive", 0), JournalEntry(1, at(0), "status", {"status": "triaged"}), stage(2, "classify", 0)])
    assert acts.project(first) == 3
    assert acts.project(first) == 0  # the retried local activity inserts nothing ...
    assert value(m, "ticketflow_tickets_opened_total", channel="weibo", priority="P1", category="complaint") == 1  # ... and counts nothing

    # The agent answered after 10 minutes (9 of them business time), the ticket was escalated and
    # resolved after an hour, with the first response breached on the way.
    later = update(
        [stage(3, "escalate:senior", 900), stage(4, "resolve", 3600), JournalEntry(5, at(3600), "status", {"status": "resolved"})],
        status="resolved", first_response_at=at(600), resolved_at=at(3600), escalation_tier="senior",
        sla={"first_response": {"state": "breached", "elapsed_seconds": 540, "target_seconds": 300, "breached_at": at(300)},
             "resolution": {"state": "fulfilled", "elapsed_seconds": 3000, "target_seconds": 14400, "breached_at": None}},
    )
    for _ in range(3):
        acts.project(later)
    assert value(m, "ticketflow_escalations_total", tier="senior") == 1
    assert value(m, "ticketflow_tickets_resolved_total", channel="weibo", priority="P1", category="complaint") == 1
    assert value(m, "ticketflow_sla_breaches_total", metric="first_response", policy="p1-urgent") == 1
    assert value(m, "ticketflow_first_response_seconds_count", channel="weibo", priority="P1") == 1
    assert value(m, "ticketflow_first_response_seconds_sum", channel="weibo", priority="P1") == 600
    assert value(m, "ticketflow_first_response_business_seconds_sum", channel="weibo", priority="P1") == 540
    assert value(m, "ticketflow_resolution_seconds_sum", channel="weibo", priority="P1") == 3600
    assert value(m, "ticketflow_resolution_business_seconds_sum", channel="weibo", priority="P1") == 3000

    # Surveyed, answered, reopened: the answer (unique per resolution) and the reopen count once.
    answered = update(
        [stage(6, "survey", 7200), stage(7, "reopen", 9000)], status="open", reopen_count=0, first_response_at=at(600),
        resolved_at=at(3600), escalation_tier="senior",
        sla={"first_response": {"state": "breached", "elapsed_seconds": 540, "target_seconds": 300, "breached_at": at(300)}},
        survey=Survey(kind="csat", sent_at=at(7200), score=2, answered_at=at(7300)),
    )
    acts.project(answered)
    acts.project(answered)
    assert value(m, "ticketflow_surveys_answered_total", kind="csat", channel="weibo") == 1
    assert value(m, "ticketflow_survey_score_count", kind="csat") == 1
    assert value(m, "ticketflow_survey_score_bucket", kind="csat", le="2.0") == 1
    assert value(m, "ticketflow_survey_score_bucket", kind="csat", le="1.0") == 0
    assert value(m, "ticketflow_reopens_total", channel="weibo", category="complaint") == 1
    # The same breach seen again is not a new breach; the first response is not observed again.
    assert value(m, "ticketflow_sla_breaches_total", metric="first_response", policy="p1-urgent") == 1
    assert value(m, "ticketflow_first_response_seconds_count", channel="weibo", priority="P1") == 1

    closing = update([stage(8, "close", 10000)], status="closed", closed_at=at(10000), first_response_at=at(600))
    acts.project(closing)
    acts.project(closing)
    assert value(m, "ticketflow_tickets_closed_total", channel="weibo", priority="P1", category="complaint") == 1
    assert_no_ids(m, {"TF-METRICS1", "cust-secret-42", "chen.jie"})


def assert_no_ids(m: metrics.TicketflowMetrics, ids: set[str]) -> None:
    seen = {v for family in m.registry.collect() for s in family.samples for v in s.labels.values()}
    assert seen and not (seen & ids), seen & ids


def test_assignment_queue_and_retries_count_once(m, store):
    acts = AssignmentActivities(store, now=lambda: T0)
    req = AssignmentRequest(ticket_id="TF-A1", team="refunds", language="zh")
    first = acts.assign(req)
    assert acts.assign(req).agent == first.agent  # the retried activity finds the assignment ...
    assert value(m, "ticketflow_assignments_total", strategy="least_loaded", team="refunds") == 1  # ... and counts nothing

    for agent in DIRECTORY.agents.values():
        if agent.team == "logistics":
            set_status(store, agent.id, "offline")
    waiting = AssignmentRequest(ticket_id="TF-Q1", team="logistics", language="en", strategy="round_robin")
    assert acts.assign(waiting).agent == ""
    assert acts.assign(waiting).agent == ""  # still queued: one queue entry, counted once
    assert value(m, "ticketflow_tickets_queued_total", team="logistics") == 1

    set_status(store, next(a.id for a in DIRECTORY.agents.values() if a.team == "logistics"), "online")
    later = AssignmentActivities(store, now=lambda: T0 + timedelta(minutes=2))
    assert later.assign(waiting).agent
    assert later.assign(waiting).agent
    assert value(m, "ticketflow_assignments_total", strategy="round_robin", team="logistics") == 1
    assert value(m, "ticketflow_queue_wait_seconds_count", team="logistics") == 1
    assert value(m, "ticketflow_queue_wait_seconds_sum", team="logistics") == 120
    assert_no_ids(m, {"TF-A1", "TF-Q1", first.agent})


def test_a_survey_sent_twice_is_counted_once(m, store, tmp_path: Path):
    acts = MessagingActivities(store, tmp_path / "outbox.log")
    msg = OutgoingMessage(idempotency_key="TF-S1:survey:0", ticket_id="TF-S1", kind="survey", channel="email",
                          recipient="cust-7", language="en", body="How did we do?")
    assert acts._deliver(msg) is True
    assert acts._deliver(msg) is False
    assert value(m, "ticketflow_surveys_sent_total", channel="email") == 1
    assert value(m, "ticketflow_messages_sent_total", kind="survey", channel="email") == 1


async def test_rule_evaluations_and_sla_warnings(m, tmp_path: Path):
    triage = TriageActivities(RulesetRegistry(PROJECT_ROOT / "rules", tmp_path))
    ev = parse_event({"event_id": "e-1", "channel": "weibo", "customer": {"id": "c-1", "tier": "standard", "language": "zh"},
                      "subject": "退款三周还没到账", "body": "申请退款已经三周了还没到账，太失望了！", "is_public": True,
                      "occurred_at": T0.isoformat()})
    result = await triage.evaluate_rules(EvaluationRequest(groups=["classification", "priority"], snapshot=raw_snapshot(ev)))
    priority = next(d for d in result.decisions if d.group == "priority")
    assert value(m, "ticketflow_rule_evaluations_total", group="classification") == 1
    assert value(m, "ticketflow_rule_evaluation_seconds_count", groups="classification,priority") == 1
    assert value(m, "ticketflow_rule_matches_total", group="priority", rule=priority.rule_id) == 1

    snapshot = {**raw_snapshot(ev), "priority": "P1", "category": "complaint", "team": "complaints", "sla_policy": "p1-urgent",
                "sla.event": "warning", "sla.metric": "first_response", "sla.threshold": 0.75, "escalation.tier": "agent"}
    await triage.evaluate_rules(EvaluationRequest(groups=["escalation"], snapshot=snapshot, ruleset_version=result.ruleset_version))
    assert value(m, "ticketflow_sla_warnings_total", metric="first_response", policy="p1-urgent", threshold="0.75") == 1
    assert value(m, "ticketflow_rule_evaluations_total", group="escalation") == 1


async def test_failed_activity_attempts_are_counted(m):
    from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

    class Failing(ActivityInboundInterceptor):
        def __init__(self) -> None:
            pass

        async def execute_activity(self, input: ExecuteActivityInput):
            raise TimeoutError("store did not answer")

    def assign_agent() -> None: ...

    counted = metrics.MetricsInterceptor().intercept_activity(Failing())
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await counted.execute_activity(ExecuteActivityInput(fn=assign_agent, args=[], executor=None, headers={}))
    assert value(m, "ticketflow_activity_failures_total", activity="assign_agent", error="TimeoutError") == 2


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_metrics_endpoint_over_http(m, store):
    acts = ProjectionActivities(store)
    acts.project(update([stage(0, "receive", 0)], ticket_id="TF-HTTP1"))
    for agent in DIRECTORY.agents.values():
        if agent.team == "refunds":
            set_status(store, agent.id, "offline")
    five_minutes_ago = datetime.now(timezone.utc) - timedelta(minutes=5)
    queued = AssignmentActivities(store, now=lambda: five_minutes_ago).assign(AssignmentRequest(ticket_id="TF-HTTP2", team="refunds", language="zh"))
    assert queued.agent == ""
    gauges = metrics.store_collector(m.registry)
    gauges.attach(store, lambda: "abc123def456")
    server = metrics.start_metrics_server(0, "127.0.0.1", registry=m.registry)
    try:
        families = scrape(server.server_address[1])
    finally:
        server.shutdown()
        gauges.detach(store)
    opened = {tuple(sorted(s.labels.items())): s.value for s in families["ticketflow_tickets_opened"]}
    assert opened[(("category", "complaint"), ("channel", "weibo"), ("priority", "P1"))] == 1
    queue = {s.labels["team"]: s.value for s in families["ticketflow_queue_length"]}
    assert queue == {"refunds": 1}
    oldest = next(s.value for s in families["ticketflow_queue_oldest_seconds"])
    assert 250 < oldest < 3600
    backlog = {(s.labels["priority"], s.labels["status"]): s.value for s in families["ticketflow_backlog_tickets"]}
    assert backlog == {("P1", "open"): 1}
    assert [s.labels for s in families["ticketflow_ruleset_active"]] == [{"version": "abc123def456"}]
    # Every family the module declares is served under its documented name.
    served = {s.name for samples in families.values() for s in samples}
    assert served <= metrics.metric_names()


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_busy_ports_are_a_clear_error(m):
    with _busy_port() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(metrics.PortInUse, match=f"{port}.*--metrics-port"):
            metrics.start_metrics_server(port, "127.0.0.1")
        with pytest.raises(metrics.PortInUse, match="--sdk-metrics-port"):
            metrics.sdk_runtime(port, "127.0.0.1")


def test_worker_refuses_a_busy_metrics_port(capsys):
    from engine.cli import main

    with _busy_port() as sock:
        code = main(["worker", "--metrics-port", str(sock.getsockname()[1]), "--sdk-metrics-port", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "metrics port" in err and "--metrics-port 0" in err and "Traceback" not in err


def test_sdk_metrics_runtime_serves_prometheus():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime = metrics.sdk_runtime(port, "127.0.0.1")  # serves while the runtime lives
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
    del runtime


async def test_a_replayed_workflow_counts_nothing_twice(m, time_env, settings):
    """A worker without a workflow cache replays the whole history on every workflow task; the
    local activities already in history (projection, rule evaluation) do not run again, and the
    activities that do retry find their rows: every count is still exactly one."""
    client = time_env.client
    ev = parse_event({"event_id": f"e-{uuid.uuid4()}", "channel": "email", "customer": {"id": "c-77", "tier": "standard", "language": "en"},
                      "subject": "Where is my parcel?", "body": "Order 55310 has not arrived.", "occurred_at": datetime.now(timezone.utc).isoformat()})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(settings.database_url)
    with ThreadPoolExecutor(max_workers=8) as executor:
        # The worker `ticketflow worker` builds, but without a workflow cache: every workflow task
        # starts from a replay of the history. (Built on a spare queue, then pointed at the real one.)
        template = dataclasses.replace(settings, task_queue=settings.task_queue + "-template")
        config = build_worker(client, template, executor, RulesetRegistry(settings.rules_dir, settings.data_dir, store), store).config()
        config.update(task_queue=settings.task_queue, max_cached_workflows=0)
        async with Worker(**config):
            ticket_id = await tickets.submit(client, settings.task_queue, ev)
            st = await _wait(client, ticket_id, "open")
            await tickets.reply(client, ticket_id, AgentReply(agent=st.assignee, body="On it."))
            await tickets.resolve(client, ticket_id, ResolveCommand(agent=st.assignee, note="found"))
            await time_env.sleep(timedelta(hours=3))
            await _wait(client, ticket_id, "surveying")
            await tickets.survey_answer(client, ticket_id, SurveyAnswer(score=4))
            await _wait(client, ticket_id, "closed")
            await time_env.sleep(timedelta(days=8))  # the workflow ends once the reopen window has passed
            final = await tickets.handle(client, ticket_id).result()
    labels = {"channel": "email", "priority": final.priority, "category": final.category}
    assert value(m, "ticketflow_tickets_opened_total", **labels) == 1
    assert value(m, "ticketflow_tickets_resolved_total", **labels) == 1
    assert value(m, "ticketflow_tickets_closed_total", **labels) == 1
    assert value(m, "ticketflow_first_response_seconds_count", channel="email", priority=final.priority) == 1
    assert value(m, "ticketflow_surveys_sent_total", channel="email") == 1
    assert value(m, "ticketflow_surveys_answered_total", kind="csat", channel="email") == 1
    assert value(m, "ticketflow_rule_evaluations_total", group="classification") == 1
    assert value(m, "ticketflow_rule_evaluations_total", group="survey") == 1
    assert sum(s.value for f in m.registry.collect() if f.name == "ticketflow_assignments" for s in f.samples) == 1
    assert_no_ids(m, {ticket_id, "c-77", final.assignee})


async def _wait(client, ticket_id: str, status: str, tries: int = 200):
    import asyncio

    for _ in range(tries):
        st = await tickets.state(client, ticket_id)
        if st.status == status:
            return st
        await asyncio.sleep(0.05)
    raise AssertionError(f"{ticket_id} stayed {st.status}, wanted {status}")
