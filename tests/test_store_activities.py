"""Assignment and outbox activities on a real SQLite store: idempotent, load-aware, migrated."""

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.paths import PROJECT_ROOT
from engine.activities.assignment import AssignmentActivities, choose_agent
from engine.activities.messaging import MessagingActivities
from engine.agents import AgentsInvalid, load_directory
from engine.models import AssignmentRequest, OutgoingMessage
from engine.store import SchemaTooNew, Store

DIRECTORY = load_directory(PROJECT_ROOT / "agents.yaml")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'tf.db'}")


def req(ticket: str, team: str = "refunds", lang: str = "zh", **kw) -> AssignmentRequest:
    return AssignmentRequest(ticket_id=ticket, team=team, language=lang, **kw)


def test_assignment_is_idempotent_and_spreads_load(store):
    acts = AssignmentActivities(store, DIRECTORY)
    first = acts.assign_agent(req("T1"))
    assert acts.assign_agent(req("T1")).agent == first.agent  # a retried activity changes nothing
    second = acts.assign_agent(req("T2"))
    assert {first.agent, second.agent} == {"wang.fang", "li.lei"}  # least loaded takes the idle one


def test_language_decides_before_load(store):
    acts = AssignmentActivities(store, DIRECTORY)
    picks = {acts.assign_agent(req(f"E{i}", team="logistics", lang="en")).agent for i in range(3)}
    assert picks == {"mike.r"}


def test_release_frees_capacity_and_reopen_returns_to_previous_agent(store):
    acts = AssignmentActivities(store, DIRECTORY)
    a = acts.assign_agent(req("T1"))
    acts.release_assignment("T1")
    acts.assign_agent(req("T2"))
    again = acts.assign_agent(req("T1"))
    assert again.agent == a.agent and "previous" in again.reason


def test_round_robin_follows_the_team_order():
    load: dict[str, int] = {}
    pick, _ = choose_agent(req("X", team="general-support", lang="en", strategy="round_robin"), DIRECTORY, load, "anna.l")
    assert pick.id == "zhang.wei"


def test_outbox_sends_once_per_key(store, tmp_path):
    log = tmp_path / "outbox.log"
    acts = MessagingActivities(store, log)
    msg = OutgoingMessage("T1:ack", "T1", "acknowledgement", "email", "c-1", "en", "hello")
    assert acts.send_message(msg) is True
    assert acts.send_message(msg) is False
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["idempotency_key"] for x in lines] == ["T1:ack"]


def test_newer_database_is_refused(store, tmp_path):
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaTooNew, match="newer than this ticketflow"):
        Store.open(f"sqlite:///{tmp_path / 'tf.db'}")


def test_bad_agents_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "agents.yaml"
    bad.write_text("teams: [{id: a, name: A}]\nagents: [{id: x, name: X, team: b, languages: [en]}]\n")
    with pytest.raises(AgentsInvalid, match="unknown team 'b'"):
        load_directory(bad)
    bad.write_text("teams: [{id: a, name: A}]\nagents: [{id: x, name: X, team: a}]\n")
    with pytest.raises(AgentsInvalid, match="agents/0: 'languages' is a required property"):
        load_directory(bad)
