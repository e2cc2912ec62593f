"""Wires the fault server together: shared state, both apps, both ports.

The data port (the example downstream API) and the admin port are separate
listeners on one event loop, so the admin API keeps answering while the data
port refuses connections, and the two apps share state without locks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import h2.exceptions
import h2.settings
from hypercorn.config import Config

from .admin import AdminApp
from .app import DownstreamApp
from .listener import ConnectionRegistry, Listener, require_loopback
from .state import HEALTHY, Fault, FaultTable, Mode, Stats
from .tls import make_server_context

#: hypercorn's defaults; what the data port uses while no goaway / streams fault is in force.
NO_GOAWAY_MAX_REQUESTS: Final = Config.keep_alive_max_requests
DEFAULT_MAX_STREAMS: Final = Config.h2_max_concurrent_streams
#: Outlive clients' pool keep-alive (httpx: 5 s) so that an idle-close race is never mistaken
#: for an injected fault; the idle_close fault is that race on purpose.
KEEP_ALIVE_TIMEOUT_S: Final = 75.0


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    admin_port: int = 0
    tls: bool = False
    #: Where to write the CA PEM; required with ``tls``.
    ca_path: Path | None = None
    #: Start-up goaway (see DataPortFaults); also what clearing faults returns to.
    goaway_after: int | None = None
    #: On shutdown, how long in-flight requests get before being cut off.
    shutdown_grace_s: float = 1.0
    #: Allow a non-loopback ``host``: only inside a load-test pod, whose NetworkPolicy keeps the
    #: unauthenticated admin API inside its namespace (deploy/k8s/loadtest).
    any_address: bool = False


@dataclass(frozen=True)
class ServerUrls:
    base_url: str
    admin_url: str
    ca_path: Path | None


class DataPortFaults:
    """Applies the connection-level faults to the data port.

    refuse: close the listening socket (new connections get ECONNREFUSED) and
    abort every open connection with RST; any other mode re-binds the same port.

    goaway: hypercorn reads ``Config.keep_alive_max_requests`` from the shared
    config object on every request (protocol/h2.py and h11.py, 0.17 and 0.18),
    so changing it at run time applies at once, to new and open connections,
    counting the requests a connection has already served. Over HTTP/2, the
    request after the Nth makes hypercorn send GOAWAY (NO_ERROR) naming that
    request's stream as the last one; h2 then forbids any further frame, so
    that request and every later one already sent on the connection fail
    (httpx: RemoteProtocolError) and the client's next request opens a new
    connection. Under heavy multiplexing hypercorn may drop the connection
    outright, failing earlier in-flight streams too: this is an abrupt
    recycle, not a graceful drain. Over HTTP/1.1 the Nth response carries
    ``Connection: close``: a graceful recycle, nothing fails.

    idle_close: a connection is closed once it has been idle ``idle_ms`` (hypercorn reads
    ``Config.keep_alive_timeout`` each time a connection goes idle): far below a client's
    keep-alive expiry, so a pooled connection may be closed just as the client picks it.

    streams: every open HTTP/2 connection is sent a SETTINGS frame lowering
    MAX_CONCURRENT_STREAMS to ``max_streams`` at once (mid-connection, with
    streams in flight), and new connections advertise it; clearing the fault
    sends the default (100) again. HTTP/1.1 connections are unaffected.
    """

    def __init__(self, listener: Listener, config: Config, goaway_after: int | None) -> None:
        self._listener = listener
        self._config = config
        self._baseline = (
            Fault(mode=Mode.GOAWAY, after_requests=goaway_after) if goaway_after else HEALTHY
        )

    async def apply(self, fault: Fault) -> Fault:
        if fault.mode is Mode.REFUSE:
            self._listener.stop_accepting()
            self._listener.connections.abort_all()
            return fault
        await self._listener.start()  # no-op unless refusing
        if fault.mode not in (Mode.GOAWAY, Mode.STREAMS, Mode.IDLE_CLOSE):
            fault = self._baseline
        self._config.keep_alive_max_requests = (
            fault.after_requests if fault.mode is Mode.GOAWAY else NO_GOAWAY_MAX_REQUESTS
        )
        self._config.keep_alive_timeout = (
            fault.idle_ms / 1000 if fault.mode is Mode.IDLE_CLOSE else KEEP_ALIVE_TIMEOUT_S
        )
        await self._limit_streams(
            fault.max_streams if fault.mode is Mode.STREAMS else DEFAULT_MAX_STREAMS
        )
        return fault

    async def _limit_streams(self, max_streams: int) -> None:
        changed = max_streams != self._config.h2_max_concurrent_streams
        self._config.h2_max_concurrent_streams = max_streams  # read by each new connection
        if not changed:
            return
        for protocol in self._listener.connections.http2_protocols():
            try:
                protocol.connection.update_settings(
                    {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams}
                )
            except h2.exceptions.ProtocolError:
                continue  # closed (GOAWAY sent or received) but not yet forgotten: nothing to tell
            await protocol._flush()  # hypercorn's own way of putting h2's output on the wire


def hypercorn_config() -> Config:
    config = Config()
    config.accesslog = None
    # A Logger instance is used as is; a "-" would make hypercorn add a
    # stderr handler to "hypercorn.error" again for every server started.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT_S
    config.backlog = 1024
    return config


async def serve(
    options: ServerOptions,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]],
    on_ready: Callable[[ServerUrls], None] | None = None,
) -> None:
    """Run until ``shutdown_trigger`` returns (the same contract as hypercorn's)."""
    if not options.any_address:
        require_loopback(options.host)
    ssl_context = None
    if options.tls:
        if options.ca_path is None:
            raise ValueError("tls needs ca_path: where to write the CA certificate")
        ssl_context = make_server_context(options.host, options.ca_path)

    faults, stats, connections = FaultTable(), Stats(), ConnectionRegistry()
    data_config = hypercorn_config()
    data = Listener(
        DownstreamApp(faults, stats, connections),
        data_config,
        host=options.host,
        port=options.port,
        ssl_context=ssl_context,
        stats=stats,
        connections=connections,
    )
    port_faults = DataPortFaults(data, data_config, options.goaway_after)
    admin = Listener(
        AdminApp(faults, stats, port_faults),
        hypercorn_config(),
        host=options.host,
        port=options.admin_port,
    )
    try:
        await data.start()
        await admin.start()
        faults.connection = await port_faults.apply(HEALTHY)
        if on_ready is not None:
            on_ready(ServerUrls(data.url, admin.url, options.ca_path))
        await shutdown_trigger()
    finally:
        await asyncio.gather(
            data.aclose(options.shutdown_grace_s), admin.aclose(options.shutdown_grace_s)
        )
