"""TicketWorkflow: one customer issue, receive → classify → assign → respond → survey → close.

Deterministic by construction: decisions come from local activities (recorded in history), side
effects from activities with idempotency keys, time from `workflow.now()`, SLA clocks from the pure
`engine.sla`. Agent commands are updates whose validators refuse bad requests before anything is
written to history; customer messages are signals.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine import sla as sla_clock
    from engine.models import (
        AgentReply,
        EscalateCommand,
        HoldCommand,
        MigrateCommand,
        JournalEntry,
        ProjectionUpdate,
        SetPriorityCommand,
        Assignment,
        AssignmentRequest,
        CommandResult,
        CustomerMessage,
        Decision,
        EvaluationRequest,
        EvaluationResult,
        Message,
        OutgoingMessage,
        RenderedMessage,
        ReopenCommand,
        ResolveCommand,
        SlaEvent,
        StageRecord,
        Survey,
        SurveyAnswer,
        TicketInput,
        TicketState,
    )
    from engine.searchattrs import ticket_search_attributes
    from engine.texts import human_duration, render
    from engine.workflows.aftercare import DEFAULT_SURVEY, SCORE_RANGE, AftercareMixin, survey_schedule
    from engine.workflows.compensation import CompensationMixin
    from engine.workflows.escalation import EscalationMixin
    from engine.workflows.respond import RespondMixin, asks_for_human

EVAL_TIMEOUT = timedelta(seconds=10)
EVAL_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
ACTIVITY_TIMEOUT = timedelta(seconds=30)
REPLYABLE = ("assigned", "open", "pending_customer", "on_hold")
PRIORITIES = ("P1", "P2", "P3", "P4")


@workflow.defn
class TicketWorkflow(EscalationMixin, RespondMixin, AftercareMixin, CompensationMixin):
    @workflow.init
    def __init__(self, input: TicketInput) -> None:
        ev = input.event
        self._input = input
        self._state = TicketState(
            ticket_id=input.ticket_id,
            status="received",
            channel=ev.channel,
            customer=ev.customer,
            subject=ev.subject,
            is_public=ev.is_public,
            timing=input.timing,
            origin=ev.origin,
            linked_to=ev.linked_to,
        )
        self._seen_events: set[str] = {ev.event_id}
        self._reopened = False
        self._replies = 0
        self._fired: set[str] = set()  # SLA thresholds already acted on ("metric:cycle:fraction")
        self._followups: list[tuple[str, str, str]] = []  # (at, metric, threshold key) escalation re-checks
        self._v2 = False
        self._v3 = False
        self._journal: list[JournalEntry] = []  # what the store's ticket_event table gets
        self._projected = 0
        self._wake = 0  # bumped by signals the waiting loop must react to
        self._assign_wanted = False
        self._unavailable = ""
        self._released = False
        self._assigned_at = ""
        # respond-v4: templates, connectors, FAQ bot, progress updates, auto-close, aftercare
        self._v4 = False
        # sla-first-policy-v5: the first SLA policy also counts the moments before routing chose it;
        # reaching a target exactly is a breach at that instant
        self._v5 = False
        self._last_update_at = ""  # last message that kept the customer informed
        self._progress_sent = 0
        self._pending_since = ""  # when the ticket last started waiting on the customer
        self._auto_for = ""  # which waiting period the auto-close plan below was decided for
        self._auto_plan: dict[str, Any] | None = None
        self._auto_reminded = False
        self._reminders = 0
        self._customer_messages = 0
        self._wants_human = False
        self._human_replies = 0  # agent replies written by a person, not a canned template
        self._reopen_reason = ""
        self._bot_phase = False  # the FAQ bot answered; waiting to see whether a person is needed

    # ---- run -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: TicketInput) -> TicketState:
        st = self._state
        ev = input.event
        # Tickets started before warnings, escalation and the four-metric clock keep the v1 timer
        # logic, so their histories replay; every new ticket takes the v2 path.
        self._v2 = workflow.patched("sla-escalation-v2")
        # v3: the SQL projection, queues when nobody is free, release on resolve, reassignment.
        self._v3 = self._v2 and workflow.patched("store-v3")
        # v4: templates and connectors, FAQ bot, progress updates, rule-driven survey with recovery,
        # auto-close, the reopen window and complaint handling.
        self._v4 = self._v3 and workflow.patched("respond-v4")
        # v5: the milliseconds between arrival and routing count on the first policy's calendar,
        # not on the calendar of whatever policy the ticket has now, and a clock that reaches its
        # target exactly is breached at that instant (engine.sla.sla_state). Older tickets keep
        # the old count: it can shift a threshold across a whole second, and with it whether a
        # timer that fires finds the threshold reached.
        self._v5 = self._v4 and workflow.patched("sla-first-policy-v5")
        self._message("customer", ev.customer.id, ev.body)
        self._stage("receive")
        self._sla("opened")

        classify = await self._evaluate(["classification", "priority"])
        st.ruleset_version = classify.ruleset_version
        if classify.version_reason:
            self._message("system", "rules", f"ruleset {st.ruleset_version} ({classify.version_reason})")
            self._log("ruleset", {"to": st.ruleset_version, "reason": classify.version_reason})
        workflow.upsert_search_attributes(ticket_search_attributes(ruleset=st.ruleset_version))
        self._apply(classify.decisions)
        self._set_status("triaged")
        self._stage("classify")

        groups = ["routing", "sla_policy"] + (["respond", "resolution", "faq"] if self._v4 else [])
        route = await self._evaluate(groups)
        self._apply(route.decisions)
        if st.sla_policy in route.sla_policies:
            st.sla_targets = route.sla_policies[st.sla_policy]
            if self._v2:
                self._sla_policy_event()
        elif st.sla_policy:
            # Validation refuses such a ruleset; if one slips through, the ticket lives on unclocked
            # and says why, rather than failing the customer's ticket.
            self._message("system", "sla", f"sla policy {st.sla_policy!r} is not in ruleset {st.ruleset_version}; no SLA clock")
        if self._v4:
            await self._respond_v4()
            await self._lifecycle_v4()
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self._snapshot_state()
        await self._assign()
        self._stage("assign")

        await self._send("acknowledgement", "ack", first_response=self._first_response_text())
        self._set_status("open")
        self._stage("respond")
        await self._project()

        while True:
            if self._v3 and self._released:
                self._released = False
                await self._reassign(team=st.team or "", why="reopened")
            if self._v2:
                await self._until_resolved_v2()
            else:
                await self._until_resolved()
            if self._v3:
                await self._release()  # resolved: the agent's slot is free for the next ticket
                await self._project()
            if await self._survey():
                break
        self._set_status("closed")
        self._stage("close")
        await self._send("closed", "closed")
        if self._v3:
            await self._release()
            await self._project(closing=True)
        else:
            await workflow.execute_activity(
                "release_assignment", st.ticket_id, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._snapshot_state()

    async def _release(self) -> None:
        if self._released:
            return
        self._released = True
        waiting = await workflow.execute_activity(
            "release_assignment", self._state.ticket_id, start_to_close_timeout=ACTIVITY_TIMEOUT, result_type=list[str]
        )
        for ticket_id in waiting or []:
            # Queued tickets are told a slot opened; they assign themselves (no polling anywhere).
            try:
                await workflow.get_external_workflow_handle(ticket_id).signal("assignment_available")
            except Exception:  # noqa: BLE001 — it closed meanwhile; the failure is in history, nothing to offer
                workflow.logger.info("queued ticket %s could not be told a slot opened", ticket_id)

    async def _project(self, closing: bool = False) -> None:
        if not self._v3 or (len(self._journal) == self._projected and not closing):
            return
        st = self._state
        first_reply = next((m.at for m in st.messages if m.role == "agent"), None)
        stages: dict[str, str] = {}
        for rec in st.stages:
            stages.setdefault(rec.stage, rec.at)
        update = ProjectionUpdate(
            ticket_id=st.ticket_id, status=st.status, channel=st.channel, customer_id=st.customer.id,
            customer_tier=st.customer.tier, opened_at=st.stages[0].at, priority=st.priority, category=st.category,
            team=st.team, assignee=st.assignee, ruleset_version=st.ruleset_version, sla_policy=st.sla_policy,
            escalation_tier=st.escalation_tier, reopen_count=st.reopen_count, first_response_at=first_reply,
            resolved_at=next((r.at for r in reversed(st.stages) if r.stage == "resolve"), None),
            closed_at=stages.get("close"), stages=stages,
            sla={c.metric: {"state": c.state, "elapsed_seconds": c.elapsed_seconds, "target_seconds": c.target_seconds,
                            "breached_at": c.breached_at} for c in self._clocks()},
            survey=st.survey, events=self._journal[self._projected:],
        )
        await workflow.execute_local_activity("project_ticket", update, start_to_close_timeout=EVAL_TIMEOUT, retry_policy=EVAL_RETRY)
        self._projected = len(self._journal)

    async def _until_resolved(self) -> None:
        """Wait for resolution with one durable timer: the next SLA breach of a running clock."""
        while self._state.status != "resolved":
            deadline = sla_clock.next_deadline(self._clocks())
            timeout = None
            if deadline is not None:
                timeout = max(timedelta(seconds=1), deadline - workflow.now())
            status_before, events_before = self._state.status, len(self._state.sla_events)
            try:
                await workflow.wait_condition(
                    lambda: self._state.status == "resolved"
                    or self._state.status != status_before
                    or len(self._state.sla_events) != events_before,
                    timeout=timeout,
                )
            except TimeoutError:
                self._on_breach()

    def _on_breach(self) -> None:
        breached = [c for c in self._clocks() if c.state == "breached"]
        if breached:
            workflow.upsert_search_attributes(ticket_search_attributes(sla_breached=True))
            for clock in breached:
                marker = f"sla-breach:{clock.metric}"
                if marker not in self._seen_events:
                    self._seen_events.add(marker)
                    self._message("system", "sla", f"SLA {clock.metric} breached at {clock.breached_at}")

    async def _survey(self) -> bool:
        """Run the follow-up survey; False when the ticket was reopened before it finished."""
        st = self._state
        decision = await self._evaluate(["survey"])
        self._apply(decision.decisions)
        plan = next((d.actions for d in decision.decisions if d.group == "survey"), DEFAULT_SURVEY)
        if not plan.get("survey", True):
            return True
        kind, delay, expiry = survey_schedule(st, plan)
        try:
            await workflow.wait_condition(lambda: self._reopened, timeout=timedelta(seconds=delay))
            return False  # reopened during the delay: no survey for this resolution
        except TimeoutError:
            pass
        n = st.reopen_count
        low, high = SCORE_RANGE[kind]
        await self._send("survey", f"survey:{n}", low=low, high=high)
        st.survey = Survey(kind=kind, sent_at=self._now())
        self._set_status("surveying")
        self._stage("survey")
        try:
            await workflow.wait_condition(
                lambda: self._reopened or (st.survey is not None and st.survey.score is not None),
                timeout=timedelta(seconds=expiry),
            )
        except TimeoutError:
            st.survey.expired = True
            self._message("system", "survey", "survey expired unanswered")
            return True
        return not self._reopened

    # ---- commands --------------------------------------------------------------------------

    @workflow.update
    async def agent_reply(self, cmd: AgentReply) -> CommandResult:
        if self._v4:
            return await self._agent_reply_v4(cmd)
        self._replies += 1
        self._message("agent", cmd.agent, cmd.body + (f" (forced by {cmd.forced_by})" if cmd.forced_by else ""))
        if self._v2:
            self._sla("agent_reply")
        elif not any(e.kind == "first_response" for e in self._state.sla_events):
            self._sla("first_response")
        self._set_status("pending_customer" if cmd.wait_for_customer else "open")
        await self._send("agent_reply", f"reply:{self._replies}", text=cmd.body)
        return CommandResult(self._state.ticket_id, self._state.status)

    async def _agent_reply_v4(self, cmd: AgentReply) -> CommandResult:
        st = self._state
        if cmd.template:
            try:
                canned = await self._render(f"reply.{cmd.template}", st.channel, agent=cmd.agent)
            except ActivityError as err:
                raise ApplicationError(f"canned reply {cmd.template!r}: {getattr(err.cause, 'message', err)}") from None
            text = canned.body + (f"\n\n{cmd.body.strip()}" if cmd.body.strip() else "")
            rendered = RenderedMessage(body=text, subject=canned.subject, template=canned.template)
        else:
            self._human_replies += 1
            rendered = RenderedMessage(body=cmd.body)
        self._replies += 1
        how = f" [template {cmd.template}]" if cmd.template else ""
        self._message("agent", cmd.agent, rendered.body + how + (f" (forced by {cmd.forced_by})" if cmd.forced_by else ""))
        self._sla("agent_reply")
        self._set_status("pending_customer" if cmd.wait_for_customer else "open")
        await self._deliver("agent_reply", f"reply:{self._replies}", role="", rendered=rendered)
        return CommandResult(st.ticket_id, st.status)

    @agent_reply.validator
    def _check_reply(self, cmd: AgentReply) -> None:
        self._require_assignee(cmd.agent, "reply", cmd.forced_by)
        if self._state.status not in REPLYABLE:
            raise ValueError(f"cannot reply to ticket {self._state.ticket_id} while it is {self._state.status}")
        if not cmd.body.strip() and not cmd.template:
            raise ValueError("reply body is empty")
        if cmd.template and not self._v4:
            raise ValueError(f"ticket {self._state.ticket_id} predates canned replies; write the reply out")

    @workflow.update
    def resolve(self, cmd: ResolveCommand) -> CommandResult:
        self._reopened = False  # a reopen from here on cancels this resolution's survey
        self._state.resolved_by = "agent"
        if cmd.root_cause.strip():
            self._state.root_cause = cmd.root_cause.strip()
            self._log("root_cause", {"root_cause": self._state.root_cause, "by": cmd.agent})
        note = cmd.note or "resolved"
        self._message("agent", cmd.agent, note + (f" (forced by {cmd.forced_by})" if cmd.forced_by else ""))
        self._sla("resolved")
        self._set_status("resolved")
        self._stage("resolve")
        return CommandResult(self._state.ticket_id, self._state.status)

    @resolve.validator
    def _check_resolve(self, cmd: ResolveCommand) -> None:
        self._require_assignee(cmd.agent, "resolve", cmd.forced_by)
        if self._state.status not in REPLYABLE:
            raise ValueError(f"cannot resolve ticket {self._state.ticket_id} while it is {self._state.status}")
        if self._v4:
            st, rules = self._state, self._plan("resolution")
            what = f"{st.category} ticket" if st.category else "ticket"
            if rules.get("needs_human_reply") and self._human_replies == 0:
                raise ValueError(f"{what} {st.ticket_id} cannot be resolved with only template or bot replies: "
                                 "write the customer a reply of your own first")
            if rules.get("needs_root_cause") and not cmd.root_cause.strip():
                raise ValueError(f"{what} {st.ticket_id} needs a root cause to be resolved (--root-cause)")
            self._refuse_while_compensation_pending()

    @workflow.update
    async def reopen(self, cmd: ReopenCommand) -> CommandResult:
        st = self._state
        if self._v4:
            self._reopen_now(cmd.by, cmd.reason)
            return CommandResult(st.ticket_id, st.status)
        st.reopen_count += 1
        self._reopened = True
        self._message("customer" if cmd.by == "customer" else "agent", cmd.by, f"reopened: {cmd.reason}")
        self._sla("reopened")
        self._set_status("open")
        self._stage("reopen")
        return CommandResult(self._state.ticket_id, self._state.status)

    @reopen.validator
    def _check_reopen(self, cmd: ReopenCommand) -> None:
        st = self._state
        if self._v4 and st.status == "closed" and st.reopen_until:
            pass  # closed, but within the reopen window
        elif st.status == "closed" and self._v4:
            raise ValueError(f"ticket {st.ticket_id} is closed and its reopen window has ended; open a new ticket")
        elif st.status not in ("resolved", "surveying"):
            raise ValueError(f"only a resolved ticket can be reopened; {st.ticket_id} is {st.status}")
        if not cmd.reason.strip():
            raise ValueError("a reopen needs a reason")

    @workflow.update
    def survey_answer(self, answer: SurveyAnswer) -> CommandResult:
        survey = self._state.survey
        assert survey is not None
        survey.score, survey.comment, survey.answered_at = answer.score, answer.comment, self._now()
        self._message("customer", self._state.customer.id, f"survey score {answer.score} {answer.comment}".strip())
        return CommandResult(self._state.ticket_id, self._state.status)

    @survey_answer.validator
    def _check_survey(self, answer: SurveyAnswer) -> None:
        survey = self._state.survey
        if self._state.status != "surveying" or survey is None:
            raise ValueError(f"ticket {self._state.ticket_id} has no open survey (status {self._state.status})")
        if survey.score is not None:
            raise ValueError("this survey was already answered")
        low, high = SCORE_RANGE[survey.kind]
        if not low <= answer.score <= high:
            raise ValueError(f"{survey.kind} score must be {low}..{high}, got {answer.score}")

    @workflow.signal
    def customer_message(self, msg: CustomerMessage) -> None:
        if msg.event_id and msg.event_id in self._seen_events:
            return  # the channel delivered it twice
        if msg.event_id:
            self._seen_events.add(msg.event_id)
        self._message("customer", self._state.customer.id, msg.body)
        self._customer_messages += 1
        if msg.wants_human or asks_for_human(msg.body):
            self._wants_human = True
        if self._v2:
            self._sla("customer_message")
        if self._state.status == "pending_customer" and not self._bot_phase:  # the hand-off opens it, assigned
            self._set_status("open")

    @workflow.update
    def hold(self, cmd: HoldCommand) -> CommandResult:
        if cmd.release:
            self._message("agent", cmd.agent, f"hold released {cmd.reason}".strip())
            self._set_status("open")
        else:
            self._message("agent", cmd.agent, f"on hold: {cmd.reason}" if cmd.reason else "on hold")
            self._set_status("on_hold")
        return CommandResult(self._state.ticket_id, self._state.status)

    @hold.validator
    def _check_hold(self, cmd: HoldCommand) -> None:
        self._require_assignee(cmd.agent, "hold")
        status = self._state.status
        if cmd.release and status != "on_hold":
            raise ValueError(f"ticket {self._state.ticket_id} is not on hold (status {status})")
        if not cmd.release and status not in ("assigned", "open", "pending_customer"):
            raise ValueError(f"cannot put ticket {self._state.ticket_id} on hold while it is {status}")

    @workflow.update
    async def set_priority(self, cmd: SetPriorityCommand) -> CommandResult:
        why = f"set by {cmd.by}" + (f": {cmd.reason}" if cmd.reason else "")
        await self._change_priority(cmd.priority, why, self._state.ruleset_version or "", by=cmd.by)
        return CommandResult(self._state.ticket_id, self._state.status, f"priority {cmd.priority}")

    @set_priority.validator
    def _check_set_priority(self, cmd: SetPriorityCommand) -> None:
        st = self._state
        if cmd.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, got {cmd.priority!r}")
        if st.status not in REPLYABLE:
            raise ValueError(f"cannot change the priority of ticket {st.ticket_id} while it is {st.status}")
        if cmd.priority == st.priority:
            raise ValueError(f"ticket {st.ticket_id} is already {cmd.priority}")
        if not cmd.by.strip():
            raise ValueError("say who changes the priority (--by)")

    @workflow.update
    async def escalate(self, cmd: EscalateCommand) -> CommandResult:
        self._message("agent", cmd.by, f"escalated: {cmd.reason}")
        await self._tier_up(cmd.team or None, f"manual:{cmd.by}")
        return CommandResult(self._state.ticket_id, self._state.status, f"tier {self._state.escalation_tier}")

    @escalate.validator
    def _check_escalate(self, cmd: EscalateCommand) -> None:
        st = self._state
        if st.status not in REPLYABLE:
            raise ValueError(f"cannot escalate ticket {st.ticket_id} while it is {st.status}")
        if st.escalation_tier == "management":
            raise ValueError(f"ticket {st.ticket_id} is already with management, the last tier")
        if not cmd.by.strip() or not cmd.reason.strip():
            raise ValueError("an escalation needs --by and --reason")

    @workflow.update
    def migrate_ruleset(self, cmd: MigrateCommand) -> CommandResult:
        """Move this open ticket to another ruleset version; its later decisions use that version."""
        st = self._state
        old, st.ruleset_version = st.ruleset_version, cmd.version
        why = f": {cmd.reason}" if cmd.reason else ""
        self._message("system", "rules", f"ruleset {old} → {cmd.version} by {cmd.by}{why}")
        self._log("ruleset", {"from": old, "to": cmd.version, "by": cmd.by, "reason": cmd.reason})
        workflow.upsert_search_attributes(ticket_search_attributes(ruleset=cmd.version))
        return CommandResult(st.ticket_id, st.status, f"ruleset {cmd.version}")

    @migrate_ruleset.validator
    def _check_migrate(self, cmd: MigrateCommand) -> None:
        st = self._state
        if st.status in ("closed", "received", "triaged"):
            raise ValueError(f"ticket {st.ticket_id} is {st.status}; only open tickets move between versions")
        if not cmd.version or cmd.version == st.ruleset_version:
            raise ValueError(f"ticket {st.ticket_id} is already on ruleset {st.ruleset_version}")
        if not cmd.by.strip():
            raise ValueError("say who migrates the ticket (--by)")

    @workflow.signal
    def assignment_available(self) -> None:
        """A slot opened in the ticket's team (an agent freed up or came online)."""
        if self._state.assignee is None:
            self._assign_wanted = True
            self._wake += 1

    @workflow.signal
    def assignee_unavailable(self, agent: str) -> None:
        """The assignee went offline: give the ticket to someone who can answer."""
        if agent and agent == self._state.assignee and self._state.status in REPLYABLE:
            self._unavailable = agent
            self._wake += 1

    @workflow.query
    def state(self) -> TicketState:
        return self._snapshot_state()

    # ---- helpers ---------------------------------------------------------------------------

    def _require_assignee(self, agent: str, action: str, forced_by: str = "") -> None:
        if forced_by:
            return  # a supervisor acts for the assignee; the CLI checked the rank, history records it
        assignee = self._state.assignee
        if assignee is None:
            raise ValueError(f"ticket {self._state.ticket_id} is not assigned yet")
        if agent != assignee:
            raise ValueError(f"{action} refused: {agent} is not the assignee of {self._state.ticket_id} ({assignee} is)")

    async def _evaluate(self, groups: list[str], extra: dict[str, Any] | None = None) -> EvaluationResult:
        snapshot = self._rule_snapshot()
        if extra:
            snapshot.update(extra)
        result = await workflow.execute_local_activity(
            "evaluate_rules",
            EvaluationRequest(groups=groups, snapshot=snapshot, ruleset_version=self._state.ruleset_version,
                              ticket_id=self._state.ticket_id),
            result_type=EvaluationResult,
            start_to_close_timeout=EVAL_TIMEOUT,
            retry_policy=EVAL_RETRY,
        )
        for d in result.decisions:
            d.at = self._now()
        return result

    def _apply(self, decisions: list[Decision]) -> None:
        st = self._state
        for d in decisions:
            self._record(d)
            a = d.actions
            if d.group == "classification":
                st.category = a.get("category", st.category)
                st.tags = list(dict.fromkeys([*st.tags, *a.get("tags", [])]))
            elif d.group == "priority" and "priority" in a:
                st.priority = a["priority"]
            elif d.group == "routing" and "team" in a:
                st.team = a["team"]
            elif d.group == "sla_policy" and "policy" in a:
                st.sla_policy = a["policy"]
        workflow.upsert_search_attributes(
            ticket_search_attributes(priority=st.priority, category=st.category, team=st.team)
        )

    async def _assign(self) -> None:
        st = self._state
        if not st.team:
            raise ApplicationError("routing rules chose no team; add a catch-all rule to the routing group")
        await self._reassign(team=st.team, why="")
        if st.assignee:
            self._set_status("assigned")

    async def _reassign(self, team: str, why: str, exclude_current: bool = False, min_tier: str = "") -> None:
        st = self._state
        routing = self._plan("routing")
        assignment = await workflow.execute_activity(
            "assign_agent",
            AssignmentRequest(
                ticket_id=st.ticket_id,
                team=team,
                language=st.customer.language.split("-")[0],
                skills=list(routing.get("skills", [])) if team == st.team else [],
                strategy=routing.get("strategy", "least_loaded"),
                exclude=[st.assignee] if exclude_current and st.assignee else [],
                min_tier=min_tier,
            ),
            result_type=Assignment,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        reason = f"{why}; {assignment.reason}" if why else assignment.reason
        if not assignment.agent:  # nobody can take it now: it waits in the team's queue
            st.team, st.assignee = assignment.team, None
            self._message("system", "assignment", f"waiting in the {assignment.team} queue: {reason}")
            self._log("queued", {"team": assignment.team, "reason": reason})
            workflow.upsert_search_attributes(ticket_search_attributes(team=assignment.team, assignee="(queue)"))
            return
        changed = assignment.agent != st.assignee
        st.team, st.assignee = assignment.team, assignment.agent
        if changed:
            self._assigned_at = self._now()
            self._log("assigned", {"team": assignment.team, "agent": assignment.agent, "reason": reason})
        self._message("system", "assignment", f"assigned to {assignment.agent} in {assignment.team}: {reason}")
        workflow.upsert_search_attributes(ticket_search_attributes(team=assignment.team, assignee=assignment.agent))

    async def _send(self, kind: str, step: str, **values: Any) -> None:
        st = self._state
        lang = st.customer.language
        body = render(kind, lang, ticket_id=st.ticket_id, subject=st.subject, name=st.customer.name or st.customer.id, **values) if kind != "agent_reply" else str(values["text"])
        await workflow.execute_activity(
            "send_message",
            OutgoingMessage(
                idempotency_key=f"{st.ticket_id}:{step}",
                ticket_id=st.ticket_id,
                kind=kind,
                channel=st.channel,
                recipient=st.customer.id,
                language=lang,
                body=body,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )

    def _first_response_text(self) -> str:
        target = int(self._state.sla_targets.get("first_response", 0))
        lang = self._state.customer.language
        if not target:
            return "1 business day" if not lang.startswith("zh") else "1个工作日"
        return human_duration(target, lang)

    def _clocks(self) -> list:
        return sla_clock.clocks_at(self._state, workflow.now(), legacy=not self._v5)

    def _rule_snapshot(self) -> dict[str, Any]:
        st, ev = self._state, self._input.event
        snap: dict[str, Any] = {
            "channel": st.channel,
            "is_public": st.is_public,
            "subject": ev.subject,
            "body": ev.body,
            "customer.id": st.customer.id,
            "customer.tier": st.customer.tier,
            "customer.language": st.customer.language,
            "tags": list(st.tags),
            "status": st.status,
            "reopen_count": st.reopen_count,
            "origin": st.origin,
        }
        opened = datetime.fromisoformat(st.stages[0].at) if st.stages else workflow.now()
        snap["age_hours"] = round((workflow.now() - opened).total_seconds() / 3600, 4)
        if st.sla_targets:
            cal = sla_clock.calendar_of(st.sla_targets)
            snap["age_business_hours"] = round(cal.business_seconds(opened, workflow.now()) / 3600, 4)
            snap.update(self._escalation_snapshot())
        for key, value in (
            ("order_value", ev.order_value),
            ("prior_contacts", ev.prior_contacts),
            ("category", st.category),
            ("priority", st.priority),
            ("team", st.team),
            ("assignee", st.assignee),
            ("sla_policy", st.sla_policy),
        ):
            if value is not None:
                snap[key] = value
        return snap

    def _snapshot_state(self) -> TicketState:
        return dataclasses.replace(self._state, sla=self._clocks(), as_of=self._now())

    def _now(self) -> str:
        return workflow.now().isoformat()

    def _stage(self, stage: str) -> None:
        self._state.stages.append(StageRecord(stage=stage, at=self._now()))
        self._log("stage", {"stage": stage})

    def _log(self, kind: str, data: dict[str, Any]) -> None:
        self._journal.append(JournalEntry(seq=len(self._journal), at=self._now(), kind=kind, data=data))

    def _record(self, d: Decision) -> None:
        self._state.decisions.append(d)
        self._log("decision", {"group": d.group, "rule_id": d.rule_id, "rule_ids": d.rule_ids,
                               "actions": d.actions, "ruleset_version": d.ruleset_version})

    def _message(self, role: str, author: str, body: str) -> None:
        self._state.messages.append(Message(author=author, role=role, body=body, at=self._now()))

    def _sla(self, kind: str, status: str = "", policy: dict[str, Any] | None = None) -> None:
        self._state.sla_events.append(SlaEvent(kind=kind, at=self._now(), status=status, policy=policy))

    def _sla_policy_event(self) -> None:
        self._sla("policy", policy=dict(self._state.sla_targets))

    def _set_status(self, status: str) -> None:
        if status == self._state.status:
            return
        self._state.status = status
        if status == "pending_customer":
            self._pending_since = self._now()
        self._sla("status", status)
        self._log("status", {"status": status})
        workflow.upsert_search_attributes(ticket_search_attributes(status=status))
