"""Per-downstream settings: pool limits, timeouts, bulkhead, deadline, retry, breaker, TLS, headers.

Set from the environment as ``<PREFIX>DOWNSTREAMS__<NAME>__<GROUP>__<FIELD>``, e.g.
``POOL_SERVICE_DOWNSTREAMS__CATALOG__TIMEOUTS__POOL=0.5``. The validators here refuse, by name, the
configurations that make ``PoolTimeout`` or a hang possible (see the service README's table).
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# The bake's `http2` answer, rendered as a value; HTTP/2 is used over TLS when ALPN picks it.
HTTP2_BY_DEFAULT = {{ "True" if cookiecutter.http2 == "yes" else "False" }}

# What an HTTP/2 server lets one connection carry (hypercorn, nginx and most servers: 100). The pool
# never opens a second HTTP/2 connection to an origin, so this bounds a bulkhead's width over h2.
HTTP2_STREAMS_PER_CONNECTION = 100

#: A breaker's PROBE_PATH: plain segments under the base URL, never "." or "..".
PROBE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+/?")
DOT_SEGMENT = re.compile(r"/\.\.?(/|$)")
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "placeholder", "secret", "xxx", "todo"}
)


class Group(BaseModel):
    """A settings group: unknown fields are typos and are refused, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutSettings(Group):
    """httpx timeouts per attempt, in seconds; each is further capped by the call's deadline."""

    connect: float = Field(default=1.0, gt=0, le=60)
    read: float = Field(default=3.0, gt=0, le=300)
    write: float = Field(default=3.0, gt=0, le=300)
    pool: float = Field(default=0.5, gt=0, le=60)

    @model_validator(mode="after")
    def pool_below_read(self) -> Self:
        if self.pool >= self.read:
            raise ValueError(
                f"POOL ({self.pool}s) must be below READ ({self.read}s): a call should fail fast "
                "when the pool is full, not wait longer than a slow response would"
            )
        return self


class LimitSettings(Group):
    """The connection pool's size; finite by construction (``limits=None`` is never built)."""

    max_connections: int = Field(default=10, ge=1, le=10_000)
    max_keepalive_connections: int = Field(default=10, ge=1, le=10_000)
    keepalive_expiry: float = Field(default=5.0, gt=0, le=3600)

    @model_validator(mode="after")
    def keepalive_within_max(self) -> Self:
        if self.max_keepalive_connections > self.max_connections:
            raise ValueError(
                f"MAX_KEEPALIVE_CONNECTIONS ({self.max_keepalive_connections}) must not exceed "
                f"MAX_CONNECTIONS ({self.max_connections})"
            )
        return self


class BulkheadSettings(Group):
    """Calls in flight and waiting; beyond them a call is shed with 503 at once."""

    max_concurrency: int = Field(default=10, ge=1, le=10_000)
    max_queue: int = Field(default=100, ge=0, le=100_000)
    max_wait: float = Field(default=0.5, ge=0, le=60)
    # Let measured latency set the width, between MIN_CONCURRENCY and MAX_CONCURRENCY
    # (concurrency_limit.py). Off by default: see the README's measurements.
    adaptive: bool = False
    min_concurrency: int = Field(default=1, ge=1, le=10_000)

    @model_validator(mode="after")
    def minimum_within_maximum(self) -> Self:
        if self.min_concurrency > self.max_concurrency:
            raise ValueError(
                f"MIN_CONCURRENCY ({self.min_concurrency}) must not exceed "
                f"MAX_CONCURRENCY ({self.max_concurrency})"
            )
        return self


