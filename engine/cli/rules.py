"""`ticketflow rules validate | lint | test | explain`: check and understand a ruleset before it goes live."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from engine.cli.common import CliError, print_json
from engine.cli.render import console
from engine.config import Settings
from engine.intake import EventInvalid, parse_event, raw_snapshot
from engine.ruleset import Ruleset, RulesetError, load_ruleset
from engine.ruleset.fixtures import FixtureError, run_fixtures
from engine.ruleset.lint import lint_ruleset
from engine.ruleset.stages import evaluate_staged, stage_trigger

rules_app = typer.Typer(rich_markup_mode="markdown", help="Validate, lint, test and explain the rules in rules/ (or DIR).", no_args_is_help=True)

DirArg = Annotated[Optional[Path], typer.Argument(help="Rules directory (default: TICKETFLOW_RULES_DIR or rules/).", show_default=False)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")


def _dir(directory: Path | None) -> Path:
    path = directory or Settings.from_env().rules_dir
    if not path.is_dir():
        raise CliError(f"{path}: not a rules directory")
    return path


def _load(directory: Path, as_json: bool) -> Ruleset:
    """Load or exit 1 with every problem, one per line (validation is all-or-nothing)."""
    try:
        return load_ruleset(directory)
    except RulesetError as err:
        if as_json:
            print_json({"ok": False, "issues": [issue.__dict__ for issue in err.issues]})
        else:
            for issue in err.issues:
                print(str(issue), file=sys.stderr)
            print(f"{len(err.issues)} error(s) in {directory}; nothing was loaded", file=sys.stderr)
        raise typer.Exit(1) from None


def _count(ruleset: Ruleset) -> int:
    return sum(len(g.rules) for g in ruleset.groups.values())


def _check_connectors(rs) -> None:  # type: ignore[no-untyped-def]
    """Connector names used by rules must exist in connectors.yaml (TICKETFLOW_CONNECTORS_FILE)."""
    from engine.connectors import ConnectorsInvalid, load_connectors
    from engine.connectors.usage import unknown_connectors

    cfg = Settings.from_env()
    try:
        connectors = load_connectors(cfg.connectors_file, cfg.outbox_log)
    except ConnectorsInvalid as exc:
        raise CliError(str(exc)) from None
    unknown = unknown_connectors(rs, connectors.names())
    if unknown:
        raise CliError(f"{cfg.connectors_file}: {unknown[0]}")


@rules_app.command("validate")
def validate(directory: DirArg = None, as_json: JsonFlag = False) -> None:
    """Check the rules: structure (schemas/rules.schema.json) and meaning (fields, types, ids, order, regexes).

    Every error names file:line:column, the rule and a fix; all are reported together.

    Example: ticketflow rules validate rules/
    """
    path = _dir(directory)
    rs = _load(path, as_json)
    _check_connectors(rs)
    summary = {"ok": True, "version": rs.version, "groups": list(rs.groups), "rules": _count(rs),
               "sla_policies": list(rs.sla_policies), "evaluator": rs.evaluator}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"{path}: ok — version {rs.version}, {len(rs.groups)} groups, {_count(rs)} rules, "
                   f"{len(rs.sla_policies)} SLA policies; {rs.evaluator} evaluator")


@rules_app.command("lint")
def lint(directory: DirArg = None, as_json: JsonFlag = False) -> None:
    """Warn about rules that load but are probably mistakes (exit 1 if any).

    Example: ticketflow rules lint
    """
    path = _dir(directory)
    rs = _load(path, as_json)
    findings = lint_ruleset(rs, path)
    if as_json:
        print_json({"version": rs.version, "findings": [f.__dict__ for f in findings]})
    else:
        for f in findings:
            typer.echo(str(f))
        typer.echo(f"{len(findings)} warning(s) in {path}" if findings else f"{path}: no warnings")
    if findings:
        raise typer.Exit(1)


@rules_app.command("test")
def test(
    directory: DirArg = None,
    fixtures: Annotated[Optional[Path], typer.Option(help="Fixture directory (default: DIR/tests).")] = None,
    require_coverage: Annotated[bool, typer.Option("--require-coverage", help="Also fail when a rule is matched by no fixture.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run the example tickets in rules/tests/*.yaml and compare the decisions with what they expect.

    Example: ticketflow rules test --require-coverage
    """
    path = _dir(directory)
    rs = _load(path, as_json)
    try:
        report = run_fixtures(rs, fixtures or path / "tests")
    except FixtureError as exc:
        raise CliError(str(exc)) from None
    failed = report.failed
    if as_json:
        print_json({
            "version": rs.version,
            "passed": len(report.cases) - len(failed),
            "failed": len(failed),
            "failures": [{"file": c.file, "line": c.line, "name": c.name, "mismatches": [m.__dict__ for m in c.mismatches]} for c in failed],
            "uncovered": report.uncovered,
        })
    else:
        for case in failed:
            typer.echo(f"FAIL {case.file}:{case.line}: {case.name}")
            for m in case.mismatches:
                typer.echo(f"  {m.group}.{m.key}: expected {json.dumps(m.expected, ensure_ascii=False)}")
                typer.echo(f"  {' ' * len(m.group + m.key)}       got {json.dumps(m.actual, ensure_ascii=False)}")
        if report.uncovered:
            typer.echo(f"no fixture matches {len(report.uncovered)} rule(s): {', '.join(report.uncovered)}")
        typer.echo(f"rules: {len(report.cases) - len(failed)} passed, {len(failed)} failed")
    if failed or (require_coverage and report.uncovered):
        raise typer.Exit(1)


