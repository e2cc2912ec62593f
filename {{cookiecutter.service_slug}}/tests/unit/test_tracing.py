"""When a failed HTTP/2 attempt is provably unprocessed, and when it is not."""

from __future__ import annotations

from dataclasses import dataclass

from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstream.tracing import AttemptTrace


@dataclass
class ConnectionTerminated:  # the shape of h2's event that httpcore wraps
    last_stream_id: int | None
    error_code: int = 0


def failure(cause: BaseException) -> httpx.RemoteProtocolError:
    error = httpx.RemoteProtocolError("connection terminated")
    error.__cause__ = cause
    return error


def trace_for(stream_id: int | None) -> AttemptTrace:
    trace = AttemptTrace()
    trace.stream_id = stream_id
    return trace


def test_stream_above_the_goaway_last_stream_id_was_never_processed() -> None:
    goaway = failure(Exception(ConnectionTerminated(last_stream_id=7)))
    assert trace_for(9).never_processed(goaway) is True
    assert trace_for(7).never_processed(goaway) is False
    assert trace_for(5).never_processed(goaway) is False


def test_no_proof_means_processed() -> None:
    assert trace_for(None).never_processed(failure(Exception(ConnectionTerminated(7)))) is False
    assert trace_for(9).never_processed(failure(Exception(ConnectionTerminated(None)))) is False
    assert trace_for(9).never_processed(httpx.WriteError("broken pipe")) is False
    assert trace_for(9).never_processed(failure(OSError("reset"))) is False
