"""The rule-evaluation local activity and the registry of ruleset versions a worker can evaluate.

A ticket is pinned to the ruleset version it opened under. The registry keeps every version this
worker has loaded as JSON under `<data dir>/rulesets/<version>.json`, so a ticket opened before a
rules change keeps its rules after the change and after a restart.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.models import Decision, EvaluationRequest, EvaluationResult
from engine.ruleset import Ruleset, build_snapshot, load_ruleset
from engine.ruleset.stages import deciding_rule


class RulesetRegistry:
    def __init__(self, rules_dir: Path, data_dir: Path) -> None:
        self._dir = data_dir / "rulesets"
        self._lock = threading.Lock()
        self._versions: dict[str, Ruleset] = {}
        self._policies: dict[str, dict[str, dict]] = {}
        self.active = self.reload(rules_dir)

    def reload(self, rules_dir: Path) -> Ruleset:
        """Load and validate `rules_dir`; on error raise and keep the last good version active."""
        ruleset = load_ruleset(rules_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"{ruleset.version}.json"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(ruleset.to_dict(), ensure_ascii=False, sort_keys=True), "utf-8")
            tmp.replace(path)
        with self._lock:
            self._versions[ruleset.version] = ruleset
            self.active = ruleset
        return ruleset

    def policies(self, ruleset: Ruleset) -> dict[str, dict]:
        """SLA policies with their calendar embedded, so the workflow's pure clock needs nothing else."""
        with self._lock:
            cached = self._policies.get(ruleset.version)
        if cached is None:
            data = ruleset.to_dict()
            calendars = data.get("calendars", {})
            cached = {}
            for name, policy in ruleset.sla_policies.items():
                policy = dict(policy)
                if policy.get("calendar") in calendars:
                    spec = calendars[policy["calendar"]]
                    policy["calendar"] = {"name": policy["calendar"], "tz": spec["timezone"], "hours": spec["hours"], "holidays": spec["holidays"]}
                cached[name] = policy
            with self._lock:
                self._policies[ruleset.version] = cached
        return cached

    def get(self, version: str | None) -> Ruleset:
        if version is None:
            return self.active
        with self._lock:
            found = self._versions.get(version)
        if found is not None:
            return found
        path = self._dir / f"{version}.json"
        if not path.exists():
            raise ApplicationError(
                f"ruleset version {version} is not known to this worker (no {path}); "
                "publish it or start the worker with the rules it was pinned to"
            )
        ruleset = Ruleset.from_dict(json.loads(path.read_text("utf-8")))
        with self._lock:
            self._versions[version] = ruleset
        return ruleset


class TriageActivities:
    def __init__(self, registry: RulesetRegistry) -> None:
        self.registry = registry

    @activity.defn(name="evaluate_rules")
    async def evaluate_rules(self, req: EvaluationRequest) -> EvaluationResult:
        ruleset = self.registry.get(req.ruleset_version)
        snapshot = build_snapshot(req.snapshot)
        decisions = []
        for group in req.groups:
            if not ruleset.has_group(group):
                continue
            res = ruleset.evaluate(group, snapshot)
            decisions.append(
                Decision(
                    group=group,
                    rule_id=deciding_rule(ruleset, group, res.rule_ids),
                    rule_ids=list(res.rule_ids),
                    actions=dict(res.actions),
                    ruleset_version=ruleset.version,
                    trace=list(res.trace),
                )
            )
        policies = self.registry.policies(ruleset) if "sla_policy" in req.groups else {}
        return EvaluationResult(ruleset_version=ruleset.version, decisions=decisions, sla_policies=policies)
