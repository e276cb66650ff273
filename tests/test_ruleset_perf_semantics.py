"""Behaviour of the code paths the fast compiler added (no timing here; see bench/rules_bench.py).

- keywords are found by one trie regex per text field (`_KeywordScanner`) instead of one search
  per keyword: regex metacharacters, overlapping and nested keywords, the word-start rule on ASCII
  and non-ASCII text must all give what the reference `_finder` gives;
- a text field is folded and scanned once per value and shared by every test (`_TextField.last`),
  and build_snapshot hands over the folded text (`FOLDED_TEXT`): a stale or foreign copy must be
  ignored, and a changed value must be seen;
- results, traces and actions are fresh objects per evaluation, GroupResult stays frozen.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import threading
from typing import Any

import pytest
import yaml

from engine.ruleset import GroupResult, build_snapshot, load_ruleset_texts
from engine.ruleset.compiler import _finder, _KeywordScanner, fold
from engine.ruleset.fields import FOLDED_TEXT
from engine.ruleset.sentiment import analyse, normalise, score


def ruleset(*rules: dict[str, Any], match: str = "all"):
    doc = {"groups": [{"name": "classification", "match": match, "rules": list(rules)}]}
    return load_ruleset_texts({"t.yaml": yaml.safe_dump(doc, allow_unicode=True)})


def rule(rule_id: str, when: dict[str, Any], category: str | None = None) -> dict[str, Any]:
    return {"id": rule_id, "when": when, "then": {"category": category or rule_id, "tags": [rule_id]}}


def matched(rs, snapshot: dict[str, Any]) -> list[str]:
    return rs.evaluate("classification", snapshot).rule_ids


# ---- keywords with regex metacharacters and punctuation -------------------------------------

SPECIAL = ["c++", "12315", "(", "a.b", "[x]", "*", r"\d", "a|b", "?", "$5", "^_^", "{1}", "#1", "100%",
           "？", "，", "！", "【退款】", "（急）", "e-mail", "o'clock", "doesn't"]


@pytest.mark.parametrize("keyword", SPECIAL)
def test_keywords_with_regex_metacharacters_match_literally(keyword: str) -> None:
    rs = ruleset(rule("r", {"field": "body", "contains_any": [keyword]}))
    folded = fold(keyword)
    assert matched(rs, {"body": f"x {keyword} y"}) == ["r"]
    assert matched(rs, {"body": f"我{keyword}"}) == ["r"]  # after a Chinese character
    # Text that contains none of it: metacharacters must not act as patterns (\d is not a digit,
    # . is not any character, | is not "or").
    for text in ("abb", "axb", "5", "x", "a", "b", "1", "c", "emailo clock"):
        assert matched(rs, {"body": text}) == (["r"] if _finder(folded)(fold(text)) else []), (keyword, text)


def test_full_width_punctuation_in_keywords_and_text_fold_to_the_same() -> None:
    rs = ruleset(rule("r", {"field": "text", "contains_any": ["？？", "!"]}))
    assert matched(rs, build_snapshot({"body": "在吗??"})) == ["r"]
    assert matched(rs, build_snapshot({"body": "在吗？？"})) == ["r"]
    assert matched(rs, build_snapshot({"body": "太差了！"})) == ["r"]  # ！ folds to !
    assert matched(rs, build_snapshot({"body": "在吗？"})) == []


def test_overlapping_and_nested_keywords_are_all_found() -> None:
    rs = ruleset(rule("a", {"field": "text", "contains_any": ["多扣"]}),
                 rule("b", {"field": "text", "contains_any": ["扣款"]}),
                 rule("c", {"field": "text", "contains_any": ["退"]}),
                 rule("d", {"field": "text", "contains_any": ["退款"]}),
                 rule("e", {"field": "text", "contains_any": ["款"]}),
                 rule("f", {"field": "text", "contains_all": ["多扣", "扣款", "款"]}))
    # 多扣 and 扣款 overlap; 退 is a prefix of 退款; 款 sits inside both 扣款 and 退款.
    assert matched(rs, build_snapshot({"body": "被多扣款了，要退款"})) == ["a", "b", "c", "d", "e", "f"]
    assert matched(rs, build_snapshot({"body": "退"})) == ["c"]


def test_word_start_rule_on_ascii_and_non_ascii_text() -> None:
    rs = ruleset(rule("refund", {"field": "body", "contains_any": ["refund"]}),
                 rule("sue-you", {"field": "body", "contains_any": ["sue you"]}),
                 rule("you", {"field": "body", "contains_any": ["you"]}))
    cases = {
        "refund": ["refund"], "Refunded!": ["refund"], "prerefund": [], "_refund": ["refund"],
        "2refund": [], "érefund": [], "(refund)": ["refund"], "\nrefund": ["refund"], "我要refund": ["refund"],
        "I will sue you": ["sue-you", "you"], "this issue you see": ["you"], "sue your shop": ["sue-you", "you"],
        "你sue you": ["sue-you", "you"], "yous": ["you"], "bayou": [],
    }
    for text, expected in cases.items():
        assert matched(rs, {"body": text}) == expected, text
        # the same words in non-ASCII text (other regex path) give the same answer
        assert matched(rs, {"body": text + " 谢谢"}) == expected, text


def test_keyword_scanner_agrees_with_the_reference_finder() -> None:
    """Seeded random keywords and texts, including regex metacharacters, Chinese, digits, accents
    and the edge of the word-character range (U+2E7F is a word character's neighbour, U+2E80 CJK)."""
    rng = random.Random(12315)
    alphabet = list("abs e'_-.(+)[]*?|\\^$12") + ["退", "款", "多", "扣", "我", "，", "é", "ß", "Ω", "٣", "\n",
                                                  "\u2e7f", "\u2e80", "ａ", "’", "😀"]

    def word(longest: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, longest)))

    for _ in range(300):
        keywords = {fold(word(4)) for _ in range(rng.randint(1, 15))} - {""}
        scanner = _KeywordScanner(keywords)
        finders = {keyword: _finder(keyword) for keyword in keywords}
        for _ in range(20):
            pieces = [rng.choice([word(3), rng.choice(sorted(keywords)), " ", "我"]) for _ in range(rng.randint(0, 10))]
            text = fold("".join(pieces))
            if rng.random() < 0.3:
                text = "".join(char for char in text if char.isascii())
            assert scanner.find(text) == {k for k, find in finders.items() if find(text)}, (text, keywords)


