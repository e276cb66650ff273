"""SLA supervision inside TicketWorkflow: one durable timer for the next warning, breach or
escalation follow-up; the escalation rule group deciding what each one does.

A mixin so TicketWorkflow stays readable; it uses the workflow's state and helpers. Everything
here is deterministic: clocks come from the pure `engine.sla`, decisions from local activities.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine import sla as sla_clock
    from engine.models import Decision, StaffNotice
    from engine.searchattrs import ticket_search_attributes

PRIORITY_UP = {"P4": "P3", "P3": "P2", "P2": "P1", "P1": "P1"}
TIERS = ("agent", "senior", "other_department", "management")
# Where a ticket goes when it moves up to a tier, unless the rule names a team (reassign_team).
TIER_TEAM = {"other_department": "escalations", "management": "management"}
NOTIFY_TIMEOUT = timedelta(seconds=30)


class EscalationMixin:
    """Expects the TicketWorkflow attributes: _state, _fired, _followups and its helpers."""

    async def _until_resolved_v2(self) -> None:
        st = self._state
        while st.status != "resolved":
            if self._v4:
                await self._respond_due()
                if st.status == "resolved":
                    break
            await self._fire_due()
            if self._v3:
                await self._staffing()
                await self._project()
            if st.status == "resolved":
                break
            now = workflow.now()
            deadline = sla_clock.next_threshold_at(self._clocks(), st.sla_targets, self._fired, now) if st.sla_targets else None
            if self._followups:
                first = min(datetime.fromisoformat(at) for at, _, _ in self._followups)
                deadline = first if deadline is None else min(deadline, first)
            if self._v4:
                extra = self._respond_deadline()
                if extra is not None:
                    deadline = extra if deadline is None else min(deadline, extra)
            silent = self._silent_deadline() if self._v3 else None
            if silent is not None:
                deadline = silent if deadline is None else min(deadline, silent)
            timeout = None if deadline is None else max(timedelta(seconds=1), deadline - now)
            status_before, events_before, wake_before = st.status, len(st.sla_events), self._wake
            try:
                await workflow.wait_condition(
                    lambda: st.status != status_before or len(st.sla_events) != events_before or self._wake != wake_before,
                    timeout=timeout,
                )
            except TimeoutError:
                pass

    def _silent_deadline(self) -> datetime | None:
        """When the assignee must have answered by (routing's `reassign_after`), if they have not yet."""
        st = self._state
        after = self._plan("routing").get("reassign_after")
        if not after or not st.assignee or not self._assigned_at:
            return None
        if any(m.role == "agent" and m.author == st.assignee and m.at >= self._assigned_at for m in st.messages):
            return None
        return datetime.fromisoformat(self._assigned_at) + timedelta(seconds=int(after))

    async def _staffing(self) -> None:
        """Queued tickets try again when told a slot opened; silent or offline assignees hand over."""
        st = self._state
        if st.assignee is None and self._assign_wanted:
            self._assign_wanted = False
            await self._reassign(team=st.team or "", why="a slot opened in the team")
        elif self._unavailable and self._unavailable == st.assignee:
            gone, self._unavailable = self._unavailable, ""
            await self._reassign(team=st.team or "", why=f"{gone} went offline", exclude_current=True)
        else:
            deadline = self._silent_deadline()
            if deadline is not None and workflow.now() >= deadline:
                silent = st.assignee
                await self._reassign(team=st.team or "", why=f"{silent} did not answer in time", exclude_current=True)
                if st.assignee != silent:
                    await self._notify_staff(["team_lead"], f"{st.ticket_id} moved from {silent}: no answer in time", f"silent:{silent}:{self._assigned_at}")

    async def _fire_due(self) -> None:
        """Fire every threshold reached and every follow-up due, oldest first, each exactly once."""
        st = self._state
        if not st.sla_targets:
            return
        for t in sla_clock.reached(self._clocks(), st.sla_targets, self._fired):
            self._fired.add(t.key)
            event = "breach" if t.fraction >= 1.0 else "warning"
            if event == "breach":
                workflow.upsert_search_attributes(ticket_search_attributes(sla_breached=True))
            self._message("system", "sla", f"SLA {t.metric} {event} at {t.fraction:.0%} of target")
            await self._escalate(event, t.metric, t.fraction, t.key)
        now = workflow.now()
        due = [f for f in self._followups if datetime.fromisoformat(f[0]) <= now]
        self._followups = [f for f in self._followups if f not in due]
        for at, metric, key in sorted(due):
            clock = next((c for c in self._clocks() if c.metric == metric), None)
            if clock is None or clock.state != "breached" or not clock.active:
                continue  # fixed in the meantime: nothing to follow up
            await self._escalate("followup", metric, 1.0, f"{key}:followup@{at}")

    async def _escalate(self, event: str, metric: str, fraction: float, key: str) -> None:
        st = self._state
        extra = {"sla.event": event, "sla.metric": metric, "sla.threshold": fraction, "escalation.tier": st.escalation_tier}
        result = await self._evaluate(["escalation"], extra)
        self._apply(result.decisions)
        decision = next((d for d in result.decisions if d.group == "escalation"), None)
        if decision is None:
            return
        a = decision.actions
        if a.get("notify"):
            await self._notify_staff(a["notify"], f"{event} of {metric} ({fraction:.0%}) on {st.ticket_id}: {st.subject}", f"esc:{key}")
        if a.get("raise_priority") and st.priority and PRIORITY_UP[st.priority] != st.priority:
            await self._change_priority(PRIORITY_UP[st.priority], f"escalation rule {decision.rule_id}", decision.ruleset_version)
        if a.get("tier_up") and st.escalation_tier != TIERS[-1]:
            await self._tier_up(a.get("reassign_team"), decision.rule_id)
        elif a.get("reassign_team"):
            await self._reassign(team=a["reassign_team"], why=f"escalation rule {decision.rule_id}")
        elif a.get("reassign_agent"):
            await self._reassign(team=st.team or "", why=f"escalation rule {decision.rule_id}", exclude_current=True)
        if a.get("again_after"):
            at = workflow.now() + timedelta(seconds=int(a["again_after"]))
            self._followups.append((at.isoformat(), metric, key))

    async def _tier_up(self, team: str | None, rule_id: str) -> None:
        st = self._state
        tier = TIERS[TIERS.index(st.escalation_tier) + 1]
        st.escalation_tier = tier
        self._stage(f"escalate:{tier}")
        if tier == "senior":
            # A senior assignee keeps the ticket; otherwise a senior of the team takes it.
            await self._reassign(team=team or st.team or "", why=f"tier up to senior ({rule_id})", min_tier="senior")
        else:
            await self._reassign(team=team or TIER_TEAM[tier], why=f"tier up to {tier} ({rule_id})")

    async def _change_priority(self, priority: str, why: str, version: str, by: str = "") -> None:
        """A new priority re-chooses the SLA policy; the clocks keep their elapsed time (or restart
        when the new policy says so), and the switch is an event in the clock's history."""
        st = self._state
        old = st.priority
        st.priority = priority
        self._record(Decision(group="priority", rule_id=f"manual:{by}" if by else "escalation", rule_ids=[],
                              actions={"priority": priority}, ruleset_version=version,
                              trace=[{"reason": why, "from": old}], at=self._now()))
        workflow.upsert_search_attributes(ticket_search_attributes(priority=priority))
        self._message("system", "priority", f"priority {old} → {priority}: {why}")
        result = await self._evaluate(["sla_policy"])
        self._apply(result.decisions)
        new = st.sla_policy
        if new and new in result.sla_policies and result.sla_policies[new] != st.sla_targets:
            st.sla_targets = result.sla_policies[new]
            self._sla_policy_event()
            kept = "restarted" if st.sla_targets.get("on_change") == "restart" else "elapsed time kept"
            self._message("system", "sla", f"SLA policy is now {new} ({kept})")

    async def _notify_staff(self, targets: list[str], body: str, step: str) -> None:
        st = self._state
        await workflow.execute_activity(
            "notify_staff",
            StaffNotice(idempotency_key=f"{st.ticket_id}:{step}", ticket_id=st.ticket_id, team=st.team or "",
                        assignee=st.assignee or "", targets=list(targets), body=body),
            start_to_close_timeout=NOTIFY_TIMEOUT,
        )

    def _escalation_snapshot(self) -> dict[str, Any]:
        """SLA fractions used, for rules that escalate on how late a ticket is."""
        out: dict[str, Any] = {}
        for c in self._clocks():
            if c.target_seconds:
                out[f"sla.{c.metric}.used"] = round(c.elapsed_seconds / c.target_seconds, 4)
        return out
