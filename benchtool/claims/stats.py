"""The statistical tests claims decide with (scipy.stats), each returning what a verdict
line needs: an estimate, its interval and a p-value.

Every interval is two-sided at ``1 - alpha``; every p-value is one-sided in the direction
the claim states. Sample sizes "needed to decide" are normal approximations at 80% power,
good enough to tell a user whether 2x or 20x more examples (or seeds) would do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from scipy import stats

POWER = 0.8
_z = NormalDist().inv_cdf


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its ``1 - alpha`` interval and a one-sided p-value."""

    value: float
    low: float
    high: float
    p_value: float = math.nan

    def interval(self, fmt: str = ".3f") -> str:
        return f"[{self.low:{fmt}}, {self.high:{fmt}}]"


def proportion(successes: int, n: int, alpha: float = 0.05) -> Estimate:
    """A proportion with its Clopper-Pearson (exact binomial) interval."""
    if n <= 0:
        return Estimate(math.nan, 0.0, 1.0, math.nan)
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=1 - alpha, method="exact")
    return Estimate(successes / n, float(ci.low), float(ci.high))


def binomial_greater(successes: int, n: int, p0: float, alpha: float = 0.05) -> Estimate:
    """Exact one-sided binomial test of ``p > p0``, with the two-sided Clopper-Pearson interval."""
    est = proportion(successes, n, alpha)
    if n <= 0:
        return est
    p = stats.binomtest(int(successes), int(n), p0, alternative="greater").pvalue
    return Estimate(est.value, est.low, est.high, float(p))


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Exact McNemar test (a binomial test on the discordant pairs): one-sided p-value that
    the first condition succeeds more often than the second."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    return float(stats.binomtest(only_first, n, 0.5, alternative="greater").pvalue)


@dataclass(frozen=True)
class PairedComparison:
    """Attack A against attack B on the same examples (each vector: True where the example
    stayed robust). ``only_a`` counts examples A left robust that B broke, ``only_b`` the
    reverse; ``p_value`` is the exact one-sided McNemar p of "B is stronger than A" (A
    leaves more examples robust), small when A is weaker beyond sampling noise."""

    n: int
    only_a: int
    only_b: int
    p_value: float

    def weaker(self, alpha: float) -> bool:
        """Whether A is weaker than B at one-sided significance ``alpha``."""
        return self.p_value < alpha

    def describe(self, a: str, b: str) -> str:
        return (f"{self.only_a} of {self.n} examples only {b} broke, {self.only_b} only {a} broke "
                f"(exact McNemar p={self.p_value:.2g})")


def at_least_as_strong(robust_a: Sequence[bool], robust_b: Sequence[bool]) -> PairedComparison:
    """The paired test of "A is at least as strong as B" on the same examples: its p-value is
    the exact one-sided McNemar p that B is stronger (used by the robustness suite's PGD >= FGSM
    check, APGD >= PGD and the gradient-masking checks)."""
    if len(robust_a) != len(robust_b):
        raise ValueError(f"paired comparison needs one outcome per example on both sides, got "
                         f"{len(robust_a)} and {len(robust_b)}")
    only_a = sum(1 for a, b in zip(robust_a, robust_b) if a and not b)
    only_b = sum(1 for a, b in zip(robust_a, robust_b) if b and not a)
    return PairedComparison(len(robust_a), only_a, only_b, mcnemar_exact(only_a, only_b))


def two_proportions_greater(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05) -> Estimate:
    """``p1 - p2`` with a Newcombe (Wilson score) interval and Fisher's exact one-sided p of ``p1 > p2``."""
    if n1 <= 0 or n2 <= 0:
        return Estimate(math.nan, -1.0, 1.0, math.nan)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, alpha)
    l2, u2 = wilson_interval(k2, n2, alpha)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    p = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="greater").pvalue
    return Estimate(diff, low, high, float(p))


