"""Samples the service about once a second during the run into ``timeline.jsonl``.

Each line is one JSON object: the time, the summarised ``/debug/downstreams`` (pool, in-flight,
queue, breaker state, call outcomes), the ``downstream_*`` and ``process_*`` series of
``/metrics``, and the process's RSS and open fds. A thread of the runner does the polling, so
the load generator's numbers and the service's are sampled independently.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Final

from loadtest import probes

INTERVAL_S: Final = 1.0
_SERIES_PREFIXES: Final = ("downstream_", "process_")
_SKIPPED_SUFFIXES: Final = ("_bucket", "_created")


class Sampler:
    """``start()`` begins polling in a daemon thread; ``stop()`` ends it and closes the file."""

    def __init__(self, service_url: str, pid: int | None, path: Path) -> None:
        self.service_url = service_url
        self.pid = pid
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadtest-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sample(self) -> dict[str, Any]:
        return {
            "t": time.time(),
            "downstreams": probes.downstream_views(self.service_url),
            "metrics": _selected_series(probes.metrics(self.service_url)),
            "usage": probes.process_usage(self.pid, self.service_url),
        }

    def _run(self) -> None:
        with self.path.open("a", encoding="utf-8") as timeline:
            while not self._stop.is_set():
                started = time.monotonic()
                timeline.write(json.dumps(self.sample()) + "\n")
                timeline.flush()
                self._stop.wait(max(0.0, INTERVAL_S - (time.monotonic() - started)))


def _selected_series(samples: dict[str, float] | None) -> dict[str, float] | None:
    if samples is None:
        return None
    return {
        key: value
        for key, value in samples.items()
        if key.startswith(_SERIES_PREFIXES) and not key.split("{", 1)[0].endswith(_SKIPPED_SUFFIXES)
    }


def read_timeline(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            samples.append(json.loads(line))
        except ValueError:
            continue  # a line cut short when the run was interrupted
    return samples
