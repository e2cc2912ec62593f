"""The load driver: a closed-loop asyncio client (aiohttp on uvloop), run in its own process.

``concurrency`` workers each send one request at a time over a keep-alive connection of their
own, for ``--seconds`` (after ``--warmup`` seconds that are not counted) or for ``--requests``
requests. Every answered request's latency is kept, so percentiles and the maximum are exact.
For error responses the ``reason`` of a problem+json body (``shed``, ``pool_exhausted``,
``PoolTimeout``...) is counted too. With ``--watch NAME=PID`` it reads those processes' CPU time
from /proc at the start and end of the measured window, so CPU per request is the server's own.
With ``--serve`` it stays up and runs one job per JSON line on stdin (the fields of ``Job``),
answering each with one JSON line, so the harness pays the interpreter start-up once.

Why aiohttp: it is the fastest Python HTTP client here (~75 us of CPU a request, 11,000-13,000
req/s on one core against the raw downstream), far above the few hundred to two thousand req/s
the targets reach, and it installs with pip: CI needs no system package.

    python -m benchmarks.loadgen --url http://127.0.0.1:8000/items/42 --concurrency 10 --seconds 4
    python -m benchmarks.loadgen --serve
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import uvloop

from .processes import cpu_seconds
from .stats import percentile


class Tally:
    """What one phase saw: latencies of answered requests, statuses, reasons, client errors."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ok_latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.reasons: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def summary(self, elapsed: float) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        ok = sorted(self.ok_latencies)
        answered = len(latencies)
        return {
            "elapsed_s": elapsed,
            "answered": answered,
            "ok": len(ok),
            "rps": answered / elapsed if elapsed else 0.0,
            "ok_rps": len(ok) / elapsed if elapsed else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "reasons": dict(sorted(self.reasons.items())),
            "client_errors": dict(sorted(self.errors.items())),
            "latency_ms": milliseconds(latencies),
            "ok_latency_ms": milliseconds(ok),
        }


def milliseconds(sorted_seconds: list[float]) -> dict[str, float]:
    if not sorted_seconds:
        return {}
    return {
        "p50": percentile(sorted_seconds, 0.50) * 1000,
        "p90": percentile(sorted_seconds, 0.90) * 1000,
        "p99": percentile(sorted_seconds, 0.99) * 1000,
        "max": sorted_seconds[-1] * 1000,
        "mean": sum(sorted_seconds) / len(sorted_seconds) * 1000,
    }


def reason_of(status: int, body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return f"status_{status}"
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return f"{status}:{reason}" if isinstance(reason, str) else f"status_{status}"


async def phase(
    session: aiohttp.ClientSession,
    url: str,
    concurrency: int,
    *,
    seconds: float | None,
    requests: int | None,
) -> tuple[Tally, float]:
    """Run the workers until the time or the request count is used up; wait for stragglers."""
    tally = Tally()
    remaining = requests if requests is not None else -1
    clock = time.perf_counter
    started = clock()
    stop_at = started + seconds if seconds is not None else float("inf")

    async def worker() -> None:
        nonlocal remaining
        while True:
            if remaining == 0 or clock() >= stop_at:
                return
            if remaining > 0:
                remaining -= 1
            sent = clock()
            try:
                async with session.get(url) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.errors[type(exc).__name__] += 1
                continue
            latency = clock() - sent
            tally.latencies.append(latency)
            tally.statuses[status] += 1
            if status < 400:
                tally.ok_latencies.append(latency)
            else:
                tally.reasons[reason_of(status, body)] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally, clock() - started


@dataclass(frozen=True)
class Job:
    url: str
    concurrency: int
    seconds: float | None = None
    requests: int | None = None
    warmup: float = 0.0
    timeout: float = 60.0
    watch: dict[str, int] = field(default_factory=dict)


async def drive(job: Job) -> dict[str, Any]:
    """One job with a fresh session: no connection outlives the run it was opened for."""
    connector = aiohttp.TCPConnector(limit=job.concurrency, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=job.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if job.warmup > 0:
            await phase(session, job.url, job.concurrency, seconds=job.warmup, requests=None)
        cpu_before = {name: cpu_seconds(pid) for name, pid in job.watch.items()}
        own_before = time.process_time()
        tally, elapsed = await phase(
            session, job.url, job.concurrency, seconds=job.seconds, requests=job.requests
        )
        own_cpu = time.process_time() - own_before
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in job.watch.items()}
    result = tally.summary(elapsed)
    result["cpu_s"] = {**cpu, "driver": own_cpu}
    result["concurrency"] = job.concurrency
    return result


async def serve() -> None:
    """Run the jobs read from stdin one after another, answering each on stdout."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        try:
            answer = await drive(Job(**json.loads(line)))
        except Exception as exc:  # reported, and the next job still runs: the harness decides
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def parse_watch(item: str) -> tuple[str, int]:
    name, _, pid = item.partition("=")
    return name, int(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="jobs as JSON lines on stdin")
    parser.add_argument("--url")
    parser.add_argument("--concurrency", type=int)
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--seconds", type=float)
    window.add_argument("--requests", type=int)
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--watch", action="append", default=[], metavar="NAME=PID")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        if args.serve:
            runner.run(serve())
            return
        one_window = (args.seconds is None) != (args.requests is None)
        if not args.url or not args.concurrency or not one_window:
            parser.error("give --url, --concurrency and one of --seconds or --requests")
        job = Job(
            url=args.url,
            concurrency=args.concurrency,
            seconds=args.seconds,
            requests=args.requests,
            warmup=args.warmup,
            timeout=args.timeout,
            watch=dict(parse_watch(item) for item in args.watch),
        )
        result = runner.run(drive(job))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
