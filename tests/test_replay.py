"""Today's workflow code replays the committed histories in tests/histories/ without nondeterminism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from engine.workflows import TicketWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_histories_of_varied_tickets():
    names = {p.name.rsplit("-", 1)[0] for p in HISTORIES}
    assert {"surveyed", "reopened-pending", "breached-complaint", "escalated-on-hold", "faq-handoff-compensated"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path):
    data = json.loads(path.read_text("utf-8"))
    history = WorkflowHistory.from_json(path.stem, data)
    result = await Replayer(workflows=[TicketWorkflow]).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


async def test_a_changed_workflow_is_caught():
    # Guard against a replay test that cannot fail: rename the first scheduled activity in a
    # history and the replayer must report nondeterminism.
    data = json.loads(HISTORIES[0].read_text("utf-8"))
    scheduled = next(e for e in data["events"] if "activityTaskScheduledEventAttributes" in e)
    scheduled["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "some_other_activity"
    history = WorkflowHistory.from_json("tampered", data)
    result = await Replayer(workflows=[TicketWorkflow]).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
