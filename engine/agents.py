"""Agents and teams from a YAML file validated against schemas/agents.schema.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from engine.calendar import calendar_from_dict
from engine.paths import PROJECT_ROOT

SCHEMA_PATH = PROJECT_ROOT / "schemas" / "agents.schema.json"


class AgentsInvalid(ValueError):
    pass


@dataclass(frozen=True)
class Agent:
    id: str
    name: str
    team: str
    languages: tuple[str, ...]
    skills: tuple[str, ...] = ()
    tier: str = "agent"
    max_open: int = 20
    status: str = "online"
    shift: dict | None = None  # a calendar (engine.calendar dict form): the hours they take tickets


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    lead: str = ""


@dataclass(frozen=True)
class Directory:
    teams: dict[str, Team]
    agents: dict[str, Agent] = field(default_factory=dict)



def _shift(path: Path, raw: dict) -> dict | None:
    """An agent's shift as a calendar dict, validated now so a typo fails the import, not a ticket."""
    spec = raw.get("shift")
    if spec is None:
        return None
    hours = {day: [list(map(str.strip, item.split("-", 1))) for item in items] for day, items in spec.get("hours", {}).items()}
    data = {"name": f"shift-{raw['id']}", "tz": spec.get("timezone", "UTC"), "hours": hours, "holidays": []}
    try:
        return calendar_from_dict(data).to_dict()
    except ValueError as exc:
        raise AgentsInvalid(f"{path}: agent {raw['id']!r}: shift: {exc}") from None


def load_directory(path: Path) -> Directory:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgentsInvalid(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AgentsInvalid(f"{path}: not valid YAML: {exc}") from None
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise AgentsInvalid(f"{path}: {where}: {errors[0].message}")
    teams = {t["id"]: Team(t["id"], t["name"], t.get("lead", "")) for t in data["teams"]}
    agents: dict[str, Agent] = {}
    for raw in data["agents"]:
        if raw["id"] in agents:
            raise AgentsInvalid(f"{path}: agent {raw['id']!r} is defined twice")
        if raw["team"] not in teams:
            raise AgentsInvalid(f"{path}: agent {raw['id']!r} names unknown team {raw['team']!r}")
        agents[raw["id"]] = Agent(
            id=raw["id"],
            name=raw["name"],
            team=raw["team"],
            languages=tuple(raw["languages"]),
            skills=tuple(raw.get("skills", ())),
            tier=raw.get("tier", "agent"),
            max_open=raw.get("max_open", 20),
            status=raw.get("status", "online"),
            shift=_shift(path, raw),
        )
    empty = [t for t in teams if not any(a.team == t for a in agents.values())]
    if empty:
        raise AgentsInvalid(f"{path}: team(s) {', '.join(empty)} have no agents; tickets routed there could never be assigned")
    return Directory(teams=teams, agents=agents)
