"""httpx's API over aiohttp's connection pool: the engine for HTTP/1.1 downstreams.

The whole pipeline keeps speaking httpx (requests, responses, timeouts, errors); only the
network underneath is aiohttp's C-accelerated HTTP/1.1 client, which costs a third of
httpcore's CPU per call in ``make bench``. Written here because the maintained adapter
(``httpx-aiohttp``) breaks the pool contract: it ignores the client's limits and
``max_keepalive_connections``, folds the pool timeout into the connect timeout, and raises
``ConnectTimeout`` for an exhausted pool (retried, a 504) where httpx raises ``PoolTimeout``
(never retried, a 503). Here:

- ``max_connections`` slots, taken before aiohttp sees the request and given back when the
  response closes; waiting longer than the pool timeout is ``httpx.PoolTimeout``. The
  connector gets the same limit, so it never queues on its own;
- at most ``max_keepalive_connections`` idle connections are kept (``KeepaliveCappedConnector``);
- connect and read timeouts per attempt (aiohttp has no write timeout: the call's deadline
  bounds a stuck write);
- aiohttp's errors become the httpx errors httpcore raises for the same failure;
- the body is handed over undecoded (httpx decodes it, as it does for httpcore) and closing a
  response is synchronous, so no cancellation can interrupt it half-way.

Private aiohttp names are used for the pool figures and the keep-alive cap only;
``tests/integration/test_pool_contract.py`` fails naming them if a release moves them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from multidict import CIMultiDict

from .config import LimitSettings
from .httplib import httpx
from .pool_stats import PoolStats

# The private names this module relies on; the contract test checks each one.
CONNECTOR_IDLE = "_conns"  # key -> deque of (protocol, released at)
CONNECTOR_ACQUIRED = "_acquired"  # protocols in use, and placeholders for connects under way
CONNECTOR_RELEASE = "_release"  # where a protocol goes back to the pool (or is closed)

# httpx sets these itself; aiohttp must not add its own.
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")


class KeepaliveCappedConnector(aiohttp.TCPConnector):
    """aiohttp's connector with httpx's ``max_keepalive_connections``: a connection released
    while that many are idle is closed instead of kept."""

    def __init__(self, *, max_keepalive: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_keepalive = max_keepalive

    def idle_connections(self) -> int:
        return sum(len(idle) for idle in getattr(self, CONNECTOR_IDLE).values())

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        should_close = should_close or self.idle_connections() >= self.max_keepalive
        super()._release(key, protocol, should_close=should_close)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncClient`` transport on one aiohttp session, sized by ``limits``."""

    def __init__(self, limits: LimitSettings, ssl_context: ssl.SSLContext) -> None:
        self.limits = limits
        self.ssl_context = ssl_context
        self.slots = asyncio.Semaphore(limits.max_connections)
        self.in_use = 0
        self.waiting = 0
        self.session: aiohttp.ClientSession | None = None  # built in the event loop, on first use
        self.timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def stats(self) -> PoolStats:
        """Connections by state and requests, as ``pool_internals.pool_stats`` reads httpcore."""
        connector = self.session.connector if self.session is not None else None
        if not isinstance(connector, KeepaliveCappedConnector):
            return PoolStats(requests_active=self.in_use, requests_queued=self.waiting)
        acquired = getattr(connector, CONNECTOR_ACQUIRED)
        connecting = sum(1 for protocol in acquired if not hasattr(protocol, "transport"))
        return PoolStats(
            connecting=connecting,
            active=len(acquired) - connecting,
            idle=connector.idle_connections(),
            requests_active=self.in_use,
            requests_queued=self.waiting,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        await self._take_slot(request, timeouts.get("pool"))
        try:
            trace = request.extensions.get("trace")
            if trace is not None:  # pool wait ends here (see tracing.AttemptTrace)
                await trace("http11.send_request_headers.started", {})
            response = await self._send(request, timeouts)
        except BaseException:
            self._give_slot()
            raise
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=AiohttpBody(response, request, self),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": _reason(response)},
        )

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def _take_slot(self, request: httpx.Request, pool_timeout: float | None) -> None:
        if self.slots.locked():
            self.waiting += 1
            try:
                async with asyncio.timeout(pool_timeout):
                    await self.slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no connection free in time", request=request) from None
            finally:
                self.waiting -= 1
        else:
            await self.slots.acquire()  # free: returns without suspending
        self.in_use += 1

    def _give_slot(self) -> None:
        self.in_use -= 1
        self.slots.release()

    async def _send(
        self, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> aiohttp.ClientResponse:
        session = self.session or self._open_session()
        try:
            return await session.request(
                request.method,
                str(request.url),
                headers=CIMultiDict(request.headers.multi_items()),
                data=request.content or None,
                timeout=self._timeout(timeouts.get("connect"), timeouts.get("read")),
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:
            raise as_httpx_error(exc, request, sending=True) from exc

    def _open_session(self) -> aiohttp.ClientSession:
        limits = self.limits
        connector = KeepaliveCappedConnector(
            max_keepalive=limits.max_keepalive_connections,
            limit=limits.max_connections,
            keepalive_timeout=limits.keepalive_expiry,
            ssl=self.ssl_context,
            enable_cleanup_closed=False,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx's jar (which keeps nothing) runs above
            skip_auto_headers=SKIP_AUTO_HEADERS,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self.session

    def _timeout(self, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        """One ``ClientTimeout`` per distinct pair: most calls use the downstream's full ones."""
        key = (connect, read)
        timeout = self.timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
            if len(self.timeouts) < 64:  # deadline-capped pairs vary; keep the common ones
                self.timeouts[key] = timeout
        return timeout


class AiohttpBody(httpx.AsyncByteStream):
    """The response body as aiohttp receives it; closing gives the connection and slot back."""

    __slots__ = ("done", "request", "response", "transport")

    def __init__(
        self, response: aiohttp.ClientResponse, request: httpx.Request, transport: AiohttpTransport
    ) -> None:
        self.response = response
        self.request = request
        self.transport = transport
        self.done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise as_httpx_error(exc, self.request, sending=False) from exc

    async def aclose(self) -> None:
        if not self.done:
            self.done = True
            self.response.release()  # an unfinished body closes the connection instead
            self.transport._give_slot()


def _reason(response: aiohttp.ClientResponse) -> bytes:
    return (response.reason or "").encode("ascii", "replace")


def as_httpx_error(
    exc: BaseException, request: httpx.Request, *, sending: bool
) -> httpx.TransportError:
    """The httpx error httpcore raises for the same failure, so retries and 502/503/504 agree."""
    error: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout
    elif isinstance(exc, TimeoutError):  # aiohttp.SocketTimeoutError: sock_read
        error = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerFingerprintMismatch):
        error = httpx.ConnectError
    elif isinstance(exc, aiohttp.ClientOSError):  # a reset or a broken pipe
        error = httpx.WriteError if sending else httpx.ReadError
    else:  # disconnected, a truncated body, a head that does not parse
        error = httpx.RemoteProtocolError
    return error(f"{type(exc).__name__}: {exc}", request=request)
