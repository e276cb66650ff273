"""Prometheus metrics of a ticketflow worker (prometheus-client), and where each one is counted.

A worker serves these on its metrics port (`--metrics-port`, default 9464; 0 disables); the
Temporal SDK's own metrics (task latencies, poller counts, sticky cache ...) are a separate
endpoint (`--sdk-metrics-port`) fed by the SDK runtime. Label values are bounded vocabularies
(channel, priority, category, team, tier, SLA metric and policy, rule group and rule id, survey
kind, activity type): never a ticket, customer or agent id.

Why the counts are exact although activities retry and workflows replay: nothing here is counted
in workflow code (which replays). Each count sits at a place that runs once per real change:

- The ticket projection (`engine.activities.projection`) inserts only the journal rows the store
  does not have yet ((ticket, seq) is unique) and only a survey answer it does not have yet
  ((ticket, resolution) is unique). It counts from the rows *its own committed transaction*
  inserted, after the commit: a retried or concurrent projection of the same update inserts
  nothing and counts nothing, and a replayed workflow does not run the local activity at all (its
  result is in history). From those rows:
    ticketflow_tickets_opened_total / _resolved_total / _closed_total   stage receive / resolve / close
    ticketflow_reopens_total                                            stage reopen
    ticketflow_escalations_total{tier}                                  stage escalate:<tier>
    ticketflow_first_response_seconds, ..._business_seconds             the first time the row gets a
                                                                        first response (wall: from opening;
                                                                        business: the SLA clock's elapsed
                                                                        business time, pauses excluded)
    ticketflow_resolution_seconds, ..._business_seconds                 each resolve stage row
    ticketflow_sla_breaches_total{metric,policy}                        a clock's breached_at the stored row
                                                                        did not have (a new breach)
    ticketflow_surveys_answered_total, ticketflow_survey_score          the survey answer row inserted
- Assignment (`engine.activities.assignment`) counts after the commit that took an agent's slot:
  a retried activity finds the ticket's assignment row and returns it without committing, so it
  counts nothing. ticketflow_assignments_total{strategy,team}; ticketflow_queue_wait_seconds when
  that commit also removed the ticket from its team's queue; ticketflow_tickets_queued_total when a
  queue row was inserted.
- Messaging (`engine.activities.messaging`) counts an outbox row only when its insert committed
  (the idempotency key is unique): ticketflow_messages_sent_total, ticketflow_surveys_sent_total.
- Rule evaluation (`engine.activities.triage`) is a local activity: replay reads its result from
  history and does not run it, but a retry (or a workflow task that failed after it ran) runs it
  again. Each execution is real work, so ticketflow_rule_evaluations_total,
  ticketflow_rule_evaluation_seconds and ticketflow_rule_matches_total count executions.
  ticketflow_sla_warnings_total is counted there too, when the escalation group is evaluated for a
  warning (the workflow journals no warning row to count from); it can only over-count in that
  rare re-execution case, which the docs say.
- ticketflow_activity_failures_total{activity,error}: every failed attempt of an activity or local
  activity (a worker interceptor), so retries are visible rather than hidden.
- Gauges read from the store at scrape time (cached a few seconds): ticketflow_queue_length,
  ticketflow_queue_oldest_seconds, ticketflow_backlog_tickets, ticketflow_ruleset_active. Every
  worker reports the same store, so dashboards take `max`, not `sum`, of these.

`current()` is the set in use (on prometheus_client's default registry); tests call
`use_registry(CollectorRegistry())` for a fresh one and read it back with `sample()`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

log = logging.getLogger("ticketflow.metrics")

# `*_created` series double the exposition and nobody here graphs them.
disable_created_metrics()

# Seconds, from a fast chat answer to a fortnight-long case.
DURATION_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 259200,
                    604800, 1209600, 2592000)
QUEUE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400)
EVAL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# One bucket per score, so CSAT's distribution and NPS (detractors <= 6, passives <= 8) are bucket
# differences: NPS = 100 * (count - 2 * bucket{le="6"} - (bucket{le="8"} - bucket{le="6"})) / count.
SCORE_BUCKETS = tuple(float(n) for n in range(0, 11))

BACKLOG_STATUSES = ("received", "triaged", "assigned", "open", "pending_customer", "on_hold")
DONE_STATUSES = ("resolved", "surveying", "closed")


def _label(value: Any) -> str:
    """A bounded label value: empty / None become "none"; long values are cut."""
    if value is None or value == "":
        return "none"
    return str(value)[:64]


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    # SQLite (and PostgreSQL `timestamp without time zone`) hand back naive values; the engine
    # writes UTC everywhere.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _seconds(start: datetime | str | None, end: datetime | str | None) -> float | None:
    s, e = _utc(start), _utc(end)
    if s is None or e is None:
        return None
    return max(0.0, (e - s).total_seconds())


def _never_fails(fn: Callable[..., None]) -> Callable[..., None]:
    """Counting must never fail the work it counts (a projection already committed, a message
    already sent): a bug here is logged, not raised into the activity."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:  # noqa: BLE001
            log.exception("metrics: %s failed", fn.__name__)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@dataclass(frozen=True)
