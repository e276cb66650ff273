"""1,000 tickets assigned from 4 processes at once against PostgreSQL: capacity is never exceeded
at any moment, every ticket ends assigned or queued, and load counts match the assignments."""

from __future__ import annotations

import multiprocessing as mp
import random
import threading
import time
from collections import Counter

from sqlalchemy import create_engine, text

from engine.agents import Agent, Directory, Team
from engine.models import AssignmentRequest
from engine.store import Store
from engine.store.directory import import_directory
from tests.conftest import fresh_postgres

TICKETS, PROCESSES = 1000, 4
CLOSED_SHIFT = {"name": "nights", "tz": "UTC", "hours": {"sun": [["00:00", "00:01"]]}, "holidays": []}


def directory() -> Directory:
    rng = random.Random(7)
    agents = {}
    for i in range(20):
        agents[f"a{i:02d}"] = Agent(
            id=f"a{i:02d}", name=f"Agent {i}", team="pool",
            languages=("zh", "en") if i % 3 == 0 else (("zh",) if i % 3 == 1 else ("en",)),
            skills=tuple(s for s in ("billing", "delivery", "product") if rng.random() < 0.5),
            tier="senior" if i % 5 == 0 else "agent",
            max_open=rng.choice([5, 10, 20, 40, 60]),
            status="away" if i == 19 else "online",
            shift=CLOSED_SHIFT if i == 18 else None,  # off shift now: must get nothing
        )
    return Directory(teams={"pool": Team("pool", "Pool", "a00")}, agents=agents)


def _assign_batch(url: str, first: int, count: int, results) -> None:
    from engine.activities.assignment import AssignmentActivities

    store = Store.open(url, upgrade=False)
    acts = AssignmentActivities(store)
    rng = random.Random(first)
    out = []
    for n in range(first, first + count):
        req = AssignmentRequest(
            ticket_id=f"T{n:04d}", team="pool", language=rng.choice(["zh", "en"]),
            skills=[rng.choice(["billing", "delivery", "product"])] if rng.random() < 0.5 else [],
            strategy=rng.choice(["least_loaded", "round_robin"]),
        )
        out.append((req.ticket_id, acts.assign(req).agent))
    results.put(out)


def test_thousand_tickets_four_processes_no_capacity_exceeded():
    with fresh_postgres() as url:
        store = Store.open(url)
        d = directory()
        import_directory(store, d)
        # Sample the load from outside while the processes assign.
        violations: list[tuple] = []
        samples = 0
        stop = threading.Event()

        def watch() -> None:
            nonlocal samples
            eng = create_engine(url)
            with eng.connect() as conn:
                while not stop.is_set():
                    rows = conn.execute(text("SELECT id, open_count, max_open FROM agent WHERE open_count > max_open OR open_count < 0")).all()
                    violations.extend(rows)
                    conn.commit()
                    samples += 1
            eng.dispose()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        per = TICKETS // PROCESSES
        procs = [ctx.Process(target=_assign_batch, args=(url, i * per, per, results)) for i in range(PROCESSES)]
        started = time.monotonic()
        for p in procs:
            p.start()
        outcomes = []
        for _ in procs:
            outcomes.extend(results.get(timeout=300))
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        elapsed = time.monotonic() - started
        stop.set()
        watcher.join(10)

        assert violations == [], f"capacity exceeded: {violations[:5]}"
        assert samples > 10
        with store.engine.connect() as conn:
            active = dict(conn.execute(text("SELECT ticket_id, agent FROM assignment WHERE active")).all())
            queued = {r[0] for r in conn.execute(text("SELECT ticket_id FROM queued_ticket")).all()}
            loads = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT id, open_count, max_open FROM agent")).all()}
        assert len(outcomes) == TICKETS
        assert set(active) | queued == {f"T{n:04d}" for n in range(TICKETS)} and not (set(active) & queued)
        per_agent = Counter(active.values())
        for agent, (open_count, max_open) in loads.items():
            assert open_count == per_agent.get(agent, 0) <= max_open, agent
        assert per_agent.get("a18", 0) == 0 and per_agent.get("a19", 0) == 0  # off shift, away
        capacity = sum(a.max_open for a in d.agents.values() if a.id not in ("a18", "a19"))
        print(f"\n{TICKETS} tickets from {PROCESSES} processes in {elapsed:.1f}s: {len(active)} assigned, "
              f"{len(queued)} queued; usable capacity {capacity}; {samples} load samples, 0 over capacity")
        for agent in sorted(loads):
            open_count, max_open = loads[agent]
            print(f"  {agent} {'/'.join(d.agents[agent].languages):5} {','.join(d.agents[agent].skills) or '-':22} "
                  f"{open_count:3}/{max_open:<3} {'#' * open_count}")
