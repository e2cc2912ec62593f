"""A streamed response: one attempt, its slot and its verdict held around the caller's block.

Apart from ``client`` because a stream lives differently from a call: the caller holds the
response open, so admission, the close and the leak report wrap their block, not one await.
A stream held open too long, or dropped unexited and collected, is reported with the line of
the ``async with`` that opened it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from .admission import Ticket
from .breaker import is_failure_status
from .deadline import call_deadline
from .failures import for_status
from .httplib import httpx

if TYPE_CHECKING:
    from .client import Downstream

# Frames from ``OpenStreams.open`` up to the caller's ``async with``: this generator, then
# ``contextlib``'s ``__aenter__``.
CALLER_DEPTH = 3


@asynccontextmanager
async def open_stream(
    downstream: Downstream,
    method: str,
    path: str,
    *,
    path_params: Mapping[str, object] | None,
    params: Mapping[str, str | int | float] | None,
    headers: Mapping[str, str] | None,
) -> AsyncIterator[httpx.Response]:
    """``Downstream.stream``: the bulkhead slot is held until the block exits (a slow reader
    holds pool capacity, exactly as its connection does); the verdict is the response head's."""
    method = method.upper()
    request_path = downstream.paths.build(path, path_params)
    deadline = call_deadline(downstream.settings.deadline_seconds, time.monotonic())
    opened = downstream.open_streams.open(method, path, depth=CALLER_DEPTH)
    try:
        ticket = await downstream.admission.admit(method, path)
        try:
            request = downstream.build_request(method, request_path, params=params, headers=headers)
            attempts = downstream.attempts
            attempts.prepare(request, deadline)
            try:
                async with attempts.backstop(deadline):
                    response = await attempts.send_once(request, None)
            except (httpx.HTTPError, TimeoutError) as exc:
                raise attempts.failure(exc) from None
            try:
                _judge(downstream.name, ticket, response)
                yield response
            finally:
                await attempts.close_checked(response)  # the block may end in a cancellation
        except BaseException as exc:
            ticket.settle_error(exc)  # a no-op once the head was judged
            raise
        finally:
            ticket.release()
    except GeneratorExit:  # the context was dropped unexited and collected
        downstream.instruments.leaked("garbage_collected", opened)
        raise
    finally:
        downstream.open_streams.close(opened)


def _judge(name: str, ticket: Ticket, response: httpx.Response) -> None:
    """5xx and 429 fail the stream; any other status is an answer."""
    if is_failure_status(response.status_code):
        ticket.failed("error", status=response.status_code)
        raise for_status(name, response)
    ticket.succeeded()