def wilson_interval(k: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials (``k`` may be fractional:
    a mean over repeated draws of each trial)."""
    z = _z(1 - alpha / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at k = 0 (k = n) the lower (upper) edge is exactly 0 (1), not a rounding residue of it
    return (0.0 if k <= 0 else max(0.0, centre - half)), (1.0 if k >= n else min(1.0, centre + half))


def auroc_greater(auroc: float, n_pos: int, n_neg: int, alpha: float = 0.05) -> Estimate:
    """AUROC against 0.5: the one-sided Mann-Whitney U test (normal approximation, exact null
    variance) and a Hanley-McNeil interval."""
    if n_pos <= 0 or n_neg <= 0:
        return Estimate(auroc, 0.0, 1.0, math.nan)
    null_sd = math.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg))
    p = 1.0 - NormalDist().cdf((auroc - 0.5) / null_sd)
    q1, q2 = auroc / (2 - auroc), 2 * auroc * auroc / (1 + auroc)
    var = (auroc * (1 - auroc) + (n_pos - 1) * (q1 - auroc ** 2) + (n_neg - 1) * (q2 - auroc ** 2)) / (n_pos * n_neg)
    half = _z(1 - alpha / 2) * math.sqrt(max(var, 0.0))
    return Estimate(auroc, max(0.0, auroc - half), min(1.0, auroc + half), p)


def welch_less(mean1: float, sd1: float, n1: int, mean2: float, sd2: float, n2: int,
               alpha: float = 0.05) -> Estimate:
    """``mean1 - mean2`` with a Welch interval and the one-sided p-value of ``mean1 < mean2``."""
    if n1 < 2 or n2 < 2:
        return Estimate(mean1 - mean2, -math.inf, math.inf, math.nan)
    se1, se2 = sd1 ** 2 / n1, sd2 ** 2 / n2
    diff = mean1 - mean2
    se = math.sqrt(se1 + se2)
    if se == 0:
        p = 0.0 if diff < 0 else 1.0
        return Estimate(diff, diff, diff, p)
    dof = (se1 + se2) ** 2 / (se1 ** 2 / (n1 - 1) + se2 ** 2 / (n2 - 1))
    p = float(stats.t.cdf(diff / se, dof))
    half = float(stats.t.ppf(1 - alpha / 2, dof)) * se
    return Estimate(diff, diff - half, diff + half, p)


def sd_from_ci_half_width(half_width: float, n: int, level: float = 0.95) -> float:
    """The standard deviation behind a Student-t ``level`` CI half-width of a mean of n values."""
    if n < 2:
        return math.nan
    return half_width * math.sqrt(n) / float(stats.t.ppf(0.5 + level / 2, n - 1))


def mean_interval(values: list[float], alpha: float = 0.05) -> Estimate:
    """The mean over seeds with a Student t interval (a percentile bootstrap from scipy
    when there are 8 or more), and the one-sided t-test p-value of ``mean > 0``."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, -math.inf, math.inf, math.nan)
    mean = sum(values) / n
    if n < 2:
        return Estimate(mean, -math.inf, math.inf, math.nan)
    sd = stats.tstd(values)
    if sd == 0:
        return Estimate(mean, mean, mean, 0.0 if mean > 0 else 1.0)
    p = float(stats.ttest_1samp(values, 0.0, alternative="greater").pvalue)
    if n >= 8:
        boot = stats.bootstrap((values,), lambda v, axis=-1: v.mean(axis=axis), confidence_level=1 - alpha,
                               method="percentile", random_state=0)
        return Estimate(mean, float(boot.confidence_interval.low), float(boot.confidence_interval.high), p)
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, p)


def n_for_proportion(p1: float, p0: float, alpha: float = 0.05, power: float = POWER) -> int:
    """Examples a one-sided one-sample test needs to tell proportion ``p1`` from ``p0``."""
    effect = abs(p1 - p0)
    if effect == 0:
        return 0
    num = _z(1 - alpha) * math.sqrt(p0 * (1 - p0)) + _z(power) * math.sqrt(max(p1 * (1 - p1), 1e-12))
    return math.ceil((num / effect) ** 2)


def n_for_two_proportions(p1: float, p2: float, alpha: float = 0.05, power: float = POWER) -> int:
    """Examples per group a one-sided two-sample test needs to tell ``p1`` from ``p2``."""
    effect = abs(p1 - p2)
    if effect == 0:
        return 0
    var = p1 * (1 - p1) + p2 * (1 - p2)
    return math.ceil((_z(1 - alpha) + _z(power)) ** 2 * max(var, 1e-12) / effect ** 2)


def n_for_means(effect: float, sd: float, alpha: float = 0.05, power: float = POWER, groups: int = 2) -> int:
    """Seeds per group (groups=2) or paired seeds (groups=1) a one-sided t-test needs for ``effect``."""
    if effect == 0 or not math.isfinite(sd):
        return 0
    return max(2, math.ceil(groups * (_z(1 - alpha) + _z(power)) ** 2 * sd ** 2 / effect ** 2))


def n_for_auroc(auroc: float, alpha: float = 0.05, power: float = POWER) -> int:
    """Examples per group (in and out of distribution) to show an AUROC above 0.5."""
    effect = auroc - 0.5
    if effect <= 0:
        return 0
    # the null variance of the AUROC with n per group is (2n + 1) / (12 n^2) ~ 1 / (6 n)
    return math.ceil((_z(1 - alpha) + _z(power)) ** 2 / (6 * effect ** 2))
