"""Resident memory of a fresh generated service after N1 and after N2 requests.

Growth between the two counts is what a leak looks like (per-request state kept in a dict, an
unbounded metrics label, a connection never closed); growth before N1 is warm-up (imports,
allocator arenas, the pool's connections) and is not counted against the service.
"""

from __future__ import annotations

from typing import Any

from .load import Driver
from .plan import Plan
from .processes import Server
from .targets import ITEM_PATH


def rss_growth(server: Server, driver: Driver, plan: Plan) -> dict[str, Any]:
    first, second = plan.memory_requests
    url = server.base_url + ITEM_PATH
    at_start = server.rss_kib()
    run_a = driver.run(url, plan.memory_concurrency, requests=first, seconds=plan.memory_seconds)
    after_first = server.rss_kib()
    left = max(1.0, plan.memory_seconds - run_a["elapsed_s"])
    run_b = driver.run(url, plan.memory_concurrency, requests=second - first, seconds=left)
    after_second = server.rss_kib()
    reached = (run_a["answered"], run_a["answered"] + run_b["answered"])
    return {
        "target": server.name,
        "concurrency": plan.memory_concurrency,
        "requests_planned": [first, second],
        "requests": list(reached),
        "capped": reached[1] < second,
        "seconds_cap": plan.memory_seconds,
        "rss_kib": {"start": at_start, "after_first": after_first, "after_second": after_second},
        "growth_percent": (after_second - after_first) / after_first * 100,
        "ok": run_a["ok"] + run_b["ok"],
        "answered": reached[1],
        "client_errors": {**run_a["client_errors"], **run_b["client_errors"]},
    }
