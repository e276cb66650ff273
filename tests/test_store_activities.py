"""Store-backed activities on real SQLite and PostgreSQL: assignment (idempotent, load-exact,
queueing), release, the outbox, the projection, migrations and the agents directory."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import select

from engine.activities.assignment import AssignmentActivities, rank
from engine.activities.messaging import MessagingActivities
from engine.activities.projection import ProjectionActivities
from engine.agents import Agent, AgentsInvalid, load_directory
from engine.models import AssignmentRequest, JournalEntry, OutgoingMessage, ProjectionUpdate, StaffNotice, Survey
from engine.paths import PROJECT_ROOT
from engine.store import SchemaTooNew, Store
from engine.store.directory import import_directory, load_from_store, set_status
from engine.store.tables import AgentRow, QueuedTicket, SurveyAnswerRow, TicketAssignment, TicketEventRow, TicketRow

DIRECTORY = load_directory(PROJECT_ROOT / "agents.yaml")


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store.open(db_url)
    import_directory(s, DIRECTORY)
    return s


def req(ticket: str, team: str = "refunds", lang: str = "zh", **kw) -> AssignmentRequest:
    return AssignmentRequest(ticket_id=ticket, team=team, language=lang, **kw)


def load(store: Store) -> dict[str, int]:
    with store.session() as s:
        return {a.id: a.open_count for a in s.exec(select(AgentRow)).all()}


def active(store: Store) -> dict[str, str]:
    with store.session() as s:
        return {a.ticket_id: a.agent for a in s.exec(select(TicketAssignment).where(TicketAssignment.active == True)).all()}  # noqa: E712


def test_migrations_create_every_table(db_url):
    store = Store.open(db_url)
    tables = set(inspect(store.engine).get_table_names())
    assert {"alembic_version", "outbox", "assignment", "agent", "team", "queued_ticket", "ticket", "ticket_event",
            "survey_answer", "ruleset_version"} <= tables


def test_newer_database_is_refused(db_url):
    store = Store.open(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaTooNew, match="newer than this ticketflow"):
        Store.open(db_url)


def test_assignment_is_idempotent_and_spreads_load(store):
    acts = AssignmentActivities(store)
    first = acts.assign(req("T1"))
    assert acts.assign(req("T1")).agent == first.agent  # a retried activity changes nothing
    second = acts.assign(req("T2"))
    assert {first.agent, second.agent} == {"wang.fang", "li.lei"}
    assert load(store)["wang.fang"] == 1 and load(store)["li.lei"] == 1


def test_language_decides_before_load(store):
    acts = AssignmentActivities(store)
    assert {acts.assign(req(f"E{i}", team="logistics", lang="en")).agent for i in range(3)} == {"mike.r"}


def test_release_frees_capacity_and_reopen_returns_to_previous_agent(store):
    acts = AssignmentActivities(store)
    a = acts.assign(req("T1"))
    acts.release("T1")
    acts.release("T1")  # a retried release frees the slot once
    assert load(store)[a.agent] == 0
    acts.assign(req("T2"))
    again = acts.assign(req("T1"))
    assert again.agent == a.agent and "previous" in again.reason


def test_round_robin_cursor_is_persisted(store):
    picks = [AssignmentActivities(store).assign(req(f"R{i}", team="general-support", lang="en", strategy="round_robin")).agent
             for i in range(4)]
    assert picks == ["anna.l", "zhang.wei", "anna.l", "zhang.wei"]


def test_full_team_queues_and_a_freed_slot_offers_the_queued_ticket(store):
    with store.session() as s:
        for row in s.exec(select(AgentRow).where(AgentRow.team == "management")).all():
            row.max_open = 1
            s.add(row)
        s.commit()
    acts = AssignmentActivities(store)
    assert acts.assign(req("M1", team="management")).agent == "sun.li"
    queued = acts.assign(req("M2", team="management"))
    assert queued.agent == "" and "queued in management" in queued.reason
    assert load(store)["sun.li"] == 1  # never above capacity
    assert acts.release("M1") == ["M2"]  # the freed slot is offered to the waiting ticket
    assert acts.assign(req("M2", team="management")).agent == "sun.li"
    with store.session() as s:
        assert s.get(QueuedTicket, "M2") is None


def test_offline_holder_hands_over_or_queues(store):
    acts = AssignmentActivities(store)
    first = acts.assign(req("O1", team="management"))
    row, held = set_status(store, first.agent, "offline")
    assert held == ["O1"]
    moved = acts.assign(req("O1", team="management", exclude=[first.agent]))
    assert moved.agent == "" and load(store)[first.agent] == 0  # nobody else: queued, slot freed
    set_status(store, first.agent, "online")
    assert acts.waiting("management") == ["O1"]


def test_silent_assignee_keeps_the_ticket_when_nobody_else_can(store):
    acts = AssignmentActivities(store)
    first = acts.assign(req("S1", team="management"))
    again = acts.assign(req("S1", team="management", exclude=[first.agent]))
    assert again.agent == first.agent and "stays with" in again.reason


def test_min_tier_picks_a_senior(store):
    acts = AssignmentActivities(store)
    junior = acts.assign(req("K1", team="complaints", lang="en"))
    assert junior.agent == "tom.b"
    senior = acts.assign(req("K1", team="complaints", lang="en", exclude=["tom.b"], min_tier="senior"))
    assert senior.agent == "chen.jie" and load(store) == {**load(store), "tom.b": 0, "chen.jie": 1}


def test_shift_outside_hours_is_not_available():
    shift = {"name": "s", "tz": "Asia/Shanghai", "hours": {"mon": [["09:00", "18:00"]]}, "holidays": []}
    a = Agent(id="a", name="A", team="t", languages=("zh",), shift=shift)
    b = Agent(id="b", name="B", team="t", languages=("zh",))
    monday_noon = datetime(2026, 11, 23, 4, 0, tzinfo=timezone.utc)  # 12:00 in Shanghai
    sunday = datetime(2026, 11, 22, 4, 0, tzinfo=timezone.utc)
    r = AssignmentRequest(ticket_id="x", team="t", language="zh")
    assert [m.id for m in rank(r, [a, b], {}, "", monday_noon)[0]] in (["a", "b"], ["b", "a"])
    assert [m.id for m in rank(r, [a, b], {}, "", sunday)[0]] == ["b"]


class CrashAfterWrite(AssignmentActivities):
    """Commits the assignment, then dies before reporting back: what a worker crash looks like."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.crashed = False

    def _commit(self, *args, **kwargs):
        result = super()._commit(*args, **kwargs)
        if not self.crashed:
            self.crashed = True
            raise ConnectionError("worker lost after the database write")
        return result


