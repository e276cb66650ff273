"""Which connectors a ruleset names, and which of those connectors.yaml does not define.

Rules may route a ticket's messages through a named connector (`respond` group, `connector`
action). A name that is not in connectors.yaml would fail every such message at send time, so
`rules validate` and worker start check it here first.
"""

from __future__ import annotations

from engine.ruleset import Ruleset


def unknown_connectors(ruleset: Ruleset, defined: list[str]) -> list[str]:
    """One line per rule naming a connector that `defined` lacks."""
    problems = []
    for group in ruleset.groups.values():
        for rule in group.rules:
            name = rule.then.get("connector")
            if name and name not in defined:
                problems.append(f"rule '{rule.id}' (group {group.name}) sends through connector '{name}', "
                                f"which connectors.yaml does not define (defined: {', '.join(sorted(defined))})")
    return problems
