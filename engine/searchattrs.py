"""The custom search attributes a ticket keeps up to date, and how to register them on a server.

Spend Keyword attributes carefully (the dev server allows 10 per namespace) and never put personal
data in them: visibility is not encrypted. Customer ids and text stay out.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, SearchAttributeUpdate

# "Status" is taken by the server (an alias of ExecutionStatus in visibility queries): a custom
# attribute of that name is silently not registered and every query on it fails.
STATUS = SearchAttributeKey.for_keyword("TicketStatus")
PRIORITY = SearchAttributeKey.for_keyword("Priority")
CATEGORY = SearchAttributeKey.for_keyword("Category")
TEAM = SearchAttributeKey.for_keyword("Team")
ASSIGNEE = SearchAttributeKey.for_keyword("Assignee")
CHANNEL = SearchAttributeKey.for_keyword("Channel")
RULESET = SearchAttributeKey.for_keyword("RulesetVersion")
SLA_BREACHED = SearchAttributeKey.for_bool("SlaBreached")

ALL_KEYS = (STATUS, PRIORITY, CATEGORY, TEAM, ASSIGNEE, CHANNEL, RULESET, SLA_BREACHED)


def dev_server_flags() -> list[str]:
    """`temporal server start-dev --search-attribute Name=Type ...` arguments."""
    out: list[str] = []
    for key in ALL_KEYS:
        kind = "Bool" if key is SLA_BREACHED else "Keyword"
        out += ["--search-attribute", f"{key.name}={kind}"]
    return out


def ticket_search_attributes(
    *,
    status: str | None = None,
    priority: str | None = None,
    category: str | None = None,
    team: str | None = None,
    assignee: str | None = None,
    channel: str | None = None,
    ruleset: str | None = None,
    sla_breached: bool | None = None,
) -> list[SearchAttributeUpdate]:
    """Updates for the values given; None means leave that attribute as it is."""
    pairs = (
        (STATUS, status),
        (PRIORITY, priority),
        (CATEGORY, category),
        (TEAM, team),
        (ASSIGNEE, assignee),
        (CHANNEL, channel),
        (RULESET, ruleset),
        (SLA_BREACHED, sla_breached),
    )
    return [key.value_set(value) for key, value in pairs if value is not None]  # type: ignore[attr-defined]


def initial_pairs(channel: str) -> list[SearchAttributePair]:
    return [SearchAttributePair(STATUS, "received"), SearchAttributePair(CHANNEL, channel), SearchAttributePair(SLA_BREACHED, False)]
