"""Audit: export ticket histories, read them back as a timeline, replay them against today's code.

Temporal's history is the source of truth for a ticket (DESIGN.md): everything here works from a
history alone — fetched from the server or read from a JSON file in Temporal's own format — and
never queries a workflow or needs a worker.

- `history`  load (server or file) and write histories in Temporal's JSON format, export many.
- `timeline` decode a history into a timeline of what happened, with every decision's rule ids,
             ruleset version and trace, and the SLA clocks recomputed at every entry.
- `replay`   replay histories against the current TicketWorkflow and say which are not deterministic.
- `report`   the timeline as one self-contained HTML file.
"""

from engine.audit.history import (
    HistoryError,
    export_query,
    export_ticket,
    fetch_history,
    history_files,
    read_history,
    write_history,
)
from engine.audit.timeline import Entry, Timeline, TimelineError, build_timeline

__all__ = [
    "Entry",
    "HistoryError",
    "Timeline",
    "TimelineError",
    "build_timeline",
    "export_query",
    "export_ticket",
    "fetch_history",
    "history_files",
    "read_history",
    "write_history",
]
