"""Success-aware retry throttling: a downstream that fails every call gets no retries at all.

The retry budget (``budget.py``) is earned by request volume, so a downstream failing every call
still gets its ratio of retries plus the per-second floor: more load on something already down.
gRPC's retry throttling (grpc/proposal A6) earns retries by success instead, and this follows
it exactly: each failed attempt costs a token, each answered one earns ``token_ratio`` of one,
and no retry is sent while the tokens are at or below half of ``max_tokens``. What costs a token
is the downstream saying no (5xx, 429), not answering in time, or not being reachable; a
connection that broke under a call does not (one dropped HTTP/2 connection fails every stream
on it at once, and those are the retries worth making: the test of GOAWAY recycling shed calls
when they cost tokens), nor a request its GOAWAY proves was never processed, nor our own pool's
timeout. With the defaults
(10 tokens, 0.1) five failed attempts in a row stop every retry, and the downstream must answer
ten calls for each token it lost before retries resume. A retry needs the tokens *and* the
budget. tenacity and stamina decide each call on its own, with no view of the downstream's
record, so there is no library to reuse; it is a few lines. Not thread-safe (one loop).
"""

from __future__ import annotations

from .config import RetrySettings
from .httplib import httpx

#: Exceptions that mean the downstream failed the attempt, not the connection under it.
DOWNSTREAM_FAILURES = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, TimeoutError)


class RetryTokens:
    """gRPC's token bucket; ``max_tokens == 0`` turns it off."""

    __slots__ = ("max_tokens", "throttled_count", "token_ratio", "tokens")

    def __init__(self, settings: RetrySettings) -> None:
        self.max_tokens = settings.throttle_max_tokens
        self.token_ratio = settings.throttle_token_ratio
        self.tokens = self.max_tokens
        self.throttled_count = 0  # retries refused because the tokens were low

    def answered(self) -> None:
        self.tokens = min(self.max_tokens, self.tokens + self.token_ratio)

    def failed(self) -> None:
        self.tokens = max(0.0, self.tokens - 1.0)

    def allow_retry(self) -> bool:
        if not self.max_tokens or self.tokens > self.max_tokens / 2:
            return True
        self.throttled_count += 1
        return False
