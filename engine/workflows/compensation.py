"""Complaint handling inside TicketWorkflow (tickets on `respond-v4` and later): compensation
(refund, coupon, reship) offered through an update, within the agent's authority as the
`compensation` rules define it, and above it waiting for a supervisor's approval update.

Refusals come only from update validators, so a refused request changes nothing and leaves no
trace in history beyond the rejection the caller sees. What the rules decided is a recorded
decision; issuing tells the customer once per compensation (step key).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine.models import AGENT_TIERS, COMPENSATIONS, CommandResult, Compensation, CompensationCommand, CompensationDecision

MAX_AMOUNT = 1_000_000  # a typo guard, not a policy: the rules hold the real limits
OFFERABLE = ("assigned", "open", "pending_customer", "on_hold")


class CompensationMixin:
    """Expects the TicketWorkflow attributes: _state and its helpers."""

    def _pending_compensation(self) -> Compensation | None:
        return next((c for c in self._state.compensations if c.status == "pending_approval"), None)

    def _refuse_while_compensation_pending(self) -> None:
        """Update validators: nothing else may be offered, and the ticket not resolved, meanwhile."""
        pending = self._pending_compensation()
        if pending is not None:
            raise ValueError(f"compensation #{pending.seq} ({pending.kind} {pending.amount:g}) still waits for approval")

    @workflow.update
    async def offer_compensation(self, cmd: CompensationCommand) -> CommandResult:
        st = self._state
        extra = {"compensation.kind": cmd.kind, "compensation.amount": cmd.amount, "agent.tier": cmd.agent_tier}
        result = await self._evaluate(["compensation"], extra)
        self._apply(result.decisions)
        decision = next((d for d in result.decisions if d.group == "compensation"), None)
        a = decision.actions if decision else {}
        approved = bool(a.get("approve"))
        comp = Compensation(seq=len(st.compensations) + 1, kind=cmd.kind, amount=float(cmd.amount), reason=cmd.reason,
                            offered_by=cmd.agent, status="issued" if approved else "pending_approval", at=self._now(),
                            rule_id=decision.rule_id if decision else "",
                            approver_tier="" if approved else str(a.get("approver") or "senior"))
        st.compensations.append(comp)
        self._message("agent", cmd.agent, f"offers {comp.kind} {comp.amount:g}: {comp.reason}")
        self._log("compensation", {"seq": comp.seq, "kind": comp.kind, "amount": comp.amount, "by": cmd.agent,
                                   "status": comp.status, "rule_id": comp.rule_id, "approver_tier": comp.approver_tier})
        if approved:
            await self._issue(comp)
            return CommandResult(st.ticket_id, st.status, f"{comp.kind} {comp.amount:g} issued (rule {comp.rule_id})")
        await self._notify_staff(["team_lead"], f"{st.ticket_id}: {cmd.agent} offers {comp.kind} {comp.amount:g} "
                                                f"({comp.reason}); needs approval by a {comp.approver_tier} or above",
                                 f"compensation:{comp.seq}:approval")
        return CommandResult(st.ticket_id, st.status,
                             f"{comp.kind} {comp.amount:g} waits for approval by a {comp.approver_tier} or above (rule {comp.rule_id or 'none'})")

    @offer_compensation.validator
    def _check_offer(self, cmd: CompensationCommand) -> None:
        st = self._state
        self._require_assignee(cmd.agent, "compensation")
        if st.status not in OFFERABLE:
            raise ValueError(f"cannot offer compensation on ticket {st.ticket_id} while it is {st.status}")
        if cmd.kind not in COMPENSATIONS:
            raise ValueError(f"compensation must be one of {', '.join(COMPENSATIONS)}, got {cmd.kind!r}")
        if not 0 < cmd.amount <= MAX_AMOUNT:
            raise ValueError(f"compensation amount must be above 0 and at most {MAX_AMOUNT}, got {cmd.amount:g}")
        if cmd.agent_tier not in AGENT_TIERS:
            raise ValueError(f"unknown agent tier {cmd.agent_tier!r}; one of {', '.join(AGENT_TIERS)}")
        if not cmd.reason.strip():
            raise ValueError("a compensation needs a reason (--reason)")
        self._refuse_while_compensation_pending()

    @workflow.update
    async def decide_compensation(self, cmd: CompensationDecision) -> CommandResult:
        st = self._state
        comp = self._pending_compensation()
        assert comp is not None  # the validator made sure
        comp.decided_by, comp.decided_at, comp.note = cmd.by, self._now(), cmd.note
        self._log("compensation", {"seq": comp.seq, "decided_by": cmd.by, "approve": cmd.approve, "note": cmd.note})
        if not cmd.approve:
            comp.status = "declined"
            self._message("agent", cmd.by, f"declines {comp.kind} {comp.amount:g}: {cmd.note}")
            return CommandResult(st.ticket_id, st.status, f"{comp.kind} {comp.amount:g} declined")
        self._message("agent", cmd.by, f"approves {comp.kind} {comp.amount:g}" + (f": {cmd.note}" if cmd.note else ""))
        await self._issue(comp)
        return CommandResult(st.ticket_id, st.status, f"{comp.kind} {comp.amount:g} approved by {cmd.by} and issued")

    @decide_compensation.validator
    def _check_decision(self, cmd: CompensationDecision) -> None:
        st = self._state
        comp = self._pending_compensation()
        if comp is None:
            raise ValueError(f"ticket {st.ticket_id} has no compensation waiting for approval")
        if cmd.by == comp.offered_by:
            raise ValueError(f"{cmd.by} offered this compensation and cannot approve it too")
        if cmd.by_tier not in AGENT_TIERS or AGENT_TIERS.index(cmd.by_tier) < AGENT_TIERS.index(comp.approver_tier):
            raise ValueError(f"{cmd.by} is {cmd.by_tier or 'not an agent'}; {comp.kind} {comp.amount:g} needs a {comp.approver_tier} or above")
        if not cmd.approve and not cmd.note.strip():
            raise ValueError("say why the compensation is declined (--note)")

    async def _issue(self, comp: Compensation) -> None:
        comp.status = "issued"
        self._log("compensation", {"seq": comp.seq, "status": "issued"})
        await self._deliver("compensation", f"compensation:{comp.seq}", compensation=comp.kind, amount=f"{comp.amount:g}")