class RetrySettings(Group):
    """tenacity retries for idempotent calls, bounded by a Finagle-style budget."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff_base: float = Field(default=0.05, gt=0, le=10)
    backoff_cap: float = Field(default=1.0, gt=0, le=60)
    budget_ratio: float = Field(default=0.2, ge=0, le=1)
    budget_min_per_second: float = Field(default=5.0, ge=0, le=1000)
    budget_window_seconds: int = Field(default=10, ge=1, le=600)
    retry_after_cap: float = Field(default=5.0, ge=0, le=600)
    # gRPC-style throttling (retry_tokens.py): 0 tokens turns it off.
    throttle_max_tokens: float = Field(default=10.0, ge=0, le=1000)
    throttle_token_ratio: float = Field(default=0.1, gt=0, le=1)
    retryable_statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    @field_validator("retryable_statuses")
    @classmethod
    def only_transient_statuses(cls, value: frozenset[int]) -> frozenset[int]:
        wrong = sorted(s for s in value if s != 429 and not 500 <= s <= 599)
        if wrong:
            raise ValueError(f"only 429 and 5xx statuses are transient; remove {wrong}")
        return value


class HedgeSettings(Group):
    """A second attempt for a slow idempotent call, first answer wins (hedging.py).

    Off by default: see the README's measurements. DELAY is the wait before the hedge; with
    DELAY_PERCENTILE (e.g. 95) the wait is that percentile of recent answers instead, DELAY until
    there are enough of them. At most BUDGET_RATIO of calls are hedged.
    """

    enabled: bool = False
    delay: float = Field(default=0.1, gt=0, le=60)
    delay_percentile: float = Field(default=0.0, ge=0, lt=100)
    budget_ratio: float = Field(default=0.05, gt=0, le=0.5)

    @field_validator("delay_percentile")
    @classmethod
    def a_tail_percentile(cls, value: float) -> float:
        if 0 < value < 50:
            raise ValueError(
                f"{value:g} would hedge most calls; give a tail percentile such as 95 "
                "(not 0.95), or 0 for the fixed DELAY"
            )
        return value


class BreakerSettings(Group):
    """Circuit breaker over a time-based sliding window (Resilience4j semantics)."""

    window_seconds: int = Field(default=10, ge=1, le=600)
    minimum_calls: int = Field(default=20, ge=1, le=100_000)
    failure_rate_threshold: float = Field(default=0.5, gt=0, le=1)
    slow_call_duration: float = Field(default=2.0, gt=0, le=300)
    slow_call_rate_threshold: float = Field(default=1.0, gt=0, le=1)
    open_duration: float = Field(default=5.0, gt=0, le=600)
    open_duration_max: float = Field(default=30.0, gt=0, le=3600)
    # Calls let through at once when the open period ends; once they have all settled, their
    # failure and slow rates close the breaker or reopen it (Resilience4j's default is 10).
    half_open_calls: int = Field(default=10, ge=1, le=1000)
    # Reopen when still half-open this long (its calls hang); 0: wait for their verdict.
    half_open_max_wait: float = Field(default=0.0, ge=0, le=3600)
    # A path under BASE_URL (e.g. "/healthz") the service GETs itself while half-open, so a
    # quiet service is closed again before traffic returns; "": wait for callers.
    probe_path: str = Field(default="", max_length=200)

    @field_validator("probe_path")
    @classmethod
    def probe_path_under_base(cls, value: str) -> str:
        if value and (not PROBE_PATH.fullmatch(value) or DOT_SEGMENT.search(value)):
            raise ValueError("must be empty or a plain path such as /healthz (no query, no dots)")
        return value

    @model_validator(mode="after")
    def cap_above_base(self) -> Self:
        if self.open_duration_max < self.open_duration:
            raise ValueError("OPEN_DURATION_MAX must be at least OPEN_DURATION")
        return self


class DownstreamSettings(Group):
    """One downstream service and the pool, timeouts and policies in front of it."""

    base_url: str
    http2: bool = HTTP2_BY_DEFAULT
    # The network under httpx: "aiohttp" (HTTP/1.1, a third of the CPU), "httpcore" (httpx's
    # own, and the one that speaks HTTP/2), or "auto": httpcore where HTTP/2 can be used.
    engine: Literal["auto", "aiohttp", "httpcore"] = "auto"
    deadline_seconds: float = Field(default=5.0, gt=0, le=300)
    # Enforced while the body is read: a huge answer is a 502, never this process's memory.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    timeouts: TimeoutSettings = TimeoutSettings()
    limits: LimitSettings = LimitSettings()
    bulkhead: BulkheadSettings = BulkheadSettings()
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    hedge: HedgeSettings = HedgeSettings()
    tls_verify: bool = True
    ca_bundle: Path | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def absolute_http_origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials; put them in HEADERS (kept secret)")
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            raise ValueError("must not carry a query or a fragment")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from None
        return value.rstrip("/")

    @field_validator("ca_bundle")
    @classmethod
    def readable_bundle(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"CA bundle {str(value)!r} is not a readable file")
        return value

    @field_validator("headers")
    @classmethod
    def header_names_are_tokens(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in value:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
        return {name.lower().replace("_", "-"): secret for name, secret in value.items()}

    @model_validator(mode="after")
    def pool_can_serve_bulkhead(self) -> Self:
        if self.http2 and importlib.util.find_spec("h2") is None:
            raise ValueError(
                "HTTP2 is on but the h2 package is not installed; install the http2 extra "
                "or set HTTP2=false"
            )
        uses_http2 = self.uses_http2
        if uses_http2 and self.engine == "aiohttp":
            raise ValueError(
                "ENGINE=aiohttp speaks HTTP/1.1 only; set HTTP2=false for this downstream, "
                "or ENGINE=auto to use httpcore here"
            )
        capacity = HTTP2_STREAMS_PER_CONNECTION if uses_http2 else self.limits.max_connections
        if self.bulkhead.max_concurrency > capacity:
            raise ValueError(
                f"BULKHEAD__MAX_CONCURRENCY ({self.bulkhead.max_concurrency}) is wider than the "
                f"pool can serve ({capacity} "
                f"{'HTTP/2 streams' if uses_http2 else 'connections, LIMITS__MAX_CONNECTIONS'}): "
                "the excess would queue inside httpx and end in PoolTimeout"
            )
        if not math.isfinite(self.deadline_seconds):
            raise ValueError("DEADLINE_SECONDS must be finite")
        return self

    @property
    def uses_http2(self) -> bool:
        """HTTP/2 needs TLS here (ALPN picks it): over http:// every call is HTTP/1.1."""
        return self.http2 and self.base_url.startswith("https://")

    @property
    def uses_aiohttp(self) -> bool:
        return self.engine == "aiohttp" or (self.engine == "auto" and not self.uses_http2)

    def production_problems(self) -> list[tuple[str, str]]:
        """(field, reason) for what is fine on a laptop and dangerous in production."""
        found: list[tuple[str, str]] = []
        if not self.tls_verify:
            found.append(("TLS_VERIFY", "false is allowed only when ENVIRONMENT=development"))
        for header, secret in self.headers.items():
            if secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                found.append(
                    (
                        f"HEADERS__{header.upper().replace('-', '_')}",
                        "holds a placeholder secret; set the real value "
                        "(placeholders are allowed only when ENVIRONMENT=development)",
                    )
                )
        return found


class ObservabilitySettings(Group):
    """The pool monitor and the logging of pool trouble (service-wide)."""

    monitor_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    saturation_threshold: float = Field(default=0.8, gt=0, le=1)
    leak_threshold_seconds: float = Field(default=30.0, gt=0, le=86_400)
    # Each per-call warning of a failure path (pool exhausted, retry, budget exhausted, leaked
    # response, unhandled exception): at most one line per interval, with a suppressed count.
    failure_log_interval_seconds: float = Field(default=1.0, ge=0, le=3600)
    trace_pool_wait: bool = False
    repair_orphans: bool = True
