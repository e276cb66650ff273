"""Replay and backtest over many exported histories, against the SDK's plain replayer.

What is measured, in one run, on the same N histories (Temporal's JSON format, as `ticketflow
export` writes them; built by cycling the committed tests/histories/*.json, which cover v1, v2
and v3 tickets: surveyed, reopened, breached, escalated, on hold):

- baseline: what a user does with the SDK alone on the same exported files — read each file,
  `WorkflowHistory.from_json`, then `Replayer(workflows=[TicketWorkflow]).replay_workflows(...)`,
  nothing of ours around it. It is the fair baseline because `ticketflow replay` starts from the
  same files and does exactly that work plus what a user needs on top (per-history outcome,
  names, reasons); the ratio is then our overhead, not the cost of reading JSON.
  The SDK's replay of histories parsed beforehand (no file reading in the timing) is printed too.
- ours: `engine.audit.replay.replay(...)`, the function behind `ticketflow replay`, files read and
  parsed from disk like the CLI does.
- backtest: `engine.ruleset.backtest.backtest` of the shipped rules over the same histories, from
  the files (`engine.pasttickets.from_dir`): decode the workflow input and result, re-evaluate
  every rule group at its stage, recompute the SLA clocks from the recorded events.

Prints histories/s for each and the ratio ours/baseline. `--json`
ends with one JSON object (ratio among the figures). `--quick` uses 60 histories.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import WorkflowHistory  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

from engine.audit.replay import _quiet_runtime, file_sources, replay  # noqa: E402
from engine.pasttickets import from_dir  # noqa: E402
from engine.ruleset import load_ruleset  # noqa: E402
from engine.ruleset.backtest import backtest  # noqa: E402
from engine.workflows import TicketWorkflow  # noqa: E402


def make_histories(n: int, out: Path) -> list[Path]:
    sources = sorted((ROOT / "tests" / "histories").glob("*.json"))
    paths = []
    for i in range(n):
        src = sources[i % len(sources)]
        dst = out / f"{src.stem}-{i:05d}.json"
        shutil.copyfile(src, dst)
        paths.append(dst)
    return paths


async def plain(histories: list[WorkflowHistory] | list[Path]) -> float:
    async def each():  # the SDK takes an async iterator of histories
        for h in histories:
            if isinstance(h, Path):  # read and parsed inside the timing, like ours
                h = WorkflowHistory.from_json(h.stem, json.loads(h.read_text("utf-8")))
            yield h

    start = time.perf_counter()
    result = await Replayer(workflows=[TicketWorkflow], runtime=_quiet_runtime()).replay_workflows(each(), raise_on_replay_failure=False)
    took = time.perf_counter() - start
    assert not result.replay_failures, f"baseline replay failed: {list(result.replay_failures.values())[:1]}"
    return took


async def ours(paths: list[Path]) -> float:
    start = time.perf_counter()
    outcomes = await replay(file_sources(paths))
    took = time.perf_counter() - start
    assert all(o.ok for o in outcomes) and len(outcomes) == len(paths), "ticketflow replay reported a failure"
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description="replay and backtest throughput against the SDK's plain replayer")
    parser.add_argument("--quick", action="store_true", help="60 histories (under a minute)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    parser.add_argument("-n", type=int, default=None, help="number of histories (default 1000, 60 with --quick)")
    args = parser.parse_args()
    n = args.n or (60 if args.quick else 1000)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_histories(n, Path(tmp))
        parsed = [WorkflowHistory.from_json(p.stem, json.loads(p.read_text("utf-8"))) for p in paths]
        preparsed = asyncio.run(plain(parsed))
        base = asyncio.run(plain(paths))
        mine = asyncio.run(ours(paths))
        rules = load_ruleset(ROOT / "rules")
        start = time.perf_counter()
        report = backtest(rules, from_dir(Path(tmp)))
        bt = time.perf_counter() - start
        assert report.tickets == n
    figures = {
        "histories": n,
        "sdk_replay_per_s": round(n / base, 1),
        "sdk_replay_preparsed_per_s": round(n / preparsed, 1),
        "ticketflow_replay_per_s": round(n / mine, 1),
        "backtest_tickets_per_s": round(n / bt, 1),
        "ratio": round(base / mine, 3),
        "targets": {"replay_ratio": 0.9, "backtest_tickets_per_s": 20000},
    }
    print(f"replay bench: {n} exported histories (cycled from tests/histories, v1-v4 tickets)")
    print(f"  SDK replay, histories parsed beforehand  {figures['sdk_replay_preparsed_per_s']:>9,.1f} histories/s  ({preparsed:.2f} s; not the baseline)")
    print(f"  SDK replay of the files (baseline)       {figures['sdk_replay_per_s']:>9,.1f} histories/s  ({base:.2f} s)")
    print(f"  ticketflow replay (files -> outcomes)    {figures['ticketflow_replay_per_s']:>9,.1f} histories/s  ({mine:.2f} s)")
    print(f"  ratio ticketflow/SDK                     {figures['ratio']:>9.3f}   (target >= 0.9)")
    print(f"  backtest of rules/ over the same files   {figures['backtest_tickets_per_s']:>9,.1f} tickets/s    ({bt:.2f} s; target >= 20,000)")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
