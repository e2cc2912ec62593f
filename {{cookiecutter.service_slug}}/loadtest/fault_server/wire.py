"""Faults below ASGI: what no well-behaved server sends, done to the stream or the socket.

ASGI (and hypercorn behind it) only lets an app send valid responses, so these reach past it:
over HTTP/2 to hypercorn's h2 state machine for the one stream, over HTTP/1.1 to the socket.

- ``truncated``: ``Content-Length`` promises the whole body, half of it arrives. HTTP/2 ends the
  stream early (``END_STREAM``); HTTP/1.1 closes the connection cleanly (FIN, not RST).
- ``reset_stream``: no response at all. HTTP/2 sends ``RST_STREAM`` (INTERNAL_ERROR) for that
  stream only, its neighbours on the connection carry on; HTTP/1.1 drops the connection.
- ``bad_head``: a response head the client must reject. HTTP/2 sends a ``:status`` that is not
  a number (h2's outbound checks are switched off for that connection; hypercorn's ASGI side
  would refuse it); HTTP/1.1 writes a status line that is not one, then closes.
"""

from __future__ import annotations

import asyncio
from typing import Final

import h2.errors

from .asgi import Scope, Send, send_body, start_response
from .listener import ConnectionRegistry, Peer

#: Time for hypercorn (its HTTP/2 sender is a separate task) to put what was sent on the wire.
FLUSH_S: Final = 0.05
#: Not an HTTP/1.1 status line: h11 refuses it, as every HTTP/1.1 client must.
BAD_STATUS_LINE: Final = b"HTTP/1.1 2OO OK\r\ncontent-length: 2\r\n\r\n{}"


async def truncated(connections: ConnectionRegistry, scope: Scope, send: Send, body: bytes) -> None:
    peer: Peer | None = scope.get("client")
    await start_response(send, 200, len(body))
    if connections.http2_stream(peer, scope) is not None:
        await send_body(send, body[: len(body) // 2])
        return
    await send_body(send, body[: len(body) // 2], more=True)
    await asyncio.sleep(FLUSH_S)
    transport = connections.transport(peer)
    if transport is not None:
        transport.close()


async def reset_stream(connections: ConnectionRegistry, scope: Scope) -> None:
    peer: Peer | None = scope.get("client")
    found = connections.http2_stream(peer, scope)
    if found is None:
        connections.abort(peer)
        return
    protocol, stream_id = found
    protocol.connection.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
    await protocol._flush()  # hypercorn's own way of putting h2's output on the wire


async def bad_head(connections: ConnectionRegistry, scope: Scope, send: Send) -> None:
    peer: Peer | None = scope.get("client")
    found = connections.http2_stream(peer, scope)
    if found is not None:
        protocol, stream_id = found
        config = protocol.connection.config
        config.normalize_outbound_headers = config.validate_outbound_headers = False
        head = [(b":status", b"2OO"), (b"content-length", b"0")]
        protocol.connection.send_headers(stream_id, head, end_stream=True)
        await protocol._flush()
        return
    transport = connections.transport(peer)
    if transport is not None:
        transport.write(BAD_STATUS_LINE)
        transport.close()
