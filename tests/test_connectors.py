"""Connectors against real servers: a local HTTP receiver that checks signatures and drops
duplicates, a real aiosmtpd SMTP server (plain, and STARTTLS with login), the outbox bookkeeping
on SQLite and PostgreSQL, Temporal retries through ActivityEnvironment and a real worker, and
connectors.yaml loading."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlmodel import select
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from engine import metrics
from engine.activities.messaging import MessagingActivities
from engine.connectors import (
    Connectors,
    ConnectorsInvalid,
    DeliveryFailed,
    LogConnector,
    SmtpConnector,
    WebhookConnector,
    load_connectors,
    log_only,
    message_id,
    verify_signature,
)
from engine.connectors.webhook import sign
from engine.models import OutgoingMessage, StaffNotice
from engine.paths import PROJECT_ROOT
from engine.store import Store
from engine.store.tables import OutboxMessage

SECRET = "s3cret-for-tests"
ZH_BODY = "您好，您的退款已处理，预计3个工作日内到账。如有疑问请回复本消息。"


def wechat_msg(key: str = "TF-1:ack", **kw) -> OutgoingMessage:
    fields = dict(idempotency_key=key, ticket_id="TF-1", kind="acknowledgement", channel="wechat", recipient="cust-42",
                  language="zh", body=ZH_BODY, address="wx-openid-abc", subject="")
    fields.update(kw)
    return OutgoingMessage(**fields)


# --- a real HTTP receiver ------------------------------------------------------------------------

class Receiver:
    """What a channel gateway does: verify the signature, drop a key it has already accepted.
    `script` is the status to answer for each POST in turn (200 once it runs out)."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.script: list[int] = []
        self.posts: list[dict] = []  # every request: headers, raw body, whether the signature held
        self.accepted: dict[str, dict] = {}  # idempotency key -> payload, each counted once
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = verify_signature(receiver.secret, self.headers.get("X-Ticketflow-Timestamp", ""), raw,
                                      self.headers.get("X-Ticketflow-Signature", ""), now=time.time())
                with receiver.lock:
                    receiver.posts.append({"headers": dict(self.headers), "raw": raw, "signature_ok": ok})
                    status = receiver.script.pop(0) if receiver.script else 200
                    if not ok:
                        status = 401
                    elif status == 200:
                        key = self.headers["Idempotency-Key"]
                        receiver.accepted.setdefault(key, json.loads(raw))  # a duplicate: 200, not kept again
                text = {200: "ok", 400: "bad request: 'address' missing", 401: "bad signature"}.get(status, "busy")
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ticketflow"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def keys_posted(self) -> list[str]:
        return [p["headers"]["Idempotency-Key"] for p in self.posts]


@pytest.fixture
def receiver():
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def fresh_metrics():
    from prometheus_client import REGISTRY, CollectorRegistry

    yield metrics.use_registry(CollectorRegistry())
    metrics.use_registry(REGISTRY)


def webhook_connectors(receiver: Receiver, tmp_path: Path) -> Connectors:
    hook = WebhookConnector("gateway", receiver.url, SECRET, timeout=5)
    outbox = LogConnector("outbox", tmp_path / "outbox.log")
    return Connectors({"gateway": hook, "outbox": outbox}, {"default": "outbox", "wechat": "gateway"}, staff=outbox)


def row(store: Store, key: str) -> OutboxMessage:
    with store.session() as s:
        return s.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key == key)).one()


def attempt(n: int) -> ActivityEnvironment:
    """The activity context of attempt `n`, as a Temporal worker would set it."""
    env = ActivityEnvironment()
    env.info = replace(env.info, attempt=n, activity_type="send_message")
    return env


# --- webhook ---------------------------------------------------------------------------------------

