"""The routes the load test drives: every GET route of the service that calls a downstream.

Routes and their downstreams are found from the route modules (``discovery.py``), so a new
route is load-tested as soon as it exists. Edit this file only to weight a route (default 2),
to name downstreams it answers without (``"degraded": true``, so their failures must never fail
it), or to skip one. The runner gives every declared downstream its own base path on the fault
server (``/<name>``), so the profiles aim faults at one downstream; the gate reports SLO rows
per route. ``/healthz`` is always added.
"""

from __future__ import annotations

from typing import Final

from loadtest.discovery import Tuning, service_routes

TUNING: Final = {
    "/items/{item_id}": Tuning(weight=4),
    "/items/{item_id}/details": Tuning(weight=2, degrades_without=("pricing",)),
}
#: /price fails with pricing; /details already covers pricing, degrading without it.
SKIPPED: Final = frozenset({"/items/{item_id}/price"})

ROUTES: Final = service_routes(TUNING, SKIPPED)
