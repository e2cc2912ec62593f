"""`make demo`: bake the defaults into build/demo, install, test, serve, call /healthz, stop.

Then the quick pool-exhaustion load test runs against the baked service; a broken SLO fails it.
Everything runs on 127.0.0.1; every process started here is stopped, also on failure or Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
DEMO = TEMPLATE / "build" / "demo"


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def make(project: Path, *targets: str) -> None:
    subprocess.run(["make", "--no-print-directory", *targets], cwd=project, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_healthz(
    url: str, process: subprocess.Popen[bytes], timeout: float = 30
) -> dict[str, str]:
    give_up = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                body: dict[str, str] = json.loads(response.read())
                return body
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the service exited with status {process.returncode}") from None
            if time.monotonic() > give_up:
                raise SystemExit(f"{url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.2)


def serve_and_call(project: Path, package: str) -> None:
    port = free_port()
    # Development mode, as `make run`: every downstream on loopback, none configured by hand.
    env = {
        **os.environ,
        f"{package.upper()}_PORT": str(port),
        f"{package.upper()}_ENVIRONMENT": "development",
    }
    process = subprocess.Popen(
        [str(project / ".venv/bin/python"), "-m", package], cwd=project, env=env
    )
    try:
        body = wait_for_healthz(f"http://127.0.0.1:{port}/healthz", process)
        print(f"GET http://127.0.0.1:{port}/healthz -> 200 {body}", flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
    print(f"service stopped (exit status {status})", flush=True)
    if status != 0:
        raise SystemExit(f"the service did not stop cleanly (exit status {status})")


def main() -> int:
    step(f"Bake the defaults into {DEMO.relative_to(TEMPLATE)}")
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir(parents=True)
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(DEMO)))
    answers = json.loads((project / ".cookiecutter.json").read_text())
    step("make install (uv, system Python)")
    make(project, "install")
    step("make test")
    make(project, "test")
    step("Serve and call /healthz")
    serve_and_call(project, answers["package_name"])
    step("make loadtest PROFILE=quick (the service against pool exhaustion)")
    verdict = subprocess.run(
        ["make", "--no-print-directory", "loadtest", "PROFILE=quick"], cwd=project
    )
    if verdict.returncode != 0:
        print(f"\ndemo failed: the load test broke an SLO (exit {verdict.returncode}); see above")
        return 1
    print("\ndemo finished: the baked service installs, passes its tests, serves /healthz")
    print("and survives pool exhaustion with every SLO met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