# ---- the shared folded text -----------------------------------------------------------------

def test_snapshot_carries_the_folded_text_and_sentiment_is_unchanged() -> None:
    snapshot = build_snapshot({"subject": "ＲＥＦＵＮＤ", "body": "It doesn’t work！"})
    assert snapshot[FOLDED_TEXT] == (snapshot["text"], fold(snapshot["text"]))
    assert snapshot[FOLDED_TEXT][1] == "refund\nit doesn't work!"
    assert snapshot["sentiment"] == score(snapshot["text"])
    for text in ("太差劲了，客服一直推脱！", "Ｎｏｔ ｇｏｏｄ", "I don’t like it", "", "ok"):
        assert analyse(normalise(text), normalised=True) == analyse(text)


def test_a_stale_or_foreign_folded_text_is_ignored() -> None:
    rs = ruleset(rule("refund", {"field": "text", "contains_any": ["退款"]}),
                 rule("broken", {"field": "text", "contains_any": ["broken"]}))
    snapshot = build_snapshot({"body": "我要退款"})
    assert matched(rs, snapshot) == ["refund"]
    changed = dict(snapshot, text="it is broken")  # text replaced after build_snapshot
    assert matched(rs, changed) == ["broken"]
    forged = {"text": "hello", FOLDED_TEXT: ("hello!", "退款 broken")}  # belongs to another text
    assert matched(rs, forged) == []
    assert matched(rs, {"text": "退款", FOLDED_TEXT: "not a pair"}) == ["refund"]
    assert matched(rs, {"text": "退款", FOLDED_TEXT: ["退款", "退款"]}) == ["refund"]  # JSON round trip: a list


