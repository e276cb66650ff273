"""After resolution inside TicketWorkflow (tickets started on `respond-v4` and later): the follow-up
survey the rules decide (skip conditions, delay, channel, one reminder, expiry), service recovery
on a low score (reopen, or a follow-up task for the team lead with its own deadline), close, and
the reopen window after close.

A mixin; deterministic like the rest of the workflow. Every choice is a rules decision recorded in
history; every message has a step key so it goes out once per resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Optional

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from engine.models import FollowupTaskInput, Survey, TicketState
    from engine.texts import human_duration

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Only when the rules have no survey / auto_close group: realistic, not demo-short.
DEFAULT_SURVEY = {"survey": True, "delay": 3600, "expires_after": 3 * 86400, "kind": "csat"}
DEFAULT_REOPEN_WINDOW = 7 * 86400
DEFAULT_FOLLOWUP_DUE = 86400
SCORE_RANGE = {"csat": (1, 5), "nps": (0, 10)}


def survey_schedule(st: TicketState, plan: Mapping[str, Any]) -> tuple[str, int, int]:
    """A survey's kind, delay and expiry in seconds: the ticket's timing overrides (demos, tests)
    win over the survey rule's plan, which falls back to DEFAULT_SURVEY."""
    delay = st.timing.survey_delay_seconds or plan.get("delay", DEFAULT_SURVEY["delay"])
    expiry = st.timing.survey_expiry_seconds or plan.get("expires_after", DEFAULT_SURVEY["expires_after"])
    return plan.get("kind", "csat"), delay, expiry


