"""In-process micro-benchmarks of the baked package: no sockets, just the code's own cost.

- pipeline: ``Downstream.get`` (deadline, bulkhead, breaker, retry bookkeeping, cancellation-safe
  send, URL checks, logging config of the service) against a raw ``client.get`` on the same
  ``httpx.MockTransport``; the difference is what the layer adds to every call.
- open breaker: ``Downstream.get`` after ``breaker.force_open()``; the cost of saying no.
- trace: httpcore's own pool over an in-memory network backend, with and without
  ``AttemptTrace`` as ``extensions["trace"]``. MockTransport bypasses httpcore and emits no trace
  events, so the canned backend is what makes the measurement honest.

Run by the harness in its own process, pinned, with the bake's ``src`` first on ``sys.path``:

    python -m benchmarks.micro --src <bake>/src --package pool_service --out micro.json
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from .stats import Spread, spread

BASE_URL = "http://catalog.bench"
BODY = json.dumps({"id": "42", "name": "item 42", "stock": 7}).encode()
CANNED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)

Call = Callable[[], Awaitable[object]]


async def per_call_us(call: Call, calls: int) -> float:
    """CPU microseconds per call over ``calls`` calls.

    CPU time of this process, not wall time: on a shared machine another process can take the
    core mid-round, and that time is not this code's cost.
    """
    clock = time.process_time
    started = clock()
    for _ in range(calls):
        await call()
    return (clock() - started) / calls * 1e6


def differences(minuends: list[float], subtrahends: list[float]) -> list[float]:
    """Round-by-round differences: each pair ran back to back, under the same conditions."""
    return [a - b for a, b in zip(minuends, subtrahends, strict=True)]


def canned_backend(httpcore: Any) -> Any:
    """An httpcore network backend whose every connection answers every request at once."""

    class CannedStream(httpcore.AsyncNetworkStream):  # type: ignore[misc]
        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return CANNED_RESPONSE

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            return None

        async def aclose(self) -> None:
            return None

        def get_extra_info(self, info: str) -> Any:
            return None

    class CannedBackend(httpcore.AsyncNetworkBackend):  # type: ignore[misc]
        async def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
            return CannedStream()

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds)

    return CannedBackend()


async def measure(package: str, calls: int, rounds: int) -> dict[str, Any]:
    def module(name: str) -> Any:
        return importlib.import_module(f"{package}.{name}")

    httpx = module("downstream.httplib").httpx
    httpcore = importlib.import_module("httpcore" if httpx.__name__ == "httpx" else "httpcore2")
    Downstream = module("downstream.client").Downstream
    DownstreamSettings = module("downstream.config").DownstreamSettings
    DownstreamError = module("downstream.errors").DownstreamError
    AttemptTrace = module("downstream.tracing").AttemptTrace
    module("log_config").configure_logging("json", "warning")  # as the benchmarked service runs

    def answer(request: Any) -> Any:
        return httpx.Response(200, headers={"content-type": "application/json"}, content=BODY)

    settings = DownstreamSettings(base_url=BASE_URL)
    client = httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(answer))
    downstream = Downstream("catalog", settings, client, deadline_header="x-request-deadline-ms")
    refusing = Downstream("catalog", settings, client, deadline_header="x-request-deadline-ms")
    refusing.breaker.force_open()
    pool = httpcore.AsyncConnectionPool(network_backend=canned_backend(httpcore))
    url = f"{BASE_URL}/items/42"

    async def raw() -> object:
        return await client.get("/items/42")

    async def pipeline() -> object:
        return await downstream.get("/items/{item_id}", path_params={"item_id": "42"})

    async def open_breaker() -> object:
        try:
            await refusing.get("/items/{item_id}", path_params={"item_id": "42"})
        except DownstreamError as exc:
            return exc
        raise RuntimeError("the forced-open breaker let a call through")

    async def pool_untraced() -> object:
        return await pool.request("GET", url)

    async def pool_traced() -> object:
        return await pool.request("GET", url, extensions={"trace": AttemptTrace()})

    benchmarks: dict[str, Call] = {
        "raw_client_get": raw,
        "pipeline_get": pipeline,
        "breaker_open_get": open_breaker,
        "pool_plain": pool_untraced,
        "pool_traced": pool_traced,
    }
    for call in benchmarks.values():  # warm-up: imports, caches, first connection
        await per_call_us(call, min(calls, 300))
    # Rounds interleave the benchmarks, so drift on a noisy machine hits both sides of each pair.
    figures: dict[str, list[float]] = {name: [] for name in benchmarks}
    for _ in range(rounds):
        for name, call in benchmarks.items():
            figures[name].append(await per_call_us(call, calls))
    await client.aclose()
    await pool.aclose()
    overhead = differences(figures["pipeline_get"], figures["raw_client_get"])
    trace = differences(figures["pool_traced"], figures["pool_plain"])
    result: dict[str, Spread | int | str] = {name: spread(v) for name, v in figures.items()}
    result["pipeline_overhead"] = spread(overhead)
    result["trace_overhead"] = spread(trace)
    result["library"] = f"{httpx.__name__} {httpx.__version__}"
    result["outcomes"] = dict(downstream.outcomes)  # type: ignore[assignment]
    result["calls_per_round"] = calls
    result["rounds"] = rounds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="the bake's src folder")
    parser.add_argument("--package", required=True)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", required=True, help="JSON file to write (stdout has the logs)")
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(measure(args.package, args.calls, args.rounds))
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
