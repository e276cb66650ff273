"""`ticketflow rules validate | lint | test | explain` as ops run them: a real subprocess
(`python -m engine rules ...`) from the project root, checking exit codes and the exact lines
printed.

tests/rules_broken/<case>/ holds one rules file per kind of mistake and `expected.txt`, the exact
stderr of `rules validate tests/rules_broken/<case>`. When a message is improved on purpose,
regenerate the file from the project root with

    python -m engine rules validate tests/rules_broken/<case> 2> tests/rules_broken/<case>/expected.txt

and read the diff: it is what ops will see.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "rules_broken"
CASES = sorted(p.name for p in BROKEN.iterdir() if p.is_dir())
ERROR_LINE = re.compile(r"^(?P<file>[^:\s]+\.ya?ml):(?P<line>\d+):(?P<column>\d+): \S")
VERSION = re.compile(r"\b[0-9a-f]{12}\b")


def rules_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI from the project root with relative paths, as ops and CI do; `env` adds to
    the environment."""
    env = {**{k: v for k, v in os.environ.items() if k != "TICKETFLOW_RULES_DIR"}, **(env or {})}
    return subprocess.run([sys.executable, "-m", "engine", "rules", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=120, check=False)


def lines(text: str) -> list[str]:
    """Only trailing whitespace is normalised; everything else must match exactly."""
    return [line.rstrip() for line in text.rstrip().splitlines()]


# ---- validate: every kind of mistake -----------------------------------------------------------

def test_every_error_class_has_a_case() -> None:
    assert set(CASES) == {
        "yaml-syntax", "schema-structure", "unknown-field", "wrong-type-value", "bad-enum-value",
        "operator-not-for-type", "duplicate-id", "catch-all-not-last", "shadowed-rule", "invalid-regex",
        "catastrophic-regex", "unknown-sla-policy", "bad-duration", "unknown-action-for-group",
        "several-errors-at-once",
    }


@pytest.mark.parametrize("case", CASES)
def test_validate_broken_rules_prints_the_expected_errors(case: str) -> None:
    directory = f"tests/rules_broken/{case}"
    res = rules_cli("validate", directory)
    assert res.returncode == 1, res.stderr
    assert res.stdout == ""
    expected = lines((BROKEN / case / "expected.txt").read_text(encoding="utf-8"))
    got = lines(res.stderr)
    assert got == expected

    *errors, summary = got
    assert summary == f"{len(errors)} error(s) in {directory}; nothing was loaded"
    assert errors
    for line in errors:
        m = ERROR_LINE.match(line)
        assert m, f"no file:line:column in {line!r}"
        assert m["file"].startswith(f"{directory}/") and (ROOT / m["file"]).is_file(), line
        assert int(m["line"]) >= 1 and int(m["column"]) >= 1, line


def test_several_errors_are_all_reported_in_file_order() -> None:
    res = rules_cli("validate", "tests/rules_broken/several-errors-at-once")
    *errors, _ = lines(res.stderr)
    assert len(errors) >= 3
    positions = [(int(m["line"]), int(m["column"])) for m in map(ERROR_LINE.match, errors) if m]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_rule_errors_name_the_rule_and_offer_a_fix() -> None:
    res = rules_cli("validate", "tests/rules_broken/unknown-field")
    [error, _] = lines(res.stderr)
    assert "rule 'p2-vip' (group priority)" in error
    assert error.endswith("unknown field 'customer.teir' — did you mean 'customer.tier'?")


def test_validate_json_lists_the_issues() -> None:
    res = rules_cli("validate", "tests/rules_broken/several-errors-at-once", "--json")
    assert res.returncode == 1
    data = json.loads(res.stdout)
    assert data["ok"] is False and len(data["issues"]) == 3
    assert {"file", "line", "column", "rule_id", "group", "message", "hint"} <= set(data["issues"][0])
    assert [i["rule_id"] for i in data["issues"]] == ["p1-public-negative", "p2-vip", "p3-default"]


def test_validate_shipped_rules_prints_the_version() -> None:
    res = rules_cli("validate", "rules")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith("rules: ok — version ")
    version = VERSION.search(res.stdout)
    assert version

    as_json = rules_cli("validate", "rules", "--json")
    assert as_json.returncode == 0
    data = json.loads(as_json.stdout)
    assert data["ok"] is True and data["version"] == version.group()
    assert set(data["groups"]) == {"classification", "priority", "routing", "sla_policy", "escalation", "auto_close", "survey",
                                   "respond", "faq", "resolution", "recovery", "compensation"}
    # which evaluator decides: the native one where it is built (CI builds it), unless turned off
    assert data["evaluator"] == "native" and res.stdout.rstrip().endswith("; native evaluator")
    off = rules_cli("validate", "rules", "--json", env={"TICKETFLOW_RULES_NATIVE": "0"})
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout)["evaluator"] == "python" and json.loads(off.stdout)["version"] == version.group()


