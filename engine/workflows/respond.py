"""The respond stage inside TicketWorkflow (tickets started on `respond-v4` and later): customer
messages rendered from the ruleset's templates and delivered through the connector the rules
choose, the FAQ bot answering first with a human always one message away, progress updates so no
customer waits in silence, and auto-close of tickets that wait on the customer.

A mixin so TicketWorkflow stays readable; it uses the workflow's state and helpers. Rendering is a
local activity (its text lands in history, so an auditor reads exactly what the customer got);
delivery is an activity with an idempotency key per step, so a retried send is never a second
message. A connector that refuses a message does not fail the ticket: the refusal is recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from engine.models import OutgoingMessage, RenderedMessage, RenderRequest
    from engine.texts import human_duration

RENDER_TIMEOUT = timedelta(seconds=10)
SEND_TIMEOUT = timedelta(seconds=30)
# A connector that is down is retried for about a quarter of an hour, then the message is recorded
# as undelivered and the ticket goes on: a dead webhook must not freeze every ticket behind it.
SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5), maximum_attempts=8)
DEFAULT_BOT_WAIT = 2 * 86400
# Words that mean "let me talk to a person" (the channel may also send wants_human explicitly).
HUMAN_WORDS = ("转人工", "人工客服", "人工服务", "真人", "找客服", "human", "real person", "an agent", "operator", "talk to someone")
ACTIVE = ("assigned", "open", "on_hold")
NEWS = ("acknowledgement", "progress_update", "handoff", "agent_reply", "faq_answer")  # restart the progress interval  # unresolved and not waiting on the customer


def asks_for_human(body: str) -> bool:
    text = body.casefold()
    return any(word in text for word in HUMAN_WORDS)


class RespondMixin:
    """Expects the TicketWorkflow attributes: _state, _v4 and its helpers (_evaluate, _apply, ...)."""

    # ---- delivery ---------------------------------------------------------------------------

    def _values(self, **extra: Any) -> dict[str, Any]:
        st = self._state
        values: dict[str, Any] = {
            "ticket_id": st.ticket_id, "subject": st.subject, "name": st.customer.name or st.customer.id,
            "channel": st.channel, "category": st.category or "", "priority": st.priority or "",
            "team": st.team or "", "assignee": st.assignee or "", "language": st.customer.language,
        }
        values.update(extra)
        return values

    def _plan(self, group: str) -> dict[str, Any]:
        """The latest decision of a group (its actions), or {} when the ruleset has no such group."""
        return next((d.actions for d in reversed(self._state.decisions) if d.group == group), {})

    async def _render(self, template: str, channel: str, **values: Any) -> RenderedMessage:
        st = self._state
        return await workflow.execute_local_activity(
            "render_message",
            RenderRequest(ruleset_version=st.ruleset_version or "", kind=template, channel=channel,
                          language=st.customer.language, values=self._values(**values)),
            result_type=RenderedMessage, start_to_close_timeout=RENDER_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30), non_retryable_error_types=["TemplateError"]),
        )

    async def _deliver(self, what: str, step: str, /, *, template: str = "", channel: str = "", role: str = "auto",
                       author: str = "", rendered: RenderedMessage | None = None, **values: Any) -> bool:
        """Render `template` (default: `what`, the message kind) and send it once per `step`; False if undelivered."""
        st = self._state
        channel = channel or st.channel
        if what in NEWS:
            # Counted when attempted: an undelivered message must not start a storm of progress
            # updates, nor stop them from ever starting.
            self._last_update_at = self._now()
        if rendered is None:
            rendered = await self._render(template or what, channel, **values)
        # The rules' connector is for the ticket's own channel; a survey sent elsewhere goes
        # through that channel's connector (connectors.yaml).
        connector = self._plan("respond").get("connector", "") if channel == st.channel else ""
        address = st.customer.email or (st.customer.id if "@" in st.customer.id else "")
        if role:
            self._message(role, author or what, rendered.body)
        try:
            await workflow.execute_activity(
                "send_message",
                OutgoingMessage(idempotency_key=f"{st.ticket_id}:{step}", ticket_id=st.ticket_id, kind=what,
                                channel=channel, recipient=st.customer.id, language=st.customer.language,
                                body=rendered.body, connector=connector, address=address, subject=rendered.subject),
                start_to_close_timeout=SEND_TIMEOUT, retry_policy=SEND_RETRY,
            )
        except ActivityError as err:
            cause = getattr(err.cause, "message", "") or str(err.cause or err)
            st.undelivered.append(step)
            self._message("system", "delivery", f"{what} was not delivered on {channel}: {cause}")
            self._log("undelivered", {"kind": what, "step": step, "channel": channel, "error": cause})
            return False
        self._log("sent", {"kind": what, "step": step, "channel": channel, "template": rendered.template})
        return True

    # ---- the respond stage ------------------------------------------------------------------

    async def _respond_v4(self) -> None:
        """Acknowledge; let the FAQ bot answer first when the rules allow it, else assign a human."""
        st = self._state
        faq = self._plan("faq").get("answer")
        bot = bool(self._plan("respond").get("faq_bot")) and bool(faq)
        if st.linked_to:
            self._message("system", "link", f"continues closed ticket {st.linked_to}")
            self._log("linked", {"to": st.linked_to})
        if not bot:
            await self._assign()
            self._stage("assign")
        await self._deliver("acknowledgement", "ack", first_response=self._first_response_text(), bot=bot)
        if st.linked_to:
            await self._deliver("linked_ticket", "linked", old_ticket_id=st.linked_to)
        if not bot:
            self._set_status("open")
            self._stage("respond")
            await self._project()
            return
        st.bot_answer = str(faq)
        await self._deliver("faq_answer", "faq", template=f"faq.{faq}", role="bot", author="faq-bot")
        self._set_status("pending_customer")
        self._stage("respond")
        self._log("bot", {"faq": faq})
        await self._project()
        wait = int(self._plan("respond").get("bot_resolve_after") or DEFAULT_BOT_WAIT)
        heard = self._customer_messages
        self._bot_phase = True
        try:
            await workflow.wait_condition(lambda: self._customer_messages != heard or self._wants_human, timeout=timedelta(seconds=wait))
        except TimeoutError:
            self._bot_phase = False
            st.resolved_by = "bot"
            self._message("system", "faq-bot", f"resolved by the FAQ answer {faq}: no further message in {human_duration(wait, 'en')}")
            self._sla("resolved")
            self._set_status("resolved")
            self._stage("resolve")
            return
        self._bot_phase = False
        last = next((m.body for m in reversed(st.messages) if m.role == "customer"), "")
        reason = "the customer asked for a person" if self._wants_human or asks_for_human(last) else "the customer wrote again after the FAQ answer"
        await self._handoff(reason)

    async def _handoff(self, reason: str) -> None:
        st = self._state
        st.handoff = reason
        self._message("system", "faq-bot", f"handed to a person: {reason}")
        self._log("handoff", {"reason": reason, "faq": st.bot_answer})
        await self._assign()
        self._stage("assign")
        self._set_status("open")
        await self._deliver("handoff", "handoff", reason=reason)
        await self._project()

    # ---- while unresolved: progress updates and auto-close ----------------------------------

    def _respond_deadline(self) -> datetime | None:
        st = self._state
        due: list[datetime] = []
        every = self._plan("respond").get("progress_every")
        if every and st.status in ACTIVE and self._last_update_at:
            due.append(datetime.fromisoformat(self._last_update_at) + timedelta(seconds=int(every)))
        if st.status == "pending_customer" and self._auto_plan and self._auto_for == self._pending_since:
            remind, close = self._auto_times()
            if remind is not None and not self._auto_reminded:
                due.append(remind)
            due.append(close)
        return min(due) if due else None

    def _auto_times(self) -> tuple[datetime | None, datetime]:
        since = datetime.fromisoformat(self._pending_since)
        after = int(self._auto_plan["auto_close_after"])
        close = since + timedelta(seconds=after)
        before = int(self._auto_plan.get("remind_before") or 0)
        return (close - timedelta(seconds=before) if 0 < before < after else None), close

    async def _respond_due(self) -> None:
        st = self._state
        now = workflow.now()
        every = self._plan("respond").get("progress_every")
        if every and st.status in ACTIVE and self._last_update_at:
            if datetime.fromisoformat(self._last_update_at) + timedelta(seconds=int(every)) <= now:
                self._progress_sent += 1
                opened = datetime.fromisoformat(st.stages[0].at)
                await self._deliver("progress_update", f"progress:{self._progress_sent}", status=st.status,
                                    open_for=human_duration(int((now - opened).total_seconds()), st.customer.language))
        if st.status != "pending_customer":
            return
        if self._auto_for != self._pending_since:
            result = await self._evaluate(["auto_close"])
            self._apply(result.decisions)
            self._auto_for, self._auto_reminded = self._pending_since, False
            plan = self._plan("auto_close")
            self._auto_plan = plan if plan.get("auto_close_after") else None
        if not self._auto_plan or st.status != "pending_customer":
            return
        remind, close = self._auto_times()
        now = workflow.now()
        if now >= close:
            st.resolved_by = "auto_close"
            self._message("system", "auto-close", f"no answer from the customer since {self._pending_since}: closed automatically")
            self._log("auto_close", {"since": self._pending_since})
            self._sla("resolved")
            self._set_status("resolved")
            self._stage("resolve")
        elif remind is not None and now >= remind and not self._auto_reminded:
            self._auto_reminded = True
            self._reminders += 1
            left = int((close - now).total_seconds())
            await self._deliver("auto_close_reminder", f"auto-close-reminder:{self._reminders}",
                                closes_in=human_duration(max(60, left), st.customer.language))
