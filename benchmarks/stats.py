"""Small, dependency-free statistics: medians with their spread, percentiles, ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TypedDict


class Spread(TypedDict):
    median: float
    min: float
    max: float


def spread(values: Sequence[float]) -> Spread:
    """Median with min-max: on a noisy shared machine the range says how far to trust it.

    NaN (a figure that could not be read) is left out rather than poisoning the median.
    """
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` in 0..1)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def ratio(numerator: float, denominator: float) -> float:
    if denominator <= 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Spread:
    """Ratios of runs made in the same round (A B A B): noise shared by a round cancels out."""
    return spread([ratio(a, b) for a, b in zip(numerators, denominators, strict=True)])
