"""Customer-message templates and FAQ entries: the catalog, the sandboxed engine, rendering with
language and channel fallbacks, validation errors with file:line, the generated faq group, the
version hash, the from_dict round trip and the render_message activity."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from engine.activities.rendering import RenderingActivities
from engine.activities.triage import RulesetRegistry
from engine.models import RenderedMessage, RenderRequest
from engine.ruleset import Ruleset, RulesetError, build_snapshot, load_ruleset, load_ruleset_texts
from engine.ruleset.fixtures import run_case
from engine.ruleset.lint import lint_ruleset
from engine.ruleset.stages import evaluate_staged
from engine.templates import (BUILTIN, COMMON_VARIABLES, KINDS, RenderError, check_template, human_duration,
                              kind_of, render, template_problem, variables_of)

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
FIXED_KINDS = [name for name, kind in KINDS.items() if not kind.family]


def values(of: str, **override: Any) -> dict[str, Any]:
    """Every variable of the kind `of` with its sample value (channel and language come from
    render's arguments), then the overrides."""
    spec = kind_of(of)
    assert spec is not None, of
    out = {v.name: v.sample for v in COMMON_VARIABLES + spec.variables if v.name not in ("channel", "language")}
    out.update(override)
    return out


def load(text: str, name: str = "t.yaml") -> Ruleset:
    return load_ruleset_texts({name: textwrap.dedent(text)})


def errors(text: str, name: str = "t.yaml") -> list[str]:
    with pytest.raises(RulesetError) as info:
        load(text, name)
    return [str(issue) for issue in info.value.issues]


# ---- the catalog and the built-in texts --------------------------------------------------------

def test_every_fixed_kind_has_builtin_chinese_and_english_that_pass_the_checker() -> None:
    assert set(BUILTIN) == set(FIXED_KINDS)
    for kind, languages in BUILTIN.items():
        assert set(languages) == {"en", "zh"}, kind
        for language, variant in languages.items():
            for part in ("subject", "body"):
                assert check_template(kind, variant[part]) is None, (kind, language, part)


@pytest.mark.parametrize("kind", FIXED_KINDS)
@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_kind_renders_from_the_builtins(kind: str, language: str) -> None:
    message = render({}, kind, "wechat", language, values(kind))
    assert message.template == f"builtin:{kind}:{language}"
    assert message.body and message.body == message.body.strip() and "{" not in message.body
    assert message.subject.startswith("[T-20240501-0042]")
    if language == "zh":
        assert re.search(r"[\u4e00-\u9fff]", message.body), message.body


def test_builtin_texts_read_naturally() -> None:
    ack = render({}, "acknowledgement", "wechat", "zh", values("acknowledgement", first_response="4小时", name="王芳"))
    assert ack.body == "王芳，您好！感谢您联系我们。您的消息已收到，工单号 T-20240501-0042。\n客服将在4小时内回复您。"
    nameless = render({}, "acknowledgement", "email", "en", values("acknowledgement", name="", category="complaint", bot=True))
    assert nameless.body.startswith("Hello,\nWe're sorry for the trouble")
    assert "If you'd rather talk to a person, just reply at any time" in nameless.body
    nps = render({}, "survey", "app", "en", values("survey", kind="nps", low=0, high=10))
    assert "from 0 (not at all likely) to 10 (extremely likely)" in nps.body
    closed = render({}, "closed", "sms", "en", values("closed", reopen_window=""))
    assert closed.body == "Ticket T-20240501-0042 is now closed. Thank you for contacting us!"
    coupon = render({}, "compensation", "app", "zh", values("compensation", compensation="coupon", amount=20.0))
    assert "已向您的账户发放一张 20 元优惠券。" in coupon.body  # 20.0 shows as 20


def test_variables_of_each_kind() -> None:
    common = ("ticket_id", "subject", "name", "channel", "category", "priority", "team", "assignee", "language")
    assert variables_of("closed") == common + ("reopen_window",)
    assert variables_of("faq.delivery-time") == common
    assert variables_of("reply.need-order-number") == common + ("agent",)
    assert variables_of("survey")[len(common):] == ("kind", "low", "high", "expires")
    with pytest.raises(KeyError):
        variables_of("reply.Bad")
    assert kind_of("faq.<id>") is None and kind_of("nope") is None


# ---- rendering: lookup order, channels, languages -----------------------------------------------

ALL_VARIANTS = {
    "email/zh-TW": {"body": "email/zh-TW {{ name }}", "subject": "S {{ ticket_id }}"},
    "zh-TW": {"body": "zh-TW"},
    "email/zh": {"body": "email/zh"},
    "zh": {"body": "zh"},
    "email/en": {"body": "email/en"},
    "en": {"body": "en"},
}


def test_lookup_order_channel_language_base_language_builtin_then_english() -> None:
    variants = dict(ALL_VARIANTS)
    seen = []
    for _ in range(len(ALL_VARIANTS) + 1):
        message = render({"closed": variants}, "closed", "email", "zh-TW", values("closed"))
        seen.append(message.template)
        used = message.template.split(":", 1)[1]
        if used in variants:
            del variants[used]
    assert seen == ["closed:email/zh-TW", "closed:zh-TW", "closed:email/zh", "closed:zh", "builtin:closed:zh",
                    "builtin:closed:zh", "builtin:closed:zh"]
    # the built-in zh comes before any English variant
    only_english = {"en": {"body": "en"}, "email/en": {"body": "email/en"}}
    assert render({"closed": only_english}, "closed", "email", "zh-TW", values("closed")).template == "builtin:closed:zh"
    # a language without built-in texts falls back to English: the ruleset's first
    assert render({"closed": only_english}, "closed", "email", "fr", values("closed")).template == "closed:email/en"
    assert render({"closed": only_english}, "closed", "wechat", "fr", values("closed")).template == "closed:en"
    assert render({}, "closed", "wechat", "fr", values("closed")).template == "builtin:closed:en"


def test_channel_variants_apply_only_on_their_channel_and_carry_the_subject() -> None:
    templates = {"acknowledgement": {"en": {"body": "Hi {{ name }}"},
                                     "email/en": {"subject": "[{{ ticket_id }}]  got\n it", "body": "Dear {{ name }}"}}}
    mail = render(templates, "acknowledgement", "email", "en", values("acknowledgement"))
    assert mail == RenderedMessage(body="Dear Li Lei", subject="[T-20240501-0042] got it", template="acknowledgement:email/en")
    chat = render(templates, "acknowledgement", "wechat", "en", values("acknowledgement"))
    assert chat == RenderedMessage(body="Hi Li Lei", subject="", template="acknowledgement:en")


def test_language_codes_are_normalised_and_chinese_renders() -> None:
    templates = {"reply.apology": {"en": {"body": "Sorry, {{ name }}."}, "zh-TW": {"body": "{{ name }}，非常抱歉。"}}}
    for language in ("zh-TW", "zh_tw", "ZH-tw"):
        message = render(templates, "reply.apology", "chat", language, values("reply.apology", name="陳小姐"))
        assert message == RenderedMessage(body="陳小姐，非常抱歉。", subject="", template="reply.apology:zh-TW")
    assert render(templates, "reply.apology", "chat", "", values("reply.apology")).template == "reply.apology:en"
    assert render(templates, "reply.apology", "chat", "zh", values("reply.apology")).template == "reply.apology:en"


def test_values_must_be_exactly_the_kinds_variables() -> None:
    with pytest.raises(RenderError, match=r"cannot render survey: missing value\(s\): low, expires \(it takes exactly: "):
        render({}, "survey", "chat", "en", {k: v for k, v in values("survey").items() if k not in ("low", "expires")})
    with pytest.raises(RenderError, match="not variables of closed: first_response"):
        render({}, "closed", "chat", "en", values("closed", first_response="4 hours"))
    with pytest.raises(RenderError, match="unknown message kind 'acknowledgment' — did you mean 'acknowledgement'"):
        render({}, "acknowledgment", "chat", "en", {})
    # reply.* has no built-in text: without the ruleset's template there is nothing to send
    with pytest.raises(RenderError, match="no template for reply.thanks in zh or en"):
        render({}, "reply.thanks", "chat", "zh", values("reply.thanks"))


def test_strict_undefined_and_the_sandbox_fail_loudly_at_render_time() -> None:
    # Validation makes both impossible for a loaded ruleset; render must still never print "".
    broken = {"closed": {"en": {"body": "Bye {{ nosuch }}"}, "zh": {"body": "{{ name.__class__ }}"},
                         "fr": {"body": "{% if false %}x{% endif %}"}}}
    with pytest.raises(RenderError, match="template closed:en failed: UndefinedError: 'nosuch' is undefined"):
        render(broken, "closed", "chat", "en", values("closed"))
    with pytest.raises(RenderError, match="SecurityError: access to attribute '__class__'"):
        render(broken, "closed", "chat", "zh", values("closed"))
    with pytest.raises(RenderError, match="template closed:fr rendered an empty message"):
        render(broken, "closed", "chat", "fr", values("closed"))


def test_check_template_messages() -> None:
    assert check_template("acknowledgement", "Hi {{ name }}, within {{ first_response }}{% if bot %}!{% endif %}") is None
    assert check_template("closed", "Hi {{ nmae }}") == (
        "unknown variable 'nmae' — did you mean 'name'? closed templates may use: ticket_id, subject, name, channel, "
        "category, priority, team, assignee, language, reopen_window")
    assert check_template("faq.x", "{{ first_response }}") == (
        "unknown variable 'first_response' — faq.x templates may use: ticket_id, subject, name, channel, category, "
        "priority, team, assignee, language")
    assert check_template("reply.x", "{{ agent }}") is None
    assert check_template("closed", "a\n{{ name }") == "template syntax error: unexpected '}'"
    assert check_template("closed", "{{ name | shout }}") == "template error: No filter named 'shout'."
    assert check_template("closed", "{{ name + 1 }}") == ('the template fails when rendered with sample values: '
                                                         'TypeError: can only concatenate str (not "int") to str')
    assert check_template("closd", "x") == "unknown message kind 'closd' — did you mean 'closed'?"
    problem = template_problem("closed", "a\nb\n{{ x }} {{ nmae }}")
    assert problem is not None and problem.line == 3 and problem.message == "unknown variable 'x' (also unknown: nmae)"


def test_human_duration() -> None:
    assert [human_duration(s, "en") for s in (30, 60, 5400, 4 * 3600, 86400, 129600, 3 * 86400 + 60)] == [
        "1 minute", "1 minute", "1 hour 30 minutes", "4 hours", "1 day", "1 day 12 hours", "3 days"]
    assert [human_duration(s, "zh") for s in (1800, 4 * 3600, 129600)] == ["30分钟", "4小时", "1天12小时"]
    assert human_duration(5400, "zh-TW") == "1小時30分鐘"


# ---- validation: file:line:column and messages --------------------------------------------------

def test_unknown_variable_points_at_the_line_inside_a_block() -> None:
    assert errors("""\
        templates:
          acknowledgement:
            email/en:
              subject: "[{{ ticket_id }}]"
              body: |
                Hello {{ name }},

                An agent replies within {{ frist_response }}.
        """) == [
        "t.yaml:8:9: template 'acknowledgement' (email/en): unknown variable 'frist_response' — did you mean "
        "'first_response'? acknowledgement templates may use: ticket_id, subject, name, channel, category, "
        "priority, team, assignee, language, first_response, bot"]


def test_syntax_errors_unknown_kinds_and_bad_variant_keys() -> None:
    assert errors("""\
        templates:
          survey:
            zh: "请回复 {{ low }} 到 {{ high }"
            EN: "Reply {{ low }}-{{ high }}"
            emial/en: "Reply"
            zh_TW: "請回覆"
          acknowledgment:
            en: hi
          reply.Sorry:
            en: sorry
          reply.thanks:
            zh: 谢谢
        """) == [
        "t.yaml:3:9: template 'survey' (zh): template syntax error: unexpected '}'",
        "t.yaml:4:5: template 'survey': variant 'EN' is not a language code or <channel>/<language> — did you mean 'en'?",
        "t.yaml:5:5: template 'survey': unknown channel 'emial' in variant 'emial/en' — did you mean 'email'?",
        "t.yaml:6:5: template 'survey': variant 'zh_TW' is not a language code or <channel>/<language> — did you mean 'zh-TW'?",
        "t.yaml:7:3: unknown message kind 'acknowledgment' — did you mean 'acknowledgement'?",
        "t.yaml:9:3: 'Sorry' in 'reply.Sorry' must be kebab-case — use lowercase letters, digits and dashes, e.g. "
        "'reply.need-order-number'",
        "t.yaml:11:3: template 'reply.thanks' has no 'en' variant — add en: ...; it is what every language without a "
        "variant of its own gets (there is no built-in text for it)",
    ]


def test_template_structure_errors() -> None:
    assert errors("""\
        templates:
          closed:
            en: {subject: Bye}
            zh: ""
            email/en: {body: Bye, footer: x}
          reopened: {}
        """) == [
        "t.yaml:3:9: template 'closed' (en): the mapping has no 'body' — add 'body:'",
        "t.yaml:4:9: template 'closed' (zh): zh must not be empty text",
        "t.yaml:5:27: template 'closed' (email/en): unknown key 'footer' — allowed: subject, body",
        "t.yaml:6:13: template 'reopened': it has no variant — add one, e.g. en: \"...\"",
    ]


def test_a_kind_is_defined_in_one_file() -> None:
    with pytest.raises(RulesetError) as info:
        load_ruleset_texts({"a.yaml": "templates:\n  closed:\n    en: Bye\n",
                            "b.yaml": "templates:\n  closed:\n    zh: 再见\n"})
    assert [str(i) for i in info.value.issues] == [
        "b.yaml:2:3: template 'closed' is already defined at a.yaml:2 — write all variants of a message kind in one place"]


FAQ_BROKEN = """\
    faq:
      - id: delivery-time
        keywords: {zh: [什么时候发货]}
        answer:
          en: "Within 48 hours, {{ name }}."
      - id: delivery-time
        keywords: {en: [shipping time]}
        answer: {en: Soon.}
      - id: invoice
        keywords: {zh: [发票]}
        answer:
          zh: 请在订单页申请开票。
      - id: password-reset
        keywords: {en: [forgot my password]}
        when: {field: categry, ne: complaint}
        answer:
          en: |
            Hello {{ name }},
            tap "Forgot password" within {{ first_response }}.
    """


def test_faq_errors_name_the_entry_with_file_and_line() -> None:
    assert errors(FAQ_BROKEN, "faq.yaml") == [
        "faq.yaml:6:9: faq entry 'delivery-time': duplicate faq entry id (first used at faq.yaml:2) — faq entry ids "
        "must be unique across all files",
        "faq.yaml:11:5: faq entry 'invoice': the answer has no 'en' variant — add en: ...; customers whose language "
        "has no answer of its own get it",
        "faq.yaml:15:19: faq entry 'password-reset': unknown field 'categry' — did you mean 'category'?",
        "faq.yaml:19:9: faq entry 'password-reset' answer (en): unknown variable 'first_response' — "
        "faq.password-reset templates may use: ticket_id, subject, name, channel, category, priority, team, "
        "assignee, language",
    ]


def test_faq_ids_keywords_and_the_faq_group() -> None:
    assert errors("""\
        groups:
          - name: faq
            match: first
            rules:
              - id: refund-time
                when: {field: text, contains_any: [退款]}
                then: {answer: refund-time}
        faq:
          - id: Invoice
            keywords: {zh: [发票]}
            answer: {en: Hi}
          - id: refund-time
            keywords: {english: [" "]}
            answer: {en: Hi}
          - id: tracking
            keywords: {}
            answer: {}
        """) == [
        "t.yaml:2:11: group faq: this group is written for you from the faq: entries (the first at t.yaml:9) — "
        "move these rules into faq: entries, or drop the faq: entries and write the answers under templates: faq.<id>",
        "t.yaml:9:9: faq entry 'Invoice': id: 'Invoice' must be kebab-case — use lowercase letters, digits and "
        "dashes, e.g. 'vip-public-post'",
        "t.yaml:12:9: faq entry 'refund-time': 'refund-time' is already a rule id (at t.yaml:5) — an faq entry "
        "becomes a rule of the faq group: pick an id no rule has",
        "t.yaml:13:16: faq entry 'refund-time': keywords: 'english' is not a language code — write a language code "
        "such as en, zh, zh-TW",
        "t.yaml:13:26: faq entry 'refund-time': a blank keyword, which every text contains — remove it",
        "t.yaml:16:15: faq entry 'tracking': keywords is empty — add keywords by language, e.g. en: [shipping time]",
        "t.yaml:17:13: faq entry 'tracking': the answer has no variant — add one, e.g. en: \"...\"",
    ]


def test_a_hand_written_faq_group_needs_answer_templates() -> None:
    text = """\
        groups:
          - name: faq
            match: first
            rules:
              - id: invoice
                when: {field: text, contains_any: [发票]}
                then: {answer: invoice}
        templates:
          faq.invoce:
            en: Request it on the order page.
        """
    assert errors(text) == [
        "t.yaml:7:24: rule 'invoice' (group faq): answer 'invoice' has no template faq.invoice — did you mean 'invoce'?",
        "t.yaml:9:3: template 'faq.invoce': no faq entry or faq rule answers with 'invoce' — did you mean 'invoice'?",
    ]
    rs = load(text.replace("faq.invoce", "faq.invoice"))
    assert rs.evaluate("faq", build_snapshot({"body": "开发票"})).actions == {"answer": "invoice"}


# ---- the generated faq group ---------------------------------------------------------------------

FAQ = """\
    faq:
      - id: order-tracking
        description: where is my parcel
        keywords:
          zh: [物流信息, 快递到哪了]
          en: [where is my order, tracking number]
        when: {not: {field: category, eq: complaint}}
        answer:
          en: Open "My orders" and tap "Track shipment".
          zh: 在「我的订单」中点击「查看物流」即可。
      - id: delivery-time
        keywords:
          zh: [什么时候发货]
          en: [when will my order ship]
        answer:
          en: Within 48 hours.
          zh: 付款后48小时内发货。
    """


def test_faq_entries_become_the_first_match_faq_group() -> None:
    rs = load(FAQ)
    group = rs.to_dict()["groups"][0]
    assert group["name"] == "faq" and group["match"] == "first"
    assert group["rules"][0] == {
        "id": "order-tracking", "description": "where is my parcel", "then": {"answer": "order-tracking"},
        "when": {"all": [{"field": "text", "contains_any": ["物流信息", "快递到哪了", "where is my order", "tracking number"]},
                         {"not": {"field": "category", "eq": "complaint"}}]}}
    assert group["rules"][1]["when"] == {"field": "text", "contains_any": ["什么时候发货", "when will my order ship"]}
    assert set(rs.templates) == {"faq.order-tracking", "faq.delivery-time"}
    assert dict(rs.templates["faq.delivery-time"]["zh"]) == {"body": "付款后48小时内发货。"}

    def answer(**ticket: Any) -> list[str]:
        return rs.evaluate("faq", build_snapshot(ticket)).rule_ids

    assert answer(body="你好，我的快递到哪了？") == ["order-tracking"]
    assert answer(subject="Order 12", body="Hi, WHERE IS MY ORDER? It's late.") == ["order-tracking"]
    assert answer(body="请问什么时候发货") == ["delivery-time"]
    assert answer(body="When will my order ship?") == ["delivery-time"]
    assert answer(body="物流信息一直不更新，什么时候发货？") == ["order-tracking"]  # the first entry wins
    assert answer(body="物流信息一直不更新", category="complaint") == []  # its own `when`
    assert answer(body="营业时间是几点？") == []


def test_shipped_faq_answers_chinese_and_english_tickets_through_the_stages() -> None:
    rs = load_ruleset(RULES)

    def decided(**ticket: Any) -> str:
        raw = {"customer.id": "c1", "customer.tier": "standard", "customer.language": "zh", "status": "received",
               "reopen_count": 0, "tags": [], "is_public": False, **ticket}
        return next(d.rule_id for d in evaluate_staged(rs, raw) if d.group == "faq")

    assert decided(channel="chat", body="我的包裹到哪了？查物流没反应") == "order-tracking"
    assert decided(channel="app", body="Hello, when will my order ship?", **{"customer.language": "en"}) == "delivery-time"
    assert decided(channel="web", body="请问可以开发票吗") == "invoice"
    assert decided(channel="chat", body="Forgot my password, please help") == "password-reset"
    assert decided(channel="chat", body="我要投诉，快递单号查不到物流信息，太差劲了！") == ""  # a complaint
    assert decided(channel="weibo", body="什么时候发货啊", is_public=True) == ""  # a public post
    result = run_case(rs, {"channel": "chat", "body": "地址填错了，能改吗"}, {"faq": {"rule": "change-address",
                      "answer": "change-address"}}, "inline", 1, "change address")
    assert result.ok, result.mismatches


def test_lint_points_at_faq_entries_and_wants_no_catch_all(tmp_path: Path) -> None:
    (tmp_path / "faq.yaml").write_text(textwrap.dedent(FAQ), encoding="utf-8")
    findings = [str(f) for f in lint_ruleset(load_ruleset(tmp_path), tmp_path)]
    assert findings == [f"{tmp_path}/faq.yaml:11: warning: rule 'delivery-time' (group faq): no description: say why "
                        "the rule exists, for the next person who edits it"]


# ---- versions and stored rulesets ---------------------------------------------------------------

TEMPLATES = """\
    templates:
      closed:
        en: |
          Ticket {{ ticket_id }} is closed.
        zh: 工单 {{ ticket_id }} 已关闭。
    """


def test_the_version_hashes_the_templates() -> None:
    base = load(TEMPLATES)
    assert load(TEMPLATES.replace("is closed.", "is now closed.")).version != base.version
    assert load(TEMPLATES.replace("en: |", "en: |-").replace("        zh:", "        # a comment\n        zh:")).version == base.version
    both = textwrap.dedent(TEMPLATES) + textwrap.dedent(FAQ)
    assert load(both).version != load(both.replace("Within 48 hours.", "Within 2 days.")).version
    without = load("sla_policies:\n  p:\n    first_response: 1h\n    resolution: 4h\n")
    assert "templates" not in without.to_dict() and dict(without.templates) == {}


def test_from_dict_round_trip_keeps_templates_and_the_faq_group() -> None:
    rs = load_ruleset(RULES)
    stored = json.loads(json.dumps(rs.to_dict(), ensure_ascii=False))
    back = Ruleset.from_dict(stored)
    assert back.version == rs.version
    assert back.to_dict() == rs.to_dict()
    assert {kind: {k: dict(v) for k, v in variants.items()} for kind, variants in back.templates.items()} == \
        stored["templates"]
    assert {"acknowledgement", "survey", "reply.apology", "faq.invoice"} <= set(back.templates)
    snapshot = build_snapshot({"body": "请问怎么开发票", "channel": "chat", "category": "billing", "is_public": False})
    assert back.evaluate("faq", snapshot).actions == rs.evaluate("faq", snapshot).actions == {"answer": "invoice"}
    with pytest.raises(TypeError):
        back.templates["closed"] = {}  # type: ignore[index]


def test_shipped_templates_cover_every_kind_in_chinese_and_english() -> None:
    rs = load_ruleset(RULES)
    for kind in FIXED_KINDS:
        assert {"en", "zh"} <= set(rs.templates[kind]), kind
    for kind in ("acknowledgement", "survey"):
        for key in ("email/en", "email/zh"):
            assert rs.templates[kind][key]["subject"], (kind, key)
    assert {"reply.apology", "reply.need-order-number", "reply.refund-started"} <= set(rs.templates)
    faq = [kind for kind in rs.templates if kind.startswith("faq.")]
    assert len(faq) >= 6 and all({"en", "zh"} <= set(rs.templates[kind]) for kind in faq)
    complaint = render(rs.templates, "acknowledgement", "wechat", "zh",
                       values("acknowledgement", category="complaint", first_response="30分钟"))
    assert "非常抱歉" in complaint.body and "30分钟内" in complaint.body
    csat = render(rs.templates, "survey", "email", "en", values("survey", kind="csat", low=1, high=5))
    assert csat.template == "survey:email/en" and "On a scale from 1 to 5" in csat.body and csat.subject


def test_readme_documents_every_kind_and_its_variables() -> None:
    readme = (RULES / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Templates"):]
    for name, kind in KINDS.items():
        row = next((line for line in section.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"rules/README.md (Templates) has no row for kind {name}"
        for variable in kind.variables:
            assert f"`{variable.name}`" in row, (name, variable.name)
    for variable in COMMON_VARIABLES:
        assert f"`{variable.name}`" in section, variable.name
    assert "## FAQ" in readme


# ---- the render_message activity -----------------------------------------------------------------

def rules_dir(tmp: Path, closed_en: str) -> Path:
    directory = tmp / "rules"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "templates.yaml").write_text(yaml.safe_dump(
        {"templates": {"closed": {"en": closed_en}, "reply.thanks": {"en": "Thanks, {{ name }}! ({{ agent }})"}}},
        allow_unicode=True), encoding="utf-8")
    return directory


def request(version: str, kind: str = "closed", language: str = "en", **override: Any) -> RenderRequest:
    return RenderRequest(ruleset_version=version, kind=kind, channel="chat", language=language,
                         values=values(kind, **override))


def test_render_message_activity_uses_the_pinned_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    registry = RulesetRegistry(rules_dir(tmp_path, "Closed v1: {{ ticket_id }}"), data)
    v1 = registry.active.version
    v2 = registry.reload(rules_dir(tmp_path, "Closed v2: {{ ticket_id }}")).version
    assert v1 != v2
    env = ActivityEnvironment()
    activities = RenderingActivities(registry)
    assert env.run(activities.render_message, request(v1)) == RenderedMessage(
        body="Closed v1: T-20240501-0042", subject="", template="closed:en")
    assert env.run(activities.render_message, request(v2)).body == "Closed v2: T-20240501-0042"
    assert env.run(activities.render_message, request("")).body.startswith("Closed v2")  # no pin: the active one
    zh = env.run(activities.render_message, request(v1, language="zh"))
    assert zh.template == "builtin:closed:zh" and zh.body.startswith("工单 T-20240501-0042 已关闭")
    reply = env.run(activities.render_message, request(v1, kind="reply.thanks", agent="wang.fang"))
    assert reply.body == "Thanks, Li Lei! (wang.fang)"

    # another worker that never loaded v1 finds it in the data directory
    other = RulesetRegistry(rules_dir(tmp_path / "other", "Closed v3"), data)
    assert env.run(RenderingActivities(other).render_message, request(v1)).body == "Closed v1: T-20240501-0042"


def test_render_message_activity_fails_without_retry_when_it_cannot_render(tmp_path: Path) -> None:
    registry = RulesetRegistry(rules_dir(tmp_path, "Bye"), tmp_path / "data")
    env = ActivityEnvironment()
    activities = RenderingActivities(registry)
    bad = RenderRequest(ruleset_version=registry.active.version, kind="survey", channel="chat", language="en",
                        values={"ticket_id": "T-1"})
    with pytest.raises(ApplicationError) as info:
        env.run(activities.render_message, bad)
    assert info.value.non_retryable and info.value.type == "TemplateError"
    assert info.value.message.startswith(f"cannot render the survey message (chat, en) with ruleset "
                                      f"{registry.active.version}: cannot render survey: missing value(s): subject, name")
    with pytest.raises(ApplicationError) as unknown:
        env.run(activities.render_message, request(registry.active.version, kind="reply.nothing"))
    assert unknown.value.non_retryable and "no template for reply.nothing in en" in unknown.value.message
    with pytest.raises(ApplicationError) as missing:
        env.run(activities.render_message, request("0123456789ab"))
    assert "ruleset version 0123456789ab is not known to this worker" in str(missing.value)
