"""The JSON access log: the shape of a line, whole-line writes a pipe keeps atomic, the flush."""

from __future__ import annotations

import asyncio
import json
import re

from {{ cookiecutter.package_name }}.access_log import FLUSH_SECONDS, PIPE_BUF, AccessLog

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def record(log: AccessLog, n: int = 0) -> None:
    log.record(method="GET", path=f"/items/{n}", status=200, duration=0.0123456, request_id="r1")


def test_a_line_has_the_shape_of_every_other_log_line() -> None:
    writes: list[bytes] = []
    log = AccessLog(writes.append)

    async def one() -> None:
        record(log)
        log.flush()

    asyncio.run(one())
    [line] = writes
    assert line.endswith(b"\n")
    event = json.loads(line)
    assert ISO_UTC.match(event.pop("timestamp"))
    assert event == {
        "event": "request",
        "method": "GET",
        "path": "/items/0",
        "status": 200,
        "duration_ms": 12.346,
        "request_id": "r1",
        "level": "info",
        "logger": "access",
    }


def test_writes_are_whole_lines_of_at_most_pipe_buf_bytes() -> None:
    """Several workers share one stdout: a write of at most PIPE_BUF never interleaves."""
    writes: list[bytes] = []
    log = AccessLog(writes.append)

    async def many() -> None:
        for n in range(200):
            record(log, n)
        log.flush()

    asyncio.run(many())
    assert len(writes) > 1  # the buffer filled and was written without waiting for the timer
    assert all(len(chunk) <= PIPE_BUF and chunk.endswith(b"\n") for chunk in writes)
    paths = [json.loads(line)["path"] for line in b"".join(writes).splitlines()]
    assert paths == [f"/items/{n}" for n in range(200)]  # every line, once, in order


def test_a_quiet_service_still_writes_its_last_lines() -> None:
    writes: list[bytes] = []
    log = AccessLog(writes.append)

    async def one_then_wait() -> None:
        record(log)
        assert writes == []  # buffered
        await asyncio.sleep(FLUSH_SECONDS + 0.5)

    asyncio.run(one_then_wait())
    assert len(writes) == 1
