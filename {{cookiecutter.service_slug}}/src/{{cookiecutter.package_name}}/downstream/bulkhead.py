"""Bulkhead: caps concurrent calls to one downstream, with a bounded queue and wait.

Why it exists: without a cap, one slow downstream soaks up every connection and task,
and the callers of healthy downstreams starve with it. asyncio.Semaphore has neither a
queue bound nor a maximum wait: under overload it queues without limit and each caller
gives up only at its own deadline, after the time is already lost. This sheds early
instead, at once when the queue is full and after max_wait otherwise, with a
Retry-After hint.

Waiting costs one Future and one timer handle, never a Task. Only a timed-out or
cancelled waiter is removed from the middle of the queue, in O(max_queue). Its limits are
``config.BulkheadSettings``, the one place their defaults and bounds are written.
"""

import asyncio
import contextlib
import math
from collections import deque
from types import TracebackType
from typing import Literal

from .config import BulkheadSettings

ShedReason = Literal["queue_full", "wait_timeout"]


class BulkheadFullError(Exception):
    """The call was shed: the queue was full, or no slot came free within max_wait.

    ``retry_after`` is ``ceil(max(1.0, max_wait))`` seconds: whole seconds, because an
    HTTP Retry-After header carries whole seconds; at least 1, so shed clients do not
    come straight back; at least max_wait, so they do not return before a queued caller
    would have given up.
    """

    def __init__(self, name: str, reason: ShedReason, retry_after: float) -> None:
        # The message is built in __str__: under overload sheds are frequent, and most
        # are counted, not printed.
        super().__init__(name, reason, retry_after)
        self.name = name
        self.reason: ShedReason = reason
        self.retry_after = retry_after

    def __str__(self) -> str:
        return (
            f"bulkhead {self.name!r} shed the call ({self.reason}); "
            f"retry after {self.retry_after:g}s"
        )


class Bulkhead:
    """Bounded concurrency with a bounded FIFO queue and a maximum wait, for asyncio.

    Use ``async with bulkhead.slot():`` around a call, or pair acquire() and release().
    Not thread-safe: one bulkhead serves the tasks of one event loop.
    """

    __slots__ = (
        "_in_flight",
        "_max_concurrency",
        "_max_queue",
        "_max_wait",
        "_retry_after",
        "_slot",
        "_waiters",
        "name",
        "shed_count",
    )

    def __init__(self, name: str, config: BulkheadSettings) -> None:
        self.name = name
        self.shed_count = 0  # calls shed, for either reason
        self._max_concurrency = config.max_concurrency
        self._max_queue = config.max_queue
        self._max_wait = config.max_wait
        self._retry_after = float(math.ceil(max(1.0, config.max_wait)))
        self._in_flight = 0
        # A waiter's Future resolves True when release() hands it a slot, False when
        # its max_wait ran out. Invariant: waiters queue only while all slots are taken.
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._slot = _Slot(self)

    @property
    def in_flight(self) -> int:
        """Slots held, including ones handed to a waiter that has not resumed yet."""
        return self._in_flight

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def limit(self) -> int:
        return self._max_concurrency

    def set_limit(self, limit: int) -> None:
        """Resize (the adaptive limit's hook): a wider limit hands the new slots to waiters at
        once; a narrower one takes effect as calls in flight release theirs."""
        self._max_concurrency = limit
        waiters = self._waiters
        while waiters and self._in_flight < limit:
            waiter = waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(True)

    def slot(self) -> "_Slot":
        """``async with bulkhead.slot():`` holds a slot for the body."""
        return self._slot

    async def acquire(self) -> None:
        """Take a slot, waiting in FIFO order for at most max_wait.

        Raises BulkheadFullError at once when max_queue callers already wait, and after
        max_wait when no slot came free.
        """
        if self._in_flight < self._max_concurrency and not self._waiters:
            self._in_flight += 1
            return
        if len(self._waiters) >= self._max_queue:
            self.shed_count += 1
            raise BulkheadFullError(self.name, "queue_full", self._retry_after)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self._max_wait, self._time_out, waiter)
        try:
            granted = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                # release() handed us a slot in the same loop step as we were
                # cancelled: pass it on, or it leaks.
                self.release()
            else:
                # Still queued, unless release() or the timer already dropped us.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()
        if not granted:
            self.shed_count += 1
            raise BulkheadFullError(self.name, "wait_timeout", self._retry_after)

    def try_acquire(self) -> bool:
        """Take a slot only if one is free now and nobody waits (a hedge's slot: extra work must
        never queue, nor pass a caller already waiting)."""
        if self._in_flight < self._max_concurrency and not self._waiters:
            self._in_flight += 1
            return True
        return False

    def release(self) -> None:
        """Hand the slot to the oldest waiter still waiting, or free it (and, above a lowered
        limit, keep it free)."""
        waiters = self._waiters
        while waiters and self._in_flight <= self._max_concurrency:
            waiter = waiters.popleft()
            if not waiter.done():  # skip waiters cancelled but not yet resumed
                waiter.set_result(True)
                return
        if self._in_flight == 0:
            raise RuntimeError(f"bulkhead {self.name!r} released more than acquired")
        self._in_flight -= 1

    def _time_out(self, waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            self._waiters.remove(waiter)
            waiter.set_result(False)


class _Slot:
    """``async with`` support as a plain class, with no generator or wrapper per call.

    It holds no per-call state, so one instance per bulkhead serves every task.
    """

    __slots__ = ("_bulkhead",)

    def __init__(self, bulkhead: Bulkhead) -> None:
        self._bulkhead = bulkhead

    async def __aenter__(self) -> None:
        await self._bulkhead.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._bulkhead.release()
