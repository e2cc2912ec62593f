"""What a pool holds at one instant, whichever engine runs it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Connections by state and requests in one client's pool, at one instant."""

    connecting: int = 0
    active: int = 0
    idle: int = 0
    closed: int = 0
    http2: int = 0
    requests_active: int = 0
    requests_queued: int = 0

    @property
    def connections(self) -> int:
        return self.connecting + self.active + self.idle
