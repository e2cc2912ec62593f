"""``python -m loadtest``: prove the service survives pool exhaustion, or exit non-zero.

Starts the fault server and the service on free loopback ports, waits until both are ready,
runs locust headless through the profile's phases (``--workers N``: N worker processes), then
stops every process it started (also on failure, Ctrl-C and SIGTERM), writes the report and
prints the verdict table. Exit status: 0 only when every SLO passed.

    python -m loadtest --profile quick
    python -m loadtest --target http://127.0.0.1:8000          # a service you started yourself
    python -m loadtest --service-command 'uvicorn app:app --port {port}'   # any other service

A service started with ``--service-command`` gets its port and the fault server's URL as
``{port}`` / ``{downstream_url}`` in the command and as LOADTEST_PORT / LOADTEST_DOWNSTREAM_URL.
With ``--target`` the fault server listens on ``--fault-port`` (8001: where the service's
downstreams point by default); the SLO limits assume the profile's service settings, so start
that service with the variables ``--print-service-env`` prints.

``--traces`` points the service's OpenTelemetry exporter at a receiver in this process
(``collector.py``): every span goes to the run's ``traces.jsonl``, and the run ends naming one
shed call's trace. Tracing costs the service CPU, so the gate is not the point of such a run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import ipaddress
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Final
from urllib.parse import urlsplit

from loadtest import probes, processes, report, saturation
from loadtest.discovery import DiscoveryError, find_package
from loadtest.gate import format_table, read_verdicts
from loadtest.processes import Child
from loadtest.profiles import PROFILE_NAMES, Profile, Variant, limit_names, make_profile
from loadtest.sampler import Sampler

PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]
LOCUSTFILE: Final = Path(__file__).resolve().with_name("locustfile.py")
READY_TIMEOUT_S: Final = 30.0
#: Beyond the profile's own length: locust start-up, the gate's drain wait, the report.
LOCUST_OVERTIME_S: Final = 60.0
STOP_GRACE_S: Final = 15.0
#: With --target, where the fault server listens unless told: the service's default downstream.
TARGET_FAULT_PORT: Final = 8001
TARGET_FAULT_ADMIN_PORT: Final = 8011


@dataclass(frozen=True)
class FaultServer:
    url: str
    admin_url: str
    child: Child


@dataclass(frozen=True)
class Service:
    url: str
    child: Child | None  # None: not started here (RSS and fds then come from /metrics)

    @property
    def pid(self) -> int | None:
        return None if self.child is None else self.child.pid


@dataclass
class Outcome:
    locust_status: int | None = None  # None: locust never finished
    interrupted: bool = False
    died: list[Child] = field(default_factory=list)  # children that exited during the run


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Profile]:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    parser.add_argument("--workers", type=int, default=1, help="locust worker processes")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target", metavar="URL", help="an already running service")
    target.add_argument("--service-command", metavar="CMD", help="start this, not the package")
    parser.add_argument("--package", help="the service's package (default: found under src/)")
    parser.add_argument("--fault-port", type=int, help="fault server port (--target: 8001)")
    parser.add_argument("--fault-admin-port", type=int, help="its admin port (--target: 8011)")
    parser.add_argument("--tls", action="store_true", help="fault server over TLS (HTTP/2 by ALPN)")
    parser.add_argument(
        "--engine",
        choices=("aiohttp", "httpcore"),
        help="the HTTP/1.1 engine of every downstream (default: the service's own setting)",
    )
    parser.add_argument(
        "--print-service-env",
        action="store_true",
        help="print the settings a service needs for this profile (for --target), then exit",
    )
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override an SLO limit; names: {', '.join(limit_names())}",
    )
    parser.add_argument(
        "--traces",
        action="store_true",
        help="export the service's spans to a receiver here, written to the run's traces.jsonl",
    )
    parser.add_argument(
        "--report-dir", type=Path, default=PROJECT_ROOT / "loadtest" / "reports", help="parent dir"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.target and not _is_loopback(args.target):
        parser.error(f"--target must be on this machine (127.0.0.1, ::1); got {args.target!r}")
    if args.traces and args.target:
        parser.error("--traces sets the service's OTEL_* variables: not for a --target service")
    if args.traces and importlib.util.find_spec("loadtest.collector") is None:
        parser.error("--traces needs OpenTelemetry: this service was baked with opentelemetry=no")
    try:
        args.limits = dict(_limit(item) for item in args.limit)
        # A variant's process is started like the service: not possible for one started elsewhere.
        variants = not (args.target or args.service_command)
        profile = make_profile(args.profile, args.limits, http2=args.tls, variants=variants)
    except ValueError as error:
        parser.error(str(error))
    return args, profile


def _is_loopback(url: str) -> bool:
    """Load this heavy only ever goes to this machine: a typo must not aim it at a real host."""
    host = urlsplit(url).hostname
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _limit(item: str) -> tuple[str, float]:
    name, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"--limit expects NAME=VALUE, got {item!r}")
    return name.strip(), float(value)


def main(argv: Sequence[str] | None = None) -> int:
    args, profile = parse_args(argv)
    if args.print_service_env:
        port = args.fault_port or TARGET_FAULT_PORT
        package = args.package or find_package(PROJECT_ROOT / "src")
        fault_url = f"http://127.0.0.1:{port}"
        settings = service_settings(package, profile, fault_url, engine=args.engine)
        for name, value in settings.items():
            print(f"{name}={value}")
        return 0
    # Imported by name: a bake with opentelemetry=no has no collector module at all.
    tracing = importlib.import_module("loadtest.collector") if args.traces else None
    run_dir = new_run_dir(args.report_dir, profile.name)
    print(f"loadtest: profile {profile.name} ({profile.seconds:.0f} s of phases), report {run_dir}")
    started = time.monotonic()
    outcome = Outcome()
    with sigterm_as_interrupt(), stopping_children() as stack:
        try:
            fault = start_fault_server(stack, args, run_dir)
            variants = launch_variants(stack, args, profile, fault.url, run_dir)
            # Before the service, so it closes after the service has flushed its last spans.
            otel_env = tracing.start(stack, run_dir) if tracing is not None else {}
            service = start_service(stack, args, profile, fault.url, run_dir, otel_env)
            variant_urls = wait_for_variants(variants)
            sampler = Sampler(service.url, service.pid, run_dir / "timeline.jsonl")
            sampler.start()
            stack.callback(sampler.stop)
            outcome.locust_status = run_locust(
                stack, args, profile, service, fault, run_dir, variant_urls
            )
            children = (fault.child, service.child, *(child for child, _ in variants.values()))
            outcome.died = [c for c in children if c is not None and not c.alive()]
        except KeyboardInterrupt:
            outcome.interrupted = True
            print("\nloadtest: interrupted; stopping everything it started", file=sys.stderr)
        except (StartupError, DiscoveryError) as error:
            print(f"loadtest: {error}", file=sys.stderr)
            return 2
    status = finish(run_dir, outcome, time.monotonic() - started)
    if tracing is not None:
        tracing.print_report(run_dir)
    return status


def finish(run_dir: Path, outcome: Outcome, seconds: float) -> int:
    """Write the report, print the verdict table; the exit status."""
    verdict_path = run_dir / "verdict.json"
    if not verdict_path.exists():
        print(f"loadtest: no verdict was written; see {run_dir / 'locust.log'}", file=sys.stderr)
        print(_tail(run_dir / "locust.log"), file=sys.stderr)
        return 130 if outcome.interrupted else 1
    chart = report.write_report(run_dir)
    ok, verdicts = read_verdicts(verdict_path)
    print()
    print(format_table(verdicts))
    print(f"\nreport: {chart}")
    print(f"run time: {seconds:.0f} s")
    for child in outcome.died:
        print(f"loadtest: the {child.name} exited during the run; see {child.log_path}")
    if outcome.interrupted:
        return 130
    result, loads, problems = saturation.read_outcome(verdict_path)
    if loads:
        print(f"\n{saturation.format_generators(loads)}")
    if result == saturation.INVALID:
        print("loadtest: INVALID, the load generators did not deliver (no verdict):")
        for line in problems:
            print(f"  - {line}")
        return saturation.EXIT_STATUS[saturation.INVALID]
    if ok and outcome.locust_status == 0 and not outcome.died:
        print("loadtest: PASS, every SLO held")
        return 0
    failed = [f"{v.phase}: {v.slo}" for v in verdicts if not v.passed]
    if failed:
        print(f"loadtest: FAIL, {len(failed)} SLO(s) broken:")
        for line in failed:
            print(f"  - {line}")
    else:
        status = outcome.locust_status
        print(f"loadtest: FAIL, locust exited {status}; see {run_dir / 'locust.log'}")
    return 1


# -- the pieces ---------------------------------------------------------------------------------


class StartupError(Exception):
    """A child did not start; the message says which and shows its output."""


def new_run_dir(parent: Path, profile: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", *(f"-{n}" for n in range(2, 100))):
        candidate = parent / f"{stamp}-{profile}{suffix}"
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise StartupError(f"cannot create a run folder under {parent}")


@contextlib.contextmanager
def stopping_children() -> Iterator[contextlib.ExitStack]:
    """An exit stack of clean-ups that a second Ctrl-C or SIGTERM cannot cut short."""
    stack = contextlib.ExitStack()
    try:
        yield stack
    finally:
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            stack.close()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the same clean-up stops every child."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def child_env(**extra: str) -> dict[str, str]:
    """This environment without LOADTEST_* leftovers, the project importable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    paths = [str(PROJECT_ROOT / "src"), str(PROJECT_ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(extra)
    return env


def start_fault_server(
    stack: contextlib.ExitStack, args: argparse.Namespace, run_dir: Path
) -> FaultServer:
    if args.target:  # the running service already points at its downstreams
        port = args.fault_port or TARGET_FAULT_PORT
        admin_port = args.fault_admin_port or TARGET_FAULT_ADMIN_PORT
    else:
        port = args.fault_port or processes.free_port()
        admin_port = args.fault_admin_port or processes.free_port()
    argv = [sys.executable, "-m", "loadtest.fault_server", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--admin-port", str(admin_port)]
    if args.tls:
        argv += ["--tls", "--ca-out", str(run_dir / "fault-ca.pem")]
    child = processes.start(
        "fault server",
        argv,
        env=child_env(),
        cwd=PROJECT_ROOT,
        log_path=run_dir / "fault_server.log",
    )
    stack.callback(child.stop, STOP_GRACE_S, whole_group=False)
    admin_url = f"http://127.0.0.1:{admin_port}"
    if not probes.wait_for_fault_server(admin_url, READY_TIMEOUT_S):
        raise StartupError(f"the fault server did not start:\n{child.tail()}")
    scheme = "https" if args.tls else "http"
    return FaultServer(f"{scheme}://127.0.0.1:{port}", admin_url, child)


def start_service(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    profile: Profile,
    fault_url: str,
    run_dir: Path,
    extra_env: dict[str, str],
) -> Service:
    if args.target:
        url = args.target.rstrip("/")
        if not probes.wait_until_ready(url, READY_TIMEOUT_S):
            raise StartupError(f"{url}/readyz does not answer 200")
        return Service(url, child=None)
    port = processes.free_port()
    if args.service_command:
        argv = [
            part.replace("{port}", str(port)).replace("{downstream_url}", fault_url)
            for part in shlex.split(args.service_command)
        ]
        env = child_env(LOADTEST_PORT=str(port), LOADTEST_DOWNSTREAM_URL=fault_url)
    else:
        argv, env = package_command(args, profile, port, fault_url, run_dir)
    env.update(extra_env)
    child = processes.start(
        "service", argv, env=env, cwd=run_dir, log_path=run_dir / probes.SERVICE_LOG
    )
    stack.callback(child.stop, STOP_GRACE_S)
    url = f"http://127.0.0.1:{port}"
    if not probes.wait_until_ready(url, READY_TIMEOUT_S, is_alive=child.alive):
        raise StartupError(f"the service did not become ready:\n{child.tail()}")
    return Service(url, child)


def package_command(
    args: argparse.Namespace, profile: Profile, port: int, fault_url: str, run_dir: Path
) -> tuple[list[str], dict[str, str]]:
    """``python -m <package>``, with the fault server as downstream and the profile's settings."""
    package = args.package or find_package(PROJECT_ROOT / "src")
    prefix = import_service(package, "settings").ENV_PREFIX
    env = {k: v for k, v in child_env().items() if not k.startswith(prefix)}
    env.update(
        {
            f"{prefix}HOST": "127.0.0.1",
            f"{prefix}PORT": str(port),
            f"{prefix}WORKERS": "1",
            f"{prefix}LOG_LEVEL": "warning",
            f"{prefix}ACCESS_LOG": "false",
            "LOG_FORMAT": "json",
        }
    )
    ca_path = run_dir / "fault-ca.pem" if args.tls else None
    env.update(service_settings(package, profile, fault_url, ca_path, engine=args.engine))
    return [sys.executable, "-m", package], env


def service_settings(
    package: str,
    profile: Profile,
    fault_url: str,
    ca_path: Path | None = None,
    *,
    engine: str | None = None,
) -> dict[str, str]:
    """The variables that point every downstream at the fault server, with the profile's values."""
    prefix: str = import_service(package, "settings").ENV_PREFIX
    downstreams = list(import_service(package, "downstreams").declared.names())
    if not downstreams:
        raise StartupError(f"{package}.downstreams declares no downstream to redirect")
    env = profile.service.environment(prefix, downstreams)
    for name in downstreams:
        # A base path per downstream: the fault server's faults can aim at one of them.
        env[f"{prefix}DOWNSTREAMS__{name.upper()}__BASE_URL"] = f"{fault_url}/{name}"
        if ca_path is not None:
            env[f"{prefix}DOWNSTREAMS__{name.upper()}__CA_BUNDLE"] = str(ca_path)
        if engine is not None:
            env[f"{prefix}DOWNSTREAMS__{name.upper()}__ENGINE"] = engine
    return dict(sorted(env.items()))


def launch_variants(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    profile: Profile,
    fault_url: str,
    run_dir: Path,
) -> dict[str, tuple[Child, str]]:
    """Start one more service process per ``profiles.Variant`` (why: its docstring), with the
    variant's settings on every downstream and its own base paths on the fault server. Not
    waited for here: they start while the service does. Per variant: its child and URL."""
    started: dict[str, tuple[Child, str]] = {}
    for variant in profile.variants:
        port = processes.free_port()
        argv, env = package_command(args, profile, port, fault_url, run_dir)
        package = args.package or find_package(PROJECT_ROOT / "src")
        env.update(variant_settings(package, variant, fault_url))
        log_path = run_dir / variant.log_name
        child = processes.start(
            f"service ({variant.name})", argv, env=env, cwd=run_dir, log_path=log_path
        )
        stack.callback(child.stop, STOP_GRACE_S)
        started[variant.name] = (child, f"http://127.0.0.1:{port}")
    return started


def variant_settings(package: str, variant: Variant, fault_url: str) -> dict[str, str]:
    """On top of ``service_settings``: the variant's settings and base paths, every downstream."""
    prefix = import_service(package, "settings").ENV_PREFIX
    env: dict[str, str] = {}
    for name in import_service(package, "downstreams").declared.names():
        key = f"{prefix}DOWNSTREAMS__{name.upper()}__"
        env[f"{key}BASE_URL"] = f"{fault_url}/{variant.route(name)}"
        env.update({f"{key}{setting}": value for setting, value in variant.settings})
    return env


def wait_for_variants(started: dict[str, tuple[Child, str]]) -> dict[str, str]:
    for name, (child, url) in started.items():
        if not probes.wait_until_ready(url, READY_TIMEOUT_S, is_alive=child.alive):
            raise StartupError(f"the service of the {name!r} phases did not start:\n{child.tail()}")
    return {name: url for name, (_, url) in started.items()}


def import_service(package: str, module: str) -> ModuleType:
    """A module of the service: ``settings`` for its ENV_PREFIX, ``downstreams`` for the names."""
    if str(PROJECT_ROOT / "src") not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT / "src"))
    return importlib.import_module(f"{package}.{module}")


def run_locust(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    profile: Profile,
    service: Service,
    fault: FaultServer,
    run_dir: Path,
    variant_urls: dict[str, str] | None = None,
) -> int | None:
    """Run locust headless to the end of the profile; its status, or None if it had to be killed."""
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    argv += ["--host", service.url, "--only-summary", "--loglevel", "INFO"]
    argv += ["--csv", str(run_dir / "locust")]
    argv += ["--html", str(run_dir / "locust.html")]
    if args.workers > 1:
        argv += ["--processes", str(args.workers)]
    stop_file = run_dir / "stop-requested"
    env = child_env(
        LOADTEST_PROFILE=profile.name,
        LOADTEST_HTTP2="1" if args.tls else "0",
        LOADTEST_FAULT_ADMIN=fault.admin_url,
        LOADTEST_REPORT_DIR=str(run_dir),
        LOADTEST_LIMITS=json.dumps(args.limits),
        LOADTEST_STOP_FILE=str(stop_file),
        LOADTEST_VARIANTS=json.dumps(variant_urls or {}),
    )
    if service.pid is not None:
        env["LOADTEST_SERVICE_PID"] = str(service.pid)
    log_path = run_dir / "locust.log"
    child = processes.start("locust", argv, env=env, cwd=PROJECT_ROOT, log_path=log_path)
    stack.callback(stop_locust, child, stop_file)
    return follow(child, stop_file, profile.seconds + LOCUST_OVERTIME_S)


def stop_locust(child: Child, stop_file: Path) -> int | None:
    """End locust's run early but cleanly, so that its gate still writes a verdict.

    Not with a signal: during a headless shape run locust 2.47 has no SIGTERM handler yet (it
    dies on the spot), and SIGINT may be ignored in a background job. The shape's tick() ends
    the run when ``stop_file`` appears; whatever is still running afterwards is killed.
    """
    if child.alive():
        stop_file.touch()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=STOP_GRACE_S)
    return child.stop(STOP_GRACE_S, whole_group=False)


def follow(child: Child, stop_file: Path, timeout_s: float) -> int | None:
    """Wait for locust, echoing its phase lines; None when it overran ``timeout_s``."""
    give_up = time.monotonic() + timeout_s
    position = 0
    while True:
        position = _echo_phases(child.log_path, position)
        status = child.process.poll()
        if status is not None:
            _echo_phases(child.log_path, position)
            return status
        if time.monotonic() > give_up:
            print(f"loadtest: locust overran {timeout_s:.0f} s; stopping it", file=sys.stderr)
            stop_locust(child, stop_file)
            return None
        time.sleep(0.5)


def _echo_phases(log_path: Path, position: int) -> int:
    try:
        with log_path.open("rb") as log:
            log.seek(position)
            chunk = log.read()
    except OSError:
        return position
    complete = chunk.rfind(b"\n") + 1
    for line in chunk[:complete].decode(errors="replace").splitlines():
        if "/loadtest: phase " in line:
            print("  " + line.split("loadtest: ", 1)[1], flush=True)
    return position + complete


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
