"""Settings from environment variables and command-line flags (flags win over env, env over defaults).

One place resolves where the Temporal server, the SQL store, the rules and the data dir are, so the
worker, `ticketflow dev` and every client command agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.paths import PROJECT_ROOT

DEFAULT_TASK_QUEUE = "ticketflow"


@dataclass(frozen=True)
class Settings:
    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    data_dir: Path = Path(".ticketflow")
    db_url: str | None = None
    rules_dir: Path = PROJECT_ROOT / "rules"
    agents_file: Path = PROJECT_ROOT / "agents.yaml"
    connectors_file: Path = PROJECT_ROOT / "connectors.yaml"  # how messages leave: docs/connectors.md
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        env = os.environ
        base = cls(
            temporal_address=env.get("TEMPORAL_ADDRESS", cls.temporal_address),
            namespace=env.get("TEMPORAL_NAMESPACE", cls.namespace),
            task_queue=env.get("TICKETFLOW_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            data_dir=Path(env.get("TICKETFLOW_DATA_DIR", ".ticketflow")),
            db_url=env.get("TICKETFLOW_DB_URL") or None,
            rules_dir=Path(env.get("TICKETFLOW_RULES_DIR", str(PROJECT_ROOT / "rules"))),
            agents_file=Path(env.get("TICKETFLOW_AGENTS_FILE", str(PROJECT_ROOT / "agents.yaml"))),
            connectors_file=Path(env.get("TICKETFLOW_CONNECTORS_FILE", str(PROJECT_ROOT / "connectors.yaml"))),
            tls=env.get("TEMPORAL_TLS", "").lower() in ("1", "true", "yes"),
            tls_cert=Path(env["TEMPORAL_TLS_CERT"]) if env.get("TEMPORAL_TLS_CERT") else None,
            tls_key=Path(env["TEMPORAL_TLS_KEY"]) if env.get("TEMPORAL_TLS_KEY") else None,
            api_key=env.get("TEMPORAL_API_KEY") or None,
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in given:
            given["data_dir"] = Path(given["data_dir"])  # type: ignore[arg-type]
        return replace(base, **given)  # type: ignore[arg-type]

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'ticketflow.db').resolve()}"

    @property
    def outbox_log(self) -> Path:
        return self.data_dir / "outbox.log"