class StoredTicket:
    """What the projection's row held before this update (None fields for a new row)."""

    had_first_response: bool = False
    sla: dict | None = None


class TicketflowMetrics:
    """Every ticketflow metric, registered on one registry, with the recording helpers the
    activities call (they keep label handling here, so call sites stay one line)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def counter(name: str, doc: str, labels: Iterable[str]) -> Counter:
            return Counter(name, doc, list(labels), registry=registry)

        def histogram(name: str, doc: str, labels: Iterable[str], buckets: tuple) -> Histogram:
            return Histogram(name, doc, list(labels), buckets=buckets, registry=registry)

        ticket = ("channel", "priority", "category")
        self.tickets_opened = counter("ticketflow_tickets_opened", "Tickets opened (receive stage projected).", ticket)
        self.tickets_resolved = counter("ticketflow_tickets_resolved", "Resolutions (resolve stage projected; a reopened ticket resolved again counts again).", ticket)
        self.tickets_closed = counter("ticketflow_tickets_closed", "Tickets closed (close stage projected).", ticket)
        self.reopens = counter("ticketflow_reopens", "Tickets reopened after a resolution.", ("channel", "category"))
        self.escalations = counter("ticketflow_escalations", "Moves up an escalation tier (senior, other_department, management).", ("tier",))
        self.first_response = histogram("ticketflow_first_response_seconds", "Wall time from opening to the first agent reply.", ("channel", "priority"), DURATION_BUCKETS)
        self.first_response_business = histogram("ticketflow_first_response_business_seconds", "Business time (SLA calendar, pauses excluded) to the first agent reply.", ("channel", "priority"), DURATION_BUCKETS)
        self.resolution = histogram("ticketflow_resolution_seconds", "Wall time from opening to a resolution.", ("channel", "priority"), DURATION_BUCKETS)
        self.resolution_business = histogram("ticketflow_resolution_business_seconds", "Business time (SLA calendar, pauses excluded) from opening to a resolution.", ("channel", "priority"), DURATION_BUCKETS)
        self.sla_warnings = counter("ticketflow_sla_warnings", "SLA warnings (a clock reached a warning fraction of its target).", ("metric", "policy", "threshold"))
        self.sla_breaches = counter("ticketflow_sla_breaches", "SLA breaches (a clock passed its target).", ("metric", "policy"))
        self.assignments = counter("ticketflow_assignments", "Tickets given to an agent, by routing strategy and team.", ("strategy", "team"))
        self.queued = counter("ticketflow_tickets_queued", "Tickets put in a team's queue because nobody could take them.", ("team",))
        self.queue_wait = histogram("ticketflow_queue_wait_seconds", "Time a ticket waited in its team's queue before an agent took it.", ("team",), QUEUE_BUCKETS)
        self.messages_sent = counter("ticketflow_messages_sent", "Outbox messages delivered (once per idempotency key).", ("kind", "channel"))
        self.surveys_sent = counter("ticketflow_surveys_sent", "Satisfaction surveys sent.", ("channel",))
        self.surveys_answered = counter("ticketflow_surveys_answered", "Satisfaction surveys answered.", ("kind", "channel"))
        self.survey_score = histogram("ticketflow_survey_score", "Survey scores (csat 1-5, nps 0-10); one bucket per score.", ("kind",), SCORE_BUCKETS)
        self.rule_evaluations = counter("ticketflow_rule_evaluations", "Rule group evaluations (each execution of the local activity).", ("group",))
        self.rule_evaluation_seconds = histogram("ticketflow_rule_evaluation_seconds", "Time to evaluate the groups of one request together on one snapshot.", ("groups",), EVAL_BUCKETS)
        self.rule_matches = counter("ticketflow_rule_matches", "Deciding rule of each evaluation (rule \"none\": nothing matched).", ("group", "rule"))
        self.activity_failures = counter("ticketflow_activity_failures", "Failed activity attempts (each retry that fails counts).", ("activity", "error"))

    # ---- recording helpers -----------------------------------------------------------------

    @_never_fails
    def projected(self, u: Any, new_events: list[Any], answer_inserted: bool, before: StoredTicket) -> None:
        """Count what one committed projection added. `u` is the ProjectionUpdate, `new_events` the
        journal entries this transaction inserted, `before` what the stored row already had."""
        channel, priority, category = _label(u.channel), _label(u.priority), _label(u.category)
        sla = u.sla or {}
        resolves = [e for e in new_events if e.kind == "stage" and e.data.get("stage") == "resolve"]
        for e in new_events:
            if e.kind != "stage":
                continue
            stage = str(e.data.get("stage", ""))
            if stage == "receive":
                self.tickets_opened.labels(channel, priority, category).inc()
            elif stage == "resolve":
                self.tickets_resolved.labels(channel, priority, category).inc()
                wall = _seconds(u.opened_at, e.at)
                if wall is not None:
                    self.resolution.labels(channel, priority).observe(wall)
                # The clock's elapsed time is this resolution's only while the ticket still stands
                # resolved (a reopen in the same batch resumed it).
                clock = sla.get("resolution")
                if clock and e is resolves[-1] and u.status in DONE_STATUSES and u.resolved_at == e.at:
                    self.resolution_business.labels(channel, priority).observe(float(clock.get("elapsed_seconds") or 0))
            elif stage == "close":
                self.tickets_closed.labels(channel, priority, category).inc()
            elif stage == "reopen":
                self.reopens.labels(channel, category).inc()
            elif stage.startswith("escalate:"):
                self.escalations.labels(_label(stage.split(":", 1)[1])).inc()
        if u.first_response_at and not before.had_first_response:
            wall = _seconds(u.opened_at, u.first_response_at)
            if wall is not None:
                self.first_response.labels(channel, priority).observe(wall)
            clock = sla.get("first_response")
            if clock:
                self.first_response_business.labels(channel, priority).observe(float(clock.get("elapsed_seconds") or 0))
        old = before.sla or {}
        for metric, clock in sla.items():
            breached = (clock or {}).get("breached_at")
            if breached and breached != (old.get(metric) or {}).get("breached_at"):
                self.sla_breaches.labels(_label(metric), _label(u.sla_policy)).inc()
        if answer_inserted and u.survey is not None and u.survey.score is not None:
            kind = _label(u.survey.kind)
            self.surveys_answered.labels(kind, channel).inc()
            self.survey_score.labels(kind).observe(u.survey.score)

    @_never_fails
    def evaluated(self, groups: list[str], seconds: float, rule_ids: list[str]) -> None:
        """One evaluation request: its groups (in order), evaluated together in `seconds`, and
        each group's deciding rule ("" when nothing matched)."""
        self.rule_evaluation_seconds.labels(_label(",".join(groups))).observe(seconds)
        for group, rule_id in zip(groups, rule_ids):
            self.rule_evaluations.labels(_label(group)).inc()
            self.rule_matches.labels(_label(group), _label(rule_id)).inc()

    @_never_fails
    def sla_warning(self, snapshot: dict[str, Any]) -> None:
        """The escalation group was evaluated for an SLA warning (its snapshot says which)."""
        threshold = snapshot.get("sla.threshold")
        self.sla_warnings.labels(_label(snapshot.get("sla.metric")), _label(snapshot.get("sla_policy")),
                                 _label(f"{float(threshold):g}" if isinstance(threshold, (int, float)) else threshold)).inc()

    @_never_fails
    def assigned(self, team: str, strategy: str, queued_at: datetime | None = None, now: datetime | None = None) -> None:
        self.assignments.labels(_label(strategy), _label(team)).inc()
        if queued_at is not None:
            waited = _seconds(queued_at, now or datetime.now(timezone.utc))
            if waited is not None:
                self.queue_wait.labels(_label(team)).observe(waited)

    @_never_fails
    def ticket_queued(self, team: str) -> None:
        self.queued.labels(_label(team)).inc()

    @_never_fails
    def message_sent(self, kind: str, channel: str) -> None:
        self.messages_sent.labels(_label(kind), _label(channel)).inc()
        if kind == "survey":
            self.surveys_sent.labels(_label(channel)).inc()

    @_never_fails
    def activity_failed(self, activity_type: str, error: str) -> None:
        self.activity_failures.labels(_label(activity_type), _label(error)).inc()


