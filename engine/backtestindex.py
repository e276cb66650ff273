"""The backtest index: what `rules backtest --dir DIR` needs of each exported history, extracted
once into `DIR/.ticketflow-backtest.jsonl`, so that backtesting the next candidate ruleset over the
same export reads one small file instead of every history.

Auditors export once and backtest many candidates. Reading a history (whole-file JSON, decoding the
ticket's final state) costs milliseconds; what the comparison reads of it is small
(engine.ruleset.backtest.Recorded): the raw snapshot of the opening event and what build_snapshot
adds to it (sentiment scored once), the first recorded decision per compared field, the breaches
recorded and those under an unchanged policy, and the SLA events, targets and `until` for the
tickets whose candidate policy differs. Nothing of any candidate ruleset is stored.

Validity: an entry stands for one history file with its name, size and mtime_ns; the header names
the format and two code versions, hashes of the source the entries were computed with (decoding,
raw snapshot, SLA clock and calendar, the tz database) and of what built the stored snapshots
(fields.py, the sentiment lexicon). A changed, added or removed history re-extracts or drops just
its entry; other code re-extracts every entry, another lexicon rebuilds only the snapshots, from the
stored raw input. The file is written whole to a temporary name and renamed, so a reader never sees
half of it; it carries a CRC, and an unreadable index is rebuilt with a one-line warning. An index
that cannot be written (a read-only export) only means the next run does the same work again.

The file, one JSON value per line:

    {"index": "ticketflow-backtest", "format": 6, "version": V, "snapshot_version": S,
     "crc": CRC-32 of everything after this line}
    {"policies": {KEY: policy, ...}}
    [ENTRY, ENTRY, ...]                  one per history, in file-name order
    CLOCK                                one line per entry, in the same order

ENTRY is [file, size, mtime_ns, ticket_id, raw, decisions ([value, rule] per compared field, in
backtest.FIELDS order), breaches, same_policy_breaches, targets KEY, SNAPSHOT (what build_snapshot
adds, or null), the SNAPSHOT keys holding references, number of SLA events, stage inputs (group ->
fields its stage saw beyond the opening input, backtest.stage_inputs)]. A string of SNAPSHOT that is
raw strings joined by newlines is stored as {"\\n": [raw keys]} (the ticket's text, from its subject
and body), and in a tuple, {"=": k} stands for the string the snapshot holds under k: the text is
not stored again. CLOCK, decoded only by a backtest that must recompute that ticket's clock, is
{"events": [[kind, at, status, policy KEY or null], ...], "until": ISO time}. A policy (hundreds of
bytes with its calendar) is shared by many tickets, so it is stored once, under its policy_key. The
entries are one JSON array because one parse of it costs about half as much as a parse per entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from engine.models import SlaEvent
from engine.ruleset.backtest import Recorded, gc_paused, policy_key, recorded_of
from engine.ruleset.fields import build_snapshot

INDEX_NAME = ".ticketflow-backtest.jsonl"
FORMAT = 6
_KIND = "ticketflow-backtest"
_WIDTH = 13  # items in an ENTRY

# The code an entry's content comes from. Editing any of these re-extracts the entries on the next
# run: missing one here would silently compare against stale data, an extra one costs a cold run.
_EXTRACT_MODULES = ("engine.models", "engine.intake", "engine.pasttickets", "engine.sla", "engine.calendar",
                    "engine.ruleset.backtest", __name__)
_SNAPSHOT_MODULES = ("engine.ruleset.fields", "engine.ruleset.sentiment")


@dataclass
class IndexStats:
    reused: int = 0
    extracted: int = 0  # new or changed histories, read again
    dropped: int = 0  # entries of histories no longer there
    resnapshotted: int = 0  # snapshots built again from the stored raw input (another lexicon)
    written: bool = False


def _tz_version() -> str:
    """The tz database in use: a new one can move business hours, hence recorded breaches."""
    try:
        import tzdata  # type: ignore[import-not-found]

        return "tzdata " + tzdata.IANA_VERSION
    except ImportError:
        pass
    import zoneinfo

    for base in zoneinfo.TZPATH:
        try:
            with open(os.path.join(base, "tzdata.zi"), encoding="utf-8") as f:
                return f.readline().strip()
        except OSError:
            continue
    return ""


def _source_hash(modules: tuple[str, ...], extra: str = "") -> str:
    import importlib

    digest = hashlib.sha256(f"{FORMAT}\n{extra}\n".encode())
    for name in modules:
        path = getattr(importlib.import_module(name), "__file__", None)
        try:
            digest.update(Path(path).read_bytes() if path else os.urandom(16))
        except OSError:  # no source to hash (a frozen build): never trust an old entry
            digest.update(os.urandom(16))
    return digest.hexdigest()[:16]


_versions: tuple[str, str] | None = None


def code_versions() -> tuple[str, str]:
    """(version of the extracted entries, version of the stored snapshots), once per process."""
    global _versions
    if _versions is None:
        _versions = (_source_hash(_EXTRACT_MODULES, _tz_version()), _source_hash(_SNAPSHOT_MODULES))
    return _versions


def _histories(directory: Path) -> list[os.DirEntry[str]]:
    """The `*.json` files sorted by name: the list engine.pasttickets.history_paths reads."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: not a directory")
    with os.scandir(directory) as it:
        files = sorted((e for e in it if e.name.endswith(".json") and e.is_file()), key=lambda e: e.name)
    if not files:
        raise FileNotFoundError(f"{directory}: no exported histories (*.json)")
    return files


