"""RetryBudget: Finagle's ratio-plus-floor budget over a sliding window."""

from typing import Any

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.downstream.budget import (
    RetryBudget,
)
from {{ cookiecutter.package_name }}.downstream.config import RetrySettings

from tests.unit.clocks import FakeClock


def withdraw_all(budget: RetryBudget, limit: int = 10_000) -> int:
    """Withdraw until refused; return how many retries were granted."""
    for granted in range(limit):
        if not budget.try_withdraw():
            return granted
    raise AssertionError("budget never ran out")


def test_ratio_of_deposits_without_floor() -> None:
    budget = RetryBudget(
        RetrySettings(budget_ratio=0.2, budget_min_per_second=0.0, budget_window_seconds=10),
        clock=FakeClock(),
    )
    for _ in range(100):
        budget.deposit()
    assert budget.balance() == pytest.approx(20.0)
    assert withdraw_all(budget) == 20
    assert budget.exhausted_count == 1
    assert budget.try_withdraw() is False
    assert budget.exhausted_count == 2
    assert budget.balance() == pytest.approx(0.0)


def test_deposits_and_withdrawals_interleave() -> None:
    budget = RetryBudget(
        RetrySettings(budget_ratio=0.5, budget_min_per_second=0.0),
        clock=FakeClock(),
    )
    assert budget.try_withdraw() is False
    budget.deposit()
    assert budget.try_withdraw() is False  # half a retry earned
    budget.deposit()
    assert budget.try_withdraw() is True
    assert budget.try_withdraw() is False


def test_rounding_does_not_cost_a_retry() -> None:
    budget = RetryBudget(
        RetrySettings(budget_ratio=0.29, budget_min_per_second=0.0),
        clock=FakeClock(),
    )
    for _ in range(100):
        budget.deposit()  # 0.29 * 100 == 28.999999999999996 in floating point
    assert withdraw_all(budget) == 29


def test_floor_allows_min_retries_times_ttl_with_no_deposits() -> None:
    budget = RetryBudget(
        RetrySettings(budget_ratio=0.2, budget_min_per_second=10.0, budget_window_seconds=10),
        clock=FakeClock(),
    )
    assert budget.balance() == 100.0
    assert withdraw_all(budget) == 100
    assert budget.balance() == 0.0


def test_floor_and_ratio_add_up() -> None:
    budget = RetryBudget(
        RetrySettings(budget_ratio=0.2, budget_min_per_second=1.0, budget_window_seconds=5),
        clock=FakeClock(),
    )
    for _ in range(50):
        budget.deposit()
    assert withdraw_all(budget) == 5 + 10


def test_deposits_expire_after_ttl() -> None:
    clock = FakeClock(1000.0)
    budget = RetryBudget(
        RetrySettings(budget_ratio=0.2, budget_min_per_second=0.0, budget_window_seconds=10),
        clock=clock,
    )
    for _ in range(100):
        budget.deposit()  # second 1000
    clock.advance(9.9)  # second 1009: still counted
    assert budget.balance() == pytest.approx(20.0)
    clock.advance(0.1)  # second 1010: gone
    assert budget.balance() == 0.0
    assert budget.try_withdraw() is False


def test_deposits_expire_one_second_at_a_time() -> None:
    clock = FakeClock(1000.0)
    budget = RetryBudget(
        RetrySettings(budget_ratio=1.0, budget_min_per_second=0.0, budget_window_seconds=3),
        clock=clock,
    )
    for _ in range(3):
        budget.deposit()  # one deposit in each of seconds 1000, 1001, 1002
        clock.advance(1.0)
    assert budget.balance() == 2.0  # at 1003 the deposit of 1000 has gone
    clock.advance(1.0)
    assert budget.balance() == 1.0
    clock.advance(50.0)
    assert budget.balance() == 0.0


def test_withdrawals_expire_and_give_the_budget_back() -> None:
    clock = FakeClock(1000.0)
    budget = RetryBudget(
        RetrySettings(budget_min_per_second=1.0, budget_window_seconds=10),
        clock=clock,
    )
    assert withdraw_all(budget) == 10
    clock.advance(5.0)
    assert budget.try_withdraw() is False
    clock.advance(5.0)
    assert budget.balance() == 10.0
    assert budget.try_withdraw() is True


def test_balance_never_goes_negative() -> None:
    clock = FakeClock(1000.0)
    budget = RetryBudget(
        RetrySettings(budget_ratio=1.0, budget_min_per_second=0.0, budget_window_seconds=10),
        clock=clock,
    )
    budget.deposit()
    clock.advance(5.0)
    assert budget.try_withdraw() is True
    clock.advance(5.0)  # the deposit has expired, the withdrawal has not
    assert budget.balance() == 0.0
    assert budget.try_withdraw() is False


@pytest.mark.parametrize(
    "overrides",
    [{"budget_ratio": -0.1}, {"budget_min_per_second": -1.0}, {"budget_window_seconds": 0}],
)
def test_config_refuses_nonsense(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RetrySettings(**overrides)
