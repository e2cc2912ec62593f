"""What each load generator delivered and how hard it worked, for ``saturation``.

Locust's workers send their CPU in every heartbeat (sampled each 10 s) and their request counts
in every stats report; the master keeps only the latest CPU and logs the first one above 90 %.
This samples the master's view of its workers once a second (the peak CPU, a worker missing
or gone) and adds up each worker's reported requests. A single local runner is one generator.

Locust's CPU figure misses a worker starved by its neighbours: it uses little CPU because it
gets little. So each worker also reports its CPU demand from ``/proc/self/schedstat`` (time on
a CPU plus time runnable but waiting for one), and the run's mean demand counts as its load.
"""

from __future__ import annotations

import time
from typing import Any, Final

import gevent
from locust.env import Environment
from locust.runners import (
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    MasterRunner,
    WorkerRunner,
)

from loadtest.saturation import WorkerLoad

SAMPLE_S: Final = 1.0
DEMAND_REPORT_S: Final = 2.0
DEMAND_MESSAGE: Final = "loadtest_cpu_demand"
LOCAL: Final = "local"
SCHEDSTAT: Final = "/proc/self/schedstat"
Counters = tuple[float, int, int]


def cpu_demand_ns() -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting) of this process so far; None where unknown."""
    try:
        with open(SCHEDSTAT, encoding="ascii") as stat:
            on_cpu, waiting, _slices = stat.read().split()
        return int(on_cpu), int(waiting)
    except (OSError, ValueError):
        return None


def report_cpu_demand(runner: WorkerRunner) -> None:
    """Worker side: send the master this process's CPU demand counters every few seconds."""

    def report() -> None:
        while True:
            counters = cpu_demand_ns()
            if counters is None:
                return
            on_cpu, waiting = counters
            message = {"t": time.time(), "ns": on_cpu + waiting, "cpu_ns": on_cpu}
            runner.send_message(DEMAND_MESSAGE, message)
            gevent.sleep(DEMAND_REPORT_S)

    gevent.spawn(report)


class GeneratorMonitor:
    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.requests: dict[str, int] = {}
        self.peak_cpu: dict[str, float] = {}
        self.missing: set[str] = set()
        #: Per worker: the first and the latest (time, ns of CPU demand, ns on a CPU) it sent.
        self.demand: dict[str, tuple[Counters, Counters]] = {}
        self._local_start = cpu_demand_ns()  # a single local runner: this process
        self.started: float | None = None
        self.judging = False  # workers leave when the run ends: only judge while it runs
        self._greenlet: Any = None
        reports = environment.events.worker_report
        reports.add_listener(self._on_report)  # type: ignore[no-untyped-call]  # untyped in locust
        if isinstance(environment.runner, MasterRunner):
            environment.runner.register_message(DEMAND_MESSAGE, self._on_demand)

    @property
    def distributed(self) -> bool:
        return isinstance(self.environment.runner, MasterRunner)

    def expected(self) -> int:
        if not self.distributed:
            return 1
        options = self.environment.parsed_options
        return max(1, int(getattr(options, "expect_workers", 1) or 1))

    def start(self) -> None:
        """The first phase began: count from now."""
        if self._greenlet is None:
            self.started = time.time()
            self.judging = True
            self._greenlet = gevent.spawn(self._sample)

    def stop(self) -> list[WorkerLoad]:
        self.judging = False
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        seconds = 0.0 if self.started is None else time.time() - self.started
        if not self.distributed:
            requests = self.environment.stats.total.num_requests
            start, end = self._local_start, cpu_demand_ns()
            cpu_s = None if start is None or end is None else (end[0] - start[0]) / 1e9
            return [
                WorkerLoad(LOCAL, requests, seconds, self.peak_cpu.get(LOCAL), cpu_seconds=cpu_s)
            ]
        return [
            WorkerLoad(
                worker,
                self.requests.get(worker, 0),
                seconds,
                self.peak_cpu.get(worker),
                worker in self.missing,
                self._mean_demand(worker),
                self._cpu_seconds(worker),
            )
            for worker in sorted(set(self.requests) | set(self.peak_cpu) | self.missing)
        ]

    def _on_demand(self, environment: Environment, msg: Any, **kwargs: Any) -> None:
        if not self.judging:
            return
        now = (float(msg.data["t"]), int(msg.data["ns"]), int(msg.data["cpu_ns"]))
        first = self.demand.get(msg.node_id, (now, now))[0]
        self.demand[msg.node_id] = (first, now)

    def _mean_demand(self, worker: str) -> float | None:
        """Percent of one CPU the worker needed over the run (used + waited for)."""
        if worker not in self.demand:
            return None
        (t0, ns0, _), (t1, ns1, _) = self.demand[worker]
        return None if t1 <= t0 else 100.0 * (ns1 - ns0) / 1e9 / (t1 - t0)

    def _cpu_seconds(self, worker: str) -> float | None:
        if worker not in self.demand:
            return None
        (_, _, cpu0), (_, _, cpu1) = self.demand[worker]
        return (cpu1 - cpu0) / 1e9 if cpu1 > cpu0 else None

    def _on_report(self, client_id: str, data: dict[str, Any], **kwargs: Any) -> None:
        total = (data.get("stats_total") or {}).get("num_requests", 0)
        self.requests[client_id] = self.requests.get(client_id, 0) + int(total)

    def _sample(self) -> None:
        runner = self.environment.runner
        seen: set[str] = set()
        while True:
            gevent.sleep(SAMPLE_S)
            if not self.judging or runner is None:
                continue
            if not isinstance(runner, MasterRunner):
                self._peak(LOCAL, runner.current_cpu_usage)
                continue
            if runner.state not in (STATE_RUNNING, STATE_SPAWNING):
                continue  # stopping: workers quit now, and that is not going missing
            present = set()
            for client in runner.clients.values():
                present.add(client.id)
                # locust's first sample of a process is psutil's meaningless 0.0: skip zeros.
                if client.cpu_usage:
                    self._peak(client.id, client.cpu_usage)
                if client.state == STATE_MISSING:
                    self.missing.add(client.id)
            self.missing |= seen - present  # it left (or was dropped) while the run went on
            seen |= present

    def _peak(self, worker: str, cpu: float) -> None:
        if cpu:
            self.peak_cpu[worker] = max(cpu, self.peak_cpu.get(worker, 0.0))
