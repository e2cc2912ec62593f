"""The service as production runs it: ``python -m <package>`` in a process of its own.

Signals, worker processes and exit codes exist only outside the test process, so the shutdown and
worker tests start the real entry point. Output goes to files, not pipes: a chatty service must
never block on a full pipe while a test is busy elsewhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.settings import ENV_PREFIX

from loadtest.processes import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "{{ cookiecutter.package_name }}"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_ready(self) -> None:
        """Poll ``/readyz`` until it answers 200; fail with the service's output if it dies."""
        give_up = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > give_up:
                raise RuntimeError(f"the service did not become ready:\n{self.stderr()}")
            time.sleep(0.05)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        return self.process.wait(timeout=STOP_TIMEOUT_S)

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines the service wrote (``LOG_FORMAT=json``)."""
        lines = self.stdout().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@contextmanager
def service_process(settings: dict[str, str], output_dir: Path) -> Iterator[ServiceProcess]:
    """Start ``python -m <package>`` with ``settings`` (names without the prefix); kill on exit."""
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)},
        "PYTHONPATH": str(PROJECT_ROOT / "src"),
        "LOG_FORMAT": "json",
        f"{ENV_PREFIX}PORT": str(port),
        **{ENV_PREFIX + name: value for name, value in settings.items()},
    }
    stdout_path, stderr_path = output_dir / "stdout.log", output_dir / "stderr.log"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", PACKAGE],
            env=environment,
            cwd=output_dir,
            stdout=stdout,
            stderr=stderr,
        )
    service = ServiceProcess(process, port, stdout_path, stderr_path)
    try:
        yield service
    finally:
        if process.poll() is None:  # a failed test must not leave a server (or its workers) behind
            for pid in child_pids(process.pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


def child_pids(parent: int) -> list[int]:
    """The live children of ``parent``, read from /proc (Linux; empty elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its last ")".
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)


def errors_logged(service: ServiceProcess) -> list[dict[str, Any]]:
    return [e for e in service.log_events() if e.get("level") in ("error", "critical")]
