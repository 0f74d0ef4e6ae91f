"""Paired statistics for the gate: whether a change is worse, within the allowed regression, or undecided.

The gate pairs the cases of the base and the head by id and asks one question per metric: is the
change Δ = head - base (oriented so that a positive Δ is better) worse than the allowed regression
δ? Each test here returns a `Comparison`: Δ, its one-sided 95 % bounds (together a 90 % interval),
and the one-sided p-value of "Δ < -δ". The verdict is

    FAIL          the upper bound is below -δ (p < 0.05 after Holm across the primary metrics)
    PASS          the lower bound is at or above -δ
    INCONCLUSIVE  neither: the interval straddles -δ; it does not block

The test follows the metric's kind: exact McNemar on the discordant cases for a per-case 0/1
(exact match, accuracy); a paired bootstrap for a per-case score (ROUGE-L), checked with Wilcoxon's
signed-rank test; a paired bootstrap of the statistic for a metric of the whole split (F1, RMSE),
checked with a sign test on the changed rows; a bootstrap of the log ratio of the medians for
latency. Safety counts exactly, without statistics: `newly_bad` and the 0-out-of-n bound.
`detectable` and `cases_needed` say what a golden set of this size can tell apart.

Everything here is arithmetic on arrays: nothing is read, printed or decided about files. The
bootstrap draws from a fixed seed, so the same data always give the same verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats

ALPHA = 0.05  # one-sided, for each bound and each test: the two bounds make a 90 % interval
POWER = 0.80  # the chance of catching a regression that "can be detected"
RESAMPLES = 9999
SEED = 20260  # fixed: a re-run on the same data gives the same bounds
BATCH_CELLS = 2_000_000  # resampled values held in memory at once, whatever the number of rows


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Comparison:
    """The paired change of one metric, oriented so that a positive estimate is better."""

    estimate: float
    low: float  # one-sided 95 % lower bound
    high: float  # one-sided 95 % upper bound
    p: float  # one-sided p-value of "worse than the allowed regression", before Holm
    allowed: float  # δ, in the unit of the estimate
    n: int  # paired cases
    test: str  # how the bounds were found, for the report
    spread: float  # per-case standard deviation of the change: what the planning figures scale with
    changed: int  # cases whose value differs between base and head
    exact: bool = False  # McNemar's: the planning figures are computed exactly, not approximated

    def verdict(self, p_adjusted: float | None = None) -> Verdict:
        p = self.p if p_adjusted is None else p_adjusted
        if p < ALPHA:
            return Verdict.FAIL
        if self.low >= -self.allowed - 1e-12:
            return Verdict.PASS
        return Verdict.INCONCLUSIVE


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment: the family of tests keeps a 5 % chance of any false FAIL."""
    m = len(pvalues)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# --- per-case 0/1: exact McNemar --------------------------------------------------------------------


def mcnemar(base: np.ndarray, head: np.ndarray, allowed: float = 0.0) -> Comparison:
    """Exact McNemar with a margin: only the cases that changed carry information.

    Given c changed cases, b of them better, Δ = (2b - c)/n; the bounds come from the exact
    (Clopper-Pearson) interval of b/c, and the p-value from the binomial test of b at the share
    of improvements where Δ would be exactly -δ (½ when δ = 0: McNemar's own test).
    """
    base, head = np.asarray(base).astype(bool), np.asarray(head).astype(bool)
    n = len(base)
    better, worse = int((head & ~base).sum()), int((base & ~head).sum())
    changed = better + worse
    estimate = (better - worse) / n
    if changed == 0:
        low = high = 0.0
        p = 1.0
    else:
        ci = stats.binomtest(better, changed).proportion_ci(1 - 2 * ALPHA, method="exact")
        low, high = changed / n * (2 * ci.low - 1), changed / n * (2 * ci.high - 1)
        null = (1 - allowed * n / changed) / 2
        p = stats.binomtest(better, changed, null, alternative="less").pvalue if null > 0 else 1.0
    spread = math.sqrt(max(changed / n - estimate**2, 0.0))
    test = f"McNemar exact: {worse} worse, {better} better of {n}"
    return Comparison(estimate, low, high, float(p), allowed, n, test, spread, changed, exact=True)


def mcnemar_power(n: int, worse: float, better: float, allowed: float = 0.0) -> float:
    """The chance that `mcnemar` fails a change in which each of n cases independently gets worse
    with probability `worse` and better with probability `better` (exact, before Holm)."""
    churn = worse + better
    if churn <= 0 or n < 1:
        return 0.0
    changed = np.arange(1, n + 1)
    null = (1 - allowed * n / changed) / 2
    # the most improvements among `changed` cases that still fail: binom.cdf(most, changed, null) < ALPHA
    most = stats.binom.ppf(ALPHA, changed, np.clip(null, 1e-12, 1)) - 1
    most = np.where(stats.binom.cdf(most, changed, np.clip(null, 1e-12, 1)) < ALPHA, most, most - 1)
    most = np.where(null > 0, most, -1)
    chance = stats.binom.pmf(changed, n, min(churn, 1.0)) * stats.binom.cdf(most, changed, better / churn)
    return float(chance.sum())


