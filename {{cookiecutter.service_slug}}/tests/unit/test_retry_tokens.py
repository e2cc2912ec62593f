"""RetryTokens: gRPC's retry throttling, token by token."""

from {{ cookiecutter.package_name }}.downstream.config import RetrySettings
from {{ cookiecutter.package_name }}.downstream.retry_tokens import RetryTokens


def tokens(max_tokens: float = 10.0, ratio: float = 0.1) -> RetryTokens:
    return RetryTokens(RetrySettings(throttle_max_tokens=max_tokens, throttle_token_ratio=ratio))


def test_five_failures_in_a_row_stop_every_retry() -> None:
    bucket = tokens()
    for _ in range(4):
        bucket.failed()
    assert bucket.allow_retry()  # 6 tokens: above half
    bucket.failed()
    assert not bucket.allow_retry()  # 5: at half, refused
    assert bucket.throttled_count == 1


def test_answers_earn_retries_back_a_tenth_at_a_time() -> None:
    bucket = tokens()
    for _ in range(20):
        bucket.failed()
    assert bucket.tokens == 0  # never below zero
    for _ in range(50):
        bucket.answered()
    assert not bucket.allow_retry()  # 50 answers: 5.0 tokens, still at half
    bucket.answered()
    assert bucket.allow_retry()


def test_tokens_never_exceed_the_maximum() -> None:
    bucket = tokens(max_tokens=4, ratio=1.0)
    for _ in range(10):
        bucket.answered()
    bucket.failed()
    bucket.failed()
    assert not bucket.allow_retry()  # 4 - 2 = 2: at half, not 10 - 2


def test_zero_tokens_turns_it_off() -> None:
    bucket = tokens(max_tokens=0)
    for _ in range(100):
        bucket.failed()
    assert bucket.allow_retry()
    assert bucket.throttled_count == 0
