"""Hedging against a slow tail: the baked ``Downstream`` with hedging off, at a fixed delay, and
at a percentile delay, in alternated rounds against the bundled fault server's ``tail`` mode.

Prints, per configuration, the calls' p50/p99/p99.9 latency and what the downstream received
(counted at the fault server): the extra requests are what hedging cost. The fault server runs
in a thread of this process, the same for every configuration. Run on a bake:

    python -m benchmarks.hedging --project <bake> --package pool_service [--http2]

``--http2`` serves the fault server over TLS, where the service speaks HTTP/2: the hedge and the
first attempt share one connection, and the loser's cancellation is a RST_STREAM.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from pathlib import Path
from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {
    "off": {"enabled": False},
    "fixed 20 ms": {"enabled": True, "delay": 0.02, "budget_ratio": 0.1},
    "p90": {"enabled": True, "delay": 0.02, "delay_percentile": 90, "budget_ratio": 0.1},
}


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def one_round(
    package: str, transport: dict[str, Any], hedge: dict[str, Any], calls: int, concurrency: int
) -> tuple[list[float], int, int]:
    config = importlib.import_module(f"{package}.downstream.config")
    registry = importlib.import_module(f"{package}.downstream.registry")
    views = importlib.import_module(f"{package}.downstream.views")
    settings = config.DownstreamSettings.model_validate(
        {
            **transport,
            "hedge": hedge,
            "bulkhead": {"max_concurrency": 2 * concurrency, "max_queue": 1000},
            "limits": {"max_connections": 2 * concurrency},
            "breaker": {"minimum_calls": 100_000},
        }
    )
    latencies: list[float] = []
    left = calls
    async with registry.open_downstreams(
        {"catalog": settings}, deadline_header="x-request-deadline-ms", drain_seconds=1
    ) as downstreams:
        catalog = downstreams["catalog"]

        async def caller() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                started = time.perf_counter()
                await catalog.get(f"/items/{left}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        view = views.describe(catalog)
    hedging = view["hedging"]
    retries = sum(view["retry_budget"]["retries_by_reason"].values())
    return sorted(latencies), (hedging["sent"] if hedging else 0), retries


def measure(args: argparse.Namespace) -> None:
    sys.path[:0] = [str(args.project / "src"), str(args.project)]
    harness = importlib.import_module("loadtest.fault_server.harness")
    log_config = importlib.import_module(f"{args.package}.log_config")
    log_config.configure_logging("json", "warning")  # as the service runs: no line per call
    rows: dict[str, list[tuple[list[float], int, int]]] = {name: [] for name in CONFIGS}
    with harness.serve_in_thread(tls=args.http2) as fault:
        transport: dict[str, Any] = {"base_url": fault.base_url, "http2": args.http2}
        if args.http2:
            transport["ca_bundle"] = str(fault.ca_path)
        fault.set_fault(
            "items",
            "tail",
            latency_ms=args.latency_ms,
            tail_rate=args.tail_rate,
            tail_latency_ms=args.tail_ms,
        )
        for _ in range(args.rounds):
            for name, hedge in CONFIGS.items():  # alternated: drift hits every one alike
                fault.reset_stats()
                run = one_round(args.package, transport, hedge, args.calls, args.concurrency)
                latencies, sent, retries = asyncio.run(run)
                # Retries (over HTTP/2: streams a GOAWAY refused) are not the hedges' cost.
                extra = fault.stats()["items"] - args.calls - retries
                rows[name].append((latencies, extra, sent))
    report(rows, args)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(rows: dict[str, list[tuple[list[float], int, int]]], args: argparse.Namespace) -> None:
    print(
        f"{'HTTP/2 over TLS' if args.http2 else 'HTTP/1.1'}; "
        f"tail: {args.tail_rate:.0%} of answers take {args.tail_ms} ms, the rest "
        f"{args.latency_ms} ms; C={args.concurrency}, {args.calls} calls x {args.rounds} rounds"
    )
    print("| hedging | p50 ms | p99 ms | p99.9 ms | extra requests | hedges sent |")
    print("|---|---|---|---|---|---|")
    for name, rounds in rows.items():
        every = sorted(x for latencies, _, _ in rounds for x in latencies)
        extra = sum(e for _, e, _ in rounds)
        sent = sum(s for _, _, s in rounds)
        total = args.calls * len(rounds)
        print(
            f"| {name} | {ms(percentile(every, 0.5))} | {ms(percentile(every, 0.99))} | "
            f"{ms(percentile(every, 0.999))} | {extra} ({extra / total:.1%}) | {sent} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hedging", description=__doc__)
    parser.add_argument("--project", type=Path, required=True, help="a bake's project folder")
    parser.add_argument("--package", default="pool_service")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=5)
    parser.add_argument("--tail-rate", type=float, default=0.05)
    parser.add_argument("--tail-ms", type=float, default=200)
    parser.add_argument("--http2", action="store_true", help="over TLS, where h2 is spoken")
    measure(parser.parse_args())


if __name__ == "__main__":
    main()