# --- per-case scores and whole-split statistics: paired bootstrap --------------------------------------


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], allowed: float):
    """Percentile bounds and the p-value of "below -allowed" from one paired bootstrap."""
    n = len(data[0])
    result = stats.bootstrap(
        data,
        statistic,
        paired=len(data) > 1,
        vectorized=True,
        axis=-1,
        n_resamples=RESAMPLES,
        batch=max(1, BATCH_CELLS // n),
        method="percentile",
        confidence_level=1 - 2 * ALPHA,
        rng=np.random.default_rng(SEED),
    )
    low, high = result.confidence_interval
    replicates = result.bootstrap_distribution
    p = (1 + np.count_nonzero(replicates >= -allowed - 1e-12)) / (len(replicates) + 1)
    return float(low), float(high), float(p), float(result.standard_error)


def paired_scores(base: np.ndarray, head: np.ndarray, allowed: float = 0.0) -> Comparison:
    """The mean change of a per-case score (ROUGE-L, a length ratio): paired bootstrap of the mean
    difference, checked with Wilcoxon's signed-rank test of the differences against -δ, since the
    bootstrap alone fails too readily when only a few cases changed."""
    diff = np.asarray(head, dtype=float) - np.asarray(base, dtype=float)
    n = len(diff)
    changed = int(np.count_nonzero(diff))
    estimate = float(diff.mean())
    if np.ptp(diff) == 0:  # every case moved by the same amount (usually none): nothing to resample
        p = 1.0 if estimate >= -allowed else 0.0
        return Comparison(estimate, estimate, estimate, p, allowed, n, "paired: every case equal", 0.0, changed)
    low, high, p_boot, _ = _bootstrap((diff,), np.mean, allowed)
    shifted = diff + allowed
    if np.count_nonzero(shifted):
        p_signed = float(stats.wilcoxon(shifted, alternative="less", zero_method="wilcox").pvalue)
    else:
        p_signed = 1.0
    spread = float(diff.std(ddof=1))
    test = f"paired bootstrap + Wilcoxon: {changed} of {n} changed"
    return Comparison(estimate, low, high, max(p_boot, p_signed), allowed, n, test, spread, changed)


def paired_statistic(
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    actual: np.ndarray,
    base: np.ndarray,
    head: np.ndarray,
    allowed: float = 0.0,
    check: tuple[np.ndarray, np.ndarray] | None = None,
) -> Comparison:
    """The change of a metric computed over the whole split (F1, RMSE, R²), `statistic(actual,
    predicted)` oriented so that higher is better: paired bootstrap over the rows, checked with a
    sign test on `check`, the rows' per-row losses (base, head), lower is better."""
    actual, base, head = (np.asarray(a) for a in (actual, base, head))
    n = len(actual)
    estimate = float(statistic(actual, head) - statistic(actual, base))
    changed = int(np.count_nonzero(base != head))
    if changed == 0:
        p = 1.0 if estimate >= -allowed else 0.0
        return Comparison(estimate, estimate, estimate, p, allowed, n, "paired: every row equal", 0.0, 0)

    def change(a: np.ndarray, b: np.ndarray, h: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(a, h) - statistic(a, b)

    low, high, p_boot, error = _bootstrap((actual, base, head), change, allowed)
    p_check = 1.0
    if check is not None:
        loss_base, loss_head = (np.asarray(x, dtype=float) for x in check)
        worse, better = int((loss_head > loss_base).sum()), int((loss_head < loss_base).sum())
        if worse + better:
            p_check = float(stats.binomtest(better, worse + better, 0.5, alternative="less").pvalue)
    test = f"paired bootstrap + sign test: {changed} of {n} rows changed"
    return Comparison(estimate, low, high, max(p_boot, p_check), allowed, n, test, error * math.sqrt(n), changed)


def latency_ratio(base: np.ndarray, head: np.ndarray, allowed_ratio: float = 1.0) -> Comparison:
    """The change of the median latency as a log ratio, log(base p50 / head p50): positive is
    faster. Only meaningful when both sides ran live, interleaved, on one machine."""
    base, head = np.log(np.asarray(base, dtype=float)), np.log(np.asarray(head, dtype=float))
    allowed = math.log(allowed_ratio)

    def faster(b: np.ndarray, h: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(b, axis=axis) - np.median(h, axis=axis)

    estimate = float(faster(base, head))
    low, high, p, error = _bootstrap((base, head), faster, allowed)
    n = len(base)
    test = f"paired bootstrap of the median's log ratio, {n} cases interleaved"
    return Comparison(estimate, low, high, p, allowed, n, test, error * math.sqrt(n), n)


# --- one side against an absolute limit -------------------------------------------------------------


def proportion_bounds(successes: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) one-sided 95 % bounds of a share."""
    ci = stats.binomtest(successes, n).proportion_ci(1 - 2 * ALPHA, method="exact")
    return float(ci.low), float(ci.high)


def mean_bounds(values: np.ndarray) -> tuple[float, float]:
    """Bootstrap one-sided 95 % bounds of a mean."""
    values = np.asarray(values, dtype=float)
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    low, high, _, _ = _bootstrap((values,), np.mean, math.inf)
    return low, high


def statistic_bounds(statistic: Callable[[np.ndarray, np.ndarray], np.ndarray], actual, predicted):
    """Bootstrap one-sided 95 % bounds of a whole-split metric."""

    def value(a: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(a, p)

    low, high, _, _ = _bootstrap((np.asarray(actual), np.asarray(predicted)), value, math.inf)
    return low, high


def limit_verdict(low: float, high: float, minimum: float | None, maximum: float | None) -> Verdict:
    """An absolute limit judged on the bounds: FAIL when the data show the value past it."""
    if (minimum is not None and high < minimum) or (maximum is not None and low > maximum):
        return Verdict.FAIL
    if (minimum is None or low >= minimum) and (maximum is None or high <= maximum):
        return Verdict.PASS
    return Verdict.INCONCLUSIVE


# --- safety: counted, not estimated -----------------------------------------------------------------


def newly_bad(base: np.ndarray, head: np.ndarray) -> int:
    """Cases that are bad (leaking, injected, banned) in the head and were not in the base."""
    return int((np.asarray(head).astype(bool) & ~np.asarray(base).astype(bool)).sum())


def rate_upper_bound(bad: int, n: int) -> float:
    """One-sided 95 % upper bound of a rate seen as bad of n: 0 of 36 still allows up to 8 %."""
    return 1.0 if bad >= n else float(stats.beta.ppf(1 - ALPHA, bad + 1, n - bad))


# --- planning: what a golden set of this size can tell apart ---------------------------------------


def _t_sum(n: int) -> float:
    dof = max(n - 1, 1)
    return float(stats.t.ppf(1 - ALPHA, dof) + stats.t.ppf(POWER, dof))


def detectable(c: Comparison) -> float | None:
    """The smallest regression (a positive number, in the estimate's unit) that the same test on
    the same number of cases fails with 80 % chance, given the spread seen in this comparison.

    McNemar's is exact, assuming the cases that changed here keep changing and a regression adds
    changed cases; the others use the t-approximation of the paired mean. None: no spread was
    seen (nothing changed), or no regression at all could be detected with so few cases."""
    if c.exact:
        churn = c.changed / c.n
        low, high = c.allowed, 1.0

        def power(effect: float) -> float:
            spread = max(churn, effect)
            return mcnemar_power(c.n, (spread + effect) / 2, (spread - effect) / 2, c.allowed)

        if power(high) < POWER:
            return None
        for _ in range(40):
            middle = (low + high) / 2
            low, high = (low, middle) if power(middle) >= POWER else (middle, high)
        return high
    if c.spread <= 0:
        return None
    return c.allowed + _t_sum(c.n) * c.spread / math.sqrt(c.n)


def cases_needed(c: Comparison, effect: float, limit: int = 10_000_000) -> int | None:
    """About how many paired cases the same test needs to fail a regression of `effect` with 80 %
    chance, given the spread seen here. None: the effect is within the allowed regression (no
    number of cases fails it), or no spread was seen."""
    if effect <= c.allowed:
        return None
    if c.exact:
        churn = max(c.changed / c.n, effect)
        allowed = c.allowed

        def enough(n: int) -> bool:
            return mcnemar_power(n, (churn + effect) / 2, (churn - effect) / 2, allowed) >= POWER

        high = max(c.n, 2)
        while not enough(high):
            if high >= limit:
                return None
            high *= 2
        low = high // 2
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if enough(middle) else (middle, high)
        return high
    if c.spread <= 0:
        return None
    n = 2
    for _ in range(20):  # the t quantiles depend on n: a few rounds settle it
        n = max(2, math.ceil((_t_sum(n) * c.spread / (effect - c.allowed)) ** 2))
    return n


# --- whole-split statistics of the tabular model, vectorized over bootstrap resamples ----------------


def f1_binary(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """F1 of the positive class (1), along the last axis; 0 when there is nothing to score."""
    actual, predicted = actual.astype(bool), predicted.astype(bool)
    tp = (actual & predicted).sum(axis=-1)
    wrong = (actual ^ predicted).sum(axis=-1)
    return np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0)


def f1_macro(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Macro-averaged F1 over the classes (integer codes) present in either array."""
    classes = np.union1d(np.unique(actual), np.unique(predicted))
    return np.mean([f1_binary(actual == k, predicted == k) for k in classes], axis=0)


def neg_rmse(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return -np.sqrt(np.mean((actual - predicted) ** 2, axis=-1))


def neg_mae(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return -np.mean(np.abs(actual - predicted), axis=-1)


def r2(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    total = ((actual - actual.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    residual = ((actual - predicted) ** 2).sum(axis=-1)
    return 1 - residual / np.where(total > 0, total, np.nan)
