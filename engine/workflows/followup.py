"""FollowupTaskWorkflow: a service-recovery task for a team lead after a low survey score.

Started by a TicketWorkflow as a child it does not wait for (the ticket may close meanwhile). It
tells the team lead, keeps its own deadline with one durable timer, tells the manager when the
deadline passes, and ends when someone completes it with a note of what was done.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine.models import CommandResult, FollowupTaskInput, FollowupTaskState, StaffNotice, TaskDone

NOTIFY_TIMEOUT = timedelta(seconds=30)


@workflow.defn
class FollowupTaskWorkflow:
    @workflow.init
    def __init__(self, input: FollowupTaskInput) -> None:
        now = workflow.now()
        self._state = FollowupTaskState(
            task_id=input.task_id, ticket_id=input.ticket_id, team=input.team, reason=input.reason, status="open",
            opened_at=now.isoformat(), due=(now + timedelta(seconds=input.due_seconds)).isoformat(),
        )

    @workflow.run
    async def run(self, input: FollowupTaskInput) -> FollowupTaskState:
        st = self._state
        st.told = await self._tell(input.notify or ["team_lead"], f"follow-up task {st.task_id} for ticket {st.ticket_id}: "
                                   f"{st.reason}; due {st.due}", "open")
        try:
            await workflow.wait_condition(lambda: st.status == "done", timeout=timedelta(seconds=input.due_seconds))
        except TimeoutError:
            st.overdue = True
            await self._tell(["manager", "team_lead"], f"follow-up task {st.task_id} for ticket {st.ticket_id} is overdue "
                             f"(due {st.due}): {st.reason}", "overdue")
            await workflow.wait_condition(lambda: st.status == "done")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return st

    async def _tell(self, targets: list[str], body: str, step: str) -> list[str]:
        st = self._state
        return await workflow.execute_activity(
            "notify_staff",
            StaffNotice(idempotency_key=f"{st.task_id}:{step}", ticket_id=st.ticket_id, team=st.team, assignee="",
                        targets=list(targets), body=body),
            result_type=list[str], start_to_close_timeout=NOTIFY_TIMEOUT,
        )

    @workflow.update
    def complete(self, cmd: TaskDone) -> CommandResult:
        st = self._state
        st.status, st.done_by, st.done_at, st.note = "done", cmd.by, workflow.now().isoformat(), cmd.note
        return CommandResult(st.task_id, st.status, "done late" if st.overdue else "done in time")

    @complete.validator
    def _check_complete(self, cmd: TaskDone) -> None:
        if self._state.status == "done":
            raise ValueError(f"task {self._state.task_id} is already done (by {self._state.done_by})")
        if not cmd.by.strip() or not cmd.note.strip():
            raise ValueError("completing a follow-up task needs --by and a --note of what was done")

    @workflow.query
    def state(self) -> FollowupTaskState:
        return self._state
