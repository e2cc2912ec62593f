"""A listening port served by hypercorn's own per-connection handler.

Why not ``hypercorn.asyncio.serve``: it keeps its listening sockets and
connections private, and the ``refuse`` fault needs to close the listening
socket (so the kernel answers ECONNREFUSED), reopen it on the same port later,
and abort live connections; ``reset`` needs to abort one connection. So this
module owns the accept loop (``asyncio.start_server``) and hands every accepted
connection to hypercorn's ``TCPServer``, exactly what ``worker_serve`` does.
HTTP/1.1, HTTP/2 and TLS/ALPN stay hypercorn's; nothing sits between the client
and hypercorn, so the hot path has no extra copy (measured: same throughput as
``hypercorn.asyncio.serve`` with the same app). ``TCPServer`` (with the two
methods overridden below) and ``WorkerContext`` are hypercorn internals, the
same in 0.17 and 0.18: tests/integration/test_fault_server.py is what tells
you if an upgrade moves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import struct
from typing import Any, Final, cast

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Event, RawData
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.typing import ASGIFramework

from .asgi import ASGIApp
from .state import Stats

Peer = tuple[str, int]

#: How long closing waits for aborted connections' handlers to finish.
_DRAIN_TIMEOUT_S: Final = 5.0
# l_onoff=1, l_linger=0: close() sends RST instead of FIN.
_LINGER_RST: Final = struct.pack("ii", 1, 0)


def require_loopback(host: str) -> None:
    """Refuse to bind anything but 127.0.0.0/8 or ::1: this server is a test fixture."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"fault server host must be a loopback IP address (127.0.0.0/8 or ::1), got {host!r}"
        )


def url_host(host: str) -> str:
    """``host`` as it goes in a URL (IPv6 literals need brackets)."""
    return f"[{host}]" if ":" in host else host


class ConnectionRegistry:
    """Open connections by peer address, which is what ASGI's ``scope["client"]`` holds."""

    def __init__(self) -> None:
        self._transports: dict[Peer, asyncio.WriteTransport] = {}
        self._handlers: dict[Peer, TCPServer] = {}

    def add(self, peer: Peer, transport: asyncio.WriteTransport, handler: TCPServer) -> None:
        self._transports[peer] = transport
        self._handlers[peer] = handler

    def discard(self, peer: Peer) -> None:
        self._transports.pop(peer, None)
        self._handlers.pop(peer, None)

    def http2_protocols(self) -> list[H2Protocol]:
        """hypercorn's protocol object of every open HTTP/2 connection (its h2 state machine is
        ``.connection``); a connection still in its handshake has none yet."""
        wrappers = (getattr(handler, "protocol", None) for handler in self._handlers.values())
        protocols = (getattr(wrapper, "protocol", None) for wrapper in wrappers)
        return [protocol for protocol in protocols if isinstance(protocol, H2Protocol)]

    def transport(self, peer: Peer | None) -> asyncio.WriteTransport | None:
        return self._transports.get(peer) if peer is not None else None

    def http2_stream(self, peer: Peer | None, scope: object) -> tuple[H2Protocol, int] | None:
        """The HTTP/2 protocol object and stream id serving ``scope`` (hypercorn hands the app
        the stream's own scope), or None over HTTP/1.1."""
        wrapper = getattr(self._handlers.get(peer) if peer is not None else None, "protocol", None)
        protocol = getattr(wrapper, "protocol", None)
        if not isinstance(protocol, H2Protocol):
            return None
        for stream_id, stream in protocol.streams.items():
            if getattr(stream, "scope", None) is scope:
                return protocol, stream_id
        return None

    def abort(self, peer: Peer | None) -> bool:
        """Drop one connection with a TCP RST; False if it is already gone."""
        transport = self._transports.get(peer) if peer is not None else None
        if transport is None:
            return False
        _abort_with_rst(transport)
        return True

    def abort_all(self) -> None:
        for transport in list(self._transports.values()):
            _abort_with_rst(transport)


def _abort_with_rst(transport: asyncio.WriteTransport) -> None:
    if not transport.is_closing():  # a closing TLS transport cannot be asked for its socket
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    # A closing one is aborted too: a TLS close waits up to 30 s for the peer's close_notify,
    # and a stopping server must not wait for a peer (it hung the harness's stop).
    transport.abort()


