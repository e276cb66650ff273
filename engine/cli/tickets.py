"""Ticket commands: submit, show, list, reply, customer-reply, resolve, reopen, survey-answer, hold,
set-priority, escalate, compensate, approve-compensation, and follow-up tasks (task show/done)."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine import tickets
from engine.cli.common import CliError, client_for, print_json, run, settings, ticket_call
from engine.cli.render import list_table, show_ticket
from engine.intake import EventInvalid, parse_event
from engine.models import (
    AgentReply,
    CompensationCommand,
    CompensationDecision,
    CustomerMessage,
    TaskDone,
    EscalateCommand,
    HoldCommand,
    ReopenCommand,
    ResolveCommand,
    SetPriorityCommand,
    SurveyAnswer,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
TicketArg = Annotated[str, typer.Argument(help="Ticket id, e.g. TF-7K2M9QXA4B.", show_default=False)]
AgentOpt = Annotated[str, typer.Option("--agent", "-a", help="Agent id doing this (must be the assignee).", show_default=False)]


ForceOpt = Annotated[Optional[str], typer.Option("--force-by", help="A supervisor (team lead or manager) acting for the assignee; recorded.")]
SUPERVISOR_TIERS = ("lead", "manager")


def _supervisor(ctx: typer.Context, who: str | None) -> str:
    """The supervisor's id after checking the store says they are one; "" when not forcing."""
    if not who:
        return ""
    from engine.store import Store
    from engine.store.directory import load_from_store

    d = load_from_store(Store.open(settings(ctx).database_url))
    agent = d.agents.get(who)
    leads = {t.lead for t in d.teams.values()}
    if agent is None or (agent.tier not in SUPERVISOR_TIERS and who not in leads):
        raise CliError(f"--force-by {who}: only a team lead or a manager may act for the assignee")
    return who


def _tier_of(ctx: typer.Context, who: str, flag: str) -> str:
    """An agent's tier from the directory (agents.yaml / the store): what compensation limits read."""
    from engine.store import Store
    from engine.store.directory import load_from_store

    agent = load_from_store(Store.open(settings(ctx).database_url)).agents.get(who)
    if agent is None:
        raise CliError(f"{flag} {who}: no such agent in the directory (ticketflow agents list)")
    return agent.tier


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.command("show")(show)
    app.command("list")(list_cmd)
    app.command("reply")(reply)
    app.command("customer-reply")(customer_reply)
    app.command("resolve")(resolve)
    app.command("reopen")(reopen)
    app.command("survey-answer")(survey_answer)
    app.command("hold")(hold)
    app.command("set-priority")(set_priority)
    app.command("escalate")(escalate)
    app.command("compensate")(compensate)
    app.command("approve-compensation")(approve_compensation)
    task = typer.Typer(rich_markup_mode="markdown", help="Service-recovery follow-up tasks (opened by recovery rules after a low survey score).",
                       no_args_is_help=True)
    task.command("show")(task_show)
    task.command("done")(task_done)
    app.add_typer(task, name="task")


def _read_event(path: Path) -> object:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


