"""Start a server process pinned to its CPUs, wait until it answers, and always stop it.

Also reads what the kernel knows about a process: CPU time (/proc/<pid>/stat) and resident
memory (VmRSS in /proc/<pid>/status), so figures come from the OS, not from the process itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Variables that would reconfigure a baked service behind the harness's back.
FOREIGN_PREFIXES = ("POOL_SERVICE_", "LOG_FORMAT", "PYTEST_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    return {**base, **extra}


@dataclass
class Server:
    """One running server: its name, URL, process, and the log file its output goes to."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    probe_path: str
    cpus: frozenset[int] = field(default_factory=frozenset)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def spawn_server(
    name: str,
    command: list[str],
    *,
    port: int,
    cpus: frozenset[int],
    env: Mapping[str, str],
    cwd: Path,
    log_dir: Path,
    probe_path: str,
) -> Server:
    """Start the process on any CPU; ``ready`` pins it once it answers.

    Start-up (imports) is CPU-bound: pinning afterwards lets several servers start at once on
    every core, while the measured phase still runs on the server's own CPUs.
    """
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=clean_environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C to the harness reaches the harness only
        )
    return Server(name, f"http://127.0.0.1:{port}", process, log_path, probe_path, cpus)


def ready(servers: list[Server], timeout: float = 60.0) -> None:
    """Wait until every server answers its probe, then pin each to its CPUs."""
    try:
        for server in servers:
            wait_until_ready(server, timeout)
            pin_threads(server.pid, server.cpus)
    except BaseException:
        for server in servers:
            stop(server)
        raise


def pin_threads(pid: int, cpus: frozenset[int]) -> None:
    """Pin every thread the process has (threads it starts later inherit the mask)."""
    if not cpus:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def wait_until_ready(server: Server, timeout: float) -> None:
    give_up = time.monotonic() + timeout
    url = server.base_url + server.probe_path
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with status {server.process.returncode} before it was "
                f"ready; its output:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > give_up:
            raise RuntimeError(
                f"{server.name} did not answer {url} within {timeout:.0f}s; its output:\n"
                f"{server.log_tail()}"
            )
        time.sleep(0.05)


def stop(server: Server, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; only this server's own process."""
    process = server.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    """Stop every server in ``servers`` at exit, including ones appended inside the block."""
    try:
        yield servers
    finally:
        for server in reversed(servers):
            stop(server)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