def test_webhook_posts_signed_json_with_chinese_intact(receiver):
    hook = WebhookConnector("gateway", receiver.url, SECRET)
    msg = wechat_msg(subject="退款进度")
    assert hook.deliver(msg) == "HTTP 200"

    [post] = receiver.posts
    headers, raw = post["headers"], post["raw"]
    assert post["signature_ok"]
    assert headers["Idempotency-Key"] == "TF-1:ack"
    assert headers["Content-Type"].startswith("application/json")
    ts = headers["X-Ticketflow-Timestamp"]
    assert abs(int(ts) - time.time()) < 60
    assert headers["X-Ticketflow-Signature"] == sign(SECRET, ts, raw)
    assert headers["X-Ticketflow-Signature"].startswith("sha256=") and len(headers["X-Ticketflow-Signature"]) == 71

    payload = json.loads(raw.decode("utf-8"))
    sent_at = payload.pop("sent_at")
    assert sent_at.endswith("+00:00")
    assert payload == {"idempotency_key": "TF-1:ack", "ticket_id": "TF-1", "kind": "acknowledgement", "channel": "wechat",
                       "to": "cust-42", "address": "wx-openid-abc", "language": "zh", "subject": "退款进度", "body": ZH_BODY}
    assert ZH_BODY.encode("utf-8") in raw  # sent as UTF-8, not \u escapes

    # What a receiver must refuse: another secret, a changed body, a stale or missing timestamp.
    now = time.time()
    assert verify_signature(SECRET, ts, raw, headers["X-Ticketflow-Signature"], now)
    assert not verify_signature("wrong-secret", ts, raw, headers["X-Ticketflow-Signature"], now)
    assert not verify_signature(SECRET, ts, raw.replace("退款".encode(), "退货".encode()), headers["X-Ticketflow-Signature"], now)
    assert not verify_signature(SECRET, ts, raw, headers["X-Ticketflow-Signature"], now + 301)
    assert not verify_signature(SECRET, "", raw, headers["X-Ticketflow-Signature"], now)
    assert not verify_signature(SECRET, ts, raw, "", now)


def test_a_receiver_with_another_secret_refuses_the_post(tmp_path):
    wrong = Receiver(secret="not-the-same")
    wrong.thread.start()
    try:
        with pytest.raises(DeliveryFailed) as err:
            WebhookConnector("gateway", wrong.url, SECRET).deliver(wechat_msg())
        assert not err.value.retryable and "HTTP 401" in err.value.message
        assert wrong.posts[0]["signature_ok"] is False and wrong.accepted == {}
    finally:
        wrong.server.shutdown()
        wrong.server.server_close()


def test_webhook_failures_say_whether_to_retry(receiver):
    hook = WebhookConnector("gateway", receiver.url, SECRET)
    for status, retryable in ((503, True), (429, True), (408, True), (500, True), (400, False), (404, False)):
        receiver.script = [status]
        with pytest.raises(DeliveryFailed) as err:
            hook.deliver(wechat_msg())
        assert err.value.retryable is retryable, status
        assert f"HTTP {status}" in err.value.message
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(DeliveryFailed, match="cannot reach") as err:
        WebhookConnector("gateway", f"http://127.0.0.1:{closed}/x", SECRET, timeout=2).deliver(wechat_msg())
    assert err.value.retryable


def test_webhook_timeout_is_retryable():
    # A server that accepts the connection and never answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        hook = WebhookConnector("gateway", f"http://127.0.0.1:{s.getsockname()[1]}/x", SECRET, timeout=0.5)
        with pytest.raises(DeliveryFailed, match="within 0.5s") as err:
            hook.deliver(wechat_msg())
    assert err.value.retryable


# --- exactly one delivery through the activity ----------------------------------------------------

def test_retry_after_503_delivers_once(db_url, receiver, tmp_path, fresh_metrics):
    store = Store.open(db_url)
    acts = MessagingActivities(store, tmp_path / "outbox.log", connectors=webhook_connectors(receiver, tmp_path))
    receiver.script = [503]
    msg = wechat_msg()

    with pytest.raises(DeliveryFailed) as err:  # not an ApplicationError: Temporal retries it
        attempt(1).run(acts.send_message, msg)
    assert err.value.retryable
    failed = row(store, msg.idempotency_key)
    assert (failed.status, failed.attempts, failed.connector) == ("failed", 1, "gateway")
    assert "HTTP 503" in failed.last_error

    assert attempt(2).run(acts.send_message, msg) is True
    done = row(store, msg.idempotency_key)
    assert (done.status, done.attempts, done.detail, done.last_error) == ("delivered", 2, "HTTP 200", None)
    assert done.delivered_at is not None and done.address == "wx-openid-abc"
    assert list(receiver.accepted) == ["TF-1:ack"]

    # The workflow sends the same message again (a replayed step): nothing is posted.
    assert attempt(1).run(acts.send_message, msg) is False
    assert len(receiver.posts) == 2 and row(store, msg.idempotency_key).attempts == 2
    assert metrics.sample("ticketflow_messages_sent_total", {"kind": "acknowledgement", "channel": "wechat"}) == 1


