"""Alembic environment: runs migrations on the engine the Store hands over, or, when run as
`alembic upgrade head` from the checkout (alembic.ini), on TICKETFLOW_DB_URL (default: the SQLite
file in TICKETFLOW_DATA_DIR)."""

from alembic import context
from sqlmodel import SQLModel, create_engine

import engine.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from engine.config import Settings

engine = context.config.attributes.get("engine")
if engine is None:
    if context.config.config_file_name:  # run from the alembic command: show what it does
        from logging.config import fileConfig

        fileConfig(context.config.config_file_name)
    url = Settings.from_env().database_url
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
