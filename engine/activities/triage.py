"""The rule-evaluation local activity and the registry of ruleset versions a worker can evaluate.

A ticket is pinned to the ruleset version it opened under. New tickets get the version activated
in the store (`rules activate`), or, with none active, the worker's rules directory. The registry
keeps every version this worker has loaded as JSON under `<data dir>/rulesets/<version>.json` and
finds others in the store, so a pinned ticket keeps its rules on any worker, after any change.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine import metrics
from engine.models import Decision, EvaluationRequest, EvaluationResult
from engine.ruleset import Ruleset, build_snapshot, load_ruleset
from engine.ruleset.calendars import policies_with_calendars
from engine.ruleset.stages import deciding_rule
from engine.store import Store
from engine.store import rulesets as store_rulesets


ACTIVE_TTL = 2.0  # seconds a worker trusts its view of the store's active version


class RulesetRegistry:
    def __init__(self, rules_dir: Path, data_dir: Path, store: Store | None = None) -> None:
        self._dir = data_dir / "rulesets"
        self._lock = threading.Lock()
        self._versions: dict[str, Ruleset] = {}
        self._policies: dict[str, dict[str, dict]] = {}
        self._store = store
        self._store_active: tuple[float, tuple | None] = (-ACTIVE_TTL, None)
        self.active_ttl = ACTIVE_TTL
        self.active = self.reload(rules_dir)

    def for_new_ticket(self, ticket_id: str = "", channel: str = "") -> tuple[Ruleset, str]:
        """The version a new ticket is pinned to, and why: a pilot's when the ticket falls in its
        share (a stable hash of the ticket id) or scope (channel), else the store's active version,
        else the rules directory's."""
        if self._store is None:
            return self.active, "rules directory"
        checked, found = self._store_active
        if time.monotonic() - checked >= self.active_ttl:
            act = store_rulesets.active(self._store)
            found = (act[0] if act else None, store_rulesets.pilot(self._store))
            self._store_active = (time.monotonic(), found)
        version, trial = found if found else (None, None)
        if trial is not None and ticket_id:
            pilot_version, share, channels = trial
            bucket = int(hashlib.sha256(ticket_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            if channel in channels:
                return self.get(pilot_version), f"pilot (channel {channel})"
            if share is not None and bucket < share:
                return self.get(pilot_version), f"pilot ({share:.0%} of new tickets)"
        if version:
            return self.get(version), "active version"
        return self.active, "rules directory"

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
            cached = policies_with_calendars(ruleset)
            with self._lock:
                self._policies[ruleset.version] = cached
        return cached

    def get(self, version: str | None) -> Ruleset:
        if version is None:
            return self.for_new_ticket()[0]
        with self._lock:
            found = self._versions.get(version)
        if found is not None:
            return found
        path = self._dir / f"{version}.json"
        data = json.loads(path.read_text("utf-8")) if path.exists() else None
        if data is None and self._store is not None:
            data = store_rulesets.data_of(self._store, version)
        if data is None:
            raise ApplicationError(
                f"ruleset version {version} is not known to this worker (not in {self._dir} nor the store); "
                "publish it (ticketflow rules publish) or start the worker with the rules it was pinned to"
            )
        ruleset = Ruleset.from_dict(data)
        with self._lock:
            self._versions[version] = ruleset
        return ruleset


class TriageActivities:
    def __init__(self, registry: RulesetRegistry) -> None:
        self.registry = registry

    @activity.defn(name="evaluate_rules")
    async def evaluate_rules(self, req: EvaluationRequest) -> EvaluationResult:
        reason = "pinned"
        if req.ruleset_version is None:
            ruleset, reason = self.registry.for_new_ticket(req.ticket_id, str(req.snapshot.get("channel", "")))
        else:
            ruleset = self.registry.get(req.ruleset_version)
        snapshot = build_snapshot(req.snapshot)
        groups = tuple(group for group in req.groups if ruleset.has_group(group))
        # the groups of a request together, as one native program: the text is scanned once
        started = time.perf_counter()
        results = ruleset.stage_evaluator(groups)(snapshot)
        took = time.perf_counter() - started
        # the results are fresh objects this activity owns, so the decisions take them as they are
        decisions = [Decision(group=res.group, rule_id=deciding_rule(ruleset, res.group, res.rule_ids), rule_ids=res.rule_ids,
                              actions=res.actions, ruleset_version=ruleset.version, trace=res.trace)
                     for res in results]
        policies = self.registry.policies(ruleset) if "sla_policy" in req.groups else {}
        # Counted per execution: replay reads this local activity's result from history and does
        # not run it, but a retry runs it again, and each run is real evaluation work worth seeing.
        # The SLA warning behind an escalation evaluation is counted here too (no journal row says
        # it); it over-counts only in that rare re-run.
        m = metrics.current()
        if decisions:
            m.evaluated([d.group for d in decisions], took, [d.rule_id for d in decisions])
        if "escalation" in req.groups and req.snapshot.get("sla.event") == "warning":
            m.sla_warning(req.snapshot)
        return EvaluationResult(ruleset_version=ruleset.version, decisions=decisions, sla_policies=policies, version_reason=reason)
