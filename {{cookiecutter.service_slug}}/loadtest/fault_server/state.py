"""Fault configuration and counters shared by the data app and the admin app.

Both apps run on the server's single event loop, so plain attributes are
enough: no locks. Validation lives here, next to the defaults it enforces, so
that a typo in a test (``latency=500``) is a 400 instead of a silent no-op.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Final

ALL_ROUTES: Final = "*"
#: A fault target: one path segment (a request's first), e.g. "items" or, in the load test,
#: where each downstream's base path puts its calls, "catalog".
TARGET: Final = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
MAX_DELAY_MS: Final = 300_000.0


class Mode(enum.StrEnum):
    HEALTHY = "healthy"
    SLOW = "slow"
    HANG = "hang"
    ERROR = "error"
    RESET = "reset"
    THROTTLE = "throttle"
    DRIP = "drip"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    RESET_STREAM = "reset_stream"
    BAD_HEAD = "bad_head"
    REFUSE = "refuse"
    GOAWAY = "goaway"
    STREAMS = "streams"
    IDLE_CLOSE = "idle_close"
    DEGRADE = "degrade"
    TAIL = "tail"


#: Modes that act on the data port's connections, not on one route: they are
#: only accepted for route ``*``.
CONNECTION_MODES: Final = frozenset({Mode.REFUSE, Mode.GOAWAY, Mode.STREAMS, Mode.IDLE_CLOSE})


class FaultError(ValueError):
    """A fault request the admin API rejects with 400."""


@dataclass(frozen=True)
class _Param:
    is_int: bool
    minimum: float
    maximum: float
    default: float | None = None  # None: the parameter is required


_PARAMS: Final[dict[Mode, dict[str, _Param]]] = {
    Mode.HEALTHY: {"latency_ms": _Param(False, 0, MAX_DELAY_MS, default=0)},
    Mode.SLOW: {"latency_ms": _Param(False, 0, MAX_DELAY_MS)},
    Mode.HANG: {},
    Mode.ERROR: {
        "error_rate": _Param(False, 0, 1),
        "status": _Param(True, 400, 599, default=503),
    },
    Mode.RESET: {},
    Mode.THROTTLE: {"retry_after": _Param(True, 0, 86_400, default=1)},
    Mode.DRIP: {
        "drip_chunks": _Param(True, 1, 1_000),
        "drip_interval_ms": _Param(False, 0, MAX_DELAY_MS),
    },
    Mode.MALFORMED: {},
    Mode.TRUNCATED: {},
    Mode.RESET_STREAM: {},
    Mode.BAD_HEAD: {},
    Mode.REFUSE: {},
    Mode.GOAWAY: {"after_requests": _Param(True, 1, 1_000_000)},
    Mode.STREAMS: {"max_streams": _Param(True, 1, 1_000)},
    Mode.IDLE_CLOSE: {"idle_ms": _Param(False, 1, MAX_DELAY_MS)},
    Mode.DEGRADE: {
        "capacity": _Param(True, 1, 100_000),
        "latency_ms": _Param(False, 0, MAX_DELAY_MS, default=20),
    },
    Mode.TAIL: {
        "tail_rate": _Param(False, 0, 1),
        "tail_latency_ms": _Param(False, 0, MAX_DELAY_MS),
        "latency_ms": _Param(False, 0, MAX_DELAY_MS, default=0),
    },
}


@dataclass(frozen=True)
class Fault:
    """One mode plus its parameters; fields a mode does not use keep defaults."""

    mode: Mode = Mode.HEALTHY
    latency_ms: float = 0.0
    error_rate: float = 0.0
    status: int = 503
    retry_after: int = 1
    drip_chunks: int = 1
    drip_interval_ms: float = 0.0
    after_requests: int = 0
    max_streams: int = 0
    idle_ms: float = 0.0
    capacity: int = 0
    tail_rate: float = 0.0
    tail_latency_ms: float = 0.0

    @classmethod
    def parse(cls, body: object) -> Fault:
        """Build a fault from an admin request body, e.g. ``{"mode": "slow", ...}``."""
        if not isinstance(body, dict):
            raise FaultError("body must be a JSON object")
        try:
            mode = Mode(str(body.get("mode")))
        except ValueError:
            choices = ", ".join(m.value for m in Mode)
            raise FaultError(f"mode must be one of: {choices}") from None
        spec = _PARAMS[mode]
        unknown = sorted(set(body) - {"mode"} - set(spec))
        if unknown:
            raise FaultError(f"unknown parameter(s) for mode {mode}: {unknown}")
        values = {name: _check(mode, name, body.get(name), p) for name, p in spec.items()}
        default = cls()
        return cls(
            mode=mode,
            latency_ms=values.get("latency_ms", default.latency_ms),
            error_rate=values.get("error_rate", default.error_rate),
            status=int(values.get("status", default.status)),
            retry_after=int(values.get("retry_after", default.retry_after)),
            drip_chunks=int(values.get("drip_chunks", default.drip_chunks)),
            drip_interval_ms=values.get("drip_interval_ms", default.drip_interval_ms),
            after_requests=int(values.get("after_requests", default.after_requests)),
            max_streams=int(values.get("max_streams", default.max_streams)),
            idle_ms=values.get("idle_ms", default.idle_ms),
            capacity=int(values.get("capacity", default.capacity)),
            tail_rate=values.get("tail_rate", default.tail_rate),
            tail_latency_ms=values.get("tail_latency_ms", default.tail_latency_ms),
        )

    def to_json(self) -> dict[str, object]:
        """The mode and only the parameters that mode uses."""
        params = {name: getattr(self, name) for name in _PARAMS[self.mode]}
        return {"mode": self.mode.value, **params}


def _check(mode: Mode, name: str, value: object, param: _Param) -> float:
    if value is None:
        if param.default is None:
            raise FaultError(f"mode {mode} requires {name}")
        return param.default
    # bool is an int subclass; JSON true is never a valid number here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{name} must be a number")
    if param.is_int and not isinstance(value, int):
        raise FaultError(f"{name} must be an integer")
    if not (math.isfinite(value) and param.minimum <= value <= param.maximum):
        raise FaultError(f"{name} must be in [{param.minimum:g}, {param.maximum:g}]")
    return value


HEALTHY: Final = Fault()


@dataclass
class FaultTable:
    """What each target (a request path's first segment) does now, what every other path does,
    and the one connection-level fault."""

    targets: dict[str, Fault] = field(default_factory=dict)
    default: Fault = HEALTHY
    #: HEALTHY, or a fault whose mode is in CONNECTION_MODES.
    connection: Fault = HEALTHY

    def for_path(self, path: str) -> Fault:
        return self.targets.get(first_segment(path), self.default)

    def to_json(self) -> dict[str, object]:
        return {
            "targets": {target: fault.to_json() for target, fault in self.targets.items()},
            "default": self.default.to_json(),
            "connection": self.connection.to_json(),
        }


def first_segment(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


@dataclass
class Stats:
    """What the data port has received; ``reset`` zeroes counters, not gauges."""

    #: Requests received per target (a path's first segment).
    received: dict[str, int] = field(default_factory=dict)
    #: Every request on the data port.
    total: int = 0
    #: Data-port connections accepted since the last reset.
    connections: int = 0
    #: Gauge: data requests being handled now.
    in_flight: int = 0
    #: Gauge: data-port connections open now.
    open_connections: int = 0
    #: The last W3C ``traceparent`` each target received (the service's tracing tests read it).
    traceparents: dict[str, str] = field(default_factory=dict)

    def count_request(self, path: str) -> None:
        self.total += 1
        target = first_segment(path)
        self.received[target] = self.received.get(target, 0) + 1

    def saw_traceparent(self, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b"traceparent":
                self.traceparents[first_segment(path)] = value.decode("latin-1")

    def reset(self) -> None:
        self.received.clear()
        self.traceparents.clear()
        self.total = self.connections = 0

    def to_json(self) -> dict[str, int]:
        """Flat: each target's count, then the counters (which win a clash of names)."""
        counters = asdict(self)
        del counters["received"], counters["traceparents"]
        return {**self.received, **counters}
