"""Run the fault server inside a test process and drive it synchronously.

The server gets its own thread and event loop, so it works under sync and
async tests alike and never competes with the test's own loop. The admin
client is stdlib ``urllib`` on purpose: it cannot share (or exhaust) the
connection pool of the httpx client under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

from .listener import require_loopback
from .server import ServerOptions, ServerUrls, serve

ADMIN_TIMEOUT_S: Final = 10.0
# Never route admin calls through an HTTP(S)_PROXY from the environment.
_ADMIN_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FaultServerError(RuntimeError):
    """The admin API rejected a call (the message is the server's reason)."""


@dataclass(frozen=True)
class RunningFaultServer:
    base_url: str  # e.g. "http://127.0.0.1:54321" or "https://127.0.0.1:54322"
    admin_url: str
    ca_path: Path | None  # PEM of the trustme CA when tls=True

    def set_fault(self, route: str, mode: str, **params: float | int) -> None:
        """``route``: a path's first segment ("items" for /items/1) or "*";
        e.g. ``set_fault("*", "slow", latency_ms=500)``."""
        self._admin("PUT", f"/__admin/faults/{quote(route, safe='')}", {"mode": mode, **params})

    def clear_faults(self) -> None:
        self._admin("DELETE", "/__admin/faults")

    def stats(self) -> Counter[str]:
        """Requests per target and the counters; a target never called reads as 0."""
        stats = self._admin("GET", "/__admin/stats")
        assert isinstance(stats, dict)
        return Counter({str(name): int(value) for name, value in stats.items()})

    def traceparents(self) -> dict[str, str]:
        """The last ``traceparent`` header each target received."""
        received = self._admin("GET", "/__admin/traceparents")
        assert isinstance(received, dict)
        return {str(target): str(value) for target, value in received.items()}

    def reset_stats(self) -> None:
        self._admin("POST", "/__admin/stats/reset")

    def _admin(self, method: str, path: str, body: object | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - fixed http:// loopback URL
            self.admin_url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with _ADMIN_OPENER.open(request, timeout=ADMIN_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            reason = error.read().decode(errors="replace")
            raise FaultServerError(f"{method} {path} -> {error.code}: {reason}") from None


@contextlib.contextmanager
def serve_in_thread(
    *,
    tls: bool = False,
    host: str = "127.0.0.1",
    goaway_after: int | None = None,
    timeout_s: float = 10.0,
) -> Iterator[RunningFaultServer]:
    """Start the server on ephemeral ports; yield once both ports accept connections.

    On exit, stop it (the same shutdown-trigger path as SIGTERM under the CLI)
    and join its thread, waiting at most ``timeout_s`` for start and for stop.
    """
    require_loopback(host)
    with contextlib.ExitStack() as stack:
        ca_path = None
        if tls:
            ca_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="fault-server-"))
            ca_path = Path(ca_dir) / "ca.pem"
        thread = _ServerThread(
            ServerOptions(host=host, tls=tls, ca_path=ca_path, goaway_after=goaway_after)
        )
        thread.start()
        try:
            urls = thread.wait_ready(timeout_s)
            yield RunningFaultServer(urls.base_url, urls.admin_url, urls.ca_path)
        finally:
            thread.stop(timeout_s)


class _ServerThread(threading.Thread):
    def __init__(self, options: ServerOptions) -> None:
        super().__init__(name="fault-server", daemon=True)
        self._options = options
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._urls: ServerUrls | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # re-raised in the test's thread
            self._error = error
        finally:
            self._ready.set()  # unblock wait_ready if start-up failed

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        await serve(self._options, shutdown_trigger=self._shutdown.wait, on_ready=self._on_ready)

    def _on_ready(self, urls: ServerUrls) -> None:
        self._urls = urls
        self._ready.set()

    def wait_ready(self, timeout_s: float) -> ServerUrls:
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"fault server did not start within {timeout_s} s")
        if self._urls is None:
            raise RuntimeError("fault server failed to start") from self._error
        return self._urls

    def stop(self, timeout_s: float) -> None:
        loop, shutdown = self._loop, self._shutdown
        if loop is not None and shutdown is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(shutdown.set)
        self.join(timeout_s)
        if self.is_alive():
            raise RuntimeError(f"fault server did not stop within {timeout_s} s")
        if self._error is not None:
            raise RuntimeError("fault server crashed") from self._error
