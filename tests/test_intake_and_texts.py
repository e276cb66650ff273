"""Channel events: schema validation with the failing path, stable ticket ids; message texts."""

import pytest

from engine.intake import EventInvalid, parse_event, ticket_id_for
from engine.texts import human_duration, render

GOOD = {
    "event_id": "wx-881",
    "channel": "wechat",
    "customer": {"id": "o-5512", "tier": "vip", "language": "zh"},
    "subject": "订单还没发货",
    "body": "订单下了五天还没发货",
    "occurred_at": "2026-11-22T09:30:00+08:00",
    "is_public": False,
    "order_value": 4200,
}


def test_valid_event_parses_with_defaults():
    ev = parse_event({**GOOD, "customer": {"id": "x"}})
    assert ev.customer.tier == "standard" and ev.customer.language == "en" and ev.is_public is False


@pytest.mark.parametrize(
    "change, path",
    [
        ({"channel": "fax"}, "channel"),
        ({"customer": {"id": "x", "tier": "gold"}}, "customer.tier"),
        ({"customer": {"tier": "vip"}}, "customer"),
        ({"occurred_at": "2026-11-22T09:30:00"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"order_value": -5}, "order_value"),
        ({"subject": ""}, "subject"),
        ({"surprise": 1}, "(event)"),
    ],
)
def test_invalid_events_name_the_failing_path(change, path):
    with pytest.raises(EventInvalid) as err:
        parse_event({**GOOD, **change})
    assert err.value.path == path
    assert str(err.value).startswith(f"invalid ticket event at {path}: ")
    assert "\n" not in str(err.value)


def test_ticket_id_is_stable_per_channel_event():
    a, b = parse_event(GOOD), parse_event({**GOOD, "body": "again"})
    assert ticket_id_for(a) == ticket_id_for(b)
    assert ticket_id_for(a) != ticket_id_for(parse_event({**GOOD, "channel": "weibo"}))


def test_texts_in_both_languages():
    assert "30 minutes" in render("acknowledgement", "en", name="Ada", subject="s", ticket_id="T", first_response=human_duration(1800, "en"))
    assert "4小时" in render("acknowledgement", "zh-CN", name="李", subject="s", ticket_id="T", first_response=human_duration(4 * 3600, "zh"))
    assert human_duration(86400, "en") == "1 day" and human_duration(5400, "en") == "90 minutes"
