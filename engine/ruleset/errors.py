"""Problems found in a ruleset, as data and as the one exception loading raises.

This module owns the shape of a rules error. Ops people read these lines in a terminal or a CI
log, so every issue carries where it is (file, line, column), which rule and group it belongs to,
what is wrong and, when we can guess it, how to fix it. Loading collects every issue before
raising, so one run of `ticketflow rules validate` shows everything that needs fixing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RuleIssue:
    """One problem in a ruleset. `line`/`column` are 1-based and None when the source has no
    positions (a ruleset rebuilt from JSON); `rule_id`/`group` are None outside a rule/group."""

    file: str
    line: int | None
    column: int | None
    rule_id: str | None
    group: str | None
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        context = ""
        if self.rule_id is not None and self.group is not None:
            context = f"rule '{self.rule_id}' (group {self.group}): "
        elif self.rule_id is not None:
            context = f"rule '{self.rule_id}': "
        elif self.group is not None:
            context = f"group {self.group}: "
        text = f"{where}: {context}{self.message}"
        if self.hint:
            text += f" — {self.hint}"
        return text

    def sort_key(self) -> tuple:
        return (self.file, self.line or 0, self.column or 0, self.message)


class RulesetError(Exception):
    """Raised when a ruleset cannot be used; `issues` holds every problem found, in file order."""

    def __init__(self, issues: list[RuleIssue]):
        self.issues = sorted(issues, key=RuleIssue.sort_key)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


def suggest(word: Any, candidates: Iterable[str]) -> str | None:
    """"did you mean 'x'?" for a misspelt name: a case-insensitive equal first, else the closest."""
    if not isinstance(word, str):
        return None
    candidates = list(candidates)
    for candidate in candidates:
        if candidate.casefold() == word.casefold():
            return f"did you mean '{candidate}'?"
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
