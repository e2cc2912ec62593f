"""Command line: run the fault server until SIGINT/SIGTERM.

    python -m loadtest.fault_server --host 127.0.0.1 --port 8001 --admin-port 8011 \\
        [--tls --ca-out PATH] [--goaway-after N]

Loopback only (it is a test fixture with an unauthenticated admin API), unless
``--any-address``: in the load-test pod, where a NetworkPolicy keeps it inside its namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

from .listener import require_loopback
from .server import ServerOptions, ServerUrls, serve

log = logging.getLogger("loadtest.fault_server")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _parse(argv: Sequence[str] | None) -> ServerOptions:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.fault_server",
        description="Fault-injecting downstream for the service's tests and load tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback IP (default %(default)s)")
    parser.add_argument("--port", type=int, default=8001, help="data port (default %(default)s)")
    parser.add_argument(
        "--admin-port", type=int, default=8011, help="admin API port (default %(default)s)"
    )
    parser.add_argument(
        "--tls", action="store_true", help="serve the data port over TLS (ALPN h2, http/1.1)"
    )
    parser.add_argument(
        "--ca-out", type=Path, metavar="PATH", help="with --tls: where to write the CA PEM"
    )
    parser.add_argument(
        "--goaway-after",
        type=_positive_int,
        metavar="N",
        help="recycle every data connection after N requests (HTTP/2: GOAWAY); "
        "stays in force when faults are cleared",
    )
    parser.add_argument(
        "--any-address",
        action="store_true",
        help="allow a non-loopback --host: only in a load-test pod, whose NetworkPolicy keeps "
        "the unauthenticated admin API inside its namespace (deploy/k8s/loadtest)",
    )
    args = parser.parse_args(argv)
    try:
        if not args.any_address:
            require_loopback(args.host)
    except ValueError as error:
        parser.error(str(error))
    if args.port == args.admin_port != 0:
        parser.error("--port and --admin-port must differ")
    if args.tls != (args.ca_out is not None):
        parser.error("--tls and --ca-out PATH go together")
    return ServerOptions(
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        tls=args.tls,
        ca_path=args.ca_out,
        goaway_after=args.goaway_after,
        any_address=args.any_address,
    )


async def _run(options: ServerOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def ready(urls: ServerUrls) -> None:
        ca = f", CA {urls.ca_path}" if urls.ca_path else ""
        log.info("fault server: data %s, admin %s%s", urls.base_url, urls.admin_url, ca)

    await serve(options, shutdown_trigger=stop.wait, on_ready=ready)
    log.info("fault server stopped")


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(_run(options))
    except OSError as error:  # e.g. a port already in use
        log.error("fault server: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
