"""bench/rules_bench.py keeps running: a small run end to end (no timing is asserted; the figures
are the bench's business). Before timing, the bench checks that the engine (native and generated
Python) and the hand-written baseline decide alike on every ticket, so this also catches rules
the baseline no longer follows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_rules_bench_runs_and_reports_every_figure() -> None:
    run = subprocess.run([sys.executable, "bench/rules_bench.py", "--tickets", "300", "--json"], cwd=ROOT,
                         capture_output=True, text=True, encoding="utf-8", timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["evaluator"] == "native"
    assert figures["tickets"] == 300 and figures["decisions_verified"] == 300 * len(figures["groups"])
    assert figures["rules_never_matched"] == []
    for key in ("baseline_tickets_per_s", "engine_tickets_per_s", "engine_trace_tickets_per_s",
                "python_evaluator_tickets_per_s", "python_evaluator_trace_tickets_per_s", "load_200_rules_ms"):
        assert figures[key] > 0, key
    assert "native evaluator" in run.stdout.splitlines()[0]
    assert "rules/ by generated Python (no C), no trace" in run.stdout
