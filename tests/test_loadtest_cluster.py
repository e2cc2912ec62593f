"""deploy/k8s/loadtest for real, on loopback: the manifests' own commands, as separate processes.

The fault server, the service, the locust master and two locust workers are started with the
command and environment the rendered manifests give their containers (``tests/kustomize.py``;
``$(VAR)`` expanded as the kubelet does, the image's CMD where a container has no command).
Only addresses differ, and only in the variables named here, which must exist in the manifests:
cluster DNS names become 127.0.0.1 and fixed ports free ones, ``/reports`` a temporary folder.
The quick profile's verdict must hold with the gate on the master; with one worker starved of
CPU (pinned to a core with a busy process, at the lowest priority) the run must be ``invalid``.
One bake, two runs of about 90 s each: ``loadtest`` marker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import bake_project
from tests.kustomize import build
from tests.test_deploy_loadtest import SLUG, container, env_of, one, port

pytestmark = pytest.mark.loadtest

PREFIX = "POOL_SERVICE_"
RUN_TIMEOUT_S = 400  # the quick profile is ~80 s; the master waits for the service first
LEFTOVERS = ("PYTEST_", "POOL_", "LOADTEST_", "LOCUST_")
INVALID_EXIT = 3
Spec = tuple[list[str], dict[str, str]]


@pytest.fixture(scope="module")
def project(cookies_session: Any) -> Path:
    return bake_project(cookies_session)


@pytest.fixture(scope="module")
def rendered(project: Path) -> list[dict[str, Any]]:
    return build(project / "deploy" / "k8s" / "loadtest")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        number: int = sock.getsockname()[1]
        return number


def image_cmd(project: Path) -> list[str]:
    """The service image's CMD: the Deployment gives no command of its own."""
    found = re.findall(r"^CMD (\[.*\])$", (project / "Dockerfile").read_text(), re.MULTILINE)
    command: list[str] = json.loads(found[-1])  # the runtime stage is the last
    return command