def submit(
    ctx: typer.Context,
    event: Annotated[Optional[Path], typer.Option("--event", "-e", help="A ticket event JSON file (schemas/ticket-event.schema.json); - reads stdin.")] = None,
    channel: Annotated[Optional[str], typer.Option(help="Channel: wechat, weibo, douyin, kuaishou, zhihu, email, phone, chat, web, app, sms, forum.")] = None,
    customer: Annotated[Optional[str], typer.Option(help="Customer id on that channel.")] = None,
    subject: Annotated[Optional[str], typer.Option(help="Subject or first line.")] = None,
    body: Annotated[Optional[str], typer.Option(help="Message text.")] = None,
    tier: Annotated[str, typer.Option(help="Customer tier: standard, premium, vip.")] = "standard",
    language: Annotated[str, typer.Option(help="Customer language, e.g. en, zh.")] = "en",
    public: Annotated[bool, typer.Option("--public", help="The message was posted publicly.")] = False,
    order_value: Annotated[Optional[float], typer.Option(help="Value of the order concerned.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Open a ticket from a channel event and print its id.

    Example: ticketflow submit --channel email --customer c-1001 --subject "Where is my parcel?" --body "Order 5531 has not arrived"
    """
    if event is not None:
        data = _read_event(event)
        where = str(event)
    else:
        missing = [n for n, v in (("--channel", channel), ("--customer", customer), ("--subject", subject), ("--body", body)) if not v]
        if missing:
            raise typer.BadParameter(f"give --event FILE or all of --channel --customer --subject --body (missing {' '.join(missing)})")
        data = {
            "event_id": f"cli-{uuid.uuid4()}",
            "channel": channel,
            "customer": {"id": customer, "tier": tier, "language": language},
            "subject": subject,
            "body": body,
            "is_public": public,
            "occurred_at": datetime.now(timezone.utc).isoformat(),
        }
        if order_value is not None:
            data["order_value"] = order_value
        where = "flags"
    try:
        parsed = parse_event(data)
    except EventInvalid as exc:
        raise CliError(f"{where}: {exc}") from None
    cfg = settings(ctx)

    async def go() -> str:
        client = await client_for(ctx)
        try:
            return await tickets.submit(client, cfg.task_queue, parsed)
        except tickets.TicketExists as exc:
            raise CliError(str(exc)) from None

    ticket_id = run(go())
    if as_json:
        print_json({"ticket_id": ticket_id})
    else:
        typer.echo(ticket_id)


def show(ctx: typer.Context, ticket_id: TicketArg, as_json: JsonFlag = False) -> None:
    """Show a ticket: status, decisions with their rule ids, stages with times, SLA clocks.

    Example: ticketflow show TF-7K2M9QXA4B --json
    """

    async def go():  # type: ignore[no-untyped-def]
        client = await client_for(ctx)
        return await ticket_call(ticket_id, lambda: tickets.state(client, ticket_id))

    st = run(go())
    if as_json:
        print_json(st)
    else:
        show_ticket(st)


def list_cmd(
    ctx: typer.Context,
    status: Annotated[Optional[str], typer.Option(help="Status, or several separated by commas.")] = None,
    priority: Annotated[Optional[str], typer.Option(help="Priority, e.g. P1 or P1,P2.")] = None,
    team: Annotated[Optional[str], typer.Option(help="Team id.")] = None,
    channel: Annotated[Optional[str], typer.Option(help="Channel.")] = None,
    assignee: Annotated[Optional[str], typer.Option(help="Agent id.")] = None,
    breached: Annotated[Optional[bool], typer.Option("--breached/--not-breached", help="Only tickets whose SLA was (not) breached.")] = None,
    query: Annotated[Optional[str], typer.Option(help='Extra visibility query, e.g. \'Category = "refund"\'.')] = None,
    limit: Annotated[int, typer.Option(help="At most this many tickets.", min=1)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List tickets through Temporal visibility (newest first).

    The same filter works in `temporal workflow list --query 'Priority="P1"'`.

    Example: ticketflow list --status open,pending_customer --priority P1
    """
    q = tickets.build_query(status=status, priority=priority, team=team, channel=channel, assignee=assignee, breached=breached, extra=query)

    async def go():  # type: ignore[no-untyped-def]
        client = await client_for(ctx)
        try:
            return await tickets.list_tickets(client, q, limit)
        except Exception as exc:  # the server explains a bad query in its message
            message = getattr(exc, "message", None) or str(exc)
            raise CliError(f"list query failed: {message} (query: {q})") from None

    rows = run(go())
    if as_json:
        print_json([r.__dict__ for r in rows])
    else:
        list_table(rows)


def _update(ctx: typer.Context, ticket_id: str, fn, cmd, as_json: bool, done: str) -> None:  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        client = await client_for(ctx)
        return await ticket_call(ticket_id, lambda: fn(client, ticket_id, cmd))

    st = run(go())
    if as_json:
        print_json(st)
    else:
        typer.echo(f"{ticket_id}: {done} (status {st.status})")


def reply(
    ctx: typer.Context,
    ticket_id: TicketArg,
    agent: AgentOpt,
    body: Annotated[str, typer.Option("--body", "-b", help="Reply text sent to the customer (after the template's text with --template).")] = "",
    template: Annotated[str, typer.Option("--template", "-t", help="A canned reply from the rules' templates (reply.<name>), e.g. apology.")] = "",
    wait: Annotated[bool, typer.Option("--wait-for-customer", help="The reply asks the customer something: pause the SLA until they answer.")] = False,
    force_by: ForceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Reply to the customer as the assigned agent (or for them, with a supervisor's --force-by).

    Example: ticketflow reply TF-7K2M9QXA4B --agent wang.fang --body "Your refund is on its way"

    Example: ticketflow reply TF-7K2M9QXA4B --agent wang.fang --template need-order-number --wait-for-customer
    """
    if not body.strip() and not template:
        raise CliError("give the reply text (--body) or a canned reply (--template)")
    cmd = AgentReply(agent=agent, body=body, wait_for_customer=wait, forced_by=_supervisor(ctx, force_by), template=template)
    _update(ctx, ticket_id, tickets.reply, cmd, as_json, "reply sent")


def customer_reply(
    ctx: typer.Context,
    ticket_id: TicketArg,
    body: Annotated[str, typer.Option("--body", "-b", help="The customer's message.", show_default=False)],
    event_id: Annotated[str, typer.Option(help="Channel message id; a repeated id is ignored.")] = "",
    human: Annotated[bool, typer.Option("--human", help="The customer asks for a person (the channel's 'talk to an agent' button).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Deliver a customer's message to their ticket (resumes a ticket waiting on the customer,
    hands a bot-answered ticket to a person, reopens a closed ticket within its reopen window;
    after the window it opens a new ticket linked to the old one).

    Example: ticketflow customer-reply TF-7K2M9QXA4B --body "The order number is 5531"
    """

    async def go():  # type: ignore[no-untyped-def]
        client = await client_for(ctx)
        msg = CustomerMessage(body=body, event_id=event_id, wants_human=human)
        try:
            return await ticket_call(ticket_id, lambda: tickets.customer_message(client, ticket_id, msg, settings(ctx).task_queue))
        except tickets.TicketEnded as exc:
            raise CliError(str(exc)) from None

    new_id = run(go())
    if as_json:
        print_json({"ticket_id": ticket_id, "delivered": new_id is None, "new_ticket_id": new_id})
    elif new_id:
        typer.echo(f"{ticket_id} is closed and its reopen window has ended: opened {new_id}, linked to it")
    else:
        typer.echo(f"{ticket_id}: message delivered")


def resolve(
    ctx: typer.Context,
    ticket_id: TicketArg,
    agent: AgentOpt,
    note: Annotated[str, typer.Option(help="Resolution note.")] = "",
    root_cause: Annotated[str, typer.Option("--root-cause", help="What caused the problem (required for complaints by the default rules).")] = "",
    force_by: ForceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark the ticket resolved; the follow-up survey starts after the configured delay.

    Example: ticketflow resolve TF-7K2M9QXA4B --agent wang.fang --note "refund issued"

    Example: ticketflow resolve TF-7K2M9QXA4B --agent chen.jie --root-cause "installer skipped the checklist"
    """
    cmd = ResolveCommand(agent=agent, note=note, forced_by=_supervisor(ctx, force_by), root_cause=root_cause)
    _update(ctx, ticket_id, tickets.resolve, cmd, as_json, "resolved")


def reopen(
    ctx: typer.Context,
    ticket_id: TicketArg,
    reason: Annotated[str, typer.Option(help="Why it is reopened.", show_default=False)],
    by: Annotated[str, typer.Option(help="Who reopens it: customer or an agent id.")] = "customer",
    as_json: JsonFlag = False,
) -> None:
    """Reopen a resolved ticket (cancels a survey not yet answered).

    Example: ticketflow reopen TF-7K2M9QXA4B --reason "refund never arrived"
    """
    _update(ctx, ticket_id, tickets.reopen, ReopenCommand(reason=reason, by=by), as_json, "reopened")


def survey_answer(
    ctx: typer.Context,
    ticket_id: TicketArg,
    score: Annotated[int, typer.Option(help="CSAT 1-5 or NPS 0-10, as the survey asked.", show_default=False)],
    comment: Annotated[str, typer.Option(help="Free text from the customer.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Record the customer's survey answer; the ticket then closes.

    Example: ticketflow survey-answer TF-7K2M9QXA4B --score 5 --comment "fast and kind"
    """
    _update(ctx, ticket_id, tickets.survey_answer, SurveyAnswer(score=score, comment=comment), as_json, "survey answered")


def hold(
    ctx: typer.Context,
    ticket_id: TicketArg,
    agent: AgentOpt,
    reason: Annotated[str, typer.Option(help="What the ticket waits for (a third party, a part...).")] = "",
    release: Annotated[bool, typer.Option("--release", help="Take the ticket off hold.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Put a ticket on hold (its SLA clocks pause) or take it off hold.

    Example: ticketflow hold TF-7K2M9QXA4B --agent liu.yang --reason "waiting for the courier's report"
    """
    cmd = HoldCommand(agent=agent, reason=reason, release=release)
    _update(ctx, ticket_id, tickets.hold, cmd, as_json, "released from hold" if release else "on hold")


def set_priority(
    ctx: typer.Context,
    ticket_id: TicketArg,
    priority: Annotated[str, typer.Argument(help="P1, P2, P3 or P4.", show_default=False)],
    by: Annotated[str, typer.Option(help="Who changes it (recorded).", show_default=False)],
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Change a ticket's priority; the SLA policy is chosen again and elapsed time is kept.

    Example: ticketflow set-priority TF-7K2M9QXA4B P1 --by lead.anna --reason "press enquiry"
    """
    cmd = SetPriorityCommand(priority=priority.upper(), by=by, reason=reason)
    _update(ctx, ticket_id, tickets.set_priority, cmd, as_json, f"priority {priority.upper()}")


def escalate(
    ctx: typer.Context,
    ticket_id: TicketArg,
    by: Annotated[str, typer.Option(help="Who escalates (recorded).", show_default=False)],
    reason: Annotated[str, typer.Option(help="Why (recorded).", show_default=False)],
    team: Annotated[str, typer.Option(help="For a move to another department: which team.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Move a ticket up one tier: agent -> senior -> other department -> management.

    Example: ticketflow escalate TF-7K2M9QXA4B --by chen.jie --reason "customer threatens legal action"
    """
    _update(ctx, ticket_id, tickets.escalate, EscalateCommand(by=by, reason=reason, team=team), as_json, "escalated")


def _detail(ctx: typer.Context, ticket_id: str, fn, cmd, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        client = await client_for(ctx)
        return await ticket_call(ticket_id, lambda: fn(client, ticket_id, cmd))

    result, st = run(go())
    if as_json:
        print_json({"result": result, "ticket": st})
    else:
        typer.echo(f"{ticket_id}: {result.detail} (status {st.status})")


def compensate(
    ctx: typer.Context,
    ticket_id: TicketArg,
    agent: AgentOpt,
    kind: Annotated[str, typer.Option(help="refund, coupon or reship.", show_default=False)],
    amount: Annotated[float, typer.Option(help="Its value in the shop's currency.", show_default=False)],
    reason: Annotated[str, typer.Option(help="Why (recorded, shown to the approver).", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Offer compensation. Within the agent's limit (rules/compensation.yaml) it is issued at once;
    above it, it waits for approve-compensation by a supervisor.

    Example: ticketflow compensate TF-7K2M9QXA4B --agent tom.b --kind refund --amount 80 --reason "one item missing"
    """
    cmd = CompensationCommand(agent=agent, agent_tier=_tier_of(ctx, agent, "--agent"), kind=kind, amount=amount, reason=reason)
    _detail(ctx, ticket_id, tickets.compensate, cmd, as_json)


def approve_compensation(
    ctx: typer.Context,
    ticket_id: TicketArg,
    by: Annotated[str, typer.Option(help="The supervisor deciding (their tier must reach the rule's approver).", show_default=False)],
    decline: Annotated[bool, typer.Option("--decline", help="Decline instead of approving (needs --note).")] = False,
    note: Annotated[str, typer.Option(help="Why (required when declining).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Approve (or decline) the compensation waiting on a ticket.

    Example: ticketflow approve-compensation TF-7K2M9QXA4B --by chen.jie --note "photos confirm the damage"
    """
    cmd = CompensationDecision(by=by, by_tier=_tier_of(ctx, by, "--by"), approve=not decline, note=note)
    _detail(ctx, ticket_id, tickets.decide_compensation, cmd, as_json)


TaskArg = Annotated[str, typer.Argument(help="Task id, e.g. TF-7K2M9QXA4B-followup-0.", show_default=False)]


def _print_task(task, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        print_json(task)
        return
    late = " (OVERDUE)" if task.overdue else ""
    typer.echo(f"{task.task_id}  ticket {task.ticket_id}  team {task.team}  {task.status}{late}")
    typer.echo(f"  {task.reason}")
    typer.echo(f"  opened {task.opened_at}, due {task.due}; told {', '.join(task.told) or 'nobody'}")
    if task.status == "done":
        typer.echo(f"  done by {task.done_by} at {task.done_at}: {task.note}")


def task_show(ctx: typer.Context, task_id: TaskArg, as_json: JsonFlag = False) -> None:
    """Show a follow-up task.

    Example: ticketflow task show TF-7K2M9QXA4B-followup-0
    """

    async def go():  # type: ignore[no-untyped-def]
        client = await client_for(ctx)
        return await ticket_call(task_id, lambda: tickets.task_state(client, task_id))

    _print_task(run(go()), as_json)


def task_done(
    ctx: typer.Context,
    task_id: TaskArg,
    by: Annotated[str, typer.Option(help="Who did it.", show_default=False)],
    note: Annotated[str, typer.Option(help="What was done for the customer.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Complete a follow-up task with what was done.

    Example: ticketflow task done TF-7K2M9QXA4B-followup-0 --by zhao.min --note "called, sent a replacement"
    """

    async def go():  # type: ignore[no-untyped-def]
        client = await client_for(ctx)
        return await ticket_call(task_id, lambda: tickets.task_done(client, task_id, TaskDone(by=by, note=note)))

    _print_task(run(go()), as_json)