class AftercareMixin:
    """Expects the TicketWorkflow attributes: _state, _reopened and its helpers."""

    async def _lifecycle_v4(self) -> None:
        """Resolve → survey → close, round again on every reopen, until the reopen window ends."""
        st = self._state
        while True:
            while True:
                if self._released:
                    self._released = False
                    await self._reassign(team=st.team or "", why="reopened")
                    if st.assignee and st.status == "open":
                        self._stage("assign")
                await self._until_resolved_v2()
                await self._release()  # resolved: the agent's slot is free for the next ticket
                await self._project()
                if await self._survey_v4():
                    break
            if await self._close_v4():
                return

    # ---- survey -----------------------------------------------------------------------------

    async def _survey_v4(self) -> bool:
        """Run this resolution's survey; False when the ticket was reopened (by anyone) meanwhile."""
        st = self._state
        days = await workflow.execute_activity(
            "days_since_survey", args=[st.customer.id, st.ticket_id], result_type=Optional[float],
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        extra = {"resolved_by": st.resolved_by or "agent"}
        if days is not None:
            extra["customer.days_since_survey"] = days
        result = await self._evaluate(["survey"], extra)
        self._apply(result.decisions)
        decision = next((d for d in result.decisions if d.group == "survey"), None)
        plan = decision.actions if decision else DEFAULT_SURVEY
        n = st.reopen_count
        if not plan.get("survey", True):
            why = f"rule {decision.rule_id}" if decision else "no survey group"
            self._message("system", "survey", f"no survey for this resolution ({why})")
            return True
        kind, delay, expiry = survey_schedule(st, plan)
        try:
            await workflow.wait_condition(lambda: self._reopened, timeout=timedelta(seconds=delay))
            self._message("system", "survey", "survey cancelled: the ticket was reopened before it was sent")
            return False
        except TimeoutError:
            pass
        low, high = SCORE_RANGE[kind]
        channel = plan.get("channel") or st.channel
        lang = st.customer.language
        st.survey = Survey(kind=kind, sent_at=self._now(), channel=channel if channel != st.channel else "",
                           rule_id=decision.rule_id if decision else "")
        self._set_status("surveying")
        self._stage("survey")
        await self._deliver("survey", f"survey:{n}", channel=channel, kind=kind, low=low, high=high,
                            expires=human_duration(int(expiry), lang))
        survey = st.survey
        answered = lambda: self._reopened or survey.score is not None  # noqa: E731
        remind = int(plan.get("remind_after") or 0)
        waited = 0
        if 0 < remind < expiry:
            try:
                await workflow.wait_condition(answered, timeout=timedelta(seconds=remind))
            except TimeoutError:
                survey.reminded_at = self._now()
                await self._deliver("survey_reminder", f"survey-reminder:{n}", channel=channel, kind=kind, low=low,
                                    high=high, expires=human_duration(int(expiry - remind), lang))
                waited = remind
        try:
            await workflow.wait_condition(answered, timeout=timedelta(seconds=expiry - waited))
        except TimeoutError:
            survey.expired = True
            self._message("system", "survey", "survey expired unanswered")
            self._log("survey", {"expired": True, "kind": kind})
            return True
        if self._reopened:
            return False
        self._log("survey", {"kind": kind, "score": survey.score})
        return await self._recover(kind, int(survey.score))

    async def _recover(self, kind: str, score: int) -> bool:
        """Service recovery on a score the recovery rules call low. False when it reopens the ticket."""
        st = self._state
        result = await self._evaluate(["recovery"], {"survey.kind": kind, "survey.score": score})
        self._apply(result.decisions)
        decision = next((d for d in result.decisions if d.group == "recovery"), None)
        a = decision.actions if decision else {}
        if not (a.get("reopen") or a.get("followup")):
            return True
        n = st.reopen_count
        self._stage("recovery")
        self._log("recovery", {"rule_id": decision.rule_id, "score": score, "kind": kind, **a})
        if a.get("notify"):
            await self._notify_staff(a["notify"], f"low {kind} score {score} on {st.ticket_id} ({st.subject}): "
                                                  f"service recovery by rule {decision.rule_id}", f"recovery:{n}")
        if a.get("followup"):
            task_id = f"{st.ticket_id}-followup-{n}"
            await workflow.start_child_workflow(
                "FollowupTaskWorkflow",
                FollowupTaskInput(task_id=task_id, ticket_id=st.ticket_id, team=st.team or "",
                                  reason=f"low {kind} score {score}: call the customer back and fix what went wrong",
                                  due_seconds=int(a.get("followup_due") or DEFAULT_FOLLOWUP_DUE), notify=["team_lead"]),
                id=task_id, parent_close_policy=ParentClosePolicy.ABANDON,
            )
            st.followups.append(task_id)
            self._message("system", "recovery", f"follow-up task {task_id} opened for the {st.team} team lead")
        await self._deliver("recovery", f"recovery:{n}", score=score, kind=kind)
        if a.get("reopen"):
            self._reopen_now("recovery", f"low {kind} score {score} (rule {decision.rule_id})")
            return False
        return True

    def _reopen_now(self, by: str, reason: str) -> None:
        st = self._state
        st.reopen_count += 1
        st.reopen_until = None
        st.resolved_by = None
        self._reopened = True
        self._reopen_reason = reason if by not in ("customer", "recovery") else ""
        self._message("customer" if by == "customer" else "system" if by == "recovery" else "agent", by, f"reopened: {reason}")
        self._log("reopen", {"by": by, "reason": reason})
        self._sla("reopened")
        self._set_status("open")
        self._stage("reopen")

    # ---- close and the reopen window --------------------------------------------------------

    async def _close_v4(self) -> bool:
        """Close; True when the reopen window passed quietly (the workflow ends), False on a reopen."""
        st = self._state
        n = st.reopen_count
        self._set_status("closed")
        self._stage("close")
        if not self._plan("auto_close"):  # never waited on the customer: decide the reopen window now
            result = await self._evaluate(["auto_close"])
            self._apply(result.decisions)
        window = int(st.timing.reopen_window_seconds or self._plan("auto_close").get("reopen_window") or DEFAULT_REOPEN_WINDOW)
        kind = "auto_closed" if st.resolved_by == "auto_close" else "closed"
        self._reopened = False
        st.reopen_until = (workflow.now() + timedelta(seconds=window)).isoformat()
        await self._deliver(kind, "closed" if n == 0 else f"closed:{n}",
                            reopen_window=human_duration(window, st.customer.language))
        await self._release()
        await self._project(closing=True)
        heard = self._customer_messages
        try:
            await workflow.wait_condition(lambda: self._reopened or self._customer_messages != heard,
                                          timeout=timedelta(seconds=window))
        except TimeoutError:
            st.reopen_until = None
            self._log("window_closed", {"reopen_window": window})
            await self._project(closing=True)
            return True
        if not self._reopened:  # a customer message, not the reopen update
            self._reopen_now("customer", "the customer wrote within the reopen window")
        await self._deliver("reopened", f"reopened:{st.reopen_count}", reason=self._reopen_reason)
        return False
