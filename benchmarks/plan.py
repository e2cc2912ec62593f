"""What one run measures and for how long: the full plan for `make bench`, a quick one for tests.

Every figure the report prints comes from a plan, so the two modes differ only in sizes, never in
code paths: the smoke test exercises exactly what `make bench` runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    concurrencies: tuple[int, ...]
    repeats: int
    """Rounds of A B C D per scenario; ratios pair the runs of one round."""
    warmup_seconds: float
    """Load before each measured run, discarded: connections opened, caches warm."""
    run_seconds: float
    """Measured window of one run; requests in flight at its end are waited for and counted."""
    slow_concurrency: int
    slow_latency_ms: int
    slow_pool: int
    """LIMITS__MAX_CONNECTIONS and BULKHEAD__MAX_CONCURRENCY of the slow scenario."""
    degrade_concurrency: int
    degrade_latency_ms: int
    degrade_capacity: int
    degrade_pool: int
    degrade_warmup_seconds: float
    """The adaptive limit needs a few windows to settle: each run of this scenario warms longer."""
    memory_requests: tuple[int, int]
    """RSS is read after the first and after the second count of requests."""
    memory_seconds: float
    """Time cap of the memory run: a slow machine reports the count it reached instead."""
    memory_concurrency: int
    micro_calls: int
    micro_rounds: int
    profile_seconds: float
    """py-spy sampling time for each missed load target (0: never profile)."""
    request_timeout: float = 60.0


FULL = Plan(
    name="full",
    concurrencies=(1, 10, 100),
    repeats=3,
    warmup_seconds=0.5,
    run_seconds=3.0,
    slow_concurrency=100,
    slow_latency_ms=50,
    slow_pool=10,
    degrade_concurrency=64,
    degrade_latency_ms=20,
    degrade_capacity=8,
    degrade_pool=32,
    degrade_warmup_seconds=4.0,
    memory_requests=(10_000, 100_000),
    memory_seconds=200.0,
    memory_concurrency=10,
    micro_calls=1_000,
    micro_rounds=12,
    profile_seconds=6.0,
)

QUICK = Plan(
    name="quick",
    concurrencies=(1, 10),
    repeats=1,
    warmup_seconds=0.1,
    run_seconds=0.3,
    slow_concurrency=100,
    slow_latency_ms=50,
    slow_pool=10,
    degrade_concurrency=64,
    degrade_latency_ms=20,
    degrade_capacity=8,
    degrade_pool=32,
    degrade_warmup_seconds=0.5,
    memory_requests=(200, 600),
    memory_seconds=10.0,
    memory_concurrency=10,
    micro_calls=200,
    micro_rounds=2,
    profile_seconds=0.0,
)
