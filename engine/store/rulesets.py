"""Published ruleset versions in the store: publish, list, activate, and the active one.

A version is the content hash of the normalised ruleset, so publishing the same rules twice is
one version. At most one version is active; with none active, workers use their rules directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from engine.ruleset import Ruleset
from engine.store.db import Store
from engine.store.tables import RulesetVersionRow


class UnknownVersion(LookupError):
    pass


@dataclass
class Published:
    version: str
    created: bool  # False when this exact ruleset had been published before


def publish(store: Store, ruleset: Ruleset, author: str, message: str, activate: bool = False) -> Published:
    with store.session() as s:
        row = s.get(RulesetVersionRow, ruleset.version)
        created = row is None
        if created:
            s.add(RulesetVersionRow(version=ruleset.version, data=ruleset.to_dict(), author=author, message=message,
                                    created_at=datetime.now(timezone.utc)))
            s.commit()
    if activate:
        activate_version(store, ruleset.version)
    return Published(ruleset.version, created)


def find(store: Store, prefix: str) -> RulesetVersionRow:
    """A version by its id or an unambiguous prefix of it."""
    with store.session() as s:
        rows = s.exec(select(RulesetVersionRow).where(RulesetVersionRow.version.startswith(prefix))).all()  # type: ignore[attr-defined]
    if not rows:
        raise UnknownVersion(f"no published ruleset version {prefix!r} (ticketflow rules versions)")
    if len(rows) > 1:
        raise UnknownVersion(f"{prefix!r} matches {len(rows)} versions; give more characters")
    return rows[0]


def versions(store: Store) -> list[RulesetVersionRow]:
    with store.session() as s:
        return list(s.exec(select(RulesetVersionRow).order_by(RulesetVersionRow.created_at.desc())).all())  # type: ignore[attr-defined]


def activate_version(store: Store, version: str | None) -> None:
    """Make `version` the one new tickets are pinned to; None goes back to the rules directory."""
    with store.session() as s:
        if version is not None and s.get(RulesetVersionRow, version) is None:
            raise UnknownVersion(f"no published ruleset version {version!r}")
        s.exec(update(RulesetVersionRow).values(active=False))  # type: ignore[call-overload]
        if version is not None:
            s.exec(update(RulesetVersionRow).where(RulesetVersionRow.version == version).values(active=True))  # type: ignore[call-overload]
        s.commit()


def active(store: Store) -> tuple[str, dict[str, Any]] | None:
    with store.session() as s:
        row = s.exec(select(RulesetVersionRow).where(RulesetVersionRow.active == True)).first()  # noqa: E712
        return (row.version, row.data) if row else None


def data_of(store: Store, version: str) -> dict[str, Any] | None:
    with store.session() as s:
        row = s.get(RulesetVersionRow, version)
        return row.data if row else None


def set_pilot(store: Store, version: str | None, share: float | None = None, channels: list[str] | None = None) -> None:
    """Run `version` as a pilot beside the active version (None ends every pilot)."""
    if share is not None and not 0 < share <= 1:
        raise ValueError(f"pilot share must be in (0, 1], got {share}")
    with store.session() as s:
        if version is not None and s.get(RulesetVersionRow, version) is None:
            raise UnknownVersion(f"no published ruleset version {version!r}")
        s.exec(update(RulesetVersionRow).values(pilot_share=None, pilot_channels=None))  # type: ignore[call-overload]
        if version is not None:
            s.exec(update(RulesetVersionRow).where(RulesetVersionRow.version == version)  # type: ignore[call-overload]
                   .values(pilot_share=share, pilot_channels=channels or None))
        s.commit()


def pilot(store: Store) -> tuple[str, float | None, list[str]] | None:
    # Filtered here, not in SQL: a JSON column's "no value" is JSON null on some databases.
    with store.session() as s:
        for row in s.exec(select(RulesetVersionRow)).all():
            if row.pilot_share is not None or row.pilot_channels:
                return row.version, row.pilot_share, list(row.pilot_channels or [])
    return None
