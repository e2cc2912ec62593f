"""A background watchdog over every downstream's pool, one task per process.

Each tick it refreshes the pool gauges, logs ``downstream.pool.snapshot`` when something changed
or utilisation is high, ``downstream.pool.saturated`` when utilisation crosses the threshold,
``downstream.response.leaked`` for streams held open too long, and closes connections that
were reserved for a request no longer there (httpcore #1093) or taken out of the pool and left
open, logged by the downstream as ``downstream.pool.orphan_connection``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import structlog

from . import views
from .client import Downstream
from .config import ObservabilitySettings

log = structlog.get_logger("downstream.pool")


class PoolMonitor:
    def __init__(self, downstreams: Iterable[Downstream], settings: ObservabilitySettings) -> None:
        self.downstreams = list(downstreams)
        self.settings = settings
        self.last_snapshot: dict[str, tuple[object, ...]] = {}
        self.saturated: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name="pool-monitor")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.monitor_interval_seconds)
            for downstream in self.downstreams:
                try:
                    await self.tick(downstream)
                except Exception:  # a watchdog must outlive whatever it watches
                    log.exception("downstream.pool.monitor_failed", downstream=downstream.name)

    async def tick(self, downstream: Downstream) -> None:
        views.update_gauges(downstream)
        snapshot = views.snapshot(downstream)
        name = downstream.name
        utilisation = float(snapshot["utilisation"])
        state = (snapshot["pool"], snapshot["in_flight"], snapshot["queued"])
        if (
            state != self.last_snapshot.get(name)
            or utilisation >= self.settings.saturation_threshold
        ):
            log.info("downstream.pool.snapshot", downstream=name, **snapshot)
            self.last_snapshot[name] = state
        if utilisation >= self.settings.saturation_threshold and name not in self.saturated:
            self.saturated.add(name)
            log.warning(
                "downstream.pool.saturated",
                downstream=name,
                utilisation=utilisation,
                threshold=self.settings.saturation_threshold,
                oldest_calls=downstream.in_flight.oldest(),
            )
        elif utilisation < self.settings.saturation_threshold:
            self.saturated.discard(name)
        for stream in downstream.open_streams.held_longer_than(
            self.settings.leak_threshold_seconds
        ):
            downstream.instruments.leaked("held_open", stream)
        if self.settings.repair_orphans:  # a backstop: Downstream repairs its own cancelled
            await downstream.repair.repair_orphans()  # calls at once; this catches the rest
            await downstream.repair.close_unpooled()  # sockets httpcore's close skipped
