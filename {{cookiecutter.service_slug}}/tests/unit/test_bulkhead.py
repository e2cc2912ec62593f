"""Bulkhead: bounded slots, bounded FIFO queue, max wait, and no slot lost to cancellation."""

import asyncio
import random
from collections.abc import Coroutine
from typing import Any

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.downstream.bulkhead import (
    Bulkhead,
    BulkheadFullError,
)
from {{ cookiecutter.package_name }}.downstream.config import BulkheadSettings

# Long enough that no waiter times out unless a test means it to.
NO_TIMEOUT = 60.0


def completes_without_suspending(awaitable: Coroutine[Any, Any, None]) -> bool:
    """Drive a coroutine by hand: True if it finished without yielding to the loop."""
    try:
        awaitable.send(None)
    except StopIteration:
        return True
    awaitable.close()
    return False


async def settle() -> None:
    """Let every ready callback and task run."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_free_slot_is_taken_without_suspending() -> None:
    bulkhead = Bulkhead("catalog", BulkheadSettings(max_concurrency=2, max_queue=0))
    assert completes_without_suspending(bulkhead.acquire())
    assert completes_without_suspending(bulkhead.acquire())
    assert bulkhead.in_flight == 2
    bulkhead.release()
    bulkhead.release()
    assert bulkhead.in_flight == 0


def test_full_queue_sheds_at_once() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead(
            "catalog", BulkheadSettings(max_concurrency=1, max_queue=2, max_wait=NO_TIMEOUT)
        )
        await bulkhead.acquire()
        waiters = [asyncio.create_task(bulkhead.acquire()) for _ in range(2)]
        await settle()
        assert bulkhead.queued == 2
        with pytest.raises(BulkheadFullError) as caught:
            await bulkhead.acquire()
        assert caught.value.name == "catalog"
        assert caught.value.reason == "queue_full"
        assert caught.value.retry_after == 60.0
        assert bulkhead.shed_count == 1
        for _ in waiters:
            bulkhead.release()
        await asyncio.gather(*waiters)
        assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)

    asyncio.run(scenario())


def test_zero_queue_sheds_when_slots_are_taken() -> None:
    bulkhead = Bulkhead("catalog", BulkheadSettings(max_concurrency=1, max_queue=0))
    assert completes_without_suspending(bulkhead.acquire())
    with pytest.raises(BulkheadFullError) as caught:
        completes_without_suspending(bulkhead.acquire())
    assert caught.value.reason == "queue_full"


def test_waiter_is_shed_after_max_wait() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead("catalog", BulkheadSettings(max_concurrency=1, max_wait=0.01))
        await bulkhead.acquire()
        with pytest.raises(BulkheadFullError) as caught:
            await bulkhead.acquire()
        assert caught.value.reason == "wait_timeout"
        assert caught.value.retry_after == 1.0  # ceil(max(1.0, 0.01))
        assert (bulkhead.in_flight, bulkhead.queued, bulkhead.shed_count) == (1, 0, 1)
        bulkhead.release()
        assert bulkhead.in_flight == 0

    asyncio.run(scenario())


def test_error_message_names_the_bulkhead_and_reason() -> None:
    error = BulkheadFullError("catalog", "wait_timeout", 1.0)
    assert str(error) == "bulkhead 'catalog' shed the call (wait_timeout); retry after 1s"


def test_retry_after_rounds_max_wait_up() -> None:
    bulkhead = Bulkhead("catalog", BulkheadSettings(max_concurrency=1, max_queue=0, max_wait=2.5))
    assert completes_without_suspending(bulkhead.acquire())
    with pytest.raises(BulkheadFullError) as caught:
        completes_without_suspending(bulkhead.acquire())
    assert caught.value.retry_after == 3.0


def test_slots_go_to_waiters_in_arrival_order() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead(
            "catalog", BulkheadSettings(max_concurrency=1, max_queue=10, max_wait=NO_TIMEOUT)
        )
        order: list[int] = []

        async def worker(number: int) -> None:
            await bulkhead.acquire()
            order.append(number)

        await bulkhead.acquire()
        tasks = []
        for number in range(5):
            tasks.append(asyncio.create_task(worker(number)))
            await settle()  # queue them in a known order
        for _ in range(5):
            bulkhead.release()
            await settle()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]
        assert bulkhead.in_flight == 1

    asyncio.run(scenario())


def test_cancelled_waiter_leaves_the_queue_and_is_skipped() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead(
            "catalog", BulkheadSettings(max_concurrency=1, max_queue=10, max_wait=NO_TIMEOUT)
        )
        await bulkhead.acquire()
        first = asyncio.create_task(bulkhead.acquire())
        second = asyncio.create_task(bulkhead.acquire())
        await settle()
        first.cancel()
        await settle()
        assert bulkhead.queued == 1
        bulkhead.release()
        await second  # the slot skipped the cancelled waiter
        assert first.cancelled()
        assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)

    asyncio.run(scenario())


def test_waiter_cancelled_before_it_resumes_is_skipped_by_release() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead(
            "catalog", BulkheadSettings(max_concurrency=1, max_queue=10, max_wait=NO_TIMEOUT)
        )
        await bulkhead.acquire()
        first = asyncio.create_task(bulkhead.acquire())
        second = asyncio.create_task(bulkhead.acquire())
        await settle()
        first.cancel()  # its Future is cancelled; the task has not run its handler yet
        bulkhead.release()
        await second
        assert first.cancelled()
        assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)

    asyncio.run(scenario())


def test_slot_handed_over_as_the_waiter_is_cancelled_is_passed_on() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead(
            "catalog", BulkheadSettings(max_concurrency=1, max_queue=10, max_wait=NO_TIMEOUT)
        )
        await bulkhead.acquire()
        granted_then_cancelled = asyncio.create_task(bulkhead.acquire())
        next_in_line = asyncio.create_task(bulkhead.acquire())
        await settle()
        bulkhead.release()  # hands the slot to the first waiter...
        granted_then_cancelled.cancel()  # ...which is cancelled before it resumes
        await asyncio.gather(granted_then_cancelled, return_exceptions=True)
        assert granted_then_cancelled.cancelled()
        await next_in_line  # the slot was passed on
        assert bulkhead.in_flight == 1
        bulkhead.release()
        assert bulkhead.in_flight == 0

    asyncio.run(scenario())


def test_slot_handed_over_with_nobody_next_is_freed() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead(
            "catalog", BulkheadSettings(max_concurrency=1, max_queue=10, max_wait=NO_TIMEOUT)
        )
        await bulkhead.acquire()
        waiter = asyncio.create_task(bulkhead.acquire())
        await settle()
        bulkhead.release()
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert waiter.cancelled()
        assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
        assert completes_without_suspending(bulkhead.acquire())

    asyncio.run(scenario())


def test_slot_context_releases_on_error() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead("catalog", BulkheadSettings(max_concurrency=1))

        async def fail_holding_a_slot() -> None:
            async with bulkhead.slot():
                assert bulkhead.in_flight == 1
                raise LookupError

        with pytest.raises(LookupError):
            await fail_holding_a_slot()
        assert bulkhead.in_flight == 0

    asyncio.run(scenario())


def test_release_without_acquire_is_an_error() -> None:
    bulkhead = Bulkhead("catalog", BulkheadSettings())
    with pytest.raises(RuntimeError, match="released more than acquired"):
        bulkhead.release()


def test_a_wider_limit_hands_the_new_slots_to_waiters_at_once() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead("catalog", BulkheadSettings(max_concurrency=1, max_wait=NO_TIMEOUT))
        await bulkhead.acquire()
        waiters = [asyncio.create_task(bulkhead.acquire()) for _ in range(3)]
        await settle()
        bulkhead.set_limit(3)
        await settle()
        assert [w.done() for w in waiters] == [True, True, False]  # oldest first
        assert (bulkhead.in_flight, bulkhead.queued, bulkhead.limit) == (3, 1, 3)
        for _ in range(3):
            bulkhead.release()
        await asyncio.gather(*waiters)

    asyncio.run(scenario())


def test_a_narrower_limit_keeps_released_slots_until_in_flight_is_below_it() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead("catalog", BulkheadSettings(max_concurrency=3, max_wait=NO_TIMEOUT))
        for _ in range(3):
            await bulkhead.acquire()
        waiter = asyncio.create_task(bulkhead.acquire())
        await settle()
        bulkhead.set_limit(1)
        bulkhead.release()  # 3 -> 2 in flight: still above the limit, the waiter waits
        bulkhead.release()  # 2 -> 1
        await settle()
        assert not waiter.done()
        assert (bulkhead.in_flight, bulkhead.queued) == (1, 1)
        bulkhead.release()  # at the limit: this slot goes to the waiter
        await waiter
        assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)
        assert not completes_without_suspending(bulkhead.acquire())  # full at 1: it would wait
        assert bulkhead.queued == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("resize", [False, True], ids=["fixed", "resized"])
@pytest.mark.parametrize("seed", range(8))
def test_random_cancellations_never_leak_a_slot(seed: int, resize: bool) -> None:
    rng = random.Random(seed)
    # max_wait=0 on odd seeds: every waiter's timer fires on the next loop step, racing
    # release() and the cancellations.
    config = BulkheadSettings(
        max_concurrency=3, max_queue=30, max_wait=0.0 if seed % 2 else NO_TIMEOUT
    )
    bulkhead = Bulkhead("catalog", config)
    outcomes = {"done": 0, "shed": 0}

    async def worker() -> None:
        try:
            async with bulkhead.slot():
                for _ in range(rng.randrange(6)):
                    await asyncio.sleep(0)
        except BulkheadFullError:
            outcomes["shed"] += 1
        else:
            outcomes["done"] += 1

    async def scenario() -> None:
        tasks: list[asyncio.Task[None]] = []
        for _ in range(400):
            tasks.extend(asyncio.create_task(worker()) for _ in range(rng.randrange(5)))
            # Cancel at random points: while queued, while holding a slot, and in the
            # step between release() handing a slot over and the waiter resuming.
            recent = tasks[-30:]
            for task in rng.sample(recent, k=min(len(recent), rng.randrange(4))):
                task.cancel()
            if resize and rng.random() < 0.2:  # what an adaptive limit does, at random
                bulkhead.set_limit(rng.randint(1, 5))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = sum(task.cancelled() for task in tasks)
        assert outcomes["done"] + outcomes["shed"] + cancelled == len(tasks)
        assert cancelled > 0
        assert outcomes["done"] > 0
        assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
        assert completes_without_suspending(bulkhead.acquire())

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_concurrency": 0},
        {"max_queue": -1},
        {"max_wait": -0.1},
        {"min_concurrency": 0},
        {"min_concurrency": 11, "max_concurrency": 10},
    ],
)
def test_config_refuses_nonsense(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BulkheadSettings(**overrides)
