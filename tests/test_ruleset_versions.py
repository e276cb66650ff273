"""Published ruleset versions: publish/activate/rollback, pinning across workers, migration of an
open ticket through a recorded update, diff, and the backtest of a rules change."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError

from engine import tickets
from engine.activities.triage import RulesetRegistry
from engine.intake import parse_event
from engine.models import MigrateCommand, ResolveCommand
from engine.paths import PROJECT_ROOT
from engine.pasttickets import from_dir
from engine.ruleset import load_ruleset
from engine.ruleset.backtest import backtest
from engine.runner import running_worker
from engine.store import Store
from engine.store.rulesets import activate_version, active, publish, set_pilot, versions


def candidate(tmp: Path, priority: str = "P2") -> Path:
    d = tmp / "candidate"
    shutil.copytree(PROJECT_ROOT / "rules", d, ignore=shutil.ignore_patterns("tests"))
    text = (d / "priority.yaml").read_text("utf-8")
    i = text.index("id: p3-default")
    j = text.index("then:", i)
    k = text.index("\n", j)
    (d / "priority.yaml").write_text(text[:j] + f"then: {{priority: {priority}}}" + text[k:], "utf-8")
    return d


def test_publish_activate_rollback_and_pinning_across_workers(db_url, tmp_path):
    store = Store.open(db_url)
    base, cand = load_ruleset(PROJECT_ROOT / "rules"), load_ruleset(candidate(tmp_path))
    assert publish(store, base, "ops", "baseline", activate=True).created
    assert not publish(store, base, "ops", "again").created  # same content, same version
    publish(store, cand, "ops", "P3 default becomes P2")
    assert [v.version for v in versions(store)][0] == cand.version
    assert active(store)[0] == base.version
    # a worker whose rules directory is the candidate still pins new tickets to the active version
    worker_a = RulesetRegistry(candidate(tmp_path / "a"), tmp_path / "a-data", store)
    assert worker_a.for_new_ticket()[0].version == base.version
    activate_version(store, cand.version)
    worker_b = RulesetRegistry(PROJECT_ROOT / "rules", tmp_path / "b-data", store)
    worker_b.active_ttl = 0  # workers look again every 2 s; the test does not wait for that
    assert worker_b.for_new_ticket()[0].version == cand.version
    # a version this worker never loaded comes from the store
    assert worker_b.get(cand.version).version == cand.version
    activate_version(store, None)  # back to the directory
    assert worker_b.for_new_ticket()[0].version == base.version


async def test_open_ticket_migrates_through_a_recorded_update(time_env, settings, tmp_path):
    cfg = dataclasses.replace(settings, db_url=f"sqlite:///{tmp_path / 'store.db'}")
    store = Store.open(cfg.database_url)
    cand = load_ruleset(candidate(tmp_path))
    publish(store, cand, "ops", "candidate")
    async with running_worker(time_env.client, cfg, watch_rules=False):
        ev = {"event_id": f"m-{uuid.uuid4()}", "channel": "email", "customer": {"id": "c1", "language": "en"},
              "subject": "Question", "body": "Do you ship to Norway?", "occurred_at": datetime.now(timezone.utc).isoformat()}
        tid = await tickets.submit(time_env.client, cfg.task_queue, parse_event(ev))
        for _ in range(100):
            st = await tickets.state(time_env.client, tid)
            if st.status == "open":
                break
        before = st.ruleset_version
        assert before != cand.version
        h = tickets.handle(time_env.client, tid)
        await h.execute_update("migrate_ruleset", MigrateCommand(cand.version, "lead.anna", "pilot"))
        with pytest.raises(WorkflowUpdateFailedError):
            await h.execute_update("migrate_ruleset", MigrateCommand(cand.version, "lead.anna"))
        await tickets.resolve(time_env.client, tid, ResolveCommand(agent=st.assignee))
        await time_env.sleep(timedelta(hours=3))
        st = await tickets.state(time_env.client, tid)
        survey = next(d for d in st.decisions if d.group == "survey")
        assert survey.ruleset_version == cand.version  # later decisions use the new version
        assert any(f"ruleset {before} → {cand.version} by lead.anna" in m.body for m in st.messages)


def test_pilot_takes_a_share_or_a_channel_and_says_so(db_url, tmp_path):
    store = Store.open(db_url)
    base, cand = load_ruleset(PROJECT_ROOT / "rules"), load_ruleset(candidate(tmp_path))
    publish(store, base, "ops", "baseline", activate=True)
    publish(store, cand, "ops", "candidate")
    set_pilot(store, cand.version, share=0.25, channels=["weibo"])
    reg = RulesetRegistry(PROJECT_ROOT / "rules", tmp_path / "data", store)
    picks = [reg.for_new_ticket(f"TF-{i:05d}", "email") for i in range(2000)]
    share = sum(1 for rs, _ in picks if rs.version == cand.version) / len(picks)
    assert 0.2 < share < 0.3
    assert {why for rs, why in picks if rs.version == cand.version} == {"pilot (25% of new tickets)"}
    assert {why for rs, why in picks if rs.version == base.version} == {"active version"}
    assert reg.for_new_ticket("TF-ANY", "weibo") == (reg.get(cand.version), "pilot (channel weibo)")
    # the same ticket id always lands on the same side
    assert reg.for_new_ticket("TF-00007", "email") == reg.for_new_ticket("TF-00007", "email")
    set_pilot(store, None)
    reg.active_ttl = 0
    assert reg.for_new_ticket("TF-ANY", "weibo")[1] == "active version"


def test_backtest_reports_what_would_change(tmp_path):
    cand = load_ruleset(candidate(tmp_path))
    report = backtest(cand, from_dir(PROJECT_ROOT / "tests" / "histories"))
    assert report.tickets == len(list((PROJECT_ROOT / "tests" / "histories").glob("*.json")))
    assert report.field_changes["priority"]["P3 → P2"] >= 1
    assert report.field_changes["priority"]["P3 → P2"] == report.field_changes["sla_policy"]["p3-normal → p2-high"]


def test_backtest_and_diff_cli(tmp_path):
    cand = candidate(tmp_path)
    run = lambda *a: subprocess.run([sys.executable, "-m", "engine", *a], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)  # noqa: E731
    # --no-index: the index would be written into tests/histories (tests/test_backtest_index.py covers it)
    res = run("rules", "backtest", "--rules", str(cand), "--dir", "tests/histories", "--no-index", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["fields"]["priority"]["P3 → P2"] >= 1 and data["changed"] == len(data["per_ticket"])
    diff = run("rules", "diff", "rules", str(cand))
    assert diff.returncode == 0 and "~ rule p3-default: then" in diff.stdout
    bad = run("rules", "backtest", "--rules", "nonexistent-version", "--dir", "tests/histories")
    assert bad.returncode == 1 and "not a rules directory" in bad.stderr
