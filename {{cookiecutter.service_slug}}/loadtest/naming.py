"""How a response is classified and named: ``[phase] endpoint (outcome)``.

The locustfile names every request this way, so locust keeps one stats row per phase, route
and outcome; the gate parses the names back. Both sides use this module, so they cannot drift
apart. Outcomes:

- ``""`` (no suffix): a 2xx answer;
- ``degraded``: a 2xx whose JSON says ``"degraded": true`` (served without an optional
  downstream);
- ``shed <reason>``: 503 with ``Retry-After`` and problem+json, an expected refusal; a
  ``breaker_open`` refusal of a request sent before this client had seen the breaker open
  (it waited while the breaker opened) is ``shed breaker_opening``;
- ``aborted``: an impatient client gave up waiting (it meant to);
- ``<downstream> failed``: a route failed because of a downstream it should degrade without;
- ``<status> <reason>`` / ``<status> bare``: any other error, with or without problem+json;
- ``no response``: the connection failed or the client timed out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

HEALTHZ: Final = "GET /healthz"

PROBLEM_JSON: Final = "application/problem+json"
BREAKER_OPEN: Final = "shed breaker_open"
BREAKER_OPENING: Final = "shed breaker_opening"
_NAME: Final = re.compile(
    r"^\[(?P<phase>[^\]]+)\] (?P<endpoint>GET \S+)(?: \((?P<outcome>[^)]+)\))?$"
)


@dataclass(frozen=True)
class Route:
    """One route the load test calls (declared in ``loadtest/routes.py``).

    ``path`` is the route's template: every ``{...}`` is filled with a random id. ``calls`` are
    the downstreams it needs; ``degrades_without`` those it answers without (``"degraded":
    true``), so their failure must never fail the route.
    """

    path: str
    weight: int
    calls: tuple[str, ...]
    degrades_without: tuple[str, ...] = ()

    @property
    def endpoint(self) -> str:
        return f"GET {self.path}"

    @property
    def downstreams(self) -> tuple[str, ...]:
        return (*self.calls, *self.degrades_without)


@dataclass(frozen=True)
class Outcome:
    label: str  # "" for a plain success
    success: bool  # how locust records it: sheds and intended aborts are not failures
    downstream: str | None = None  # the downstream a problem+json answer names


@dataclass(frozen=True)
class ParsedName:
    phase: str
    endpoint: str
    outcome: str

    @property
    def status(self) -> int | None:
        head = self.outcome.split(" ", 1)[0]
        return int(head) if head.isdigit() else None

    @property
    def is_shed(self) -> bool:
        return self.outcome.startswith("shed ")

    @property
    def shed_reason(self) -> str | None:
        return self.outcome.removeprefix("shed ") if self.is_shed else None

    @property
    def is_bare_error(self) -> bool:
        """A 500, an error without problem+json, or no answer at all: never acceptable."""
        return self.status == 500 or self.outcome.endswith(" bare") or self.outcome == "no response"


def request_name(phase: str, endpoint: str, outcome: str) -> str:
    return f"[{phase}] {endpoint}" + (f" ({outcome})" if outcome else "")


def parse_name(name: str) -> ParsedName | None:
    """The parts of a name built by ``request_name``; None for anything else."""
    match = _NAME.match(name)
    if match is None:
        return None
    return ParsedName(match["phase"], match["endpoint"], match["outcome"] or "")


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    optional: Collection[str] = (),
    impatient: bool = False,
    timed_out: bool = False,
) -> Outcome:
    """Classify one response; ``headers`` has lower-case names; ``status`` 0 = no response;
    ``optional``: the downstreams this route degrades without."""
    if status == 0:
        if impatient and timed_out:
            return Outcome("aborted", success=True)
        return Outcome("no response", success=False)
    if 200 <= status < 300:
        if _json_field(body, "degraded") is True:
            return Outcome("degraded", success=True)
        return Outcome("", success=True)
    is_problem = headers.get("content-type", "").startswith(PROBLEM_JSON)
    if not is_problem:
        return Outcome(f"{status} bare", success=False)
    downstream = _json_field(body, "downstream")
    if downstream in optional:
        return Outcome(f"{downstream} failed", success=False)
    reason = _json_field(body, "reason")
    reason_text = reason if isinstance(reason, str) and reason else "problem"
    named = downstream if isinstance(downstream, str) else None
    if status == 503 and headers.get("retry-after"):
        return Outcome(f"shed {reason_text}", success=True, downstream=named)
    return Outcome(f"{status} {reason_text}", success=False, downstream=named)


def _json_field(body: bytes, name: str) -> object:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document.get(name) if isinstance(document, dict) else None


def breaker_label(label: str, started_at: float, open_seen_at: float | None) -> str:
    """Tell a refusal *while* open from one that caught a request waiting as the breaker opened.

    ``open_seen_at`` is when this client first received a breaker_open from the same downstream
    in the phase (None if this is the first): only a request sent after that is known to have
    met an open breaker (each downstream has its own breaker, opening at its own time).
    """
    if label != BREAKER_OPEN:
        return label
    if open_seen_at is None or started_at < open_seen_at:
        return BREAKER_OPENING
    return label
