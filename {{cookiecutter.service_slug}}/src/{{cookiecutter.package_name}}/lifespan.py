"""The lifespan owns the downstream clients: opened before the first request, drained at exit.

It also makes ``/readyz`` answer 503 the moment SIGTERM arrives, before uvicorn starts draining,
so a load balancer stops sending traffic while in-flight requests finish.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import TypedDict

import structlog
from fastapi import FastAPI

from .downstream.monitor import PoolMonitor
from .downstream.registry import Downstreams, open_downstreams
from .settings import Settings

log = structlog.get_logger(__name__)


class LifespanState(TypedDict):
    downstreams: Downstreams


def not_ready_on_sigterm(app: FastAPI) -> None:
    """Wrap the server's SIGTERM handler (uvicorn's) so readiness drops before draining."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals belong to the main thread; an embedded server (tests) has none
    server_handler = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        app.state.ready = False
        if callable(server_handler):
            server_handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def mark_worker_stopped() -> None:
    """In multiprocess mode, drop this worker's live gauges from the sums."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[LifespanState]:
    settings: Settings = app.state.settings
    not_ready_on_sigterm(app)
    async with open_downstreams(
        settings.downstreams,
        deadline_header=settings.deadline_header,
        drain_seconds=settings.shutdown_grace_seconds,
        observability=settings.observability,
        transports=app.state.transports,
        spans=app.state.spans,
    ) as downstreams:
        monitor = PoolMonitor(downstreams.values(), settings.observability)
        monitor.start()
        app.state.downstreams = downstreams
        app.state.ready = True
        # Everything allocated so far (imports, app, clients) lives as long as the process.
        # Frozen, full collections stop walking it: unfrozen, each one paused the event loop
        # for 97-111 ms under the quick load test (what a /healthz prober saw as its p99).
        gc.freeze()
        log.info("service.ready", downstreams=sorted(downstreams), frozen=gc.get_freeze_count())
        try:
            yield {"downstreams": downstreams}
        finally:
            app.state.ready = False
            log.info("service.stopping")
            await monitor.stop()
            mark_worker_stopped()
            if app.state.access_log is not None:
                app.state.access_log.flush()
            app.state.spans.shutdown()  # flushes buffered spans (a no-op without tracing)