class _ConnectionHandler(TCPServer):
    """hypercorn's per-connection handler, with two fixes for a fault server.

    Once the peer closes, hypercorn (0.17, 0.18) still waits for its idle
    timer (``keep_alive_timeout``) before it closes the socket, so every
    connection a client drops would sit in CLOSE_WAIT, holding a task and a
    file descriptor, and count as open. Stopping the timer when reading ends
    closes it at once; in-flight app tasks still run to completion first.

    After a fault aborts a connection, or the client closes one, the other
    HTTP/2 streams on it keep writing, and asyncio logs a warning per burst of
    writes to a dead transport; those writes are dropped instead.
    """

    async def _read_data(self) -> None:
        await super()._read_data()
        await self.idle_task.stop()

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData) and _wire_closing(self.writer.transport):
            return
        await super().protocol_send(event)


def _wire_closing(transport: asyncio.BaseTransport) -> bool:
    """Whether the TCP connection under ``transport`` is closing. Over TLS, asyncio's transport
    says so only a loop turn after a write to the TCP one failed, and the writes in between
    each log a warning; sslproto keeps the TCP transport private, hence the getattr."""
    tcp = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    return transport.is_closing() or (tcp is not None and tcp.is_closing())


class Listener:
    """One TCP (optionally TLS) port that can stop and resume accepting."""

    def __init__(
        self,
        app: ASGIApp,
        config: Config,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        stats: Stats | None = None,
        connections: ConnectionRegistry | None = None,
    ) -> None:
        # Our apps use plain mappings; hypercorn types ASGI with TypedDicts.
        self._app = ASGIWrapper(cast(ASGIFramework, app))
        self._config = config
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._stats = stats
        self._context = WorkerContext(max_requests=None)
        self._server: asyncio.Server | None = None
        self._accepting = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connections = connections if connections is not None else ConnectionRegistry()

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{url_host(self._host)}:{self._port}"

    async def start(self) -> None:
        """Listen; the first call fixes the port (0 picks one), later calls reuse it."""
        if self._accepting:
            return
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # create_server sets SO_REUSEADDR, so the port can be re-bound at once
        # after refuse even with connections of the old socket in TIME_WAIT.
        sock = socket.create_server(
            (self._host, self._port), family=family, backlog=self._config.backlog
        )
        # As hypercorn does: accepted sockets inherit it. Without it, a response
        # written as headers + body waits on Nagle/delayed ACK (~40 ms each).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._port = sock.getsockname()[1]
        handshake_timeout_s = self._config.ssl_handshake_timeout if self._ssl_context else None
        self._accepting = True
        try:
            self._server = await asyncio.start_server(
                self._serve_connection,
                sock=sock,
                backlog=self._config.backlog,
                ssl=self._ssl_context,
                ssl_handshake_timeout=handshake_timeout_s,
            )
        except BaseException:
            self._accepting = False
            sock.close()
            raise

    def stop_accepting(self) -> None:
        """Close the listening socket: from now on the kernel refuses connections."""
        self._accepting = False
        if self._server is not None:
            self._server.close()
            self._server = None

    async def aclose(self, grace_s: float) -> None:
        """Stop accepting, let idle connections close, abort the rest after ``grace_s``."""
        self.stop_accepting()
        # hypercorn closes idle keep-alive connections once this is set.
        await self._context.terminated.set()
        await self._wait_for_connections(grace_s)
        self.connections.abort_all()
        await self._wait_for_connections(_DRAIN_TIMEOUT_S)

    async def _wait_for_connections(self, timeout_s: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if not self._accepting:
            # Accepted (or finished its TLS handshake) after we stopped accepting.
            _abort_with_rst(writer.transport)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peername = writer.get_extra_info("peername")
        peer: Peer = (peername[0], peername[1])
        loop = asyncio.get_running_loop()
        handler = _ConnectionHandler(
            self._app, loop, self._config, self._context, {}, reader, writer
        )
        self.connections.add(peer, writer.transport, handler)
        if self._stats is not None:
            self._stats.connections += 1
            self._stats.open_connections += 1
        try:
            await handler
        except OSError:
            # The peer broke the connection while hypercorn was closing it
            # (e.g. ssl.SSLError APPLICATION_DATA_AFTER_CLOSE_NOTIFY); hypercorn's
            # own runner silences these in its loop exception handler.
            pass
        finally:
            self.connections.discard(peer)
            if self._stats is not None:
                self._stats.open_connections -= 1
            self._tasks.discard(task)
