"""The inbound request's deadline, carried to every downstream call in a context variable.

A deadline is an absolute ``time.monotonic()`` instant. Each call takes the earlier of it and its
own default, caps every attempt's httpx timeouts by what remains, never starts an attempt or a
back-off sleep past it, and forwards the remainder downstream.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def start_deadline(budget_seconds: float) -> Token[float | None]:
    """Set the current request's deadline ``budget_seconds`` from now."""
    return _deadline.set(time.monotonic() + budget_seconds)


def reset_deadline(token: Token[float | None]) -> None:
    _deadline.reset(token)


def call_deadline(default_budget: float, now: float) -> float:
    """The instant a downstream call must be finished by."""
    own = now + default_budget
    inbound = _deadline.get()
    return own if inbound is None or inbound > own else inbound