# ---- lint -------------------------------------------------------------------------------------

def test_lint_shipped_rules_is_clean() -> None:
    res = rules_cli("lint", "rules")
    assert res.returncode == 0, res.stdout
    assert lines(res.stdout) == ["rules: no warnings"]


def test_lint_warns_with_file_line_and_rule() -> None:
    res = rules_cli("lint", "tests/rules_lint_bad")
    assert res.returncode == 1
    got = lines(res.stdout)
    where = "tests/rules_lint_bad/priority.yaml:13: warning: rule 'p3-bad-review' (group priority): "
    assert got == [
        where + "no description: say why the rule exists, for the next person who edits it",
        where + ("keyword '投诉' also appears in earlier rule 'p2-complaint' of this first-match group, "
                 "so here it only matters when that rule did not match"),
        "2 warning(s) in tests/rules_lint_bad",
    ]


def test_lint_json() -> None:
    clean = json.loads(rules_cli("lint", "rules", "--json").stdout)
    assert clean["findings"] == [] and VERSION.fullmatch(clean["version"])
    res = rules_cli("lint", "tests/rules_lint_bad", "--json")
    assert res.returncode == 1
    findings = json.loads(res.stdout)["findings"]
    assert [(f["file"], f["line"], f["rule_id"], f["group"]) for f in findings] == [
        ("tests/rules_lint_bad/priority.yaml", 13, "p3-bad-review", "priority")] * 2


# ---- test (fixtures) -----------------------------------------------------------------------------

def test_shipped_fixtures_pass_and_cover_every_rule() -> None:
    res = rules_cli("test", "rules", "--require-coverage")
    assert res.returncode == 0, res.stdout
    out = lines(res.stdout)
    assert not any(line.startswith(("FAIL", "no fixture matches")) for line in out), res.stdout
    assert re.fullmatch(r"rules: \d+ passed, 0 failed", out[-1])


def test_a_wrong_fixture_fails_and_shows_expected_and_got() -> None:
    res = rules_cli("test", "tests/rules_fixture_fail")
    assert res.returncode == 1
    assert lines(res.stdout) == [
        "FAIL tests/rules_fixture_fail/tests/wrong.yaml:3: a complaint expected as P1 (wrong on purpose)",
        '  priority.priority: expected "P1"',
        '                         got "P2"',
        "rules: 1 passed, 1 failed",
    ]


def test_fixtures_json() -> None:
    ok = json.loads(rules_cli("test", "rules", "--require-coverage", "--json").stdout)
    assert ok["failed"] == 0 and ok["passed"] > 0 and ok["uncovered"] == []
    res = rules_cli("test", "tests/rules_fixture_fail", "--json")
    assert res.returncode == 1
    data = json.loads(res.stdout)
    assert data["passed"] == 1 and data["failed"] == 1
    [failure] = data["failures"]
    assert failure["line"] == 3 and failure["mismatches"] == [
        {"group": "priority", "key": "priority", "expected": "P1", "actual": "P2"}]


def test_require_coverage_fails_when_a_rule_has_no_fixture(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "tests").mkdir(parents=True)
    (rules / "priority.yaml").write_text((ROOT / "tests/rules_fixture_fail/priority.yaml").read_text("utf-8"), "utf-8")
    (rules / "tests" / "only-default.yaml").write_text(
        "cases:\n  - name: plain\n    ticket: {channel: chat, body: 你好}\n    expect: {priority: {priority: P3}}\n", "utf-8")
    assert rules_cli("test", str(rules)).returncode == 0
    res = rules_cli("test", str(rules), "--require-coverage")
    assert res.returncode == 1
    assert "no fixture matches 1 rule(s): p2-complaint" in res.stdout


# ---- explain ------------------------------------------------------------------------------------

EVENT = {
    "event_id": "wb-20260302-889", "channel": "weibo", "is_public": True,
    "customer": {"id": "wb-u-1", "tier": "standard", "language": "zh"},
    "subject": "退款三周还没到账", "body": "申请退款已经三周了还没到账，客服一直不回复，太失望了！",
    "occurred_at": "2026-03-02T09:15:00+08:00",
}