# ---- the set in use ------------------------------------------------------------------------

_lock = threading.Lock()
_sets: "weakref.WeakKeyDictionary[CollectorRegistry, TicketflowMetrics]" = weakref.WeakKeyDictionary()
_current: TicketflowMetrics | None = None


def use_registry(registry: CollectorRegistry | None = None) -> TicketflowMetrics:
    """Record into `registry` from now on (default: a fresh CollectorRegistry, for tests); the
    metrics of a registry are created once, so switching back to one keeps its counts."""
    global _current
    registry = registry if registry is not None else CollectorRegistry()
    with _lock:
        found = _sets.get(registry)
        if found is None:
            found = _sets[registry] = TicketflowMetrics(registry)
        _current = found
    return found


def current() -> TicketflowMetrics:
    """The metrics in use: on prometheus_client's default registry unless `use_registry` said otherwise."""
    return _current if _current is not None else use_registry(REGISTRY)


def sample(name: str, labels: dict[str, str] | None = None, registry: CollectorRegistry | None = None) -> float:
    """One sample's value (0 when absent): `sample("ticketflow_tickets_opened_total", {...})`."""
    value = (registry or current().registry).get_sample_value(name, labels or {})
    return value or 0.0


def metric_names() -> set[str]:
    """Every sample name this module can expose (what dashboards and alert rules may use)."""
    fresh = TicketflowMetrics(CollectorRegistry())
    names: set[str] = set()
    for family in fresh.registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    names.update(f.name for f in StoreCollector.describe_families())
    return names


