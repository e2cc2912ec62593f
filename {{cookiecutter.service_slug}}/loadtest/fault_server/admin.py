"""The admin API: switch faults and read counters while a test runs.

It is served on its own port so that it keeps answering while the data port
refuses connections. Routes::

    GET    /__admin/faults            current faults
    PUT    /__admin/faults/{target}   target: a path's first segment, or *   body: {"mode": ...}
    DELETE /__admin/faults            everything healthy
    GET    /__admin/stats             {"<target>": n, ..., "total", "in_flight", ...}
    POST   /__admin/stats/reset       zero the counters (and forget the traceparents)
    GET    /__admin/traceparents      {"<target>": "<the last traceparent it received>"}

A target is a request path's first segment: ``items`` for ``/items/1``; in the
load test each downstream's base path is its name, so ``catalog`` is every call
of the catalog downstream. ``PUT /__admin/faults/*`` replaces every fault: a
route mode applies to every path and lifts any connection-level fault (refuse,
goaway, streams, idle_close); a connection-level mode sets every path healthy.
"""

from __future__ import annotations

import json
from typing import Final, Protocol

from .asgi import BodyTooLargeError, Receive, Scope, Send, read_body, send_json
from .state import (
    ALL_ROUTES,
    CONNECTION_MODES,
    HEALTHY,
    TARGET,
    Fault,
    FaultError,
    FaultTable,
    Stats,
)

PREFIX: Final = "/__admin"
_MAX_BODY: Final = 64 * 1024


class ConnectionFaults(Protocol):
    """Applies refuse, goaway and streams to the data port (see ``server.DataPortFaults``)."""

    async def apply(self, fault: Fault) -> Fault:
        """Make ``fault`` (or HEALTHY) take effect; return what is now in force."""
        ...


class AdminApp:
    """ASGI app for ``/__admin/...``."""

    def __init__(
        self, faults: FaultTable, stats: Stats, connection_faults: ConnectionFaults
    ) -> None:
        self._faults = faults
        self._stats = stats
        self._connection_faults = connection_faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        try:
            body = await read_body(receive, _MAX_BODY)
            if body is None:
                return  # the client left
            status, payload = await self._route(method, path, body)
        except BodyTooLargeError as error:
            status, payload = 413, {"error": str(error)}
        except FaultError as error:
            status, payload = 400, {"error": str(error)}
        except OSError as error:  # the data port could not be re-bound
            status, payload = 503, {"error": f"data port: {error}"}
        await send_json(send, status, payload)

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        endpoint = path.removeprefix(PREFIX) if path.startswith(f"{PREFIX}/") else ""
        match method, endpoint:
            case "GET", "/faults":
                return 200, self._faults.to_json()
            case "DELETE", "/faults":
                await self._set_all(HEALTHY)
                return 200, self._faults.to_json()
            case "PUT", fault_path if fault_path.startswith("/faults/"):
                route = fault_path.removeprefix("/faults/")
                await self._set(route, Fault.parse(_json(body)))
                return 200, self._faults.to_json()
            case "GET", "/stats":
                return 200, self._stats.to_json()
            case "GET", "/traceparents":
                return 200, self._stats.traceparents
            case "POST", "/stats/reset":
                self._stats.reset()
                return 200, self._stats.to_json()
            case _:
                return 404, {"error": f"no admin endpoint {method} {path}"}

    async def _set(self, target: str, fault: Fault) -> None:
        if target == ALL_ROUTES:
            await self._set_all(fault)
        elif not TARGET.match(target):
            raise FaultError("target must be one path segment (letters, digits, . _ ~ -) or '*'")
        elif fault.mode in CONNECTION_MODES:
            raise FaultError(f"mode {fault.mode} acts on the whole data port: use route '*'")
        else:
            self._faults.targets[target] = fault

    async def _set_all(self, fault: Fault) -> None:
        connection_level = fault.mode in CONNECTION_MODES
        self._faults.connection = await self._connection_faults.apply(
            fault if connection_level else HEALTHY
        )
        self._faults.targets.clear()
        self._faults.default = HEALTHY if connection_level else fault


def _json(body: bytes) -> object:
    try:
        return json.loads(body) if body else {}
    except ValueError as error:
        raise FaultError(f"body is not JSON: {error}") from None