def test_retry_after_a_crash_past_the_write_assigns_once(store):
    acts = CrashAfterWrite(store)
    with pytest.raises(ConnectionError):
        acts.assign(req("C1"))
    retried = acts.assign(req("C1"))  # the activity retry
    assert active(store) == {"C1": retried.agent}
    assert sum(load(store).values()) == 1 and load(store)[retried.agent] == 1


def test_outbox_sends_once_per_key(store, tmp_path):
    log = tmp_path / "outbox.log"
    acts = MessagingActivities(store, log, lambda: load_from_store(store))
    msg = OutgoingMessage("T1:ack", "T1", "acknowledgement", "email", "c-1", "en", "hello")
    assert acts.send_message(msg) is True
    assert acts.send_message(msg) is False
    told = acts.notify_staff(StaffNotice("T1:esc", "T1", "refunds", "li.lei", ["assignee", "team_lead", "manager"], "late"))
    assert told == ["li.lei", "wang.fang", "sun.li"]
    acts.notify_staff(StaffNotice("T1:esc", "T1", "refunds", "li.lei", ["assignee", "team_lead", "manager"], "late"))
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["idempotency_key"] for x in lines] == ["T1:ack", "T1:esc:li.lei", "T1:esc:wang.fang", "T1:esc:sun.li"]


def test_projection_is_an_idempotent_upsert(store):
    acts = ProjectionActivities(store)
    now = datetime.now(timezone.utc).isoformat()
    update = ProjectionUpdate(
        ticket_id="P1", status="open", channel="wechat", customer_id="c1", customer_tier="vip", opened_at=now,
        priority="P2", team="vip-care", assignee="zhao.min", stages={"receive": now},
        events=[JournalEntry(0, now, "stage", {"stage": "receive"}), JournalEntry(1, now, "status", {"status": "open"})],
    )
    assert acts.project(update) == 2
    assert acts.project(update) == 0  # a retry adds nothing
    update.status, update.survey = "closed", Survey(kind="csat", score=4, answered_at=now)
    update.events = [JournalEntry(2, now, "status", {"status": "closed"})]
    acts.project(update)
    acts.project(update)
    with store.session() as s:
        assert s.get(TicketRow, "P1").status == "closed"
        assert [e.seq for e in s.exec(select(TicketEventRow).order_by(TicketEventRow.seq)).all()] == [0, 1, 2]
        assert [a.score for a in s.exec(select(SurveyAnswerRow)).all()] == [4]


def test_bad_agents_file_is_one_clear_error(tmp_path: Path):
    bad = tmp_path / "agents.yaml"
    bad.write_text("teams: [{id: a, name: A}]\nagents: [{id: x, name: X, team: b, languages: [en]}]\n")
    with pytest.raises(AgentsInvalid, match="unknown team 'b'"):
        load_directory(bad)
    bad.write_text("teams: [{id: a, name: A}]\nagents: [{id: x, name: X, team: a}]\n")
    with pytest.raises(AgentsInvalid, match="agents/0: 'languages' is a required property"):
        load_directory(bad)
    bad.write_text("teams: [{id: a, name: A}]\nagents: [{id: x, name: X, team: a, languages: [en], shift: {timezone: Mars/Base, hours: {mon: ['09:00-18:00']}}}]\n")
    with pytest.raises(AgentsInvalid, match="agent 'x': shift"):
        load_directory(bad)
