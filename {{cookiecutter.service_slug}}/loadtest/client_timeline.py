"""What the clients saw, second by second: requests, sheds, errors and the p95 of that second.

The locust master samples its cumulative totals about once a second; the difference between
two samples gives that second's rates and, from the response-time histograms, its own p95
(locust's own history offers only a p95 over the last 10 seconds, which smears phases). In a
distributed run workers report every 3 seconds, so a line then covers those 3 seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.gate import histogram_percentile


@dataclass(frozen=True)
class Totals:
    """Cumulative client counts at one instant."""

    t: float
    users: int
    requests: int
    failures: int
    sheds: int
    response_times: Mapping[int, int]  # ms (as locust rounds them) -> count


def per_second(previous: Totals, now: Totals) -> dict[str, Any]:
    """One timeline line: the rates and the p95 between two samples."""
    elapsed = max(now.t - previous.t, 1e-9)
    window = {
        ms: count - previous.response_times.get(ms, 0)
        for ms, count in now.response_times.items()
        if count > previous.response_times.get(ms, 0)
    }
    return {
        "t": now.t,
        "users": now.users,
        "requests_per_s": (now.requests - previous.requests) / elapsed,
        "sheds_per_s": (now.sheds - previous.sheds) / elapsed,
        "errors_per_s": (now.failures - previous.failures) / elapsed,
        "p95_ms": histogram_percentile(window, 0.95),
    }


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # cut short by an interrupted run
    return lines
