"""The few ASGI types and helpers both apps share.

No framework on purpose: the data app sits on the hot path of every load test,
and these dozen lines are all the two apps need.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Header = tuple[bytes, bytes]

_JSON: Final = (b"content-type", b"application/json")


def encode_json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


async def start_response(send: Send, status: int, length: int, *extra: Header) -> None:
    headers = [_JSON, (b"content-length", str(length).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def send_body(send: Send, body: bytes, *, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def send_json(send: Send, status: int, payload: object, *extra: Header) -> None:
    body = encode_json(payload)
    await start_response(send, status, len(body), *extra)
    await send_body(send, body)


class BodyTooLargeError(ValueError):
    pass


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None if the client went away first."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLargeError(f"request body over {limit} bytes")
        if not message.get("more_body", False):
            return bytes(body)