def test_consecutive_snapshots_never_see_each_others_text() -> None:
    rs = ruleset(rule("refund", {"field": "body", "contains_any": ["refund"]}),
                 rule("starts", {"field": "body", "starts_with": "re:"}),
                 rule("same", {"field": "body", "eq": "RE: refund"}))
    texts = ["RE: refund", "re: other", "refund", "RE: refund", None, 42, ["refund"], "RE: refund"]
    expected = [["refund", "starts", "same"], ["starts"], ["refund"], ["refund", "starts", "same"], [], [], [],
                ["refund", "starts", "same"]]
    for text, want in zip(texts, expected):
        assert matched(rs, {"body": text}) == want, text
    equal_not_identical = "".join(["RE: ", "refund"])  # noqa: FLY002 - a literal would be the same object
    assert matched(rs, {"body": equal_not_identical}) == ["refund", "starts", "same"]


def test_threads_sharing_a_ruleset_get_the_same_decisions() -> None:
    rs = ruleset(rule("refund", {"field": "text", "contains_any": ["refund", "退款"]}),
                 rule("angry", {"field": "text", "contains_any": ["terrible", "差劲"]}),
                 rule("both", {"field": "text", "contains_all": ["refund", "terrible"]}))
    bodies = [f"{a} {b} #{i}" for i, (a, b) in enumerate(
        [("refund", "terrible"), ("退款", "ok"), ("hello", "差劲"), ("nothing", "here")] * 50)]
    snapshots = [build_snapshot({"body": body}) for body in bodies]
    expected = [matched(rs, snapshot) for snapshot in snapshots]
    failures: list[str] = []

    def work(offset: int) -> None:
        for _ in range(5):
            for index in range(len(snapshots)):
                position = (index + offset) % len(snapshots)
                if matched(rs, snapshots[position]) != expected[position]:
                    failures.append(bodies[position])

    threads = [threading.Thread(target=work, args=(offset,)) for offset in (0, 7, 13, 101)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


# ---- types --------------------------------------------------------------------------------

def test_wrong_types_fail_every_text_and_list_test() -> None:
    """A list in a text field or text in a list field is a wrong type: every comparison fails,
    including ne / not_in (the previous compiler let `ne` pass on a list and matched single
    characters of a text given as tags)."""
    for when in ({"field": "body", "ne": "x"}, {"field": "body", "not_in": ["x"]}, {"field": "body", "eq": "a"},
                 {"field": "body", "contains_any": ["a", "退"]}, {"field": "body", "starts_with": "a"},
                 {"field": "body", "matches": "a"}):
        rs = ruleset(rule("r", when))
        for value in (["a"], ["退"], 42, True, {"a": 1}, None):
            assert matched(rs, {"body": value}) == [], (when, value)
    rs = ruleset(rule("r", {"field": "tags", "contains_any": ["a"]}))
    assert matched(rs, {"tags": "abc"}) == []
    assert matched(rs, {"tags": ["A", 3, None]}) == ["r"]


class Level(enum.IntEnum):
    HIGH = 5


def test_numbers_bools_and_int_subclasses() -> None:
    rs = ruleset(rule("r", {"field": "reopen_count", "gte": 1}))
    assert matched(rs, {"reopen_count": Level.HIGH}) == ["r"]  # an int subclass is a number
    assert matched(rs, {"reopen_count": True}) == []  # a boolean is not
    assert matched(rs, {"reopen_count": 10 ** 30}) == ["r"]
    assert matched(rs, {"reopen_count": "5"}) == []
    rs = ruleset(rule("r", {"field": "is_public", "ne": True}))
    assert matched(rs, {"is_public": False}) == ["r"]
    assert matched(rs, {"is_public": 0}) == []  # 0 is not False here


# ---- results ------------------------------------------------------------------------------

GROUPS = """
groups:
  - name: classification
    match: all
    rules:
      - id: a
        when: {any: [{field: channel, eq: sms}, {field: text, contains_any: [refund]}]}
        then: {category: a, tags: [x, y]}
      - id: b
        when: {not: {any: [{field: channel, eq: weibo}, {field: is_public, eq: true}]}}
        then: {category: b, tags: [y, z]}
  - name: routing
    match: first
    rules:
      - id: r
        when: {all: [{field: channel, eq: sms}, {field: order_value, gte: 10}]}
        then: {team: t, skills: [s1, s2]}
"""


def test_results_are_fresh_objects_and_stay_frozen() -> None:
    rs = load_ruleset_texts({"g.yaml": GROUPS})
    snapshot = build_snapshot({"channel": "sms", "body": "refund please", "order_value": 12, "is_public": False})
    first = rs.evaluate("classification", snapshot)
    assert first.actions == {"category": "b", "tags": ["x", "y", "z"]}
    first.actions["tags"].append("mutated")
    first.trace[0]["leaves"].append("mutated")
    first.rule_ids.append("mutated")
    again = rs.evaluate("classification", snapshot)
    assert again.actions == {"category": "b", "tags": ["x", "y", "z"]} and again.rule_ids == ["a", "b"]
    routed = rs.evaluate("routing", snapshot)
    routed.actions["skills"].append("mutated")
    routed2 = rs.evaluate("routing", snapshot)
    assert routed2.actions == {"team": "t", "skills": ["s1", "s2"]}
    assert rs.to_dict()["groups"][1]["rules"][0]["then"]["skills"] == ["s1", "s2"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.group = "other"  # type: ignore[misc]
    assert dataclasses.replace(again, group="x").group == "x"
    assert again == GroupResult("classification", ["a", "b"], {"category": "b", "tags": ["x", "y", "z"]}, again.trace)
    # a stage's results together (what the worker records) are fresh in the same way
    staged = rs.stage_evaluator(("classification", "routing"))
    one, two = staged(snapshot)
    one.actions["tags"].append("mutated")
    one.trace[0]["leaves"].append("mutated")
    two.actions["skills"].append("mutated")
    two.rule_ids.append("mutated")
    assert staged(snapshot) == (rs.evaluate("classification", snapshot), rs.evaluate("routing", snapshot)) == (again, routed2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.trace = []  # type: ignore[misc]


def test_compact_trace_of_any_and_not_lists_the_deciding_leaves() -> None:
    rs = load_ruleset_texts({"g.yaml": GROUPS})
    snapshot = build_snapshot({"channel": "sms", "body": "refund please", "order_value": 12, "is_public": False})
    trace = rs.evaluate("classification", snapshot).trace
    assert trace[0]["leaves"] == [{"field": "channel", "op": "eq", "expected": "sms", "actual": "sms"}]
    assert [leaf["field"] for leaf in trace[1]["leaves"]] == ["channel", "is_public"]  # not(any): all false
    routed = rs.evaluate("routing", snapshot).trace
    assert routed == [{"rule_id": "r", "matched": True, "leaves": [
        {"field": "channel", "op": "eq", "expected": "sms", "actual": "sms"},
        {"field": "order_value", "op": "gte", "expected": 10, "actual": 12}]}]
    # traces do not alias the snapshot's lists
    listed = load_ruleset_texts({"t.yaml": "groups: [{name: classification, match: all, rules: "
                                           "[{id: t, when: {field: tags, contains_any: [x]}, then: {tags: [y]}}]}]"})
    tags = ["x"]
    leaf = listed.evaluate("classification", {"tags": tags}).trace[0]["leaves"][0]
    assert leaf["actual"] == ["x"] and leaf["actual"] is not tags
