"""Child processes of the runner: started in a session of their own, always stopped.

Each child gets its own process group, so Ctrl-C in the terminal reaches only the runner, which
then stops the children in order (locust first, so its gate still writes a verdict), and a
child's own children (locust workers, uvicorn workers) are stopped with it. Output goes to a
file, never a pipe: a chatty child must not block on a full pipe.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the child binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_s: float, *, whole_group: bool = True) -> int | None:
        """SIGTERM (the group, or only the leader), SIGKILL the group after ``grace_s``.

        Returns the exit status, or None if the process had to be killed.
        """
        status: int | None = self.process.poll()
        if status is None:
            self._signal(signal.SIGTERM, whole_group)
            try:
                status = self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                status = None
        # Whatever the leader did, nothing of its group may outlive the run.
        self._signal(signal.SIGKILL, whole_group=True)
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        return status

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal(self, signum: signal.Signals, whole_group: bool) -> None:
        with suppress(ProcessLookupError, PermissionError):
            if whole_group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)


def start(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, log_path)
