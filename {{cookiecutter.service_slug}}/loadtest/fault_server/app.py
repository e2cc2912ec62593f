"""A stand-in for any downstream: every path answers, with its target's current fault applied.

Plain ASGI, no framework: under load the fault server must not be the
bottleneck. Every wait (latency, hang, drip) also watches for the client going
away, so abandoned requests end at once instead of piling up as tasks. (Over
HTTP/2 a client that times out may just forget the stream, as httpx does; a
hung stream then ends when its connection closes, or at HANG_CAP_S.)

``malformed`` answers 200 with a JSON content type and a body that is not JSON: what a
downstream sends when a proxy in front of it serves an error page, or a deploy half-happened.

``degrade`` is a downstream past its capacity: with more than ``capacity`` of a target's requests
in flight, each is slower by the square of the excess (``latency_ms * (in_flight / capacity)**2``),
so throughput falls as concurrency rises, as a thrashing database's does; put it again with
another capacity to change it mid-run. ``tail`` answers ``tail_rate`` of requests after
``tail_latency_ms`` and the rest after ``latency_ms``: a slow tail, what hedging is for.

``reset`` sends the headers and half the body, then aborts the connection with
a TCP RST; over HTTP/2 that takes every other stream on the connection with it.
``truncated``, ``reset_stream`` and ``bad_head`` break the protocol itself (see ``wire``).

Responses echo ``x-request-deadline-ms`` and ``idempotency-key`` as
``deadline_ms`` / ``idempotency_key`` (the raw header string, or null) so the
service's tests can check what it propagated.
"""

from __future__ import annotations

import asyncio
import random
from typing import Final

from . import wire
from .asgi import Receive, Scope, Send, encode_json, send_body, send_json, start_response
from .listener import ConnectionRegistry, Peer
from .state import Fault, FaultTable, Mode, Stats, first_segment

#: A hung request is answered by dropping the connection after this long.
HANG_CAP_S: Final = 300.0
#: reset: time for hypercorn (its HTTP/2 sender is a separate task) to put the
#: partial body on the wire before the connection is aborted.
RESET_FLUSH_S: Final = 0.05
#: What ``malformed`` answers with its 200: the start of an HTML error page, labelled JSON.
MALFORMED_BODY: Final = b"<html><body>502 Bad Gateway</body"

Payload = dict[str, object]


class DownstreamApp:
    """ASGI app answering every path with a small JSON object (see ``_payload``)."""

    def __init__(
        self,
        faults: FaultTable,
        stats: Stats,
        connections: ConnectionRegistry,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._faults = faults
        self._stats = stats
        self._connections = connections
        self._rng = rng or random.Random()
        self._in_flight: dict[str, int] = {}  # per target, for degrade

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan work; the listener never sends lifespan anyway
        self._stats.count_request(scope["path"])
        self._stats.saw_traceparent(scope["path"], scope["headers"])
        self._stats.in_flight += 1
        try:
            if await _drain_request(receive):
                await self._respond(scope, receive, send)
        finally:
            self._stats.in_flight -= 1

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self._faults.for_path(scope["path"])
        payload = _payload(scope)
        client: Peer | None = scope.get("client")
        match fault.mode:
            case Mode.HANG:
                if not await _disconnected_within(receive, HANG_CAP_S):
                    self._connections.abort(client)
            case Mode.ERROR if self._rng.random() < fault.error_rate:
                error = {"error": "injected fault", "status": fault.status}
                await send_json(send, fault.status, error)
            case Mode.THROTTLE:
                retry_after = (b"retry-after", str(fault.retry_after).encode())
                error = {"error": "throttled", "retry_after": fault.retry_after}
                await send_json(send, 429, error, retry_after)
            case Mode.RESET:
                body = encode_json(payload)
                await start_response(send, 200, len(body))
                await send_body(send, body[: len(body) // 2], more=True)
                await asyncio.sleep(RESET_FLUSH_S)
                self._connections.abort(client)
            case Mode.MALFORMED:
                await start_response(send, 200, len(MALFORMED_BODY))
                await send_body(send, MALFORMED_BODY)
            case Mode.TRUNCATED:
                await wire.truncated(self._connections, scope, send, encode_json(payload))
            case Mode.RESET_STREAM:
                await wire.reset_stream(self._connections, scope)
            case Mode.BAD_HEAD:
                await wire.bad_head(self._connections, scope, send)
            case Mode.DRIP:
                await _drip(send, receive, payload, fault.drip_chunks, fault.drip_interval_ms)
            case Mode.DEGRADE:
                await self._degraded(scope, receive, send, payload, fault)
            case Mode.TAIL:
                slow = self._rng.random() < fault.tail_rate
                latency_ms = fault.tail_latency_ms if slow else fault.latency_ms
                if not await _disconnected_within(receive, latency_ms / 1000):
                    await send_json(send, 200, payload)
            case _:  # healthy, slow, and the non-erroring share of error
                if fault.latency_ms and await _disconnected_within(
                    receive, fault.latency_ms / 1000
                ):
                    return
                await send_json(send, 200, payload)

    async def _degraded(
        self, scope: Scope, receive: Receive, send: Send, payload: Payload, fault: Fault
    ) -> None:
        target = first_segment(scope["path"])
        in_flight = self._in_flight[target] = self._in_flight.get(target, 0) + 1
        try:
            slower = max(1.0, in_flight / fault.capacity) ** 2
            if not await _disconnected_within(receive, fault.latency_ms * slower / 1000):
                await send_json(send, 200, payload)
        finally:
            self._in_flight[target] -= 1


def _payload(scope: Scope) -> Payload:
    """What a GET of ``.../{id}`` answers, whatever the path: fields an item, a price or a stock
    level would carry, so any route's happy path has data. Other methods echo what arrived."""
    headers: dict[bytes, bytes] = dict(scope["headers"])
    echo: Payload = {
        "deadline_ms": _header(headers, b"x-request-deadline-ms"),
        "idempotency_key": _header(headers, b"idempotency-key"),
    }
    method, path = scope["method"], scope["path"]
    if method != "GET":
        return {"method": method, "path": path, **echo}
    key = path.rstrip("/").rsplit("/", 1)[-1]
    return {
        "id": key,
        "name": f"item {key}",
        "price": 9.99,
        "currency": "EUR",
        "quantity": 7,
        "path": path,
        **echo,
    }


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


async def _drain_request(receive: Receive) -> bool:
    """Read the request body; False if the client went away first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        if not message.get("more_body", False):
            return True


async def _disconnected_within(receive: Receive, seconds: float) -> bool:
    """Wait ``seconds``; True (early) if the client disconnects meanwhile.

    Call only after the body is drained: then the next message is the disconnect.
    """
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


async def _drip(
    send: Send, receive: Receive, payload: Payload, chunks: int, interval_ms: float
) -> None:
    # JSON allows trailing whitespace: pad so every chunk carries at least a byte.
    body = encode_json(payload).ljust(chunks, b" ")
    await start_response(send, 200, len(body))
    for index in range(chunks):
        if index and await _disconnected_within(receive, interval_ms / 1000):
            return
        part = body[index * len(body) // chunks : (index + 1) * len(body) // chunks]
        await send_body(send, part, more=index < chunks - 1)
