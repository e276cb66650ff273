"""`ticketflow rules validate | lint | test | explain`: check and understand a ruleset before it goes live."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.table import Table

from engine.cli.common import CliError, print_json
from engine.cli.render import console
from engine.config import Settings
from engine.intake import EventInvalid, parse_event
from engine.ruleset import Ruleset, RulesetError, load_ruleset
from engine.ruleset.fixtures import FixtureError, run_fixtures
from engine.ruleset.lint import lint_ruleset
from engine.ruleset.stages import evaluate_staged, stage_trigger

rules_app = typer.Typer(help="Validate, lint, test and explain the rules in rules/ (or DIR).", no_args_is_help=True)

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


@rules_app.command("validate")
def validate(directory: DirArg = None, as_json: JsonFlag = False) -> None:
    """Check the rules: structure (schemas/rules.schema.json) and meaning (fields, types, ids, order, regexes).

    Every error names file:line:column, the rule and a fix; all are reported together.

    Example: ticketflow rules validate rules/
    """
    path = _dir(directory)
    rs = _load(path, as_json)
    summary = {"ok": True, "version": rs.version, "groups": list(rs.groups), "rules": _count(rs), "sla_policies": list(rs.sla_policies)}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"{path}: ok — version {rs.version}, {len(rs.groups)} groups, {_count(rs)} rules, {len(rs.sla_policies)} SLA policies")


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
            ev = parse_event(data)
        except EventInvalid as exc:
            raise CliError(f"{path}: {exc}") from None
        raw: dict[str, Any] = {
            "channel": ev.channel, "is_public": ev.is_public, "subject": ev.subject, "body": ev.body,
            "customer": {"id": ev.customer.id, "tier": ev.customer.tier, "language": ev.customer.language},
            "status": "received", "reopen_count": 0, "tags": [],
        }
        if ev.order_value is not None:
            raw["order_value"] = ev.order_value
        if ev.prior_contacts is not None:
            raw["prior_contacts"] = ev.prior_contacts
        return raw
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