# ---------------------------------------------------------------------------------------------
# Entries


class _ClockLines:
    """The CLOCK lines of an index read back, split on first use: a warm backtest whose candidate
    keeps every recorded policy reads none of them, and splitting a thousand costs a millisecond."""

    __slots__ = ("_data", "_lines")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._lines: list[bytes] | None = None

    def line(self, i: int) -> bytes:
        if self._lines is None:
            self._lines = self._data.split(b"\n")
        return self._lines[i]


# A CLOCK: its JSON text, or where it lies in an index read back.
Clock = bytes | tuple[_ClockLines, int]


def _clock_text(clock: Clock) -> bytes:
    return clock if isinstance(clock, bytes) else clock[0].line(clock[1])


@dataclass(slots=True)
class _Entry:
    """One history's part of the index, as written, and the Recorded it stands for."""

    head: list[Any]  # ENTRY
    clock: Clock  # CLOCK
    rec: Recorded


def _snapshot_part(raw: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """SNAPSHOT and its reference keys for this raw input; (None, []) when the JSON round trip would
    not give back the very same snapshot, and that ticket's snapshot is built at each backtest
    instead. Texts are the bulk of the index and of its parse, so a string that is raw strings
    joined by newlines (the ticket's text: subject and body) is stored as {"\\n": [keys]}, and a
    tuple item equal to a string of the snapshot as {"=": key}."""
    snapshot = build_snapshot(raw)
    extra = {k: v for k, v in snapshot.items() if k not in raw or raw[k] != v or type(raw[k]) is not type(v)}
    holder = {v: k for k, v in reversed(snapshot.items()) if isinstance(v, str)}  # string -> first key
    refs = []
    for k, v in extra.items():
        keys = _joined_from(raw, v) if isinstance(v, str) else None
        if keys:
            extra[k] = {"\n": keys}
            refs.append(k)
    for k, v in extra.items():
        if isinstance(v, tuple):
            extra[k] = [{"=": holder[x]} if isinstance(x, str) and x in holder else x for x in v]
            refs.append(k)
    revived = _revive(raw, json.loads(json.dumps(extra, ensure_ascii=False)), refs)
    if revived != snapshot or any(type(revived[k]) is not type(v) for k, v in snapshot.items()):
        return None, []
    return extra, refs


def _joined_from(raw: dict[str, Any], value: str) -> list[str] | None:
    """Keys of raw strings that give `value` joined by newlines (one or two of them), or None."""
    strings = [(k, v) for k, v in raw.items() if isinstance(v, str) and v]
    for k, v in strings:
        if v == value:
            return [k]
    for k, v in strings:
        if value.startswith(v) and value[len(v):len(v) + 1] == "\n":
            rest = value[len(v) + 1:]
            for k2, v2 in strings:
                if v2 == rest:
                    return [k, k2]
    return None


def _revive(raw: dict[str, Any], extra: dict[str, Any], refs: list[str]) -> dict[str, Any]:
    snapshot = raw | extra
    for k in refs:  # joined strings first: tuples may refer to them
        v = snapshot[k]
        if v.__class__ is dict:
            snapshot[k] = "\n".join([raw[x] for x in v["\n"]])
    for k in refs:
        v = snapshot[k]
        if v.__class__ is list:
            snapshot[k] = tuple([snapshot[x["="]] if x.__class__ is dict else x for x in v])
    return snapshot


def _extract(path: Path, stat: os.stat_result, policies: dict[str, Any]) -> _Entry:
    """Read one history (the slow part) and reduce it; its policies go into `policies`."""
    from engine.pasttickets import read_past

    rec = recorded_of(read_past(path), same_policy=True)
    events = []
    for e in rec.sla_events:
        key = policy_key(e.policy) if e.policy else None
        if key:
            policies.setdefault(key, e.policy)
        events.append([e.kind, e.at, e.status, key])
    if rec.targets_key:
        policies.setdefault(rec.targets_key, rec.sla_targets)
    head = [path.name, stat.st_size, stat.st_mtime_ns, rec.ticket_id, rec.raw, [list(d) for d in rec.decisions],
            sorted(rec.breaches), sorted(rec.same_policy_breaches or ()), rec.targets_key,
            *_snapshot_part(rec.raw), len(rec.sla_events), rec.stage_inputs]
    until = rec.until.isoformat() if rec.until else None
    clock = json.dumps({"events": events, "until": until}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _Entry(head, clock, _recorded(head, clock, policies))


_NONE: frozenset[str] = frozenset()


def _recorded(head: list[Any], clock: Clock, policies: dict[str, Any]) -> Recorded:
    # Once per ticket on a warm backtest: positional, shared empties, the clock left as text.
    _, _, _, ticket_id, raw, decisions, breaches, same, targets_key, extra, refs, events, inputs = head
    if inputs.__class__ is not dict:
        raise TypeError("stage inputs are not a mapping")
    rec = Recorded(ticket_id, raw, decisions, frozenset(breaches) if breaches else _NONE,
                   frozenset(same) if same else _NONE, targets_key, not events,
                   _revive(raw, extra, refs) if extra is not None else None, inputs)

    def load_clock() -> tuple[list[SlaEvent], dict[str, Any], datetime]:
        data = json.loads(_clock_text(clock))
        events = [SlaEvent(kind, at, status, policies[key] if key else None) for kind, at, status, key in data["events"]]
        return events, policies[targets_key] if targets_key else {}, datetime.fromisoformat(data["until"])

    rec.load_clock = load_clock
    return rec


# ---------------------------------------------------------------------------------------------
# The file


class _Corrupt(Exception):
    pass


@dataclass
class _Contents:
    entries: dict[str, tuple[list[Any], Clock]]  # file name -> (ENTRY, CLOCK)
    policies: dict[str, Any]
    snapshot_version: str = ""


def _read(index: Path, version: str) -> _Contents:
    """What the index holds; nothing when there is none, or it was written by other code (another
    format or version: nothing in it to trust). Raises _Corrupt for anything else that is not a
    whole, well-formed index."""
    try:
        data = index.read_bytes()
    except FileNotFoundError:
        return _Contents({}, {})
    except OSError as exc:
        raise _Corrupt(exc.strerror or str(exc)) from None
    first, _, body = data.partition(b"\n")
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("index") != _KIND:
        raise _Corrupt("line 1 is not a backtest index header")
    if header.get("format") != FORMAT or header.get("version") != version:
        return _Contents({}, {})
    if header.get("crc") != zlib.crc32(body):
        raise _Corrupt("checksum mismatch")
    try:
        policies_line, heads_line, clock_lines = body.split(b"\n", 2)
        # orjson: the index is read at every backtest and this parse is most of a warm run's reading
        policies = orjson.loads(policies_line)["policies"]
        heads = orjson.loads(heads_line)
        if not isinstance(policies, dict) or not isinstance(heads, list) or clock_lines.count(b"\n") != len(heads):
            raise ValueError("its sections do not match")
        clocks = _ClockLines(clock_lines)
        entries = {}
        for i, head in enumerate(heads):
            if not isinstance(head, list) or len(head) != _WIDTH or not isinstance(head[0], str):
                raise ValueError(f"not an entry: {str(head)[:60]}")
            entries[head[0]] = (head, (clocks, i))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise _Corrupt(str(exc)) from None
    return _Contents(entries, policies, str(header.get("snapshot_version")))


def _write(index: Path, entries: list[_Entry], policies: dict[str, Any], versions: tuple[str, str]) -> None:
    used = {e.head[8] for e in entries}
    for e in entries:
        used.update(ev[3] for ev in json.loads(_clock_text(e.clock))["events"] if ev[3])
    dump = lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")  # noqa: E731
    body = b"\n".join([
        dump({"policies": {k: v for k, v in policies.items() if k in used}}),
        dump([e.head for e in entries]),
        *(_clock_text(e.clock) for e in entries),
        b"",
    ])
    header = dump({"index": _KIND, "format": FORMAT, "version": versions[0], "snapshot_version": versions[1],
                   "crc": zlib.crc32(body)})
    tmp = index.with_name(f"{index.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(header + b"\n" + body)
        os.replace(tmp, index)  # atomic: readers see the old index or the new one, never half
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def indexed(directory: Path, warn: Callable[[str], None] = _warn_stderr) -> tuple[list[Recorded], IndexStats]:
    """Every history of `directory` as a backtest's Recorded, in file-name order, from the index
    where it is still valid; the index is brought up to date (rewritten only if something changed).

    Raises FileNotFoundError (no histories) and ValueError (a history that cannot be read), as
    engine.pasttickets.from_dir does.
    """
    with gc_paused():
        return _indexed(directory, warn)


def _indexed(directory: Path, warn: Callable[[str], None]) -> tuple[list[Recorded], IndexStats]:
    files = _histories(directory)
    index = directory / INDEX_NAME
    versions = code_versions()
    stats = IndexStats()
    try:
        old = _read(index, versions[0])
        rebuild = False
    except _Corrupt as exc:
        warn(f"{index}: unreadable backtest index ({exc}); rebuilding it")
        old, rebuild = _Contents({}, {}), True
    resnapshot = old.snapshot_version != versions[1]  # a lexicon change: cheap to redo from raw
    policies = old.policies
    out: list[_Entry] = []
    misfits: list[str] = []
    for file in files:
        stat = file.stat()
        found = old.entries.get(file.name)
        entry = None
        if found is not None:
            head, clock = found
            if head[1] == stat.st_size and head[2] == stat.st_mtime_ns:
                try:
                    if resnapshot:
                        head[9:11] = _snapshot_part(head[4])
                        stats.resnapshotted += 1
                    entry = _Entry(head, clock, _recorded(head, clock, policies))
                    stats.reused += 1
                except (TypeError, ValueError, IndexError, AttributeError, KeyError):
                    misfits.append(file.name)  # checksummed but of the wrong shape: a hand edit
        if entry is None:
            entry = _extract(Path(file.path), stat, policies)
            stats.extracted += 1
        out.append(entry)
    if misfits:
        warn(f"{index}: {len(misfits)} unreadable entr{'y' if len(misfits) == 1 else 'ies'} "
             f"({misfits[0]}{', ...' if len(misfits) > 1 else ''}); read from the histories again")
    stats.dropped = len(old.entries.keys() - {f.name for f in files})
    if rebuild or stats.extracted or stats.dropped or stats.resnapshotted:
        try:
            _write(index, out, policies, versions)
            stats.written = True
        except OSError as exc:
            warn(f"{index}: cannot write the backtest index ({exc.strerror or exc}); continuing without it")
    return [e.rec for e in out], stats