class CrashBeforeCommit(MessagingActivities):
    """The worker dies after the receiver took the POST and before the outbox row says so."""

    crashes = 1

    def _mark_delivered(self, key: str, detail: str) -> bool:
        if self.crashes:
            self.crashes -= 1
            raise ConnectionError("worker lost its database connection")
        return super()._mark_delivered(key, detail)


def test_crash_between_post_and_commit_is_resent_with_the_same_key(db_url, receiver, tmp_path, fresh_metrics):
    store = Store.open(db_url)
    acts = CrashBeforeCommit(store, tmp_path / "outbox.log", connectors=webhook_connectors(receiver, tmp_path))
    msg = wechat_msg("TF-1:reply:1", kind="agent_reply")

    with pytest.raises(ConnectionError):
        attempt(1).run(acts.send_message, msg)
    assert row(store, msg.idempotency_key).status == "pending"  # nobody knows whether it arrived
    assert list(receiver.accepted) == ["TF-1:reply:1"]  # it did

    assert attempt(2).run(acts.send_message, msg) is True
    assert receiver.keys_posted() == ["TF-1:reply:1", "TF-1:reply:1"]  # re-posted, same key
    assert len(receiver.accepted) == 1  # and the receiver kept one
    done = row(store, msg.idempotency_key)
    assert (done.status, done.attempts) == ("delivered", 2)
    assert metrics.sample("ticketflow_messages_sent_total", {"kind": "agent_reply", "channel": "wechat"}) == 1


def test_crash_after_the_log_line_does_not_write_it_twice(db_url, tmp_path):
    store = Store.open(db_url)
    log = tmp_path / "outbox.log"
    acts = CrashBeforeCommit(store, log)  # no connectors given: the log-only default
    msg = wechat_msg("TF-2:ack", ticket_id="TF-2", channel="email", address="", body="确认：我们已收到您的请求。")
    with pytest.raises(ConnectionError):
        attempt(1).run(acts.send_message, msg)
    assert attempt(2).run(acts.send_message, msg) is True
    lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    assert [x["idempotency_key"] for x in lines] == ["TF-2:ack"]
    assert lines[0]["body"] == "确认：我们已收到您的请求。"
    assert row(store, "TF-2:ack").detail == "logged (by an earlier attempt)"


def test_a_torn_log_line_from_a_crash_is_not_a_delivery(tmp_path):
    log = tmp_path / "outbox.log"
    log.write_text('{"idempotency_key": "TF-3:ack", "body": "half a li', encoding="utf-8")
    LogConnector("outbox", log).deliver(wechat_msg("TF-3:ack"), redelivery=True)
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["idempotency_key"] == "TF-3:ack"


def test_a_400_fails_the_activity_without_retries(db_url, receiver, tmp_path):
    store = Store.open(db_url)
    acts = MessagingActivities(store, tmp_path / "outbox.log", connectors=webhook_connectors(receiver, tmp_path))
    receiver.script = [400]
    with pytest.raises(ApplicationError) as err:
        attempt(1).run(acts.send_message, wechat_msg())
    assert err.value.non_retryable and err.value.type == "DeliveryFailed"
    assert "HTTP 400" in err.value.message and "'address' missing" in err.value.message
    failed = row(store, "TF-1:ack")
    assert failed.status == "failed" and "HTTP 400" in failed.last_error


def test_unknown_connector_named_by_a_rule_is_not_retried(db_url, tmp_path):
    acts = MessagingActivities(Store.open(db_url), tmp_path / "outbox.log")
    with pytest.raises(ApplicationError, match="unknown connector 'sms-gw'") as err:
        attempt(1).run(acts.send_message, wechat_msg(connector="sms-gw"))
    assert err.value.non_retryable


@workflow.defn(name="SendOnce", sandboxed=False)
class SendOnce:
    @workflow.run
    async def run(self, msg: OutgoingMessage) -> bool:
        return await workflow.execute_activity(
            "send_message", msg, result_type=bool, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=1.0, maximum_attempts=5),
        )


