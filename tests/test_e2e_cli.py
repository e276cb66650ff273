"""End to end: the `ticketflow` CLI against a real `ticketflow dev` (dev server + worker) process.

Covers the walking-skeleton acceptance: a ticket reaches `closed` through reply, resolve and
survey-answer; a SIGKILL of `ticketflow dev` mid-ticket leaves no orphan server and, after a
restart on the same data dir, the ticket finishes with nothing repeated; `list` agrees with
`temporal workflow list`; an invalid event starts nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.paths import PROJECT_ROOT
from engine.devserver import find_binary, port_free

TICKETFLOW = [sys.executable, "-m", "engine"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast_rules(tmp: Path) -> Path:
    """The shipped rules with a survey that goes out after 2 s, so the test can watch it happen."""
    rules = tmp / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    (rules / "survey.yaml").write_text(
        "groups:\n"
        "  - name: survey\n"
        "    match: first\n"
        "    rules:\n"
        "      - id: e2e-quick-survey\n"
        "        description: survey two seconds after resolution\n"
        "        then: {survey: true, delay: 2s, expires_after: 10m, kind: csat}\n",
        "utf-8",
    )
    return rules


class Dev:
    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "data"
        self.port = free_port()
        self.ui_port = free_port()
        self.rules = fast_rules(tmp)
        self.proc: subprocess.Popen[str] | None = None
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.port}",
            "TICKETFLOW_RULES_DIR": str(self.rules),
            "TICKETFLOW_TASK_QUEUE": "e2e",
        }

    def start(self) -> None:
        # Output goes to a file, not a pipe nobody drains, so a chatty server can never block.
        self.log = self.data.parent / f"dev-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [*TICKETFLOW, "dev", "--data-dir", str(self.data), "--port", str(self.port), "--ui-port", str(self.ui_port)],
            env=self.env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if "Ctrl-C to stop" in self.log.read_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError("ticketflow dev did not come up:\n" + self.log.read_text())

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*TICKETFLOW, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if ok:
            assert res.returncode == 0, f"ticketflow {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res

    def show(self, ticket_id: str) -> dict:
        return json.loads(self.cli("show", ticket_id, "--json").stdout)

    def wait_status(self, ticket_id: str, *statuses: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.show(ticket_id)
            if st["status"] in statuses or time.monotonic() > deadline:
                assert st["status"] in statuses, f"{ticket_id} is {st['status']}, wanted {statuses}"
                return st
            time.sleep(0.3)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(30)

    def outbox(self) -> list[dict]:
        path = self.data / "outbox.log"
        return [json.loads(line) for line in path.read_text("utf-8").splitlines()] if path.exists() else []


@pytest.fixture
def dev(tmp_path: Path):
    find_binary("temporal")  # fails with the install hint if the server binary is missing
    d = Dev(tmp_path)
    try:
        d.start()
        yield d
    finally:  # also when start() itself failed: a dev server left running holds its ports
        if d.proc and d.proc.poll() is None:
            d.stop()


def test_ticket_to_closed_through_the_cli(dev: Dev) -> None:
    out = dev.cli("submit", "--channel", "email", "--customer", "c-42", "--subject", "Charged twice",
                  "--body", "My card was charged twice for order 77102, please refund the duplicate.").stdout
    ticket_id = out.strip()
    assert re.fullmatch(r"TF-[A-Z2-7]{10}", ticket_id), out
    st = dev.wait_status(ticket_id, "open")
    for key in ("ticket_id", "status", "priority", "category", "team", "assignee", "ruleset_version", "sla", "stages", "decisions"):
        assert key in st
    assert {c["metric"] for c in st["sla"]} == {"first_response", "next_reply", "periodic_update", "resolution"}
    assert all({"metric", "state", "due", "elapsed_seconds", "remaining_seconds"} <= set(c) for c in st["sla"])

    refused = dev.cli("reply", ticket_id, "--agent", "someone.else", "--body", "hi", ok=False)
    assert refused.returncode == 1 and "not the assignee" in refused.stderr and "Traceback" not in refused.stderr
    dev.cli("reply", ticket_id, "--agent", st["assignee"], "--body", "Refund of the duplicate is on its way.")
    dev.cli("resolve", ticket_id, "--agent", st["assignee"], "--note", "duplicate refunded")
    dev.wait_status(ticket_id, "surveying")
    dev.cli("survey-answer", ticket_id, "--score", "4")
    final = dev.wait_status(ticket_id, "closed")
    assert [s["stage"] for s in final["stages"]] == ["receive", "classify", "assign", "respond", "resolve", "survey", "close"]
    assert all(s["at"] for s in final["stages"])
    assert {d["group"] for d in final["decisions"]} >= {"classification", "priority", "routing", "sla_policy", "survey"}
    assert all("rule_id" in d and "actions" in d for d in final["decisions"])

    human = dev.cli("show", ticket_id).stdout
    assert "stages" in human and "decisions" in human and final["decisions"][1]["rule_id"] in human

    rows = json.loads(dev.cli("list", "--json").stdout)
    assert any(r["ticket_id"] == ticket_id and r["status"] == "closed" for r in rows)


def test_list_agrees_with_temporal_visibility_queries(dev: Dev) -> None:
    ids = [dev.cli("submit", "--channel", ch, "--customer", f"c-{i}", "--subject", subj, "--body", body, *extra).stdout.strip()
           for i, (ch, subj, body, extra) in enumerate([
               ("weibo", "退款三周还没到账", "申请退款三周了还没到账，太失望了，大家别买！", ["--public", "--language", "zh"]),
               ("email", "Invoice request", "Please send last quarter's invoices.", []),
           ])]
    for t in ids:
        dev.wait_status(t, "open")
    time.sleep(1.5)  # visibility is eventually consistent
    ours = json.loads(dev.cli("list", "--json").stdout)
    assert {r["ticket_id"] for r in ours} >= set(ids)
    prio = dev.show(ids[0])["priority"]
    theirs = subprocess.run(
        [str(find_binary("temporal")), "workflow", "list", "--address", f"127.0.0.1:{dev.port}",
         "--query", f'Priority="{prio}"', "-o", "json"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    their_ids = {w["execution"]["workflowId"] for w in json.loads(theirs)}
    our_ids = {r["ticket_id"] for r in json.loads(dev.cli("list", "--priority", prio, "--json").stdout)}
    assert ids[0] in our_ids and our_ids == their_ids
    open_now = json.loads(dev.cli("list", "--status", "open,pending_customer", "--channel", "weibo", "--json").stdout)
    assert [r["ticket_id"] for r in open_now] == [ids[0]]
    assert json.loads(dev.cli("list", "--status", "closed", "--json").stdout) == []
    bad = dev.cli("list", "--query", "Nonsense = 1", ok=False)
    assert bad.returncode == 1 and "list query failed" in bad.stderr


def test_invalid_event_is_refused_and_starts_nothing(dev: Dev, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "event_id": "e-1", "channel": "email", "customer": {"id": "c-1", "tier": "gold"},
        "subject": "hi", "body": "hello", "occurred_at": "2026-11-22T10:00:00Z",
    }))
    res = dev.cli("submit", "--event", str(bad), ok=False)
    assert res.returncode == 1
    assert "customer.tier" in res.stderr and "gold" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    notjson = tmp_path / "broken.json"
    notjson.write_text('{"event_id": ')
    res = dev.cli("submit", "--event", str(notjson), ok=False)
    assert res.returncode == 1 and "broken.json:1:" in res.stderr
    usage = dev.cli("submit", "--channel", "email", ok=False)
    assert usage.returncode == 2
    time.sleep(1.5)
    assert json.loads(dev.cli("list", "--json").stdout) == []


def test_sigkill_then_restart_finishes_the_ticket_with_nothing_repeated(dev: Dev) -> None:
    ticket_id = dev.cli("submit", "--channel", "wechat", "--customer", "c-7", "--language", "zh", "--tier", "vip",
                        "--subject", "订单还没发货", "--body", "订单下了五天还没发货，请马上处理。").stdout.strip()
    st = dev.wait_status(ticket_id, "open")
    server_pid = int(subprocess.run(["pgrep", "-P", str(dev.proc.pid)], capture_output=True, text=True).stdout.split()[0])

    assert dev.stop(signal.SIGKILL) == -signal.SIGKILL
    for _ in range(100):  # the server dies with its parent (PR_SET_PDEATHSIG): no orphan
        if not Path(f"/proc/{server_pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{server_pid}").exists(), "temporal dev server outlived ticketflow dev"
    assert port_free(dev.port)

    dev.start()
    again = dev.show(ticket_id)
    assert again["status"] == "open" and again["assignee"] == st["assignee"]
    dev.cli("reply", ticket_id, "--agent", st["assignee"], "--body", "已为您加急处理。")
    dev.cli("resolve", ticket_id, "--agent", st["assignee"])
    dev.wait_status(ticket_id, "surveying")
    dev.cli("survey-answer", ticket_id, "--score", "5")
    final = dev.wait_status(ticket_id, "closed")
    assert [s["stage"] for s in final["stages"]].count("assign") == 1
    kinds = [m["kind"] for m in dev.outbox() if m["ticket_id"] == ticket_id]
    assert kinds.count("acknowledgement") == 1 and kinds.count("survey") == 1

    # Temporal's own tool shows the decisions recorded in history, rule ids included.
    history = subprocess.run(
        [str(find_binary("temporal")), "workflow", "show", "--address", f"127.0.0.1:{dev.port}", "-w", ticket_id, "--detailed"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    for d in final["decisions"]:
        if d["group"] in ("classification", "routing"):
            assert f"group: {d['group']}" in history and f"rule_id: {d['rule_id']}" in history


def test_sigterm_stops_dev_cleanly(dev: Dev) -> None:
    assert dev.stop(signal.SIGTERM) == 0
    assert port_free(dev.port) and port_free(dev.ui_port)


def test_rules_edit_reaches_the_next_ticket_and_a_broken_edit_does_not(dev: Dev) -> None:
    def plain_ticket() -> dict:
        t = dev.cli("submit", "--channel", "email", "--customer", "c-9", "--subject", "Delivery address change",
                    "--body", "I moved last week; the delivery address for order 5531 needs to change.").stdout.strip()
        return dev.wait_status(t, "open")

    before = plain_ticket()
    prio = next(d for d in before["decisions"] if d["group"] == "priority")
    wanted = "P2" if before["priority"] != "P2" else "P3"
    path = dev.rules / "priority.yaml"
    text = path.read_text("utf-8")
    rule_pos = text.index(f"id: {prio['rule_id']}")
    then_pos = text.index("then:", rule_pos)
    line_end = text.index("\n", then_pos)
    path.write_text(text[:then_pos] + f"then: {{priority: {wanted}}}" + text[line_end:], "utf-8")
    deadline = time.monotonic() + 20
    while "rules reloaded" not in dev.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    after = plain_ticket()
    assert after["priority"] == wanted and after["ruleset_version"] != before["ruleset_version"]
    assert dev.show(before["ticket_id"])["ruleset_version"] == before["ruleset_version"]  # open tickets stay pinned

    path.write_text(path.read_text("utf-8").replace("field: customer.tier", "field: customer.teir", 1), "utf-8")
    deadline = time.monotonic() + 20
    while "are invalid; keeping version" not in dev.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = dev.log.read_text()
    assert f"keeping version {after['ruleset_version']}" in log and "did you mean 'customer.tier'" in log
    third = plain_ticket()
    assert third["ruleset_version"] == after["ruleset_version"] and third["priority"] == wanted
