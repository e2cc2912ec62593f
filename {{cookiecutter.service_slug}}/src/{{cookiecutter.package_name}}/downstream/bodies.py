"""Response bodies as the pipeline reads them: bounded, and with h2's errors seen as httpx's.

- A body larger than the downstream's ``max_body_bytes`` stops being read at the chunk that
  crosses the limit: ``BodyTooLarge``, a 502, and this process's memory is never the
  downstream's to fill. (Checking Content-Length first would save reading that chunk, at the
  price of a header lookup on every call: most of a 40 us rise in the micro-benchmark's
  pipeline figure when it was tried.) Streams (``Downstream.stream``) are
  not bounded: a team streams precisely what is too big to hold.
- httpcore maps h2's errors while it sends a request but not while it reads a body (1.0.9's
  ``_read_incoming_data``): a frame arriving on a connection h2 has already closed escaped as
  ``h2.exceptions.ProtocolError``, past every ``except httpx.HTTPError``, and became a 500.
  Here it is ``httpx.RemoteProtocolError``, a broken connection like any other.
- A response head the library cannot parse can escape ``client.send`` unmapped too: httpcore
  1.0.9 reads an HTTP/2 ``:status`` with a bare ``int()``, so one that is not a number raised
  ``ValueError``. The request is built and checked before it is sent, so a ``ValueError`` out of
  the send can only be the downstream's answer: ``UNMAPPED_ERRORS`` includes it for the send.
- Once cancellations have broken an HTTP/2 connection's stream accounting, httpcore 1.0.9 can end
  a body with ``ValueError("semaphore released too many times")`` (seen as a 500 under load,
  with every item call malformed and the price calls beside them cancelled). That is this
  client's own state, not the downstream's answer: ``httpx.LocalProtocolError``, which
  ``Attempts`` answers by closing the connection, as it does for a send.
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
#: What ``client.send`` can raise past ``httpx.HTTPError`` on a downstream's bad answer.
UNMAPPED_ERRORS: tuple[type[Exception], ...] = (*H2_ERRORS, ValueError)


class BodyTooLarge(httpx.HTTPError):
    """The response body passed the downstream's ``max_body_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"response body larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


def as_http_error(exc: Exception, request: httpx.Request) -> httpx.RemoteProtocolError:
    """The downstream broke the protocol; the message names the library's error, not the data."""
    return httpx.RemoteProtocolError(f"malformed response ({type(exc).__name__})", request=request)


def broken_stream_state(exc: ValueError, request: httpx.Request) -> httpx.LocalProtocolError:
    return httpx.LocalProtocolError(
        f"the connection's stream accounting broke ({exc})", request=request
    )


class CheckedBody(httpx.AsyncByteStream):
    """Wraps a response's own stream; ``max_bytes=None`` leaves its size alone."""

    __slots__ = ("checked", "max_bytes", "request")

    def __init__(
        self, checked: httpx.AsyncByteStream, request: httpx.Request, max_bytes: int | None
    ) -> None:
        self.checked = checked  # the library's own stream (``pool_internals`` looks inside it)
        self.request = request
        self.max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        max_bytes = self.max_bytes
        received = 0
        try:
            async for chunk in self.checked:
                if max_bytes is not None:
                    received += len(chunk)
                    if received > max_bytes:
                        raise BodyTooLarge(max_bytes)
                yield chunk
        except H2_ERRORS as exc:
            raise as_http_error(exc, self.request) from exc
        except ValueError as exc:
            raise broken_stream_state(exc, self.request) from exc

    async def aclose(self) -> None:
        try:
            await self.checked.aclose()
        except H2_ERRORS as exc:
            raise as_http_error(exc, self.request) from exc
        except ValueError as exc:
            raise broken_stream_state(exc, self.request) from exc
