"""Customer-message templates: the kinds of message, the variables each may use, the template
engine, the built-in texts, and rendering with language and channel fallbacks.

This module owns what a customer reads. A ruleset may carry its own templates (`templates:` in a
rules file, and the answers of `faq:` entries); the loader checks every one of them with
`template_problem` when the rules are validated, so a template that names an unknown variable,
has a syntax error or does something the sandbox forbids never goes live. Built-in Chinese and
English templates exist for every fixed kind, so a ruleset without a `templates:` section still
renders every message.

Templates are Jinja2, in a sandbox (`ImmutableSandboxedEnvironment`): no attribute tricks, no
mutation of the values, StrictUndefined so a variable nobody passed fails loudly instead of
printing nothing. Messages are plain text: no autoescaping; block tags swallow their own line
(`trim_blocks`, `lstrip_blocks`), and the rendered body and subject are stripped.

Public API:
- KINDS, COMMON_VARIABLES, Kind, Variable: the catalog (also documented in rules/README.md);
- kind_of(kind) -> Kind | None, variables_of(kind) -> tuple[str, ...];
- kind_problem(kind), variant_problem(key): why a kind name or a variant key is not allowed;
- template_problem(kind, text) -> TemplateProblem | None, and check_template(kind, text) -> str | None;
- BUILTIN: the built-in templates; render(templates, kind, channel, language, values) -> RenderedMessage;
- RenderError; human_duration(seconds, language).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.models import RenderedMessage
from engine.ruleset.errors import suggest as _suggest
from engine.ruleset.fields import CHANNELS

ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
_ID = re.compile(ID_PATTERN)
_LANGUAGE = re.compile(LANGUAGE_PATTERN)


# ---------------------------------------------------------------------------------------------
# The catalog


@dataclass(frozen=True)
class Variable:
    name: str
    description: str
    sample: Any  # a realistic value, for the trial render at validation


@dataclass(frozen=True)
class Kind:
    name: str  # "acknowledgement", or a family written "faq.<id>" / "reply.<name>"
    description: str
    variables: tuple[Variable, ...]  # besides COMMON_VARIABLES

    @property
    def family(self) -> bool:
        return "<" in self.name

    @property
    def names(self) -> tuple[str, ...]:
        """Every variable a template of this kind may use, common ones first."""
        return tuple(v.name for v in COMMON_VARIABLES + self.variables)


COMMON_VARIABLES: tuple[Variable, ...] = (
    Variable("ticket_id", "the ticket's id", "T-20240501-0042"),
    Variable("subject", "subject or first line of the customer's message (may be empty)", "Order 4411 not delivered"),
    Variable("name", "the customer's name (may be empty when unknown)", "Li Lei"),
    Variable("channel", "the channel the message goes out on, e.g. wechat, email", "email"),
    Variable("category", "the ticket's category, e.g. refund, complaint (empty until classified)", "delivery"),
    Variable("priority", "P1 … P4 (empty until prioritised)", "P3"),
    Variable("team", "the team that owns the ticket (may be empty)", "general-support"),
    Variable("assignee", "the id of the agent holding the ticket (may be empty)", "agent.wang"),
    Variable("language", "the language of the message, e.g. zh, en, zh-TW", "en"),
)


def _kind(name: str, description: str, *variables: Variable) -> Kind:
    return Kind(name, description, variables)


_TEXT_KIND = Variable("kind", "csat or nps", "csat")
KINDS: dict[str, Kind] = {k.name: k for k in (
    _kind("acknowledgement", "sent when a ticket arrives",
          Variable("first_response", "when a person replies at the latest, as text: \"4 hours\", \"4小时\"", "4 hours"),
          Variable("bot", "true when the FAQ bot answers next", False)),
    _kind("faq.<id>", "the FAQ bot's answer of entry <id> (written under the entry's `answer:`)"),
    _kind("handoff", "the customer asked for a person, or a person takes over from the bot",
          Variable("reason", "why, as text (for agents' eyes; built-in texts do not show it)", "customer asked for a human")),
    _kind("progress_update", "sent every `progress_every` while the ticket is unresolved and not waiting on the customer",
          Variable("open_for", "how long the ticket has been open, as text", "2 days"),
          Variable("status", "the ticket's status, e.g. open, on_hold", "open")),
    _kind("survey", "the satisfaction survey after resolution",
          _TEXT_KIND,
          Variable("low", "lowest score: 1 (csat) or 0 (nps)", 1),
          Variable("high", "highest score: 5 (csat) or 10 (nps)", 5),
          Variable("expires", "how long answers are accepted, as text", "3 days")),
    _kind("survey_reminder", "one reminder when the survey is still unanswered",
          _TEXT_KIND,
          Variable("low", "lowest score: 1 (csat) or 0 (nps)", 1),
          Variable("high", "highest score: 5 (csat) or 10 (nps)", 5),
          Variable("expires", "how long answers are still accepted, as text", "2 days")),
    _kind("recovery", "an apology after a low survey score",
          Variable("score", "the score given", 2),
          _TEXT_KIND),
    _kind("auto_close_reminder", "the ticket waits on the customer and will close by itself soon",
          Variable("closes_in", "time left before it closes, as text", "1 day")),
    _kind("auto_closed", "the ticket closed by itself because the customer did not answer",
          Variable("reopen_window", "how long a reply still reopens it, as text (empty: no reopening)", "7 days")),
    _kind("closed", "the ticket is closed",
          Variable("reopen_window", "how long a reply still reopens it, as text (empty: no reopening)", "7 days")),
    _kind("reopened", "the ticket was reopened (the customer wrote again, or after a low score)",
          Variable("reason", "why, as text (for agents' eyes; built-in texts do not show it)", "customer replied")),
    _kind("compensation", "compensation was issued to the customer",
          Variable("compensation", "refund, coupon or reship", "refund"),
          Variable("amount", "its value, a number (50.0 shows as 50)", 50)),
    _kind("linked_ticket", "a message came after the reopen window, so it opened a new ticket",
          Variable("old_ticket_id", "the closed ticket the customer wrote about", "T-20240401-0007")),
    _kind("reply.<name>", "a canned reply agents pick with `reply --template <name>`",
          Variable("agent", "the name (or id) of the agent sending it", "Wang Fang")),
)}

_FIXED = tuple(name for name in KINDS if "<" not in name)
_FAMILIES = {"faq": KINDS["faq.<id>"], "reply": KINDS["reply.<name>"]}


def kind_of(kind: str) -> Kind | None:
    """The catalog entry of a kind as written in a ruleset ("survey", "faq.delivery-time",
    "reply.apology"), or None if there is no such kind."""
    if kind in KINDS and kind not in ("faq.<id>", "reply.<name>"):
        return KINDS[kind]
    prefix, dot, name = kind.partition(".")
    if dot and prefix in _FAMILIES and _ID.match(name):
        return _FAMILIES[prefix]
    return None


def variables_of(kind: str) -> tuple[str, ...]:
    """The variables a template of `kind` may use, and a caller of `render` must pass."""
    spec = kind_of(kind)
    if spec is None:
        raise KeyError(f"unknown message kind {kind!r}")
    return spec.names


def needs_own_english(kind: str) -> bool:
    """faq.* and reply.* have no built-in text: their templates need an `en` variant to fall back to."""
    return kind.partition(".")[0] in _FAMILIES


def kind_problem(kind: str) -> tuple[str, str | None] | None:
    """Why `kind` cannot be a key under `templates:`, as (message, hint), or None."""
    if kind_of(kind) is not None:
        return None
    prefix, dot, name = kind.partition(".")
    if dot and prefix in _FAMILIES:
        return (f"'{name}' in '{kind}' must be kebab-case",
                "use lowercase letters, digits and dashes, e.g. 'reply.need-order-number'")
    hint = _suggest(kind, _FIXED) or (f"kinds: {', '.join(_FIXED)}; canned replies are written "
                                      "reply.<name>, FAQ answers faq.<entry id>")
    return f"unknown message kind '{kind}'", hint


def variant_problem(key: str) -> tuple[str, str | None] | None:
    """Why `key` cannot name a variant ("en", "zh-TW", "email/zh"), as (message, hint), or None."""
    channel, slash, language = key.rpartition("/")
    if slash and channel not in CHANNELS:
        return (f"unknown channel '{channel}' in variant '{key}'",
                _suggest(channel, CHANNELS) or f"channels: {', '.join(CHANNELS)}")
    if _LANGUAGE.match(language):
        return None
    fixed = language.replace("_", "-")
    base, dash, region = fixed.partition("-")
    guess = base.lower() + (dash + region.upper() if len(region) == 2 else dash + region)
    hint = (f"did you mean '{channel + '/' if slash else ''}{guess}'?" if _LANGUAGE.match(guess) else
            "write a language code (en, zh, zh-TW) or <channel>/<language> (email/en)")
    return f"variant '{key}' is not a language code or <channel>/<language>", hint


# ---------------------------------------------------------------------------------------------
# The engine


class RenderError(ValueError):
    """A message cannot be rendered: unknown kind, values missing, or the template failed."""


_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,  # plain-text messages: "<" and "&" stay as they are
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


@functools.lru_cache(maxsize=2048)
def _compiled(text: str) -> Any:
    """Compile once per text: a worker renders the same few templates over and over."""
    return _ENV.from_string(text)


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    hint: str | None = None
    line: int | None = None  # 1-based line within the template text, when known

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


def _first_use(ast: nodes.Template, name: str) -> int | None:
    lines = [node.lineno for node in ast.find_all(nodes.Name) if node.name == name and node.ctx == "load"]
    return min(lines) if lines else None


def template_problem(kind: str, text: str) -> TemplateProblem | None:
    """The first thing wrong with `text` as a template of `kind`: unknown kind, syntax error,
    a variable the kind does not offer (with the allowed ones and a did-you-mean), or an error
    when rendering it with realistic sample values (e.g. an attribute the sandbox forbids)."""
    spec = kind_of(kind)
    if spec is None:
        message, hint = kind_problem(kind) or (f"unknown message kind '{kind}'", None)
        return TemplateProblem(message, hint)
    try:
        ast = _ENV.parse(text)
    except TemplateSyntaxError as exc:
        return TemplateProblem(f"template syntax error: {exc.message}", None, exc.lineno)
    allowed = spec.names
    try:
        undeclared = meta.find_undeclared_variables(ast)
    except TemplateSyntaxError as exc:  # e.g. an unknown filter or test
        return TemplateProblem(f"template error: {exc.message}", None, exc.lineno)
    in_order = [node.name for node in ast.find_all(nodes.Name) if node.ctx == "load"]
    unknown = sorted(undeclared - set(allowed), key=lambda name: in_order.index(name) if name in in_order else 0)
    if unknown:
        name = unknown[0]
        others = f" (also unknown: {', '.join(unknown[1:])})" if unknown[1:] else ""
        suggestion = _suggest(name, allowed)
        hint = (f"{suggestion + ' ' if suggestion else ''}{kind} templates may use: {', '.join(allowed)}")
        return TemplateProblem(f"unknown variable '{name}'{others}", hint, _first_use(ast, name))
    try:
        template = _compiled(text)
    except TemplateSyntaxError as exc:  # e.g. an unknown filter or test
        return TemplateProblem(f"template error: {exc.message}", None, exc.lineno)
    samples = {v.name: v.sample for v in COMMON_VARIABLES + spec.variables}
    try:
        template.render(samples)
    except TemplateError as exc:
        return TemplateProblem(f"the template fails when rendered with sample values: {exc}", None, _error_line(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. {{ name + 1 }}: TypeError from inside the template
        return TemplateProblem(f"the template fails when rendered with sample values: {type(exc).__name__}: {exc}",
                               None, _error_line(exc))
    return None


def _error_line(exc: BaseException) -> int | None:
    """The template line of a render-time error: Jinja's frames carry it as the code's line."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def check_template(kind: str, text: str) -> str | None:
    """`template_problem` as one line of text, or None when the template is fine."""
    problem = template_problem(kind, text)
    return None if problem is None else str(problem)