def expand(value: str, env: dict[str, str]) -> str:
    """``$(VAR)`` as the kubelet expands it in command and args; ``$$`` is a literal ``$``."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]),
        value,
    )


class Loopback:
    """The one place where the cluster's addresses become this machine's."""

    def __init__(self, rendered: list[dict[str, Any]], reports: Path) -> None:
        self.ports = {name: free_port() for name in ("data", "admin", "service", "master")}
        self.reports = reports
        fault = one(rendered, "Service", "fault-server")
        service = one(rendered, "Service", SLUG)
        self.authorities = {
            f"fault-server:{port(fault, 'data')}": f"127.0.0.1:{self.ports['data']}",
            f"fault-server:{port(fault, 'admin')}": f"127.0.0.1:{self.ports['admin']}",
            f"{SLUG}:{port(service, 'http')}": f"127.0.0.1:{self.ports['service']}",
        }
        self.variables = {
            "FAULT_HOST": "127.0.0.1",
            "FAULT_PORT": str(self.ports["data"]),
            "FAULT_ADMIN_PORT": str(self.ports["admin"]),
            f"{PREFIX}PORT": str(self.ports["service"]),
            "LOCUST_MASTER_BIND_HOST": "127.0.0.1",
            "LOCUST_MASTER_BIND_PORT": str(self.ports["master"]),
            "LOCUST_MASTER_NODE_HOST": "127.0.0.1",
            "LOCUST_MASTER_NODE_PORT": str(self.ports["master"]),
            "HOME": str(reports.parent),
        }

    def env(self, env: dict[str, str]) -> dict[str, str]:
        local = {}
        for name, value in env.items():
            for cluster, here in self.authorities.items():
                value = value.replace(f"//{cluster}", f"//{here}")
            if value.startswith("/reports"):
                value = str(self.reports) + value.removeprefix("/reports")
            local[name] = self.variables.get(name, value)
        return local


def spec_of(
    project: Path, rendered: list[dict[str, Any]], kind: str, name: str, loopback: Loopback
) -> Spec:
    obj = one(rendered, kind, name)
    spec = container(obj)
    manifest_env = env_of(rendered, obj)
    renamed = set(loopback.variables) & set(manifest_env)
    env = loopback.env(manifest_env)
    if name == SLUG:  # the image sets HOST=0.0.0.0; here only loopback
        env[f"{PREFIX}HOST"] = "127.0.0.1"
        renamed.add(f"{PREFIX}PORT")
    command = [*spec.get("command", []), *spec.get("args", [])] or image_cmd(project)
    argv = [expand(part, env) for part in command]
    assert argv[0] == "python", argv
    assert renamed, f"{name}: none of the address variables is in its manifest"
    return [sys.executable, *argv[1:]], env


def base_env(project: Path) -> dict[str, str]:
    """This machine's environment, as the image's: the package and loadtest/ importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEFTOVERS)}
    env["PYTHONPATH"] = os.pathsep.join([str(project / "src"), str(project)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@contextmanager
def started(
    project: Path, name: str, spec: Spec, logs: Path, *, core: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``core``: run on that core only, every thread of it (set before exec: affinity is per
    thread on Linux, and a thread inherits its creator's)."""
    argv, env = spec

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    with (logs / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=project,
            env={**base_env(project), **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pin if core is not None else None,
        )
    try:
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for_port(number: int, timeout_s: float = 60) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        with suppress(OSError), socket.create_connection(("127.0.0.1", number), timeout=1):
            return
        time.sleep(0.2)
    pytest.fail(f"nothing listens on 127.0.0.1:{number}")


def cluster_run(
    project: Path, rendered: list[dict[str, Any]], tmp_path: Path, *, starve: bool
) -> tuple[int, dict[str, Any], str]:
    """Run the overlay on loopback; the master's exit status, verdict.json and log."""
    reports = tmp_path / "reports"
    reports.mkdir()
    loopback = Loopback(rendered, reports)
    roles = {
        "fault-server": spec_of(project, rendered, "Deployment", "fault-server", loopback),
        "service": spec_of(project, rendered, "Deployment", SLUG, loopback),
        "master": spec_of(project, rendered, "Job", "locust-master", loopback),
        "worker": spec_of(project, rendered, "Deployment", "locust-worker", loopback),
    }
    workers = int(roles["master"][1]["LOCUST_EXPECT_WORKERS"])
    assert workers == 2, "the manifests run two workers, as this test does"
    with ExitStack() as stack:
        stack.enter_context(started(project, "fault-server", roles["fault-server"], tmp_path))
        stack.enter_context(started(project, "service", roles["service"], tmp_path))
        wait_for_port(loopback.ports["admin"])
        master = stack.enter_context(started(project, "master", roles["master"], tmp_path))
        wait_for_port(loopback.ports["master"], timeout_s=120)
        cores = sorted(os.sched_getaffinity(0))
        if starve and len(cores) < 2:
            pytest.skip("starving one worker needs two cores")
        pids = [
            stack.enter_context(
                started(
                    project,
                    f"worker-{n}",
                    roles["worker"],
                    tmp_path,
                    core=cores[-1] if starve and n == workers - 1 else None,
                )
            ).pid
            for n in range(workers)
        ]
        if starve:  # once the run is under way: a starved worker would never connect
            wait_for_line(tmp_path / "master.log", "phase 1-")
            stack.enter_context(starved(pids[-1], cores[-1], set(cores[:-1])))
        try:
            status = master.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the master overran {RUN_TIMEOUT_S} s:\n{tail(tmp_path / 'master.log')}")
    log = (tmp_path / "master.log").read_text(errors="replace")
    verdict_path = reports / "verdict.json"
    assert verdict_path.exists(), log[-6000:]
    verdict: dict[str, Any] = json.loads(verdict_path.read_text())
    return status, verdict, log


def wait_for_line(path: Path, text: str, timeout_s: float = 180) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        with suppress(OSError):
            if text in path.read_text(errors="replace"):
                return
        time.sleep(0.5)
    pytest.fail(f"{path.name} never said {text!r}:\n{tail(path)}")


@contextmanager
def starved(pid: int, core: int, others: set[int]) -> Iterator[None]:
    """A busy process on ``core``, where ``pid`` runs, now at the lowest priority: it gets next
    to no CPU. Everything else this test started stays off that core. Each process here has a
    session of its own, so with autogroup scheduling nice counts between session groups: the
    group of ``pid`` gets nice 19 too."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        os.sched_setaffinity(hog.pid, {core})
        for thread in Path(f"/proc/{pid}/task").iterdir():
            with suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, int(thread.name), 19)
        with suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text("19")
        for other in _siblings(pid, hog.pid):
            with suppress(OSError):
                os.sched_setaffinity(other, others)
        yield
    finally:
        hog.kill()
        hog.wait(timeout=10)


def _siblings(*excluded: int) -> list[int]:
    """This test's other processes: its children (the service, the master, the other worker)."""
    me = os.getpid()
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid, parent = int(stat.parent.name), int(fields[1])
            if parent == me and pid not in excluded:
                found.append(pid)
    return found


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def explain(tmp_path: Path) -> str:
    return "\n".join(f"--- {log.name} ---\n{tail(log)}" for log in sorted(tmp_path.glob("*.log")))


def test_the_cluster_run_passes_on_loopback(
    project: Path, rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    status, verdict, log = cluster_run(project, rendered, tmp_path, starve=False)
    broken = [f"{v['phase']}: {v['slo']}" for v in verdict["verdicts"] if not v["passed"]]
    assert broken == [], explain(tmp_path)
    assert verdict["completed"]
    assert verdict["generators"]["problems"] == [], explain(tmp_path)
    assert (verdict["verdict"], status) == ("pass", 0), explain(tmp_path)
    workers = verdict["generators"]["workers"]
    assert len(workers) == 2
    assert all(w["requests"] > 0 and w["requests_per_second"] > 0 for w in workers)
    for printed in ("verdict.json", "locust_stats.csv", "locust.html"):
        assert f"reports/{printed} -----" in log, printed
    assert "requests/s" in log


def test_a_starved_worker_makes_the_run_invalid(
    project: Path, rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    status, verdict, log = cluster_run(project, rendered, tmp_path, starve=True)
    assert (verdict["verdict"], status) == ("invalid", INVALID_EXIT), explain(tmp_path)
    assert not verdict["passed"]
    problems = verdict["generators"]["problems"]
    assert len(problems) == 1, problems  # the starved one, not its healthy sibling
    assert "run INVALID" in log
