"""Hot reload of the rules: a file watch (polling the rules directory) and SIGHUP.

A changed ruleset is validated before anything uses it. A broken edit is never used: the worker
keeps the last good version and logs every error, then tries again on the next change. New tickets
pin the active version; open tickets keep the version they were pinned to.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from engine.activities.triage import RulesetRegistry
from engine.ruleset import RulesetError

log = logging.getLogger("ticketflow.rules")


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    out = []
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:  # removed between glob and stat: the next poll sees it gone
            continue
        out.append((f.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


class RulesWatcher:
    def __init__(self, registry: RulesetRegistry, directory: Path, interval: float = 1.0) -> None:
        self.registry = registry
        self.directory = directory
        self.interval = interval
        self._seen = fingerprint(directory)
        self._wake = asyncio.Event()

    def reload_now(self) -> None:
        self._wake.set()

    def check(self, force: bool = False) -> bool:
        """Reload if the files changed (or `force`); True when a new version became active."""
        current = fingerprint(self.directory)
        if current == self._seen and not force:
            return False
        self._seen = current
        before = self.registry.active.version
        try:
            ruleset = self.registry.reload(self.directory)
        except RulesetError as err:
            log.error(
                "rules in %s are invalid; keeping version %s (%d error(s)):\n%s",
                self.directory, before, len(err.issues), "\n".join(f"  {i}" for i in err.issues),
            )
            return False
        if ruleset.version == before:
            log.info("rules in %s changed but the ruleset is the same (version %s)", self.directory, before)
            return False
        log.warning("rules reloaded: version %s is active (was %s); open tickets keep their version", ruleset.version, before)
        return True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self.reload_now)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests) or no SIGHUP
            pass
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                    forced = True
                except asyncio.TimeoutError:
                    forced = False
                self._wake.clear()
                self.check(force=forced)
        finally:
            try:
                loop.remove_signal_handler(signal.SIGHUP)
            except (NotImplementedError, RuntimeError):
                pass