# ---------------------------------------------------------------------------------------------
# Built-in templates


def _hello_en() -> str:
    return 'Hello{{ " " ~ name if name else "" }}'


def _hello_zh() -> str:
    return '{{ name ~ "，" if name else "" }}您好！'


BUILTIN: dict[str, dict[str, dict[str, str]]] = {
    "acknowledgement": {
        "en": {
            "subject": "[{{ ticket_id }}] We've received your message",
            "body": _hello_en() + ",\n"
            '{% if category == "complaint" %}\n'
            "We're sorry for the trouble, and thank you for telling us about it. "
            "{% else %}\n"
            "Thank you for contacting us. "
            "{% endif %}\n"
            "We've received your message and opened ticket {{ ticket_id }}.\n"
            "{% if bot %}\n"
            "Our assistant will reply right away with an answer that may help. If you'd rather talk to a person, "
            "just reply at any time and an agent will get back to you within {{ first_response }}.\n"
            "{% else %}\n"
            "An agent will get back to you within {{ first_response }}.\n"
            "{% endif %}\n",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 我们已收到您的消息",
            "body": _hello_zh() +
            '{% if category == "complaint" %}给您带来不好的体验，我们非常抱歉，也感谢您的反馈。'
            "{% else %}感谢您联系我们。{% endif %}"
            "您的消息已收到，工单号 {{ ticket_id }}。\n"
            "{% if bot %}\n"
            "智能助手会马上为您解答；如需人工服务，随时回复本消息即可，客服将在{{ first_response }}内回复您。\n"
            "{% else %}\n"
            "客服将在{{ first_response }}内回复您。\n"
            "{% endif %}\n",
        },
    },
    "handoff": {
        "en": {
            "subject": "[{{ ticket_id }}] An agent is taking over",
            "body": _hello_en() + ", one of our agents is taking over ticket {{ ticket_id }} and will reply to you "
            "shortly. They can see the whole conversation, so there's no need to repeat anything.",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 已为您转接人工客服",
            "body": _hello_zh() + "已为您转接人工客服，工单 {{ ticket_id }} 的对话记录会一并转交，"
            "您无需重复描述问题，客服会尽快回复您。",
        },
    },
    "progress_update": {
        "en": {
            "subject": "[{{ ticket_id }}] An update on your request",
            "body": _hello_en() + ", a quick update on ticket {{ ticket_id }}: "
            '{% if status == "on_hold" %}we are waiting for a partner (such as the carrier or the manufacturer) '
            "to get back to us"
            "{% else %}we're still working on it{% endif %}. "
            "It's been {{ open_for }} since you contacted us, and we haven't forgotten you. "
            "We'll let you know as soon as there is news. Thank you for your patience.",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 您的问题处理进展",
            "body": _hello_zh() + "向您同步工单 {{ ticket_id }} 的进展："
            '{% if status == "on_hold" %}我们正在等待合作方（如物流公司或厂家）的回复'
            "{% else %}您的问题仍在处理中{% endif %}，"
            "距您联系我们已有{{ open_for }}，我们一直在跟进，有结果会第一时间通知您。感谢您的耐心等待。",
        },
    },
    "survey": {
        "en": {
            "subject": "[{{ ticket_id }}] How did we do?",
            "body": _hello_en() + ", ticket {{ ticket_id }} has been resolved. "
            '{% if kind == "nps" %}\n'
            "How likely are you to recommend us to a friend or colleague? Please reply with a number from "
            "{{ low }} (not at all likely) to {{ high }} (extremely likely).\n"
            "{% else %}\n"
            "How satisfied are you with the help you received? Please reply with a number from "
            "{{ low }} (very dissatisfied) to {{ high }} (very satisfied).\n"
            "{% endif %}\n"
            "You can answer for {{ expires }}. Thank you!",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 邀请您评价本次服务",
            "body": _hello_zh() + "您的工单 {{ ticket_id }} 已处理完毕。"
            '{% if kind == "nps" %}'
            "您有多大可能把我们推荐给朋友或同事？请回复 {{ low }} 到 {{ high }} 之间的数字，"
            "{{ low }} 表示完全不可能，{{ high }} 表示非常可能。"
            "{% else %}"
            "您对本次服务满意吗？请回复 {{ low }} 到 {{ high }} 之间的数字，"
            "{{ low }} 表示非常不满意，{{ high }} 表示非常满意。"
            "{% endif %}"
            "评价{{ expires }}内有效，感谢您的反馈！",
        },
    },
    "survey_reminder": {
        "en": {
            "subject": "[{{ ticket_id }}] A quick reminder: how did we do?",
            "body": _hello_en() + ", we'd still love to hear how we did with ticket {{ ticket_id }}. "
            '{% if kind == "nps" %}'
            "Reply with a number from {{ low }} (not at all likely) to {{ high }} (extremely likely) to tell us "
            "how likely you are to recommend us."
            "{% else %}"
            "Reply with a number from {{ low }} (very dissatisfied) to {{ high }} (very satisfied)."
            "{% endif %}"
            " The survey closes in {{ expires }}.",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 温馨提醒：请为本次服务打分",
            "body": _hello_zh() + "工单 {{ ticket_id }} 的服务评价还在等您。"
            '{% if kind == "nps" %}'
            "请回复 {{ low }} 到 {{ high }} 之间的数字，告诉我们您有多大可能向朋友推荐我们"
            "（{{ low }} 表示完全不可能，{{ high }} 表示非常可能）。"
            "{% else %}"
            "请回复 {{ low }} 到 {{ high }} 之间的数字（{{ low }} 表示非常不满意，{{ high }} 表示非常满意）。"
            "{% endif %}"
            "评价将在{{ expires }}后截止。",
        },
    },
    "recovery": {
        "en": {
            "subject": "[{{ ticket_id }}] We're sorry",
            "body": _hello_en() + ", thank you for your honest feedback on ticket {{ ticket_id }}. "
            "We're sorry we didn't get it right this time. We're looking into what went wrong, "
            "and someone from our team will contact you shortly.",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 很抱歉没能让您满意",
            "body": _hello_zh() + "感谢您对工单 {{ ticket_id }} 的真实评价。很抱歉这次没能让您满意，"
            "我们正在认真核查问题所在，稍后会有专人与您联系。",
        },
    },
    "auto_close_reminder": {
        "en": {
            "subject": "[{{ ticket_id }}] Do you still need help?",
            "body": _hello_en() + ", we haven't heard back from you about ticket {{ ticket_id }}. "
            "If you still need help, just reply to this message. Otherwise the ticket will close "
            "automatically in {{ closes_in }}.",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 请问您的问题解决了吗？",
            "body": _hello_zh() + "我们还没有收到您关于工单 {{ ticket_id }} 的回复。如仍需帮助，直接回复本消息即可；"
            "否则工单将在{{ closes_in }}后自动关闭。",
        },
    },
    "auto_closed": {
        "en": {
            "subject": "[{{ ticket_id }}] Your ticket has been closed",
            "body": _hello_en() + ", as we haven't heard back from you, ticket {{ ticket_id }} has now been closed."
            "{% if reopen_window %} If you still need help, reply within {{ reopen_window }} and we'll reopen it "
            "for you.{% endif %}",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 您的工单已关闭",
            "body": _hello_zh() + "由于一直没有收到您的回复，工单 {{ ticket_id }} 已自动关闭。"
            "{% if reopen_window %}如问题仍未解决，请在{{ reopen_window }}内回复，我们会为您重新打开工单。{% endif %}",
        },
    },
    "closed": {
        "en": {
            "subject": "[{{ ticket_id }}] Your ticket has been closed",
            "body": "Ticket {{ ticket_id }} is now closed. Thank you for contacting us!"
            "{% if reopen_window %} If anything else comes up about it, reply within {{ reopen_window }} "
            "and we'll pick it up again.{% endif %}",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 您的工单已关闭",
            "body": "工单 {{ ticket_id }} 已关闭，感谢您的联系！"
            "{% if reopen_window %}如还有相关问题，请在{{ reopen_window }}内回复，我们会继续为您跟进。{% endif %}",
        },
    },
    "reopened": {
        "en": {
            "subject": "[{{ ticket_id }}] We've reopened your ticket",
            "body": _hello_en() + ", we've reopened ticket {{ ticket_id }} and will get back to you as soon as possible.",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 您的工单已重新打开",
            "body": _hello_zh() + "工单 {{ ticket_id }} 已重新打开，我们会尽快跟进并回复您。",
        },
    },
    "compensation": {
        "en": {
            "subject": "[{{ ticket_id }}] Our apologies",
            "body": _hello_en() + ", we're sorry for the trouble with ticket {{ ticket_id }}. "
            '{% if compensation == "refund" %}'
            "We've issued a refund of {{ amount }}; depending on your bank, it may take a few business days to arrive."
            '{% elif compensation == "coupon" %}'
            "We've added a coupon worth {{ amount }} to your account."
            "{% else %}"
            "We're sending you a replacement and will share the tracking details once it ships."
            "{% endif %}",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 给您的补偿",
            "body": _hello_zh() + "工单 {{ ticket_id }} 给您带来了不便，我们深表歉意。"
            '{% if compensation == "refund" %}'
            "已为您办理 {{ amount }} 元退款，到账时间以银行处理为准，一般需要几个工作日。"
            '{% elif compensation == "coupon" %}'
            "已向您的账户发放一张 {{ amount }} 元优惠券。"
            "{% else %}"
            "我们会为您重新寄出商品，发货后会把物流信息告诉您。"
            "{% endif %}",
        },
    },
    "linked_ticket": {
        "en": {
            "subject": "[{{ ticket_id }}] We've opened a new ticket for you",
            "body": _hello_en() + ", ticket {{ old_ticket_id }} was closed a while ago, so we've opened a new ticket, "
            "{{ ticket_id }}, for your message. An agent will reply as soon as possible.",
        },
        "zh": {
            "subject": "[{{ ticket_id }}] 已为您创建新工单",
            "body": _hello_zh() + "工单 {{ old_ticket_id }} 已关闭一段时间，我们为您的新消息创建了新工单 {{ ticket_id }}，"
            "客服会尽快回复您。",
        },
    },
}


