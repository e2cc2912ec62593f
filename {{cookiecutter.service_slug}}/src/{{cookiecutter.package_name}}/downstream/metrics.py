"""Prometheus metrics for every downstream, correct with one worker or several.

With several worker processes ``__main__`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before anything imports prometheus_client, so counters and histograms are summed
across workers at scrape time and gauges use ``livesum``/``livemax`` (dead workers drop out).
Labelled children are bound once per downstream, so a call pays no label lookup.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from .pool_stats import PoolStats

# Call outcome -> the coarse label Prometheus users alert on.
OUTCOME_OF_REASON = {
    "ok": "ok",
    "shed": "shed",
    "pool_exhausted": "shed",
    "retry_budget": "shed",
    "breaker_open": "open",
    "timeout": "timeout",
    "bad_gateway": "error",
    "bad_body": "error",
    "throttled": "error",
    "error": "error",
    "unsafe_path": "error",
    "cancelled": "cancelled",  # the caller went away (client disconnect, a TaskGroup sibling)
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POOL_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)

CALLS = Counter("downstream_calls", "Downstream calls by outcome", ["downstream", "outcome"])
LATENCY = Histogram(
    "downstream_call_duration_seconds",
    "Downstream call duration, retries included",
    ["downstream"],
    buckets=LATENCY_BUCKETS,
)
POOL_WAIT = Histogram(
    "downstream_pool_wait_seconds",
    "Time an attempt waited for a pooled connection (when pool-wait tracing is on)",
    ["downstream"],
    buckets=POOL_WAIT_BUCKETS,
)
CONNECTIONS = Gauge(
    "downstream_pool_connections",
    "Pooled connections by state",
    ["downstream", "state"],
    multiprocess_mode="livesum",
)
IN_FLIGHT = Gauge(
    "downstream_in_flight_calls",
    "Calls admitted and not finished",
    ["downstream"],
    multiprocess_mode="livesum",
)
QUEUED = Gauge(
    "downstream_bulkhead_queued_calls",
    "Calls waiting for a bulkhead slot",
    ["downstream"],
    multiprocess_mode="livesum",
)
CONCURRENCY_LIMIT = Gauge(
    "downstream_concurrency_limit",
    "The bulkhead's width now: MAX_CONCURRENCY, or where the adaptive limit has set it",
    ["downstream"],
    multiprocess_mode="livesum",
)
BREAKER_OPEN = Gauge(
    "downstream_breaker_open",
    "1 while the circuit breaker is open or half-open (in any worker)",
    ["downstream"],
    multiprocess_mode="livemax",
)
BREAKER_TRANSITIONS = Counter(
    "downstream_breaker_transitions", "Circuit breaker state changes", ["downstream", "to_state"]
)
RETRIES = Counter("downstream_retries", "Retries by reason", ["downstream", "reason"])
BUDGET_EXHAUSTED = Counter(
    "downstream_retry_budget_exhausted", "Retries refused by the retry budget", ["downstream"]
)
RETRY_THROTTLED = Counter(
    "downstream_retry_throttled",
    "Retries refused because the downstream kept failing (retry tokens)",
    ["downstream"],
)
LEAKS = Counter(
    "downstream_responses_leaked", "Streamed responses not closed in time", ["downstream", "kind"]
)
ORPHANS_REPAIRED = Counter(
    "downstream_orphan_connections_repaired",
    "Pool connections a cancelled call left stuck (httpcore 1.0.9), repaired",
    ["downstream"],
)

HEDGES = Counter(
    "downstream_hedges",
    "Hedged attempts sent, by which answered first (won: the hedge, lost: the first attempt)",
    ["downstream", "result"],
)
HEDGES_SKIPPED = Counter(
    "downstream_hedges_skipped",
    "Slow calls not hedged: budget spent, breaker not closed, bulkhead full, deadline too near",
    ["downstream", "reason"],
)
HEDGE_RESULTS = ("won", "lost", "failed")
HEDGE_SKIP_REASONS = ("budget", "breaker", "bulkhead", "deadline")


class DownstreamMetrics:
    """The metric children of one downstream."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = {
            reason: CALLS.labels(name, outcome) for reason, outcome in OUTCOME_OF_REASON.items()
        }
        self.latency = LATENCY.labels(name)
        self.pool_wait = POOL_WAIT.labels(name)
        self.connections = {
            state: CONNECTIONS.labels(name, state) for state in ("connecting", "active", "idle")
        }
        self.in_flight = IN_FLIGHT.labels(name)
        self.queued = QUEUED.labels(name)
        self.concurrency_limit = CONCURRENCY_LIMIT.labels(name)
        self.breaker_open = BREAKER_OPEN.labels(name)
        self.budget_exhausted = BUDGET_EXHAUSTED.labels(name)
        self.retry_throttled = RETRY_THROTTLED.labels(name)
        self.orphans_repaired = ORPHANS_REPAIRED.labels(name)
        self.hedges = {result: HEDGES.labels(name, result) for result in HEDGE_RESULTS}
        self.hedges_skipped = {
            reason: HEDGES_SKIPPED.labels(name, reason) for reason in HEDGE_SKIP_REASONS
        }

    def transition(self, to_state: str) -> None:
        BREAKER_TRANSITIONS.labels(self.name, to_state).inc()
        self.breaker_open.set(0 if to_state in ("closed", "disabled", "metrics_only") else 1)

    def retry(self, reason: str) -> None:
        RETRIES.labels(self.name, reason).inc()

    def leak(self, kind: str) -> None:
        LEAKS.labels(self.name, kind).inc()

    def pool(self, stats: PoolStats, in_flight: int, queued: int) -> None:
        self.connections["connecting"].set(stats.connecting)
        self.connections["active"].set(stats.active)
        self.connections["idle"].set(stats.idle)
        self.in_flight.set(in_flight)
        self.queued.set(queued)
