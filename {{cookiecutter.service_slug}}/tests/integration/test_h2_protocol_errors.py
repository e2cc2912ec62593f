"""An HTTP/2 downstream that breaks the protocol mid-body gets a 502, never a 500.

The server here is a few lines of raw h2 over TLS, because no real server misbehaves on demand:
it answers the response head, then sends GOAWAY and a DATA frame after it. h2 raises its own
``ProtocolError`` on that frame while httpcore reads the body, where httpcore does not map it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

h2_connection = pytest.importorskip("h2.connection")
h2_config = pytest.importorskip("h2.config")
h2_events = pytest.importorskip("h2.events")
hyperframe = pytest.importorskip("hyperframe.frame")

from {{ cookiecutter.package_name }}.downstream.errors import DownstreamBadGateway  # noqa: E402
from {{ cookiecutter.package_name }}.downstream.httplib import httpx  # noqa: E402

from loadtest.fault_server.tls import make_server_context  # noqa: E402
from tests.integration.conftest import one_downstream  # noqa: E402

BODY = b'{"id": "1"}'


async def serve_h2(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, break_body: bool
) -> None:
    """Answer every request with ``BODY``; with ``break_body``, GOAWAY comes before the DATA."""
    connection = h2_connection.H2Connection(h2_config.H2Configuration(client_side=False))
    connection.initiate_connection()
    writer.write(connection.data_to_send())
    try:
        while data := await reader.read(65536):
            for event in connection.receive_data(data):
                if isinstance(event, h2_events.RequestReceived):
                    await answer(connection, writer, event.stream_id, break_body=break_body)
                    if break_body:
                        await writer.drain()
                        await asyncio.sleep(0.2)  # let the client read what it was sent
                        return
            writer.write(connection.data_to_send())
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def answer(
    connection: Any, writer: asyncio.StreamWriter, stream_id: int, *, break_body: bool
) -> None:
    head = [(":status", "200"), ("content-type", "application/json")]
    connection.send_headers(stream_id, [*head, ("content-length", str(len(BODY)))])
    if not break_body:
        connection.send_data(stream_id, BODY, end_stream=True)
        return
    writer.write(connection.data_to_send())
    await writer.drain()
    await asyncio.sleep(0.05)  # the client is reading the body by now
    connection.close_connection(last_stream_id=stream_id)
    data = hyperframe.DataFrame(stream_id, data=BODY, flags=["END_STREAM"])
    writer.write(connection.data_to_send() + data.serialize())


@asynccontextmanager
async def h2_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path, list[bool]]]:
    """A TLS HTTP/2 server on 127.0.0.1; append ``True`` to the list to break the next
    connection's bodies."""
    ca_path = tmp_path / "ca.pem"
    context = make_server_context("127.0.0.1", ca_path)
    breaks: list[bool] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_h2(reader, writer, break_body=bool(breaks and breaks.pop()))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"https://127.0.0.1:{port}", ca_path, breaks


@pytest.mark.anyio
async def test_a_protocol_error_mid_body_is_a_bad_gateway_and_the_next_call_succeeds(
    tmp_path: Path,
) -> None:
    async with h2_server(tmp_path) as (base_url, ca_path, breaks):
        fields: dict[str, Any] = {"http2": True, "ca_bundle": str(ca_path)}
        fields["retry"] = {"max_attempts": 1}  # the one broken answer is the one seen
        async with one_downstream(base_url, **fields) as catalog:
            breaks.append(True)
            with pytest.raises(DownstreamBadGateway, match="broke the connection"):
                await catalog.get("/items/1")
            assert catalog.outcomes["bad_gateway"] == 1
            response = await catalog.get("/items/1")  # a new connection, a normal answer
            assert response.http_version == "HTTP/2"
            assert response.content == BODY
            assert catalog.bulkhead.in_flight == 0


@pytest.mark.anyio
async def test_a_protocol_error_in_a_streamed_body_is_an_httpx_error(tmp_path: Path) -> None:
    async with h2_server(tmp_path) as (base_url, ca_path, breaks):
        fields: dict[str, Any] = {"http2": True, "ca_bundle": str(ca_path)}
        async with one_downstream(base_url, **fields) as catalog:
            breaks.append(True)
            with pytest.raises(httpx.RemoteProtocolError, match="malformed response"):
                async with catalog.stream("GET", "/items/1") as response:
                    await response.aread()
            assert catalog.bulkhead.in_flight == 0
            assert len(catalog.in_flight) == 0
