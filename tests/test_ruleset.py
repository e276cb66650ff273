"""Unit tests of the rules language: operators, groups, validation errors, versions, traces,
sentiment, and the shipped default rules on realistic tickets."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from engine.ruleset import (FIELDS, GROUP_ACTIONS, GroupResult, RuleIssue, Ruleset, RulesetError, build_snapshot,
                            load_ruleset, load_ruleset_texts, rules_json_schema)
from engine.ruleset.loader import regex_problem
from engine.ruleset.sentiment import analyse, score

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"


def one_rule(when: dict[str, Any]) -> Ruleset:
    doc = {"groups": [{"name": "classification", "match": "all",
                       "rules": [{"id": "r", "when": when, "then": {"category": "hit"}}]}]}
    return load_ruleset_texts({"t.yaml": yaml.safe_dump(doc, allow_unicode=True)})


def hit(when: dict[str, Any], snapshot: dict[str, Any]) -> bool:
    return one_rule(when).evaluate("classification", snapshot).rule_ids == ["r"]


def issues_of(files: dict[str, str]) -> list[RuleIssue]:
    with pytest.raises(RulesetError) as info:
        load_ruleset_texts({name: textwrap.dedent(text) for name, text in files.items()})
    return info.value.issues


# ---- operators ------------------------------------------------------------------------------

TICKET = {
    "channel": "weibo", "is_public": True, "subject": "RE: 订单 8812", "body": "我要退款！The item is BROKEN.",
    "customer.tier": "vip", "customer.language": "zh", "order_value": 5000, "tags": ["Public", "angry"],
    "reopen_count": 0, "status": "open", "category": "", "priority": None,
}


@pytest.mark.parametrize("when, expected", [
    ({"field": "channel", "eq": "weibo"}, True),
    ({"field": "channel", "eq": "email"}, False),
    ({"field": "is_public", "eq": True}, True),
    ({"field": "is_public", "ne": True}, False),
    ({"field": "order_value", "eq": 5000}, True),
    ({"field": "body", "eq": "我要退款！the item is broken."}, True),  # case-insensitive
    ({"field": "customer.language", "ne": "en"}, True),
    ({"field": "customer.language", "eq": "ZH"}, True),
    ({"field": "channel", "in": ["email", "weibo"]}, True),
    ({"field": "channel", "not_in": ["email", "weibo"]}, False),
    ({"field": "customer.language", "in": ["EN", "Zh"]}, True),
    ({"field": "order_value", "lt": 5000}, False),
    ({"field": "order_value", "lte": 5000}, True),
    ({"field": "order_value", "gt": 4999.5}, True),
    ({"field": "order_value", "gte": 5001}, False),
    ({"field": "order_value", "between": [5000, 6000]}, True),
    ({"field": "order_value", "between": [1000, 5000]}, True),
    ({"field": "order_value", "between": [5001, 6000]}, False),
    ({"field": "text", "contains_any": ["退款", "refund"]}, True),  # Chinese by plain substring
    ({"field": "body", "contains_any": ["broken"]}, True),  # case-insensitive
    ({"field": "body", "contains_any": ["roken"]}, False),  # a Latin keyword must start a word
    ({"field": "body", "contains_any": ["退"]}, True),
    ({"field": "body", "contains_all": ["退款", "item"]}, True),
    ({"field": "body", "contains_all": ["退款", "发票"]}, False),
    ({"field": "tags", "contains_any": ["public", "vip"]}, True),  # list fields: shared element
    ({"field": "tags", "contains_any": ["pub"]}, False),  # elements compare whole, not by substring
    ({"field": "tags", "contains_all": ["PUBLIC", "angry"]}, True),
    ({"field": "tags", "contains_all": ["public", "vip"]}, False),
    ({"field": "subject", "starts_with": "re:"}, True),
    ({"field": "subject", "starts_with": "订单"}, False),
    ({"field": "subject", "matches": r"订单\s*\d{4}"}, True),
    ({"field": "body", "matches": r"item is (broken|lost)"}, True),
    ({"field": "body", "matches": r"^the item"}, False),
    ({"field": "prior_contacts", "is_set": False}, True),
    ({"field": "priority", "is_set": True}, False),  # None counts as not set
    ({"field": "channel", "is_set": True}, True),
    ({"field": "category", "is_empty": True}, True),  # empty string
    ({"field": "prior_contacts", "is_empty": True}, True),  # missing
    ({"field": "tags", "is_empty": False}, True),
    ({"all": [{"field": "channel", "eq": "weibo"}, {"field": "order_value", "gte": 100}]}, True),
    ({"all": [{"field": "channel", "eq": "weibo"}, {"field": "order_value", "lt": 100}]}, False),
    ({"any": [{"field": "channel", "eq": "email"}, {"field": "is_public", "eq": True}]}, True),
    ({"not": {"field": "channel", "eq": "weibo"}}, False),
    ({"not": {"any": [{"field": "channel", "eq": "sms"}, {"field": "customer.tier", "eq": "standard"}]}}, True),
])
def test_operator(when: dict[str, Any], expected: bool) -> None:
    assert hit(when, build_snapshot(TICKET)) is expected


def test_missing_field_fails_every_comparison_but_not_its_negation() -> None:
    snapshot = {"channel": "email"}
    for when in ({"field": "order_value", "lt": 10}, {"field": "order_value", "ne": 10},
                 {"field": "priority", "not_in": ["P1"]}, {"field": "category", "ne": "refund"},
                 {"field": "body", "contains_any": ["x"]}, {"field": "tags", "contains_all": ["x"]}):
        assert not hit(when, snapshot), when
    assert hit({"not": {"field": "priority", "eq": "P1"}}, snapshot)


def test_wrong_runtime_type_is_false_not_an_exception() -> None:
    assert not hit({"field": "order_value", "gt": 1}, {"order_value": "12"})
    assert not hit({"field": "order_value", "gt": 0}, {"order_value": True})
    assert not hit({"field": "body", "contains_any": ["x"]}, {"body": 42})


def test_text_matching_folds_width_and_case_and_keeps_word_starts() -> None:
    when = {"field": "body", "contains_any": ["refund", "sue you"]}
    assert hit(when, {"body": "ＲＥＦＵＮＤ please"})  # full-width Latin from a Chinese keyboard
    assert hit(when, {"body": "我要refund"})  # a Chinese character before a keyword still starts a word
    assert hit(when, {"body": "Refunded twice?"})
    assert not hit({"field": "body", "contains_any": ["sue"]}, {"body": "there is an issue"})
    assert hit({"field": "body", "contains_any": ["doesn't work"]}, {"body": "It doesn’t work"})
    assert hit({"field": "body", "matches": "VIP"}, {"body": "ｖｉｐ customer"})


# ---- first / all ----------------------------------------------------------------------------

GROUPS = """
groups:
  - name: classification
    match: all
    rules:
      - id: c-refund
        when: {field: text, contains_any: [refund, 退款]}
        then: {category: refund, tags: [refund, money]}
      - id: c-complaint
        when: {field: text, contains_any: [投诉]}
        then: {category: complaint, tags: [complaint, money]}
      - id: c-public
        when: {field: is_public, eq: true}
        then: {tags: [public]}
  - name: priority
    match: first
    rules:
      - id: p-public
        when: {field: is_public, eq: true}
        then: {priority: P1}
      - id: p-refund
        when: {field: text, contains_any: [退款]}
        then: {priority: P2}
      - id: p-default
        then: {priority: P3}
