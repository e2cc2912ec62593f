"""``python -m <package>``: validate the settings, then serve with uvicorn (uvloop, httptools)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

import uvicorn

from .log_config import configure_logging, wants_json
from .settings import Settings, SettingsError, load_settings, resolve_downstreams


def use_multiprocess_metrics() -> str | None:
    """Point prometheus_client at a fresh directory shared by the workers.

    It must happen before anything imports prometheus_client, which reads the variable at import.
    Returns the directory when this process made it, for ``main`` to remove at exit (otherwise
    every start leaves one behind in /tmp, an emptyDir that outlives container restarts).
    """
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        return None
    made = tempfile.mkdtemp(prefix="prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    metrics_dir = use_multiprocess_metrics() if settings.workers > 1 else None
    try:
        return serve(settings)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def serve(settings: Settings) -> int:
    """Build the app once (a wrong setting stops start-up here, in one line), then serve."""
    # Only now: declaring downstreams imports the client stack, and with it prometheus_client.
    from .app import create_app
    from .downstreams import declared

    try:
        settings = resolve_downstreams(settings, declared.names())
        # Built here even when each worker builds its own: create_app reads the OTEL_* variables
        # too, and a wrong one must stop start-up once, in one line, not crash every worker.
        app = create_app(settings)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    # One worker serves the app object; several need an import string each process loads.
    target = app if settings.workers == 1 else f"{__package__}.app:create_app"
    # uvicorn re-raises SIGTERM once it has shut down gracefully; that is a clean exit, status 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(
        target,
        factory=settings.workers > 1,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        # In JSON the app writes its own access lines, at a tenth of the cost (access_log.py).
        access_log=settings.access_log and not wants_json(settings.log_format),
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    return 0


def run() -> int:
    try:
        return main()
    except KeyboardInterrupt:  # Ctrl-C: uvicorn already shut down; no traceback
        return 130


if __name__ == "__main__":
    sys.exit(run())
