"""Customer-facing message texts per kind and language (Chinese and English).

Pure and deterministic so the workflow can render them; the respond/survey issue replaces this
with a template engine checked at rules validation.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "acknowledgement": {
        "en": "Hello {name}, we received your message \"{subject}\" (ticket {ticket_id}). "
        "An agent will reply within {first_response}.",
        "zh": "{name}您好，我们已收到您关于「{subject}」的消息（工单 {ticket_id}），"
        "客服将在{first_response}内回复您。",
    },
    "survey": {
        "en": "Your ticket {ticket_id} was resolved. How satisfied are you with our help? "
        "Reply with a score from {low} to {high}.",
        "zh": "您的工单 {ticket_id} 已解决。您对我们的服务满意吗？请回复 {low} 到 {high} 分。",
    },
    "closed": {
        "en": "Ticket {ticket_id} is now closed. Thank you for contacting us.",
        "zh": "工单 {ticket_id} 已关闭，感谢您的联系。",
    },
}


def human_duration(seconds: int, language: str) -> str:
    zh = language.startswith("zh")
    for size, en, cn in ((86400, "day", "天"), (3600, "hour", "小时"), (60, "minute", "分钟")):
        if seconds >= size and seconds % size == 0 or size == 60:
            n = max(1, round(seconds / size))
            return f"{n}{cn}" if zh else f"{n} {en}{'s' if n != 1 else ''}"
    return f"{seconds}s"


def render(kind: str, language: str, **values: object) -> str:
    variants = TEXTS[kind]
    template = variants.get(language.split("-")[0], variants["en"])
    return template.format(**values)