# ---- gauges read from the store at scrape time ----------------------------------------------


class StoreCollector(Collector):
    """Queue length and age, backlog and the active ruleset, read from the store when scraped.

    One per registry; `attach` points it at the store of the worker that runs now. Results are
    cached for `ttl` seconds so a busy Prometheus does not turn into database load; a store that
    cannot be read leaves these gauges out of that scrape (and logs why) instead of failing it.
    """

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._store: Any = None
        self._version: Callable[[], str] | None = None
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def attach(self, store: Any, ruleset_version: Callable[[], str] | None = None) -> None:
        with self._lock:
            self._store, self._version, self._cached = store, ruleset_version, None

    def detach(self, store: Any) -> None:
        with self._lock:
            if self._store is store:
                self._store, self._version, self._cached = None, None, None

    @staticmethod
    def describe_families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("ticketflow_queue_length", "Tickets waiting in a team's queue (from the store).", labels=["team"]),
            GaugeMetricFamily("ticketflow_queue_oldest_seconds", "Age of the oldest ticket in a team's queue.", labels=["team"]),
            GaugeMetricFamily("ticketflow_backlog_tickets", "Unresolved tickets in the store, by priority and status.", labels=["priority", "status"]),
            GaugeMetricFamily("ticketflow_ruleset_active", "1 for the ruleset version new tickets get on this worker.", labels=["version"]),
        ]

    def describe(self) -> list[GaugeMetricFamily]:
        return self.describe_families()

    def collect(self) -> list[GaugeMetricFamily]:
        with self._lock:
            store, version = self._store, self._version
            cached = self._cached
        if store is None:
            return []
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            families = self._read(store, version)
        except Exception as exc:  # a scrape must not fail because the database blinked
            log.warning("metrics: cannot read queue and backlog from the store: %s", str(exc).splitlines()[0] if str(exc) else exc)
            return []
        with self._lock:
            if self._store is store:
                self._cached = (time.monotonic(), families)
        return families

    def _read(self, store: Any, version: Callable[[], str] | None) -> list[GaugeMetricFamily]:
        from sqlalchemy import func
        from sqlmodel import select

        from engine.store.tables import QueuedTicket, TicketRow

        length, oldest, backlog, active = self.describe_families()
        now = datetime.now(timezone.utc)
        with store.session() as s:
            for team, count, first in s.exec(select(QueuedTicket.team, func.count(), func.min(QueuedTicket.queued_at))
                                             .group_by(QueuedTicket.team)).all():
                length.add_metric([_label(team)], count)
                oldest.add_metric([_label(team)], _seconds(first, now) or 0.0)
            for priority, status, count in s.exec(select(TicketRow.priority, TicketRow.status, func.count())
                                                  .where(TicketRow.status.in_(BACKLOG_STATUSES))  # type: ignore[attr-defined]
                                                  .group_by(TicketRow.priority, TicketRow.status)).all():
                backlog.add_metric([_label(priority), _label(status)], count)
        if version is not None:
            try:
                active.add_metric([_label(version())], 1)
            except Exception:  # noqa: BLE001 - no active version is not worth failing a scrape
                pass
        return [length, oldest, backlog, active]


