"""``CheckedBody`` stops reading at the chunk that crosses the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from {{ cookiecutter.package_name }}.downstream.bodies import BodyTooLarge, CheckedBody
from {{ cookiecutter.package_name }}.downstream.httplib import httpx


class Chunks(httpx.AsyncByteStream):
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


def response_of(stream: Chunks) -> httpx.Response:
    request = httpx.Request("GET", "http://127.0.0.1/items/1")
    return httpx.Response(200, stream=stream, request=request)


@pytest.mark.anyio
async def test_a_body_stops_at_the_chunk_past_the_limit() -> None:
    stream = Chunks(b"x" * 6, b"x" * 6, b"x" * 6, b"x" * 6)
    response = response_of(stream)
    response.stream = CheckedBody(stream, response.request, max_bytes=10)
    with pytest.raises(BodyTooLarge):
        await response.aread()
    assert stream.sent == 2  # never read beyond the chunk that crossed the limit


@pytest.mark.anyio
async def test_a_body_within_the_limit_is_read_whole() -> None:
    stream = Chunks(b"12345", b"67890")
    response = response_of(stream)
    response.stream = CheckedBody(stream, response.request, max_bytes=10)
    assert await response.aread() == b"1234567890"


class BrokenAccounting(Chunks):
    """What httpcore 1.0.9 does at a body's end once cancellations broke an HTTP/2 connection's
    stream accounting (its anyio semaphore refuses the extra release)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in super().__aiter__():
            yield chunk
        raise ValueError("semaphore released too many times")


@pytest.mark.anyio
async def test_a_broken_stream_state_is_an_httpx_error_not_a_value_error() -> None:
    stream = BrokenAccounting(b"{}")
    response = response_of(stream)
    response.stream = CheckedBody(stream, response.request, max_bytes=None)
    with pytest.raises(httpx.LocalProtocolError, match="stream accounting broke"):
        await response.aread()
