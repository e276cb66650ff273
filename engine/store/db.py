"""Engine creation and schema upgrades (Alembic) for SQLite and PostgreSQL.

`Store.open()` brings an empty or older database to the code's schema and refuses a database that
a newer ticketflow has already upgraded, rather than running against tables it does not know.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaTooNew(RuntimeError):
    pass


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> "Store":
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30})
            # WAL lets the CLI read while the worker writes; busy timeout covers several workers.
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        store = cls(engine)
        store.check_schema(upgrade=upgrade)
        return store

    def check_schema(self, *, upgrade: bool) -> None:
        cfg = _alembic_config(self.engine)
        script = ScriptDirectory.from_config(cfg)
        known = {rev.revision for rev in script.walk_revisions()}
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in known:
            raise SchemaTooNew(
                f"database schema revision {current} is newer than this ticketflow "
                f"(knows up to {script.get_current_head()}); upgrade ticketflow"
            )
        if upgrade and current != script.get_current_head():
            command.upgrade(cfg, "head")

    def session(self) -> Session:
        return Session(self.engine)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