"""


def test_match_all_merges_scalars_last_wins_and_lists_by_union() -> None:
    rs = load_ruleset_texts({"g.yaml": GROUPS})
    res = rs.evaluate("classification", build_snapshot({"subject": "退款", "body": "不退我就投诉", "is_public": True}))
    assert res.rule_ids == ["c-refund", "c-complaint", "c-public"]
    assert res.actions == {"category": "complaint", "tags": ["refund", "money", "complaint", "public"]}


def test_match_first_takes_the_first_matching_rule_only() -> None:
    rs = load_ruleset_texts({"g.yaml": GROUPS})
    res = rs.evaluate("priority", build_snapshot({"body": "退款", "is_public": False}))
    assert (res.rule_ids, res.actions) == (["p-refund"], {"priority": "P2"})
    assert rs.evaluate("priority", build_snapshot({"body": "退款", "is_public": True})).rule_ids == ["p-public"]
    assert rs.evaluate("priority", build_snapshot({"body": "hello"})).actions == {"priority": "P3"}


def test_no_match_gives_empty_result_and_actions_are_copies() -> None:
    rs = load_ruleset_texts({"g.yaml": GROUPS})
    res = rs.evaluate("classification", build_snapshot({"body": "hello"}))
    assert res == GroupResult("classification", [], {}, [])
    first = rs.evaluate("classification", build_snapshot({"body": "refund"}))
    first.actions["tags"].append("mutated")
    assert rs.evaluate("classification", build_snapshot({"body": "refund"})).actions["tags"] == ["refund", "money"]


def test_unknown_group_raises_key_error_and_has_group() -> None:
    rs = load_ruleset_texts({"g.yaml": GROUPS})
    assert rs.has_group("priority") and not rs.has_group("survey")
    with pytest.raises(KeyError):
        rs.evaluate("survey", {})
    with pytest.raises(KeyError):
        rs.evaluate("no-such-group", {})


# ---- validation errors ----------------------------------------------------------------------

def test_unknown_field_names_file_line_column_rule_and_hint(tmp_path: Path) -> None:
    (tmp_path / "priority.yaml").write_text(textwrap.dedent("""\
        # VIP rules
        groups:
          - name: priority
            match: first
            rules:
              - id: vip-public
                when:
                  field: customer.teir
                  eq: vip
                then: {priority: P1}
        """), encoding="utf-8")
    with pytest.raises(RulesetError) as info:
        load_ruleset(tmp_path)
    [issue] = info.value.issues
    assert issue == RuleIssue(str(tmp_path / "priority.yaml"), 8, 18, "vip-public", "priority",
                              "unknown field 'customer.teir'", "did you mean 'customer.tier'?")
    assert str(info.value) == (f"{tmp_path / 'priority.yaml'}:8:18: rule 'vip-public' (group priority): "
                               "unknown field 'customer.teir' — did you mean 'customer.tier'?")


def test_three_problems_in_one_file_give_three_issues() -> None:
    issues = issues_of({"rules/p.yaml": """\
        groups:
          - name: priority
            match: first
            rules:
              - id: a
                when: {field: channel, eq: webo}
                then: {priority: P1}
              - id: b
                when: {field: subject, matches: "(\\\\w+)*$"}
                then: {priority: P9}
              - id: c
                when: {field: customer.tier, eq: vip}
                then: {priority: P2}
        """})
    assert [(i.line, i.rule_id) for i in issues] == [(6, "a"), (9, "b"), (10, "b")]
    assert "'webo' is not a value of channel" in issues[0].message and issues[0].hint == "did you mean 'weibo'?"
    assert "repeats a group that itself repeats" in issues[1].message
    assert "'P9' is not one of P1, P2, P3, P4" in issues[2].message


def test_bad_enum_value_in_list_and_wrong_types() -> None:
    issues = issues_of({"r.yaml": """\
        groups:
          - name: routing
            match: first
            rules:
              - id: r1
                when: {field: customer.tier, in: [vip, platinum]}
                then: {team: a, strategy: fastest, skills: zh}
              - id: r2
                when: {field: order_value, gt: "5000"}
                then: {team: b}
              - id: r3
                when: {field: channel, lt: 3}
                then: {team: c}
        """})
    messages = [(i.rule_id, i.message, i.hint) for i in issues]
    assert messages == [
        ("r1", "'platinum' is not a value of customer.tier", "customer.tier is one of: standard, premium, vip"),
        ("r1", "strategy: 'fastest' is not one of least_loaded, round_robin", None),
        ("r1", "skills: expected a list, got 'zh'", None),
        ("r2", "gt: expected a number, got '5000'", None),
        ("r3", "operator 'lt' does not apply to enum field 'channel'",
         "channel takes: eq, ne, in, not_in, is_set, is_empty"),
    ]


def test_unknown_action_and_operator_get_suggestions() -> None:
    issues = issues_of({"r.yaml": """\
        groups:
          - name: survey
            match: first
            rules:
              - id: s1
                when: {field: channel, equals: phone}
                then: {survey: false, dealy: 1h}
        """})
    assert [(i.message, i.hint) for i in issues] == [
        ("unknown operator 'equals'", "use all/any/not, or field plus one of: eq, ne, in, not_in, lt, lte, gt, gte, "
                                      "between, contains_any, contains_all, starts_with, matches, is_set, is_empty"),
        ("unknown action 'dealy' for group survey", "did you mean 'delay'?"),
    ]
    assert issues_of({"r.yaml": "groups: [{name: survey, match: first, rules: [{id: s, then: {survey: true}, "
                                "when: {field: channel, eqq: sms}}]}]"})[0].hint == "did you mean 'eq'?"


def test_catch_all_not_last_is_an_error() -> None:
    [issue] = issues_of({"p.yaml": """\
        groups:
          - name: priority
            match: first
            rules:
              - id: default
                then: {priority: P3}
              - id: vip
                when: {field: customer.tier, eq: vip}
                then: {priority: P2}
        """})
    assert issue.rule_id == "default" and "not the last rule" in issue.message and issue.line == 5


def test_duplicate_rule_id_across_files_and_duplicate_group() -> None:
    issues = issues_of({
        "a.yaml": """\
            groups:
              - name: priority
                match: first
                rules:
                  - id: same
                    then: {priority: P3}
            """,
        "b.yaml": """\
            groups:
              - name: priority
                match: first
                rules:
                  - id: same
                    then: {priority: P4}
            """,
    })
    assert [(i.file, i.line, i.message) for i in issues] == [
        ("b.yaml", 2, "group 'priority' is already defined at a.yaml:2"),
        ("b.yaml", 5, "duplicate rule id (first used at a.yaml:5)"),
    ]


def test_identical_condition_shadows_in_first_group_only() -> None:
    body = """\
        groups:
          - name: priority
            match: {match}
            rules:
              - id: one
                when: {{all: [{{field: channel, eq: weibo}}, {{field: is_public, eq: true}}]}}
                then: {{priority: P1}}
              - id: two
                when: {{all: [{{field: is_public, eq: true}}, {{field: channel, eq: weibo}}]}}
                then: {{priority: P2}}
        """
    [issue] = issues_of({"p.yaml": body.format(match="first")})
    assert issue.rule_id == "two" and "same condition as rule 'one'" in issue.message
    load_ruleset_texts({"p.yaml": textwrap.dedent(body.format(match="all"))})


@pytest.mark.parametrize("pattern", [r"(a+)+", r"(.*)*", r"(\w+)*", r"(a{1,5})+b", r"((ab)*c)+", r"(?:x|(\d+))+"])
def test_catastrophic_regexes_are_refused(pattern: str) -> None:
    assert regex_problem(pattern) is not None
    with pytest.raises(RulesetError, match="repeats a group that itself repeats"):
        one_rule({"field": "body", "matches": pattern})


@pytest.mark.parametrize("pattern", [r"\d+", r"(ab)+", r"(?:abc|def)*x", r"a+b+", r"订单号\s*\d{6,}", r"(?>a+)+"])
def test_safe_regexes_are_accepted(pattern: str) -> None:
    assert regex_problem(pattern) is None


def test_invalid_regex_is_refused() -> None:
    with pytest.raises(RulesetError, match="invalid regular expression: missing \\), unterminated subpattern"):
        one_rule({"field": "body", "matches": "(abc"})


def test_undefined_sla_policy_and_bad_duration() -> None:
    issues = issues_of({"s.yaml": """\
        sla_policies:
          fast: {first_response: 30m, resolution: 4h}
          slow: {first_response: 2d, resolution: 1d}
        groups:
          - name: sla_policy
            match: first
            rules:
              - id: pick
                then: {policy: fats}
          - name: survey
            match: first
            rules:
              - id: later
                then: {survey: true, delay: 1 hour}
        """})
    assert [(i.line, i.message, i.hint) for i in issues] == [
        (3, "sla policy 'slow': first_response is longer than resolution",
         "a ticket cannot be resolved before its first response is due"),
        (9, "sla policy 'fats' is not defined", "did you mean 'fast'?"),
        (14, "delay: '1 hour' is not a duration", "write e.g. 90s, 30m, 4h, 2d, 1d12h, or a number of seconds"),
    ]


def test_structural_mistakes_are_reported_in_plain_words() -> None:
    issues = issues_of({"x.yaml": """\
        groups:
          - name: escalations
            match: first
            rules: []
          - name: priority
            match: first
            rules:
              - id: p
                when: {any: [{field: channel, eq: sms}], field: channel}
              - id: q
                when: {field: channel}
                then: {priority: P3}
        """})
    assert [(i.line, i.message) for i in issues] == [
        (2, "name: 'escalations' is not one of classification, priority, routing, sla_policy, escalation, auto_close, survey, respond, faq, resolution, recovery, compensation"),
        (4, "rules must not be empty"),
        (8, "the rule has no 'then'"),
        (9, "a condition is one of all/any/not or a single field test, this one mixes 'any', 'field'"),
        (11, "the test on 'channel' has no operator"),
    ]


def test_yaml_syntax_error_has_a_position() -> None:
    [issue] = issues_of({"broken.yaml": "groups:\n  - name: priority\n    match: [first\n"})
    assert issue.file == "broken.yaml" and issue.line == 4 and issue.message.startswith("YAML syntax error")


def test_empty_directory_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(RulesetError, match="no rules files"):
        load_ruleset(tmp_path)
    with pytest.raises(RulesetError, match="no such file or directory"):
        load_ruleset(tmp_path / "nope")


# ---- versions and round trips ---------------------------------------------------------------

def test_version_ignores_comments_layout_and_file_order_but_not_content() -> None:
    base = load_ruleset_texts({"g.yaml": GROUPS})
    split = GROUPS.index("  - name: priority")
    reordered = load_ruleset_texts({
        "b.yaml": "# priority first now\ngroups:\n" + GROUPS[split:].replace("    rules:", "    rules:   # reordered"),
        "a.yaml": "groups:\n\n\n" + GROUPS[len("\ngroups:\n"):split],
    })
    assert reordered.version == base.version
    assert load_ruleset_texts({"g.yaml": GROUPS.replace("then: {priority: P2}", "then: {priority: P4}")}).version != base.version
    swapped = GROUPS.replace("id: p-public", "id: tmp").replace("id: p-refund", "id: p-public").replace("id: tmp", "id: p-refund")
    assert load_ruleset_texts({"g.yaml": swapped}).version != base.version
    assert len(base.version) == 12 and int(base.version, 16) >= 0


def test_to_dict_from_dict_round_trip_evaluates_the_same() -> None:
    rs = load_ruleset(RULES)
    data = json.loads(json.dumps(rs.to_dict()))
    again = Ruleset.from_dict(data)
    assert again.version == rs.version and again.to_dict() == rs.to_dict()
    assert again.sla_policies == rs.sla_policies
    for ticket in TICKETS.values():
        snapshot = build_snapshot(ticket)
        for group in rs.groups:
            assert again.evaluate(group, snapshot, explain=True) == rs.evaluate(group, snapshot, explain=True)


def test_from_dict_validates_and_names_the_source() -> None:
    data = load_ruleset_texts({"g.yaml": GROUPS}).to_dict()
    data["groups"][0]["rules"][0]["when"]["field"] = "txet"
    with pytest.raises(RulesetError) as info:
        Ruleset.from_dict(data, source="rulesets/abc.json")
    [issue] = info.value.issues
    assert str(issue) == "rulesets/abc.json: rule 'c-refund' (group classification): unknown field 'txet' — did you mean 'text'?"


def test_normalised_form_has_seconds_and_defaults() -> None:
    rs = load_ruleset(RULES)
    assert rs.sla_policies["p1-urgent"] == {
        "description": "Drop-everything tickets (public outrage, urgent VIP, legal risk).",
        "first_response": 1800, "resolution": 14400, "pause_on": ["pending_customer", "on_hold"],
        "warnings": [0.5, 0.75, 0.9], "on_change": "keep", "next_reply": 3600, "periodic_update": 7200}
    survey = {rule["id"]: rule["then"] for group in rs.to_dict()["groups"] if group["name"] == "survey"
              for rule in group["rules"]}
    assert survey["vip-nps"] == {"survey": True, "kind": "nps", "delay": 7200, "expires_after": 604800, "remind_after": 259200}
    one = load_ruleset_texts({"s.yaml": "sla_policies:\n  x: {first_response: 90s, resolution: 1d12h}\n"
                                        "  y: {first_response: 90, resolution: 2d, pause_on: [on_hold]}\n"})
    assert (one.sla_policies["x"]["first_response"], one.sla_policies["x"]["resolution"]) == (90, 129600)
    assert one.sla_policies["y"]["pause_on"] == ["on_hold"]
    tampered = one.to_dict()
    tampered["sla_policies"]["x"]["first_response"] = 10 ** 6
    with pytest.raises(RulesetError, match="first_response is longer than resolution"):
        Ruleset.from_dict(tampered)


# ---- traces ---------------------------------------------------------------------------------

def test_explain_trace_lists_every_rule_leaf_and_skipped_rules() -> None:
    rs = load_ruleset_texts({"g.yaml": GROUPS})
    res = rs.evaluate("priority", build_snapshot({"body": "退款", "is_public": False}), explain=True)
    assert res.trace == [
        {"rule_id": "p-public", "matched": False,
         "leaves": [{"field": "is_public", "op": "eq", "expected": True, "actual": False, "result": False}]},
        {"rule_id": "p-refund", "matched": True,
         "leaves": [{"field": "text", "op": "contains_any", "expected": ["退款"], "actual": "退款", "result": True}]},
        {"rule_id": "p-default", "skipped": True},
    ]


def test_explain_shows_all_leaves_while_compact_trace_keeps_matched_rules_only() -> None:
    rs = one_rule({"any": [{"field": "channel", "eq": "weibo"}, {"field": "order_value", "gt": 10}]})
    snapshot = build_snapshot({"channel": "weibo", "body": "长" * 500})
    full = rs.evaluate("classification", snapshot, explain=True).trace
    assert [leaf["field"] for leaf in full[0]["leaves"]] == ["channel", "order_value"]
    assert full[0]["leaves"][1] == {"field": "order_value", "op": "gt", "expected": 10, "actual": None, "result": False}
    compact = rs.evaluate("classification", snapshot).trace
    assert compact == [{"rule_id": "r", "matched": True,
                        "leaves": [{"field": "channel", "op": "eq", "expected": "weibo", "actual": "weibo"}]}]
    long_text = load_ruleset_texts({"t.yaml": yaml.safe_dump({"groups": [{"name": "priority", "match": "first", "rules": [
        {"id": "p", "when": {"field": "body", "contains_any": ["长"]}, "then": {"priority": "P3"}}]}]})})
    actual = long_text.evaluate("priority", snapshot).trace[0]["leaves"][0]["actual"]
    assert len(actual) == 121 and actual.endswith("…")
    assert rs.evaluate("classification", build_snapshot({"channel": "sms"})).trace == []


# ---- sentiment and snapshots ----------------------------------------------------------------

@pytest.mark.parametrize("text, sign", [
    ("太差劲了，客服一直推脱，我要投诉！", -1),
    ("非常满意，谢谢你们的耐心帮助", 1),
    ("不满意", -1),
    ("不好", -1),
    ("不太满意", -1),  # negated positive
    ("我没有不满意", 1),  # negated negative
    ("不错", 1),  # a word beginning with 不 that is positive
    ("不好意思，请问快递到哪了", 0),  # polite phrase and courier: neutral
    ("Terrible service, I am very angry!!!", -1),
    ("Thank you, great help", 1),
    ("This is not good", -1),
    ("not bad at all", 1),
    ("Where is my parcel?", 0),
])
def test_sentiment_sign(text: str, sign: int) -> None:
    value = score(text)
    assert -1 <= value <= 1
    assert (value > 0) - (value < 0) == sign, (text, value, analyse(text).hits)


def test_sentiment_strength_negation_and_contrast() -> None:
    assert score("非常满意") > score("满意") > 0
    assert score("very bad") < score("bad") < 0
    assert score("not good") < 0 < score("good")
    assert score("good") > -score("not good")  # negation flips and damps
    assert score("the product is good but the delivery was awful") < 0  # what follows "but" weighs more
    assert score("") == 0 and score(None) == 0
    assert -1 <= score("垃圾 骗子 恶心 气死了 " * 20) < -0.99  # saturates instead of growing


def test_build_snapshot_derives_text_and_sentiment_and_is_pure() -> None:
    raw = {"subject": "投诉", "body": "太差了", "customer": {"tier": "vip", "id": "c1"}, "tags": ["x"]}
    snapshot = build_snapshot(raw)
    assert snapshot["text"] == "投诉\n太差了"
    assert snapshot["sentiment"] == score("投诉\n太差了") < 0
    assert snapshot["customer.tier"] == "vip" and snapshot["customer.id"] == "c1"
    assert raw == {"subject": "投诉", "body": "太差了", "customer": {"tier": "vip", "id": "c1"}, "tags": ["x"]}
    snapshot["tags"].append("y")
    assert raw["tags"] == ["x"]
    assert build_snapshot({"body": "hi"})["text"] == "hi" and build_snapshot({})["text"] == ""
    assert build_snapshot(snapshot) == snapshot  # derived fields are recomputed, not stacked


# ---- schema and docs ------------------------------------------------------------------------

def test_committed_schema_matches_the_catalogs_and_is_valid() -> None:
    committed = json.loads((ROOT / "schemas" / "rules.schema.json").read_text(encoding="utf-8"))
    assert committed == rules_json_schema(), (
        "schemas/rules.schema.json is stale: run "
        "python -c 'from engine.ruleset.loader import write_json_schema; write_json_schema()'")
    Draft202012Validator.check_schema(committed)
    validator = Draft202012Validator(committed)
    for path in sorted(RULES.glob("*.yaml")):
        assert not list(validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8")))), path


def test_readme_documents_every_field_and_action() -> None:
    readme = (RULES / "README.md").read_text(encoding="utf-8")
    for name in FIELDS:
        assert f"| `{name}` |" in readme, name
    for group, actions in GROUP_ACTIONS.items():
        for action in actions:
            assert f"| {group} | `{action}` |" in readme, (group, action)


# ---- the shipped rules ----------------------------------------------------------------------

TICKETS: dict[str, dict[str, Any]] = {
    "weibo-angry-refund": {
        "channel": "weibo", "is_public": True, "subject": "退款拖了一个月还没到账",
        "body": "太差劲了！客服一直推脱，再不退款我就投诉到12315，大家千万别买！",
        "customer.id": "c1", "customer.tier": "standard", "customer.language": "zh",
        "status": "received", "reopen_count": 0, "tags": [],
    },
    "vip-email-english": {
        "channel": "email", "is_public": False, "subject": "Order #4411 not delivered - urgent",
        "body": "Hi, my order should have arrived on Monday and the tracking has not moved since. "
                "I need it for an event on Friday. Please help ASAP.",
        "customer.id": "c2", "customer.tier": "vip", "customer.language": "en",
        "status": "received", "reopen_count": 0, "tags": [], "order_value": 1200,
    },
    "wechat-opening-hours": {
        "channel": "wechat", "is_public": False, "subject": "", "body": "请问你们周末的营业时间是几点？",
        "customer.id": "c3", "customer.tier": "standard", "customer.language": "zh",
        "status": "received", "reopen_count": 0, "tags": [],
    },
    "phone-broken-product": {
        "channel": "phone", "is_public": False, "subject": "扫地机器人坏了", "body": "买了两周就不能用了，怎么保修？",
        "customer.id": "c4", "customer.tier": "premium", "customer.language": "zh",
        "status": "received", "reopen_count": 0, "tags": [], "order_value": 2999,
    },
    "app-double-charge-english": {
        "channel": "app", "is_public": False, "subject": "Charged twice",
        "body": "I was charged twice for order 7781, please refund one payment.",
        "customer.id": "c5", "customer.tier": "premium", "customer.language": "en",
        "status": "received", "reopen_count": 0, "tags": [], "order_value": 8000,
    },
}


def decide(rs: Ruleset, raw: dict[str, Any]) -> dict[str, GroupResult]:
    """The shipped rules as the ticket workflow uses them: classification and priority on the
    arrival snapshot, routing and sla_policy after applying those, survey at resolution."""
    snapshot = build_snapshot(raw)
    out = {group: rs.evaluate(group, snapshot) for group in ("classification", "priority")}
    snapshot = dict(snapshot)
    snapshot["category"] = out["classification"].actions.get("category")
    snapshot["tags"] = list(dict.fromkeys(snapshot["tags"] + out["classification"].actions.get("tags", [])))
    snapshot["priority"] = out["priority"].actions["priority"]
    out.update({group: rs.evaluate(group, snapshot) for group in ("routing", "sla_policy")})
    snapshot["status"] = "resolved"
    out["survey"] = rs.evaluate("survey", snapshot)
    return out


def summary(result: dict[str, GroupResult]) -> tuple:
    return (result["classification"].actions["category"], result["priority"].actions["priority"],
            result["routing"].actions["team"], result["sla_policy"].actions["policy"])


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    return load_ruleset(RULES)


def test_shipped_rules_load_with_all_groups(shipped: Ruleset) -> None:
    assert set(shipped.groups) == set(GROUP_ACTIONS)
    assert set(shipped.sla_policies) == {"p1-urgent", "p2-high", "p3-normal", "p4-low", "public-social"}
    for group in shipped.groups.values():
        # every first-match group decides something for every ticket, except faq: most tickets
        # match no FAQ entry, and get no bot answer
        if group.match == "first" and group.name != "faq":
            assert group.rules[-1].when is None, group.name


def test_public_angry_weibo_refund_post(shipped: Ruleset) -> None:
    result = decide(shipped, TICKETS["weibo-angry-refund"])
    assert summary(result) == ("complaint", "P1", "complaints", "p1-urgent")
    assert {"refund", "complaint", "public", "angry", "legal-risk"} <= set(result["classification"].actions["tags"])
    assert result["priority"].rule_ids == ["p1-public-negative"]
    assert result["priority"].trace[0]["leaves"][1]["field"] == "sentiment"


def test_vip_english_email_goes_to_vip_care(shipped: Ruleset) -> None:
    result = decide(shipped, TICKETS["vip-email-english"])
    assert summary(result) == ("delivery", "P1", "vip-care", "p1-urgent")
    assert result["routing"].actions == {"team": "vip-care", "skills": ["vip"], "strategy": "least_loaded"}
    assert result["survey"].actions == {"survey": True, "kind": "nps", "delay": 7200, "expires_after": 604800, "remind_after": 259200}


def test_plain_question_is_low_priority(shipped: Ruleset) -> None:
    result = decide(shipped, TICKETS["wechat-opening-hours"])
    assert summary(result) == ("general", "P4", "general-support", "p4-low")
    assert result["survey"].actions["kind"] == "csat"


def test_phone_product_fault_gets_no_survey(shipped: Ruleset) -> None:
    result = decide(shipped, TICKETS["phone-broken-product"])
    assert summary(result) == ("product", "P3", "product-support", "p3-normal")
    assert result["survey"].actions == {"survey": False}


def test_english_billing_goes_to_the_team_that_can_refund(shipped: Ruleset) -> None:
    # Language is matched at assignment against agents' languages, not routed to a separate desk.
    result = decide(shipped, TICKETS["app-double-charge-english"])
    assert summary(result) == ("refund", "P2", "refunds", "p2-high")
    assert result["routing"].actions["skills"] == ["billing"]
    assert result["priority"].rule_ids == ["p2-high-value-order"]


def test_keyword_copies_in_priority_match_classification(shipped: Ruleset) -> None:
    """priority.yaml repeats three keyword lists of classification.yaml (it runs on the same
    snapshot, before tags exist); this keeps the copies from drifting apart."""
    def keywords(group: str, rule_id: str) -> set[str]:
        found: set[str] = set()

        def walk(cond: Any) -> None:
            if isinstance(cond, dict):
                if cond.get("field") == "text" and "contains_any" in cond:
                    found.update(cond["contains_any"])
                for value in cond.values():
                    walk(value)
            elif isinstance(cond, list):
                for item in cond:
                    walk(item)

        walk(next(rule.when for rule in shipped.groups[group].rules if rule.id == rule_id))
        return found

    for priority_rule, classification_rule in (("p1-vip-urgent", "tag-urgent"), ("p1-legal-risk", "tag-legal-risk")):
        assert keywords("priority", priority_rule) == keywords("classification", classification_rule)
    # p2-complaint-or-angry leaves out the complaint keywords p1-legal-risk already catches before
    # it (lint flags such keywords as dead in a first-match group); together they cover the list.
    complaint = keywords("classification", "topic-complaint")
    p2 = keywords("priority", "p2-complaint-or-angry")
    assert p2 <= complaint
    assert complaint - p2 <= keywords("priority", "p1-legal-risk")


def test_a_duration_written_as_a_whole_float_is_seconds_like_an_integer() -> None:
    # JSON Schema counts 3600.0 as an integer; it used to reach the duration parser and crash it
    text = "groups: [{name: auto_close, match: first, rules: [{id: a, then: {auto_close_after: %s}}]}]"
    as_float = load_ruleset_texts({"a.yaml": text % "3600.0"})
    as_int = load_ruleset_texts({"a.yaml": text % "3600"})
    assert as_float.decide("auto_close", {}).actions["auto_close_after"] == 3600
    assert as_float.version == as_int.version