def test_explain_json_traces_every_leaf(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(EVENT, ensure_ascii=False), "utf-8")
    res = rules_cli("explain", "--ticket", str(event), "--group", "priority", "--dir", "rules", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert VERSION.fullmatch(data["version"])
    [decision] = data["decisions"]
    assert decision["group"] == "priority" and decision["rule_id"] == "p1-public-negative"
    assert decision["actions"] == {"priority": "P1"}
    first = decision["trace"][0]
    assert first["rule_id"] == "p1-public-negative" and first["matched"] is True
    leaves = first["leaves"]
    assert leaves and all({"field", "op", "expected", "actual", "result"} <= set(leaf) for leaf in leaves)
    assert leaves[0] == {"field": "is_public", "op": "eq", "expected": True, "actual": True, "result": True}
    sentiment = next(leaf for leaf in leaves if leaf["field"] == "sentiment")
    assert sentiment["op"] == "lte" and sentiment["expected"] == -0.3 and sentiment["actual"] <= -0.3
    # first match: the rules after the deciding one are listed as skipped, not evaluated
    assert all(entry.get("skipped") for entry in decision["trace"][1:])


def test_explain_without_group_shows_every_stage(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(EVENT, ensure_ascii=False), "utf-8")
    data = json.loads(rules_cli("explain", "--ticket", str(event), "--dir", "rules", "--json").stdout)
    groups = [d["group"] for d in data["decisions"]]
    assert groups[:4] == ["classification", "priority", "routing", "sla_policy"]
    routing = data["decisions"][2]
    assert routing["rule_id"] == "complaints-public-negative"


def test_explain_unknown_group_is_one_clear_error(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(EVENT, ensure_ascii=False), "utf-8")
    res = rules_cli("explain", "--ticket", str(event), "--group", "priorty", "--dir", "rules")
    assert res.returncode == 1
    [line] = lines(res.stderr)
    assert line.startswith("ticketflow: error: no group 'priorty'")


def test_explain_escalation_needs_an_sla_event(tmp_path: Path) -> None:
    """A ticket as it arrives has no SLA event, so escalation does not run for it (and explain
    says so instead of showing a decision no live ticket would get)."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps(EVENT, ensure_ascii=False), "utf-8")
    res = rules_cli("explain", "--ticket", str(event), "--group", "escalation", "--dir", "rules")
    assert res.returncode == 1
    assert lines(res.stderr) == ["ticketflow: error: group 'escalation' was not evaluated: it runs only when the ticket has sla.event"]

    ticket = tmp_path / "breached.yaml"  # a ticket mapping as in fixtures, with the clock's context
    ticket.write_text("channel: sms\nbody: 订单 9921 的安装师傅明天几点到\ncustomer: {id: c-1, tier: standard}\n"
                      "sla.event: breach\nsla.metric: first_response\nsla.threshold: 1.0\nescalation.tier: agent\n", "utf-8")
    data = json.loads(rules_cli("explain", "--ticket", str(ticket), "--group", "escalation", "--dir", "rules", "--json").stdout)
    [decision] = data["decisions"]
    assert decision["stage"] == "sla_event" and decision["rule_id"] == "breach-to-senior"
    matched = next(entry for entry in decision["trace"] if entry.get("matched"))
    assert [(leaf["field"], leaf["actual"], leaf["result"]) for leaf in matched["leaves"]] == [
        ("sla.event", "breach", True), ("escalation.tier", "agent", True)]


def test_a_fixture_expecting_escalation_without_an_sla_event_says_why(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "tests").mkdir(parents=True)
    (rules / "escalation.yaml").write_text(
        "groups:\n  - name: escalation\n    match: first\n    rules:\n"
        "      - id: breach-notify\n        description: tell the lead\n"
        "        when: {field: sla.event, eq: breach}\n        then: {notify: [team_lead]}\n", "utf-8")
    (rules / "tests" / "esc.yaml").write_text(
        "cases:\n  - name: forgot the sla context\n    ticket: {channel: chat, body: hi}\n"
        "    expect: {escalation: {rule: breach-notify}}\n", "utf-8")
    res = rules_cli("test", str(rules))
    assert res.returncode == 1
    assert "escalation.group: expected \"evaluated\"" in res.stdout
    assert "not evaluated: the escalation group runs only when the ticket has sla.event" in res.stdout


# ---- usage errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("validate", "--bogus"), ("lint", "--bogus"), ("test", "--no-such-option"),
                                  ("explain", "--group", "priority")])
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    res = rules_cli(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == ""


def test_validate_refuses_a_connector_that_connectors_yaml_does_not_define(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    respond = rules / "respond.yaml"
    respond.write_text(respond.read_text("utf-8").replace(
        "then: {faq_bot: false, progress_every: 12h}", "then: {faq_bot: false, progress_every: 12h, connector: vip-gateway}"), "utf-8")
    res = rules_cli("validate", str(rules))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip().endswith(
        "rule 'vip-human-first' (group respond) sends through connector 'vip-gateway', "
        "which connectors.yaml does not define (defined: outbox)")
    (tmp_path / "connectors.yaml").write_text(
        "connectors:\n  outbox: {type: log}\n  vip-gateway: {type: log}\nchannels:\n  default: outbox\n", "utf-8")
    env = {k: v for k, v in os.environ.items() if k != "TICKETFLOW_RULES_DIR"}
    env["TICKETFLOW_CONNECTORS_FILE"] = str(tmp_path / "connectors.yaml")
    ok = subprocess.run([sys.executable, "-m", "engine", "rules", "validate", str(rules)], cwd=ROOT, env=env,
                        capture_output=True, text=True, encoding="utf-8", timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
