"""A dead downstream gets one attempt per call once its retry tokens run low, counted at the
fault server; retries resume once it answers again. Real fault server, real pool."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.downstream.client import Downstream
from {{ cookiecutter.package_name }}.downstream.errors import DownstreamError
from {{ cookiecutter.package_name }}.downstream.views import describe

from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import one_downstream

NO_BREAKER = {"minimum_calls": 100_000}  # every call must reach the dead downstream
# A budget that never refuses and back-offs of a millisecond: only the tokens can stop a retry.
ENDLESS_BUDGET = {"budget_ratio": 1.0, "budget_min_per_second": 1000.0}
QUICK = {"backoff_base": 0.001, "backoff_cap": 0.002, **ENDLESS_BUDGET}
CALLS = 40


async def fail_every_call(catalog: Downstream, calls: int) -> None:
    for n in range(calls):
        with pytest.raises(DownstreamError):
            await catalog.get(f"/items/{n}")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("max_tokens", "received"),
    [
        # 10 tokens, 3 attempts a call: call 1 makes 3 attempts (7 tokens left), call 2 makes 2
        # (5 left: at half), every later call 1.
        (10.0, 3 + 2 + (CALLS - 2)),
        (0.0, 3 * CALLS),  # throttling off: the budget alone lets every call retry twice
    ],
    ids=["throttled", "off"],
)
async def test_a_dead_downstream_gets_no_retries_once_its_tokens_run_low(
    fault: RunningFaultServer, max_tokens: float, received: int
) -> None:
    fault.set_fault("items", "error", error_rate=1.0, status=503)
    retry = {"throttle_max_tokens": max_tokens, **QUICK}
    async with one_downstream(fault.base_url, retry=retry, breaker=NO_BREAKER) as catalog:
        await fail_every_call(catalog, CALLS)
        view = describe(catalog)["retry_throttle"]
    assert fault.stats()["items"] == received
    assert view["throttled"] == (CALLS - 1 if max_tokens else 0)


@pytest.mark.anyio
async def test_retries_resume_once_the_downstream_answers_again(fault: RunningFaultServer) -> None:
    fault.set_fault("items", "error", error_rate=1.0, status=503)
    async with one_downstream(fault.base_url, retry=QUICK, breaker=NO_BREAKER) as catalog:
        await fail_every_call(catalog, 10)  # tokens down to 0
        fault.clear_faults()
        for n in range(61):  # 0.1 a call: 6.1 tokens
            await catalog.get(f"/items/{n}")
        fault.set_fault("items", "error", error_rate=1.0, status=503)
        fault.reset_stats()
        await fail_every_call(catalog, 1)  # 6.1 - 1 = 5.1: one retry, then 4.1
    assert fault.stats()["items"] == 2