async def test_a_real_worker_retries_until_delivered_and_stops_on_a_400(time_env, receiver, tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    acts = MessagingActivities(store, tmp_path / "outbox.log", connectors=webhook_connectors(receiver, tmp_path))
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    receiver.script = [503, 503]
    with ThreadPoolExecutor(4) as executor:
        async with Worker(time_env.client, task_queue=queue, workflows=[SendOnce], activities=[acts.send_message],
                          activity_executor=executor):
            assert await time_env.client.execute_workflow(SendOnce.run, wechat_msg(), id=f"w-{uuid.uuid4()}", task_queue=queue)
            assert row(store, "TF-1:ack").attempts == 3 and row(store, "TF-1:ack").status == "delivered"
            assert receiver.keys_posted() == ["TF-1:ack"] * 3 and len(receiver.accepted) == 1

            receiver.script = [400]
            with pytest.raises(WorkflowFailureError) as err:
                await time_env.client.execute_workflow(SendOnce.run, wechat_msg("TF-1:survey:0", kind="survey"),
                                                       id=f"w-{uuid.uuid4()}", task_queue=queue)
            cause = err.value.cause
            assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
            assert cause.cause.non_retryable and "HTTP 400" in cause.cause.message
            assert receiver.keys_posted().count("TF-1:survey:0") == 1  # tried once, not five times


# --- SMTP against a real server -------------------------------------------------------------------

class Mailbox:
    """aiosmtpd handler: keeps what it accepts; recipients at `busy.example` get 451, at
    `nowhere.example` 550."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@busy.example"):
            return "451 4.3.0 mailbox busy, try later"
        if address.endswith("@nowhere.example"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "data": envelope.content,
                              "login": session.auth_data.login if session.authenticated else None,
                              "tls": session.ssl is not None})
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


def email_msg(key: str = "TF-9:ack", **kw) -> OutgoingMessage:
    return wechat_msg(key, **{"ticket_id": "TF-9", "channel": "email", "address": "li.na@example.com", **kw})


def smtp_connectors(port: int, tmp_path: Path) -> Connectors:
    mail = SmtpConnector("mail", "127.0.0.1", port, "客服中心 <support@shop.example>", timeout=5)
    outbox = LogConnector("outbox", tmp_path / "outbox.log")
    return Connectors({"mail": mail, "outbox": outbox}, {"default": "mail"}, staff=outbox)


def test_smtp_delivers_utf8_mail_once_per_key(db_url, smtp_server, tmp_path):
    box, port = smtp_server
    store = Store.open(db_url)
    acts = MessagingActivities(store, tmp_path / "outbox.log", connectors=smtp_connectors(port, tmp_path))
    msg = email_msg()
    assert attempt(1).run(acts.send_message, msg) is True
    assert attempt(1).run(acts.send_message, msg) is False  # the same key again: no second mail

    [got] = box.messages
    assert got["from"] == "support@shop.example" and got["to"] == ["li.na@example.com"]
    mail = message_from_bytes(got["data"], policy=policy.default)
    assert mail["From"].addresses[0].display_name == "客服中心"
    assert mail["To"] == "li.na@example.com"
    assert mail["Subject"] == "我们已收到您的请求 [TF-9]"  # no subject given: the default for the kind
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    assert mail.get_content().rstrip("\n") == ZH_BODY
    assert mail["Message-ID"] == message_id("TF-9:ack", "shop.example") == row(store, "TF-9:ack").detail
    assert mail["Message-ID"].startswith("<tf.") and mail["Message-ID"].endswith("@shop.example>")
    assert mail["X-Ticketflow-Idempotency-Key"] == "TF-9:ack"

    other = email_msg("TF-9:survey:0", kind="survey", subject="您对本次服务满意吗？")
    assert attempt(1).run(acts.send_message, other) is True
    mail2 = message_from_bytes(box.messages[1]["data"], policy=policy.default)
    assert mail2["Subject"] == "您对本次服务满意吗？" and mail2["Message-ID"] != mail["Message-ID"]


def test_smtp_without_an_address_is_not_retried(db_url, smtp_server, tmp_path):
    box, port = smtp_server
    store = Store.open(db_url)
    acts = MessagingActivities(store, tmp_path / "outbox.log", connectors=smtp_connectors(port, tmp_path))
    for address, why in (("", "has no email address"), ("not-an-address", "is not an email address"),
                         ("x@y.example\r\nBcc: all@y.example", "is not an email address")):
        key = f"TF-9:ack:{len(address)}"
        with pytest.raises(ApplicationError, match=why) as err:
            attempt(1).run(acts.send_message, email_msg(key, address=address))
        assert err.value.non_retryable
        assert row(store, key).status == "failed"
    assert box.messages == []


def test_smtp_reply_codes_decide_retries(smtp_server):
    _, port = smtp_server
    mail = SmtpConnector("mail", "127.0.0.1", port, "support@shop.example", timeout=5)
    with pytest.raises(DeliveryFailed, match="451") as err:
        mail.deliver(email_msg(address="a@busy.example"))
    assert err.value.retryable
    with pytest.raises(DeliveryFailed, match="550") as err:
        mail.deliver(email_msg(address="a@nowhere.example"))
    assert not err.value.retryable
    with pytest.raises(DeliveryFailed) as err:  # nobody listening: try again later
        SmtpConnector("mail", "127.0.0.1", free_port(), "support@shop.example", timeout=2).deliver(email_msg())
    assert err.value.retryable


def test_smtp_starttls_and_login(tmp_path, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    import ssl

    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login, auth_data.password) == (b"mailer", b"pa55")
        return AuthResult(success=ok, handled=False, auth_data=auth_data)  # handled=False: aiosmtpd answers 535

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), tls_context=server_tls, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    controller.start()
    try:
        monkeypatch.setenv("TF_TEST_SMTP_USER", "mailer")
        monkeypatch.setenv("TF_TEST_SMTP_PASSWORD", "pa55")
        cfg = tmp_path / "connectors.yaml"
        cfg.write_text(
            "connectors:\n"
            f"  mail: {{type: smtp, host: 127.0.0.1, port: {controller.port}, from: 'Support <support@shop.example>',"
            f" starttls: true, username_env: TF_TEST_SMTP_USER, password_env: TF_TEST_SMTP_PASSWORD, ca_file: '{cert}', timeout: 5}}\n"
            "channels: {default: mail}\n", encoding="utf-8")
        connectors = load_connectors(cfg, tmp_path / "outbox.log")
        assert connectors.for_message(email_msg()).deliver(email_msg()).startswith("<tf.")
        assert box.messages[0]["login"] == b"mailer" and box.messages[0]["tls"]

        monkeypatch.setenv("TF_TEST_SMTP_PASSWORD", "wrong")
        with pytest.raises(DeliveryFailed, match="535") as err:
            load_connectors(cfg, tmp_path / "outbox.log").get("mail").deliver(email_msg())
        assert not err.value.retryable
    finally:
        controller.stop()


# --- connectors.yaml --------------------------------------------------------------------------------

def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connectors.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_file_loads(tmp_path):
    c = load_connectors(PROJECT_ROOT / "connectors.yaml", tmp_path / "outbox.log")
    assert c.names() == ["outbox"] and c.for_channel("wechat").type == "log"


def test_channel_and_rules_choose_the_connector(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_TEST_HOOK_SECRET", "x")
    path = write(tmp_path, """
connectors:
  outbox: {type: log}
  gateway: {type: webhook, url: "https://gw.example/tf", secret_env: TF_TEST_HOOK_SECRET}
  mail: {type: smtp, host: smtp.example, from: support@shop.example, starttls: true}
channels:
  default: mail
  wechat: gateway
  weibo: gateway
""")
    c = load_connectors(path, tmp_path / "outbox.log")
    assert c.names() == ["gateway", "mail", "outbox"]
    assert c.for_message(wechat_msg()).name == "gateway"  # the channel's connector
    assert c.for_message(wechat_msg(channel="email")).name == "mail"  # not listed: the default
    assert c.for_message(wechat_msg(connector="outbox")).name == "outbox"  # a rule named it
    assert c.for_message(wechat_msg(channel="internal")).name == "outbox"  # staff notices: the log
    assert isinstance(c.get("mail"), SmtpConnector) and c.get("mail").port == 587
    with pytest.raises(DeliveryFailed, match="unknown connector 'nope'") as err:
        c.for_message(wechat_msg(connector="nope"))
    assert not err.value.retryable


def test_staff_notices_keep_going_to_the_log(db_url, tmp_path, smtp_server):
    box, port = smtp_server
    store = Store.open(db_url)
    acts = MessagingActivities(store, tmp_path / "outbox.log", connectors=smtp_connectors(port, tmp_path))
    assert acts.notify_staff(StaffNotice("TF-9:esc", "TF-9", "refunds", "li.lei", ["assignee"], "late")) == ["li.lei"]
    [line] = [json.loads(x) for x in (tmp_path / "outbox.log").read_text().splitlines()]
    assert line["idempotency_key"] == "TF-9:esc:li.lei" and line["channel"] == "internal"
    assert row(store, "TF-9:esc:li.lei").connector == "outbox" and box.messages == []


@pytest.mark.parametrize("text, error", [
    ("connectors: {a: {type: fax}}", "connectors.a: unknown type 'fax' (known: log, webhook, smtp)"),
    ("connectors: {a: {url: x}}", "connectors.a: `type` is required"),
    ("connectors: {hook: {type: webhook, secret_env: TF_TEST_SET}}", "connectors.hook: `url` is required"),
    ("connectors: {hook: {type: webhook, url: 'ftp://x', secret_env: TF_TEST_SET}}", "connectors.hook: url: expected an http"),
    ("connectors: {hook: {type: webhook, url: 'https://x.example'}}", "connectors.hook: `secret_env` is required"),
    ("connectors: {hook: {type: webhook, url: 'https://x.example', secret_env: TF_TEST_UNSET}}",
     "connectors.hook: secret_env: environment variable TF_TEST_UNSET is not set"),
    ("connectors: {hook: {type: webhook, url: 'https://x.example', secret_env: TF_TEST_SET, timeout: 0}}",
     "connectors.hook: timeout: expected seconds"),
    ("connectors: {m: {type: smtp, from: a@b.example}}", "connectors.m: `host` is required"),
    ("connectors: {m: {type: smtp, host: h}}", "connectors.m: `from` is required"),
    ("connectors: {m: {type: smtp, host: h, from: nobody}}", "connectors.m: from: expected an address"),
    ("connectors: {m: {type: smtp, host: h, from: a@b.example, hots: x}}", "connectors.m: unknown key 'hots'"),
    ("connectors: {m: {type: smtp, host: h, from: a@b.example, starttls: true, ssl: true}}", "starttls and ssl exclude each other"),
    ("connectors: {m: {type: smtp, host: h, from: a@b.example, username_env: TF_TEST_SET}}",
     "username_env and password_env go together"),
    ("connectors: {a: {type: log}, b: {type: log}}", "channels.default: required when there is more than one"),
    ("connectors: {a: {type: log}}\nchannels: {default: a, wechat: gw}",
     "channels.wechat: connector 'gw' is not defined under connectors (defined: a)"),
    ("connectors: {a: {type: log}}\nchannels: {wechatt: a}", "channels.wechatt: unknown channel"),
    ("connectors: {Big Name: {type: log}}", "connectors.Big Name: a name is 1-20 characters"),
    ("connectors: {}", "connectors: expected a mapping"),
    ("conectors: {a: {type: log}}", "conectors: unknown key"),
    ("connectors: [a", "not valid YAML"),
])
def test_config_errors_are_one_line_naming_file_and_key(tmp_path, monkeypatch, text, error):
    monkeypatch.setenv("TF_TEST_SET", "value")
    monkeypatch.delenv("TF_TEST_UNSET", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConnectorsInvalid) as err:
        load_connectors(path, tmp_path / "outbox.log")
    message = str(err.value)
    assert message.startswith(f"{path}: ") and error in message and "\n" not in message
    assert "value" not in message.replace("values", "")  # a secret's value never shows


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConnectorsInvalid, match=r"connectors.yaml: cannot read: No such file"):
        load_connectors(tmp_path / "connectors.yaml", tmp_path / "outbox.log")


def test_log_only_is_the_default_without_connectors(tmp_path):
    c = log_only(tmp_path / "outbox.log")
    assert c.names() == ["outbox"] and c.for_message(wechat_msg(channel="internal")).name == "outbox"


def test_the_documented_webhook_example_is_a_valid_test_vector():
    """docs/connectors.md gives gateway authors a request to check their verification against."""
    doc = (PROJECT_ROOT / "docs" / "connectors.md").read_text(encoding="utf-8")
    request = doc.split("POST /ticketflow HTTP/1.1\n", 1)[1].split("\n```", 1)[0]
    head, body = request.split("\n\n", 1)
    headers = dict(line.split(": ", 1) for line in head.splitlines())
    raw = body.encode("utf-8")
    ts, sig = headers["X-Ticketflow-Timestamp"], headers["X-Ticketflow-Signature"]
    assert verify_signature("example-secret", ts, raw, sig, now=int(ts) + 10)
    payload = json.loads(raw)
    assert payload["channel"] == "wechat" and payload["idempotency_key"] == headers["Idempotency-Key"]
    assert set(payload) == {"idempotency_key", "ticket_id", "kind", "channel", "to", "address", "language", "subject",
                            "body", "sent_at"}
