"""Workflow histories in and out: from the server, from and to JSON files in Temporal's own format.

The file format is the one `temporal workflow show -o json` prints and `WorkflowHistory.to_json()`
writes (`{"events": [...]}` with protobuf JSON field names), so histories move freely between this
project, the Temporal CLI and the Web UI's download button.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

DEFAULT_QUERY = 'WorkflowType = "TicketWorkflow"'


class HistoryError(Exception):
    """A history that cannot be read or fetched, explained in one line."""


def history_from_json(data: str | dict, workflow_id: str, where: str = "history") -> WorkflowHistory:
    """Parse Temporal's JSON history format (a string or the already-parsed object).

    Text goes straight to the SDK's parser, as a user of the SDK alone would pass it: checking the
    JSON beforehand would parse it twice, and handing the SDK a dict makes it deep-copy the whole
    history first. Only a history the SDK refuses is looked at again, to say why in one line.
    """
    try:
        history = WorkflowHistory.from_json(workflow_id, data)
    except Exception as exc:  # ValueError, protobuf's ParseError and friends: say what, not a traceback
        raise _why_not(data, where, exc) from None
    if not history.events:
        raise HistoryError(f"{where}: the history has no events")
    if not history.events[0].HasField("workflow_execution_started_event_attributes"):
        raise HistoryError(f"{where}: the first event is not WorkflowExecutionStarted; export the whole history")
    return history


def _why_not(data: str | dict, where: str, exc: Exception) -> HistoryError:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as bad:
            return HistoryError(f"{where}:{bad.lineno}:{bad.colno}: not valid JSON: {bad.msg}")
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        return HistoryError(f"{where}: not a Temporal history (expected an object with an \"events\" list, "
                            "as `temporal workflow show -o json` prints)")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return HistoryError(f"{where}: not a Temporal history: {first}")


def read_history(path: Path, workflow_id: str | None = None) -> WorkflowHistory:
    """A history from a JSON file; its workflow id defaults to the file name without `.json`."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise HistoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise HistoryError(f"{path}: not a text file (UTF-8 JSON expected)") from None
    return history_from_json(text, workflow_id or path.stem, str(path))


def write_history(history: WorkflowHistory, path: Path) -> Path:
    """Write in Temporal's JSON format (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(history.to_json(), "utf-8")
    tmp.replace(path)
    return path


async def fetch_history(client: Client, ticket_id: str, run_id: str | None = None) -> WorkflowHistory:
    """The whole history of a ticket's workflow (the latest run unless `run_id` is given)."""
    try:
        return await client.get_workflow_handle(ticket_id, run_id=run_id).fetch_history()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HistoryError(f"no ticket {ticket_id} on the server (namespace {client.namespace})") from None
        raise HistoryError(f"{ticket_id}: cannot fetch history: {exc.message}") from None


def _safe_name(ticket_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in ticket_id) or "ticket"


async def export_ticket(client: Client, ticket_id: str, out_dir: Path, run_id: str | None = None) -> Path:
    """Write one ticket's history as `<out_dir>/<ticket>.json`."""
    history = await fetch_history(client, ticket_id, run_id)
    return write_history(history, out_dir / f"{_safe_name(ticket_id)}.json")


async def export_query(
    client: Client,
    query: str,
    out_dir: Path,
    limit: int | None = None,
    on_each: Callable[[str, Path], None] | None = None,
) -> list[Path]:
    """Write the history of every workflow the visibility query matches as `<ticket>.json`.

    A ticket id that appears twice (an older, closed run and a new one) gets the run id appended
    to the second file, so nothing is overwritten.
    """
    written: list[Path] = []
    seen: set[str] = set()
    try:
        async for wf in client.list_workflows(query, limit=limit):
            history = await fetch_history(client, wf.id, wf.run_id)
            name = _safe_name(wf.id)
            if name in seen:
                name = f"{name}.{wf.run_id}"
            seen.add(name)
            path = write_history(history, out_dir / f"{name}.json")
            written.append(path)
            if on_each is not None:
                on_each(wf.id, path)
            if limit is not None and len(written) >= limit:
                break
    except RPCError as exc:
        raise HistoryError(f"export query failed: {exc.message} (query: {query})") from None
    return written


def history_files(directory: Path) -> list[Path]:
    """The `*.json` files of a directory, sorted by name (what `export` writes)."""
    if not directory.is_dir():
        raise HistoryError(f"{directory}: not a directory")
    return sorted(p for p in directory.glob("*.json") if p.is_file())