def _read_ticket(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CliError(f"{path}: not valid JSON or YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f"{path}: expected a ticket event or a ticket mapping")
    if "event_id" in data:  # a channel event: validate it as intake would
        try:
            return raw_snapshot(parse_event(data))
        except EventInvalid as exc:
            raise CliError(f"{path}: {exc}") from None
    return data.get("ticket", data)


def _leaf_text(leaf: dict[str, Any]) -> str:
    mark = "[green]✓[/green]" if leaf.get("result") else "[red]✗[/red]"
    actual = json.dumps(leaf.get("actual"), ensure_ascii=False)
    if len(actual) > 60:
        actual = actual[:57] + '..."'
    return f"{mark} {leaf['field']} {leaf['op']} {json.dumps(leaf.get('expected'), ensure_ascii=False)}  (saw {actual})"


@rules_app.command("explain")
def explain(
    ticket: Annotated[Path, typer.Option("--ticket", "-t", help="A ticket event (JSON, as for submit) or a ticket mapping (YAML/JSON, as in fixtures).", show_default=False)],
    group: Annotated[Optional[str], typer.Option(help="Only this group.")] = None,
    directory: Annotated[Optional[Path], typer.Option("--dir", help="Rules directory.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show how the rules decide for one ticket: every rule tried, every condition with the value it saw.

    Example: ticketflow rules explain --ticket examples/weibo-refund.json --group priority
    """
    path = _dir(directory)
    rs = _load(path, as_json)
    raw = _read_ticket(ticket)
    staged = evaluate_staged(rs, raw, explain=True)
    if group:
        if not rs.has_group(group):
            raise CliError(f"no group {group!r} in {path} (groups: {', '.join(rs.groups)})")
        staged = [d for d in staged if d.group == group]
        if not staged:
            raise CliError(f"group {group!r} was not evaluated: it runs only when the ticket has {stage_trigger(group)}")
    if as_json:
        print_json({"version": rs.version, "decisions": [
            {"stage": d.stage, "group": d.group, "rule_id": d.rule_id, "rule_ids": d.result.rule_ids,
             "actions": d.result.actions, "trace": d.result.trace} for d in staged]})
        return
    console.print(f"ruleset {rs.version} from {path}")
    for d in staged:
        table = Table(title=f"{d.group} ({d.stage}): {d.rule_id or 'no rule matched'} → {json.dumps(d.result.actions, ensure_ascii=False)}",
                      title_justify="left", show_lines=False)
        table.add_column("rule")
        table.add_column("result")
        table.add_column("conditions (expected, and the value seen)")
        for entry in d.result.trace:
            if entry.get("skipped"):
                table.add_row(entry["rule_id"], "[dim]skipped[/dim]", "[dim]an earlier rule decided[/dim]")
                continue
            leaves = entry.get("leaves") or []
            result = "[bold green]matched[/bold green]" if entry.get("matched") else "no"
            table.add_row(entry["rule_id"], result, "\n".join(_leaf_text(leaf) for leaf in leaves) or "(catch-all)")
        console.print(table)


# ---- published versions ------------------------------------------------------------------------


def _store():  # type: ignore[no-untyped-def]
    from engine.store import Store

    return Store.open(Settings.from_env().database_url)


def _ruleset_from(ref: str) -> tuple[Ruleset, str]:
    """A rules directory, or a published version (id or prefix)."""
    path = Path(ref)
    if path.is_dir():
        return _load(path, False), str(path)
    from engine.store.rulesets import UnknownVersion, find

    try:
        row = find(_store(), ref)
    except UnknownVersion as exc:
        raise CliError(f"{ref}: not a rules directory, and {exc}") from None
    return Ruleset.from_dict(row.data, source=f"version {row.version}"), f"version {row.version}"


@rules_app.command("publish")
def publish(
    directory: DirArg = None,
    message: Annotated[str, typer.Option("--message", "-m", help="What changed and why.", show_default=False)] = "",
    author: Annotated[str, typer.Option(help="Who publishes (default: $USER).")] = "",
    activate: Annotated[bool, typer.Option("--activate", help="Also make it the version new tickets get.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate the rules and store them as a version (its id is the content hash).

    Example: ticketflow rules publish rules/ -m "VIP refunds go to vip-care" --activate
    """
    import getpass

    from engine.store.rulesets import publish as do_publish

    if not message.strip():
        raise typer.BadParameter("say what changed: -m MESSAGE")
    path = _dir(directory)
    rs = _load(path, as_json)
    result = do_publish(_store(), rs, author or getpass.getuser(), message, activate)
    if as_json:
        print_json({"version": result.version, "new": result.created, "active": activate})
    else:
        typer.echo(f"{'published' if result.created else 'already published'} version {result.version}"
                   + (" (now active)" if activate else ""))


@rules_app.command("versions")
def versions_cmd(as_json: JsonFlag = False) -> None:
    """Published versions, newest first; * marks the one new tickets get.

    Example: ticketflow rules versions
    """
    from engine.store.rulesets import versions

    rows = versions(_store())
    if as_json:
        print_json([{"version": r.version, "active": r.active, "author": r.author, "message": r.message,
                     "created_at": r.created_at.isoformat()} for r in rows])
        return
    table = Table(box=None, header_style="bold")
    for col in ("", "version", "published", "author", "message"):
        table.add_column(col)
    for r in rows:
        table.add_row("*" if r.active else "", r.version, r.created_at.strftime("%Y-%m-%d %H:%M"), r.author, r.message)
    console.print(table)
    if not any(r.active for r in rows):
        console.print("no version is active: workers use their rules directory")


@rules_app.command("activate")
def activate_cmd(
    version: Annotated[Optional[str], typer.Argument(help="Version id or prefix.", show_default=False)] = None,
    directory: Annotated[bool, typer.Option("--directory", help="Deactivate: workers go back to their rules directory.")] = False,
) -> None:
    """Make a published version the one new tickets are pinned to (rolling back is activating an older one).

    Example: ticketflow rules activate 7db7bd
    """
    from engine.store.rulesets import activate_version, find

    if directory == bool(version):
        raise typer.BadParameter("give a VERSION or --directory")
    store = _store()
    target = None if directory else find(store, version or "").version
    activate_version(store, target)
    typer.echo(f"version {target} is active for new tickets" if target else "no version active: workers use their rules directory")


def _rule_map(data: dict) -> dict[str, dict]:
    return {r["id"]: {"group": g["name"], **r} for g in data.get("groups", []) for r in g["rules"]}


@rules_app.command("diff")
def diff_cmd(a: Annotated[str, typer.Argument(help="Version or directory.")], b: Annotated[str, typer.Argument(help="Version or directory.")],
             as_json: JsonFlag = False) -> None:
    """What changed between two versions (or directories): rules added, removed, changed; policies; calendars.

    Example: ticketflow rules diff 7db7bd rules/
    """
    left, left_name = _ruleset_from(a)
    right, right_name = _ruleset_from(b)
    da, db = left.to_dict(), right.to_dict()
    ra, rb = _rule_map(da), _rule_map(db)
    out: dict[str, list] = {"added": sorted(set(rb) - set(ra)), "removed": sorted(set(ra) - set(rb)), "changed": []}
    for rid in sorted(set(ra) & set(rb)):
        parts = [k for k in ("when", "then", "description", "group") if ra[rid].get(k) != rb[rid].get(k)]
        order_a = [r["id"] for g in da["groups"] for r in g["rules"] if g["name"] == ra[rid]["group"]]
        order_b = [r["id"] for g in db["groups"] for r in g["rules"] if g["name"] == rb[rid]["group"]]
        if order_a.index(rid) != order_b.index(rid):
            parts.append("position")
        if parts:
            out["changed"].append({"rule": rid, "what": parts, "before": {k: ra[rid].get(k) for k in parts if k != "position"},
                                   "after": {k: rb[rid].get(k) for k in parts if k != "position"}})
    for section in ("sla_policies", "calendars"):
        sa_, sb_ = da.get(section, {}), db.get(section, {})
        out[section] = [{"name": n, "before": sa_.get(n), "after": sb_.get(n)} for n in sorted(set(sa_) | set(sb_)) if sa_.get(n) != sb_.get(n)]
    if as_json:
        print_json({"from": left.version, "to": right.version, **out})
        return
    typer.echo(f"{left_name} ({left.version}) → {right_name} ({right.version})")
    if left.version == right.version:
        typer.echo("identical")
        return
    for rid in out["added"]:
        typer.echo(f"+ rule {rid} ({rb[rid]['group']}): when {json.dumps(rb[rid].get('when'), ensure_ascii=False)} then {json.dumps(rb[rid]['then'], ensure_ascii=False)}")
    for rid in out["removed"]:
        typer.echo(f"- rule {rid} ({ra[rid]['group']})")
    for ch in out["changed"]:
        typer.echo(f"~ rule {ch['rule']}: {', '.join(ch['what'])}")
        for k in ch["before"]:
            typer.echo(f"    {k}: {json.dumps(ch['before'][k], ensure_ascii=False)}")
            typer.echo(f"    {' ' * len(k)}→ {json.dumps(ch['after'][k], ensure_ascii=False)}")
    for section in ("sla_policies", "calendars"):
        for item in out[section]:
            typer.echo(f"~ {section[:-1] if section == 'calendars' else 'sla policy'} {item['name']}: "
                       f"{json.dumps(item['before'], ensure_ascii=False)[:120]} → {json.dumps(item['after'], ensure_ascii=False)[:120]}")


@rules_app.command("migrate")
def migrate_cmd(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Published version (id or prefix).", show_default=False)],
    by: Annotated[str, typer.Option(help="Who migrates (recorded in each ticket).", show_default=False)],
    query: Annotated[Optional[str], typer.Option(help='Which open tickets, e.g. \'Channel = "weibo"\' (default: all open).')] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Move open tickets to another ruleset version through a workflow update recorded in their history.

    Example: ticketflow rules migrate --to 7db7bd --by lead.anna --query 'Priority = "P1"'
    """
    import asyncio

    from engine import tickets
    from engine.cli.common import client_for
    from engine.models import MigrateCommand
    from engine.store.rulesets import find

    version = find(_store(), to).version

    async def go() -> tuple[list[str], list[str]]:
        client = await client_for(ctx)
        q = tickets.build_query(status="assigned,open,pending_customer,on_hold,resolved,surveying", extra=query)
        moved, refused = [], []
        for row in await tickets.list_tickets(client, q, limit=10000):
            try:
                await tickets.handle(client, row.ticket_id).execute_update("migrate_ruleset", MigrateCommand(version, by, reason))
                moved.append(row.ticket_id)
            except Exception as exc:  # one ticket's refusal (already on it, just closed) must not stop the rest
                refused.append(f"{row.ticket_id}: {getattr(getattr(exc, 'cause', None), 'message', None) or exc}")
        return moved, refused

    moved, refused = asyncio.run(go())
    if as_json:
        print_json({"version": version, "moved": moved, "refused": refused})
    else:
        for line in refused:
            typer.echo(f"skipped {line}")
        typer.echo(f"{len(moved)} ticket(s) moved to ruleset {version}; {len(refused)} skipped")


@rules_app.command("backtest")
def backtest_cmd(
    ctx: typer.Context,
    rules: Annotated[str, typer.Option("--rules", help="Candidate: a rules directory or a published version.", show_default=False)],
    dir_: Annotated[Optional[Path], typer.Option("--dir", help="Exported histories (ticketflow export).")] = None,
    query: Annotated[Optional[str], typer.Option(help="Past tickets from the server by visibility query.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many tickets from the server.")] = 5000,
    no_index: Annotated[bool, typer.Option("--no-index", help="With --dir: read every history, neither using nor writing DIR/.ticketflow-backtest.jsonl.")] = False,
    details: Annotated[bool, typer.Option("--details", help="One line per changed ticket.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """What a candidate ruleset would have decided for past tickets, and the breaches it would add or remove.

    Nothing live is touched: decisions are re-evaluated from each ticket's recorded inputs, SLA clocks
    recomputed from its recorded events under the candidate's policy. With --dir, what each history
    holds for a backtest is kept in DIR/.ticketflow-backtest.jsonl (refreshed for changed files), so
    backtesting the next candidate over the same export does not read the histories again.

    Example: ticketflow rules backtest --rules ./rules-candidate --dir exported/ --details
    """
    import asyncio

    from engine.backtestindex import INDEX_NAME, indexed
    from engine.pasttickets import from_dir, from_server
    from engine.ruleset.backtest import backtest

    candidate, name = _ruleset_from(rules)
    past: list[Any]
    if dir_ is not None:
        err = Console(stderr=True)
        try:
            if no_index:
                past = list(from_dir(dir_))
            else:
                past, stats = indexed(dir_, warn=lambda message: err.print(f"warning: {message}", markup=False, soft_wrap=True))
                if not as_json:  # which histories were read, and that the index was used at all
                    read = f"{stats.extracted} {'history' if stats.extracted == 1 else 'histories'} read, " if stats.extracted else ""
                    err.print(f"backtest index {dir_ / INDEX_NAME}: {read}{stats.reused} from the index",
                              markup=False, style="dim", soft_wrap=True)
        except (FileNotFoundError, ValueError) as exc:
            raise CliError(str(exc)) from None
    else:
        from engine.cli.common import client_for

        async def collect():  # type: ignore[no-untyped-def]
            client = await client_for(ctx)
            return [p async for p in from_server(client, query, limit)]

        past = asyncio.run(collect())
    report = backtest(candidate, past)
    if as_json:
        print_json({
            "candidate": report.candidate, "tickets": report.tickets, "changed": len(report.changed),
            "fields": {k: dict(v) for k, v in report.field_changes.items()},
            "breaches_added": dict(report.breaches_added), "breaches_removed": dict(report.breaches_removed),
            "per_ticket": [{"ticket_id": t.ticket_id, "changes": t.changes, "rules": t.rules,
                            "breaches_added": t.breaches_added, "breaches_removed": t.breaches_removed}
                           for t in report.changed],
        })
        return
    console.print(f"candidate {name} ({report.candidate}) over {report.tickets} past tickets: {len(report.changed)} would change")
    table = Table(title="decisions that would change", title_justify="left", box=None, header_style="bold")
    for col in ("decision", "tickets", "change (recorded → candidate)"):
        table.add_column(col)
    for label, counter in report.field_changes.items():
        table.add_row(label, str(sum(counter.values())), ", ".join(f"{k}: {n}" for k, n in counter.most_common(5)) or "-")
    console.print(table)
    # a heading of its own: as a table title, rich wraps it to the (narrow) table's width
    console.print("SLA breaches (recomputed from recorded events)", style="italic", highlight=False)
    sla = Table(box=None, header_style="bold")
    for col in ("metric", "would appear", "would disappear"):
        sla.add_column(col)
    for metric in sorted(set(report.breaches_added) | set(report.breaches_removed)) or ["(none)"]:
        sla.add_row(metric, str(report.breaches_added.get(metric, 0)), str(report.breaches_removed.get(metric, 0)))
    console.print(sla)
    if details:
        for t in report.changed:
            parts = [f"{k} {a} → {b} (rule {t.rules[k][0] or '-'} → {t.rules[k][1] or '-'})" for k, (a, b) in t.changes.items()]
            parts += [f"+breach {m}" for m in t.breaches_added] + [f"-breach {m}" for m in t.breaches_removed]
            console.print(f"  {t.ticket_id}: " + "; ".join(parts))


@rules_app.command("pilot")
def pilot_cmd(
    version: Annotated[Optional[str], typer.Argument(help="Version id or prefix to pilot.", show_default=False)] = None,
    share: Annotated[Optional[float], typer.Option(help="Share of new tickets, e.g. 0.1 for 10 %.")] = None,
    channel: Annotated[Optional[list[str]], typer.Option(help="Channel(s) whose new tickets all get the pilot.")] = None,
    end: Annotated[bool, typer.Option("--end", help="End the pilot.")] = False,
) -> None:
    """Run a published version beside the active one for a share of new tickets or some channels.

    Which version each ticket got, and why, is recorded in the ticket.

    Example: ticketflow rules pilot 98cd8d --share 0.1 --channel weibo
    """
    from engine.store.rulesets import find, set_pilot

    store = _store()
    if end:
        set_pilot(store, None)
        typer.echo("pilot ended: new tickets get the active version")
        return
    if not version or (share is None and not channel):
        raise typer.BadParameter("give a VERSION and --share and/or --channel, or --end")
    row = find(store, version)
    try:
        set_pilot(store, row.version, share, list(channel or []))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    scope = " and ".join(p for p in (f"{share:.0%} of new tickets" if share else "", f"channels {', '.join(channel or [])}" if channel else "") if p)
    typer.echo(f"version {row.version} pilots for {scope}")
