"""h2's own exceptions, seen for what they are: the downstream broke the HTTP/2 protocol.

httpcore maps h2's errors while it sends a request but not while it reads a response body
(1.0.9's ``_read_incoming_data``): a frame arriving on a connection h2 has already closed
escapes as ``h2.exceptions.ProtocolError``, which no ``except httpx.HTTPError`` catches, so a
misbehaving downstream became a 500. ``H2CheckedStream`` turns it into
``httpx.RemoteProtocolError``, which the pipeline answers with a 502 like any broken connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .httplib import httpx


def _h2_errors() -> tuple[type[Exception], ...]:
    try:
        from h2.exceptions import H2Error
    except ImportError:  # a bake without HTTP/2 has no h2 to raise anything
        return ()
    return (H2Error,)


H2_ERRORS = _h2_errors()


def as_http_error(exc: Exception, request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(f"HTTP/2 protocol error: {exc}", request=request)


class H2CheckedStream(httpx.AsyncByteStream):
    """A response body whose h2 errors arrive as ``httpx.RemoteProtocolError``."""

    def __init__(self, checked: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self.checked = checked  # the library's own stream (``pool_internals`` looks inside it)
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.checked:
                yield chunk
        except H2_ERRORS as exc:
            raise as_http_error(exc, self.request) from exc

    async def aclose(self) -> None:
        try:
            await self.checked.aclose()
        except H2_ERRORS as exc:
            raise as_http_error(exc, self.request) from exc
