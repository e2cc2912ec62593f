"""Serve an ASGI app with a real uvicorn on an ephemeral 127.0.0.1 port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serve(app: Any, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Yield the base URL of a running uvicorn serving ``app``; stop it (lifespan included)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, loop="asyncio", log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    give_up = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > give_up:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