# ---------------------------------------------------------------------------------------------
# Rendering


def _language(language: str | None) -> str:
    """"zh_cn" -> "zh-CN", "ZH" -> "zh", "" -> "en"."""
    text = (language or "").strip().replace("_", "-")
    if not text:
        return "en"
    base, dash, region = text.partition("-")
    return base.lower() + (dash + (region.upper() if len(region) == 2 else region) if region else "")


def _lookup_order(channel: str, language: str) -> list[tuple[str, str]]:
    """(source, key) pairs in the order they are tried: ("rules", "email/zh-TW"), ("builtin", "zh"), ..."""
    order: list[tuple[str, str]] = []
    for target in dict.fromkeys((_language(language), "en")):
        base = target.split("-")[0]
        keys = [f"{channel}/{target}", target, f"{channel}/{base}", base] if channel else [target, base]
        order.extend(("rules", key) for key in keys)
        order.append(("builtin", base))
    return list(dict.fromkeys(order))


def _variant(spec: Any) -> tuple[str, str]:
    """(subject, body) of a variant written as text or as {subject?, body}."""
    if isinstance(spec, str):
        return "", spec
    return str(spec.get("subject") or ""), str(spec["body"])


def _display(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # an amount of 50.0 reads "50"
    return value


def render(templates: Mapping[str, Any] | None, kind: str, channel: str, language: str,
           values: Mapping[str, Any]) -> RenderedMessage:
    """Render the message `kind` for a ticket on `channel` in `language`.

    `templates` is a ruleset's templates ({kind: {variant: {subject?, body}}}, `Ruleset.templates`).
    The variant used is the first found of: the ruleset's `<channel>/<language>`, `<language>`,
    `<channel>/<base language>`, `<base language>` (zh-TW -> zh), the built-in `<base language>`;
    then the same for `en`. `RenderedMessage.template` says which: "acknowledgement:email/zh",
    "builtin:closed:en".

    `values` must hold every variable of the kind (`variables_of`) and nothing else; `channel`
    and `language` default to the arguments. Raises RenderError."""
    spec = kind_of(kind)
    if spec is None:
        message, hint = kind_problem(kind) or (f"unknown message kind '{kind}'", None)
        raise RenderError(f"{message} — {hint}" if hint else message)
    given = {"channel": channel, "language": _language(language), **dict(values)}
    allowed = spec.names
    missing = [name for name in allowed if name not in given]
    extra = sorted(set(given) - set(allowed))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing value(s): {', '.join(missing)}")
        if extra:
            parts.append(f"not variables of {kind}: {', '.join(extra)}")
        raise RenderError(f"cannot render {kind}: {'; '.join(parts)} (it takes exactly: {', '.join(allowed)})")
    own = dict((templates or {}).get(kind) or {})
    by_folded = {key.casefold(): key for key in own}
    for source, key in _lookup_order(channel, language):
        if source == "rules":
            found = by_folded.get(key.casefold())
            if found is None:
                continue
            subject, body = _variant(own[found])
            label = f"{kind}:{found}"
        else:
            builtin = BUILTIN.get(kind, {}).get(key)
            if builtin is None:
                continue
            subject, body = _variant(builtin)
            label = f"builtin:{kind}:{key}"
        shown = {name: _display(value) for name, value in given.items()}
        try:
            text = _compiled(body).render(shown).strip()
            title = " ".join(_compiled(subject).render(shown).split()) if subject else ""
        except Exception as exc:  # StrictUndefined, the sandbox, or an error inside the template
            raise RenderError(f"template {label} failed: {type(exc).__name__}: {exc}") from exc
        if not text:
            raise RenderError(f"template {label} rendered an empty message")
        return RenderedMessage(body=text, subject=title, template=label)
    raise RenderError(f"no template for {kind} in {_language(language)} or en, and no built-in one: "
                      f"define templates: {kind}: {{en: ...}} in the rules")


# ---------------------------------------------------------------------------------------------
# Durations as customers read them

_UNITS = {  # (seconds, English singular, Chinese simplified, Chinese traditional)
    "day": (86400, "day", "天", "天"),
    "hour": (3600, "hour", "小时", "小時"),
    "minute": (60, "minute", "分钟", "分鐘"),
}
_TRADITIONAL = ("zh-TW", "zh-HK", "zh-MO", "zh-Hant")


def human_duration(seconds: float, language: str) -> str:
    """A duration for a customer message: "4 hours", "1 day 12 hours", "30 minutes" / "4小时",
    "1天12小时" (小時 for zh-TW, zh-HK). At most two units; below a minute reads one minute."""
    lang = _language(language)
    zh = lang.startswith("zh")
    traditional = any(lang.startswith(prefix) for prefix in _TRADITIONAL)
    total = max(60, round(float(seconds) / 60) * 60)
    parts: list[str] = []
    for size, en, simplified, trad in _UNITS.values():
        count, total = divmod(total, size)
        if count:
            if zh:
                parts.append(f"{count}{trad if traditional else simplified}")
            else:
                parts.append(f"{count} {en}{'s' if count != 1 else ''}")
        if len(parts) == 2 or (parts and not total):
            break
        if parts and size == 86400 and total < 3600:
            break  # "2 days", not "2 days 5 minutes"
    return ("" if zh else " ").join(parts)
