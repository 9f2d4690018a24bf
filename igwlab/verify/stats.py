"""The statistics behind traffic-split and prefix-affinity (scipy, imported only here).

Significance level 0.001: a correct gateway fails a check about once in a thousand runs, while
a wrong split (say 50/50 where 70/30 was configured, with 100 requests) gives p < 1e-4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.001
MIN_EXPECTED_PER_TARGET = 5
# A split that passes the test but is this far off in some target's share is reported as
# inconclusive (warn) rather than passed: at 200 requests the test alone misses a 60/40 split
# configured as 70/30 more often than not.
MAX_UNFLAGGED_SHARE_DEVIATION = 0.10


@dataclass(frozen=True)
class SplitTest:
    p_value: float
    statistic: float
    enough_data: bool


def split_test(observed: Sequence[int], weights: Sequence[int]) -> SplitTest:
    """Chi-square goodness of fit of observed counts against configured weights."""
    from scipy.stats import chisquare

    total = sum(observed)
    weight_sum = sum(weights)
    expected = [total * w / weight_sum for w in weights]
    enough = total > 0 and min(expected) >= MIN_EXPECTED_PER_TARGET
    if total == 0:
        return SplitTest(p_value=0.0, statistic=float("inf"), enough_data=False)
    result = chisquare(f_obs=list(observed), f_exp=expected)
    return SplitTest(p_value=float(result.pvalue), statistic=float(result.statistic), enough_data=enough)


def largest_share_deviation(observed: Sequence[int], weights: Sequence[int]) -> float:
    total, weight_sum = sum(observed), sum(weights)
    if total == 0:
        return 1.0
    return max(abs(o / total - w / weight_sum) for o, w in zip(observed, weights, strict=True))


def requests_needed_for_split(weights: Sequence[int]) -> int:
    """Fewest requests giving every target an expected count of at least 5."""
    return int(-(-MIN_EXPECTED_PER_TARGET * sum(weights) // min(weights)))


def above_chance(successes: int, trials: int, chance: float) -> float:
    """One-sided binomial p-value that `successes` out of `trials` beat the chance rate."""
    from scipy.stats import binomtest

    if trials == 0:
        return 1.0
    return float(binomtest(successes, trials, chance, alternative="greater").pvalue)
