"""The six targets and how each is started: command, environment, probe path.

(1) the generated service as baked by default (httpx's API on the aiohttp engine), (2) a bare
FastAPI app with one shared client on the same engine (the seed's Step 1, like for like),
(3) the same app with a client per request (httpcore), (4) the generated service baked with
httpx2 on its own engine (httpcore2), (5) the Python reference: a raw ASGI app with one aiohttp
session (``reference_app``), (6) the default bake on httpcore (``ENGINE=httpcore``): what the
default cost before the aiohttp engine. Every target calls the same downstream
``GET /items/{id}`` and is served by uvicorn with uvloop and httptools, without an access log,
at log level warning.

The degrading-downstream scenario runs the default bake four times, differing only in the
catalog's bulkhead: fixed at the downstream's capacity, at twice it, at the pool's width, and
adaptive between 1 and the pool's width.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .bake import Bake
from .machine import Pinning
from .processes import Server, free_port, spawn_server

ITEM_PATH = "/items/42"


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    kind: str
    """``service`` (a bake), ``bare`` (benchmarks.bare_app) or ``reference``."""
    variant: str
    """The bake's http_client for a service; the client mode for a bare app."""
    engine: str = ""
    """A service's ENGINE setting ("": the bake's default); "aiohttp" puts a bare app's client on
    the bake's aiohttp transport."""
    catalog: tuple[tuple[str, str], ...] = ()
    """A service's catalog settings (name after ``DOWNSTREAMS__CATALOG__``, value)."""
    entry: str = ""
    """A module that serves the bake instead of its own ``__main__`` (``traced_service``)."""
    otel: tuple[tuple[str, str], ...] = ()
    """``OTEL_*`` variables of a service."""


SERVICE_HTTPX = Target(
    "service_httpx", "(1) generated service (default: httpx on aiohttp)", "service", "httpx"
)
BARE_SHARED = Target(
    "bare_shared", "(2) bare FastAPI, one shared client on aiohttp", "bare", "shared", "aiohttp"
)
PER_REQUEST = Target("per_request", "(3) bare FastAPI, client per request", "bare", "per-request")
SERVICE_HTTPX2 = Target(
    "service_httpx2", "(4) generated service, httpx2 on httpcore2", "service", "httpx2", "httpcore"
)
REFERENCE = Target("reference", "(5) reference: raw ASGI, one aiohttp session", "reference", "")
SERVICE_HTTPCORE = Target(
    "service_httpcore", "(6) generated service, httpx on httpcore", "service", "httpx", "httpcore"
)
ALL = (SERVICE_HTTPX, BARE_SHARED, PER_REQUEST, SERVICE_HTTPX2, REFERENCE, SERVICE_HTTPCORE)
# A client per request has no pool to bound, so the pool-of-10 scenario leaves it out.
SLOW = (SERVICE_HTTPX, BARE_SHARED, SERVICE_HTTPX2, REFERENCE)


def degrade_targets(capacity: int, pool: int) -> tuple[Target, ...]:
    def fixed(width: int, why: str) -> Target:
        width_setting = (("BULKHEAD__MAX_CONCURRENCY", str(width)),)
        label = f"(1) bulkhead fixed at {width} ({why})"
        return Target(f"service_fixed_{width}", label, "service", "httpx", catalog=width_setting)

    adaptive = Target(
        "service_adaptive",
        f"(1) bulkhead adaptive, 1-{pool}",
        "service",
        "httpx",
        catalog=(("BULKHEAD__ADAPTIVE", "true"), ("BULKHEAD__MIN_CONCURRENCY", "1")),
    )
    return (
        fixed(capacity, "the downstream's capacity"),
        fixed(2 * capacity, "twice it"),
        fixed(pool, "the pool's width"),
        adaptive,
    )


@dataclass
class Context:
    """What starting a target needs: bakes by client, CPUs, a scratch folder for cwd and logs."""

    bakes: dict[str, Bake]
    pinning: Pinning
    workdir: Path


def spawn_target(
    target: Target,
    context: Context,
    *,
    downstream_url: str,
    pool: int | None = None,
    suffix: str = "",
) -> Server:
    """Start ``target`` against ``downstream_url`` (``processes.ready`` waits for it and pins it).

    ``pool`` caps the target's connections, and for the generated service its bulkhead too.
    """
    port = free_port()
    name = target.key + suffix
    cwd = context.workdir / "cwd"  # no .env here: only the variables below configure a service
    cwd.mkdir(exist_ok=True)
    if target.kind == "service":
        bake = context.bakes[target.variant]
        p = bake.env_prefix
        env = {
            "PYTHONPATH": str(bake.src),
            f"{p}HOST": "127.0.0.1",
            f"{p}PORT": str(port),
            f"{p}LOG_LEVEL": "warning",
            f"{p}ACCESS_LOG": "false",
            f"{p}DOWNSTREAMS__CATALOG__BASE_URL": downstream_url,
            f"{p}DOWNSTREAMS__PRICING__BASE_URL": downstream_url,
        }
        if pool is not None:
            env[f"{p}DOWNSTREAMS__CATALOG__LIMITS__MAX_CONNECTIONS"] = str(pool)
            env[f"{p}DOWNSTREAMS__CATALOG__LIMITS__MAX_KEEPALIVE_CONNECTIONS"] = str(pool)
            env[f"{p}DOWNSTREAMS__CATALOG__BULKHEAD__MAX_CONCURRENCY"] = str(pool)
        for name, value in target.catalog:  # after the pool: a target's own width wins
            env[f"{p}DOWNSTREAMS__CATALOG__{name}"] = value
        if target.engine:
            env[f"{p}DOWNSTREAMS__CATALOG__ENGINE"] = target.engine
            env[f"{p}DOWNSTREAMS__PRICING__ENGINE"] = target.engine
        env.update(target.otel)
        command = [sys.executable, "-m", bake.package]
        if target.entry:
            env["PYTHONPATH"] += f"{os.pathsep}{Path(__file__).resolve().parents[1]}"
            command = [sys.executable, "-m", target.entry, "--package", bake.package]
        probe = "/readyz"
    else:
        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        module = "benchmarks.reference_app" if target.kind == "reference" else "benchmarks.bare_app"
        command = [sys.executable, "-m", module, "--port", str(port)]
        command += ["--downstream", downstream_url]
        if target.kind == "bare":
            command += ["--client", target.variant]
        if target.engine == "aiohttp":  # the bake's transport, imported from its source
            bake = context.bakes["httpx"]
            env["PYTHONPATH"] += f"{os.pathsep}{bake.src}"
            command += ["--aiohttp-transport-of", bake.package]
        if pool is not None:
            command += ["--max-connections", str(pool)]
        probe = "/healthz"
    return spawn_server(
        name,
        command,
        port=port,
        cpus=context.pinning.target,
        env=env,
        cwd=cwd,
        log_dir=context.workdir,
        probe_path=probe,
    )


def spawn_downstream(context: Context, name: str, latency_ms: float, capacity: int = 0) -> Server:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "benchmarks.downstream",
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
        "--capacity",
        str(capacity),
    ]
    return spawn_server(
        name,
        command,
        port=port,
        cpus=context.pinning.downstream,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        cwd=context.workdir,
        log_dir=context.workdir,
        probe_path=ITEM_PATH,
    )