_collectors: "weakref.WeakKeyDictionary[CollectorRegistry, StoreCollector]" = weakref.WeakKeyDictionary()


def store_collector(registry: CollectorRegistry | None = None) -> StoreCollector:
    """The registry's store collector, registered on first use."""
    registry = registry if registry is not None else current().registry
    with _lock:
        found = _collectors.get(registry)
        if found is None:
            found = _collectors[registry] = StoreCollector()
            registry.register(found)
    return found


# ---- activity failures ---------------------------------------------------------------------


class _CountFailures(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except BaseException as exc:
            try:
                name = activity.info().activity_type
            except RuntimeError:
                name = getattr(input.fn, "__name__", "unknown")
            current().activity_failed(name, type(exc).__name__)
            raise


class MetricsInterceptor(Interceptor):
    """Worker interceptor counting every failed activity attempt (local activities included)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountFailures(next)


# ---- endpoints -----------------------------------------------------------------------------


class PortInUse(RuntimeError):
    pass


def _check_port(addr: str, port: int, what: str, flag: str) -> None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((addr, port))
        except OSError as exc:
            raise PortInUse(f"{what} port {addr}:{port} is not available ({exc.strerror}); "
                            f"pass {flag} with another port, or {flag} 0 to turn them off") from None


def start_metrics_server(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry | None = None) -> Any:
    """Serve /metrics on addr:port in a daemon thread; returns the server (`.shutdown()` stops it,
    `.server_address` says where it listens — port 0 picks a free one)."""
    from prometheus_client import start_http_server

    registry = registry if registry is not None else current().registry
    if port:
        _check_port(addr, port, "metrics", "--metrics-port")
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server


def sdk_runtime(port: int, addr: str = "0.0.0.0") -> Any:
    """A Temporal runtime exporting the SDK's metrics for Prometheus on addr:port; a client made
    with it (`engine.temporal.connect(..., runtime=)`) and the workers on that client report there."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    _check_port(addr, port, "Temporal SDK metrics", "--sdk-metrics-port")
    host = f"[{addr}]" if ":" in addr else addr
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}")))
