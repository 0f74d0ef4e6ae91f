"""The gate's paired statistics on fixed data, against known answers and the simulations at n = 36
behind issue 21 (research/sim: mde.py and sim2.py, one-sided alpha 0.05)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lockstep import stats
from lockstep.stats import Verdict


def flips(worse: int, better: int, n: int = 36, right: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Exact match of a base and a head on n cases: `worse` cases right before and wrong now,
    `better` the other way round, and the rest of the base's `right` cases right on both sides."""
    base, head = np.zeros(n, bool), np.zeros(n, bool)
    base[:right] = head[:right] = True
    head[:worse] = False
    head[right : right + better] = True
    return base, head


def test_mcnemar_needs_five_regressions_without_an_improvement_at_n_36() -> None:
    # mde.py: "McNemar exact one-sided: need >= 5 regressions with 0 improvements (13.9% of n=36), p=0.0312"
    four, five = stats.mcnemar(*flips(4, 0)), stats.mcnemar(*flips(5, 0))
    assert four.p == pytest.approx(0.0625) and four.verdict() == Verdict.INCONCLUSIVE
    assert five.p == pytest.approx(0.03125) and five.verdict() == Verdict.FAIL
    assert five.estimate == pytest.approx(-5 / 36) and five.high < 0 < four.high


def test_mcnemar_bounds_and_verdicts_of_the_done_cases() -> None:
    unchanged = stats.mcnemar(*flips(0, 0))
    assert (unchanged.estimate, unchanged.low, unchanged.high, unchanged.p) == (0, 0, 0, 1)
    assert unchanged.verdict() == Verdict.PASS
    two = stats.mcnemar(*flips(2, 0))
    assert two.verdict() == Verdict.INCONCLUSIVE and two.low == pytest.approx(-2 / 36)
    assert two.high == pytest.approx(2 / 36 * (2 * (1 - 0.05**0.5) - 1))  # Clopper-Pearson of 0 of 2
    eight = stats.mcnemar(*flips(8, 0))
    assert eight.p == pytest.approx(0.5**8) and eight.verdict() == Verdict.FAIL
    assert eight.high == pytest.approx(8 / 36 * (2 * (1 - 0.05 ** (1 / 8)) - 1))
    # With an allowed regression the null moves: 8 of 36 lost is not shown to be worse than 0.10 lost
    assert stats.mcnemar(*flips(8, 0), allowed=0.10).verdict() == Verdict.INCONCLUSIVE
    # One each way: no change on average, and not shown to be harmless either
    assert stats.mcnemar(*flips(1, 1)).verdict() == Verdict.INCONCLUSIVE
    assert stats.mcnemar(*flips(1, 1), allowed=0.06).verdict() == Verdict.PASS


def test_the_bootstrap_alone_would_fail_five_worse_one_better_mcnemar_does_not() -> None:
    # beyond-llm-gating.md: "With 5 regressions and 1 improvement, BCa says fail while McNemar gives p=0.109"
    base, head = flips(5, 1)
    assert stats.mcnemar(base, head).p == pytest.approx(7 / 64)
    change = head.astype(float) - base.astype(float)
    bca = scipy_stats.bootstrap((change,), np.mean, confidence_level=0.9, rng=np.random.default_rng(0))
    assert bca.confidence_interval.high < 0  # BCa's upper bound says "worse"
    scores = stats.paired_scores(base.astype(float), head.astype(float))
    assert scores.verdict() == Verdict.INCONCLUSIVE  # the percentile bootstrap, checked with Wilcoxon, does not


def test_mcnemar_power_matches_the_simulation() -> None:
    # sim2.py, churn 0.25, tol 0: a 10 pp drop is caught 20-31 % of the time, a 20 pp drop 69-81 %
    assert 0.20 <= stats.mcnemar_power(36, worse=0.175, better=0.075) <= 0.31
    assert 0.69 <= stats.mcnemar_power(36, worse=0.225, better=0.025) <= 0.81
    # and exactly what enumerating every outcome gives
    brute = sum(
        scipy_stats.multinomial.pmf([w, b, 36 - w - b], 36, [0.175, 0.075, 0.75])
        for w in range(37)
        for b in range(37 - w)
        if w + b and scipy_stats.binomtest(b, w + b, 0.5, alternative="less").pvalue < 0.05
    )
    assert stats.mcnemar_power(36, worse=0.175, better=0.075) == pytest.approx(brute)


def test_detectable_effect_and_cases_needed() -> None:
    # mde.py: a paired score with per-case sd 0.15 at n = 36 needs a drop of about 0.064 for 80 % power
    rng = np.random.default_rng(3)
    change = rng.normal(0, 1, 36)
    change = (change - change.mean()) / change.std(ddof=1) * 0.15
    scores = stats.paired_scores(np.full(36, 0.5), 0.5 + change)
    assert stats.detectable(scores) == pytest.approx(0.0635, abs=0.0005)
    assert stats.cases_needed(scores, 0.0635) == pytest.approx(36, abs=1)
    assert stats.cases_needed(scores, 0.032) == pytest.approx(4 * 36, rel=0.05)  # half the effect, 4x the cases
    # McNemar, two of 36 lost: about 18 pp can be caught; 10 pp needs more cases, and an effect within
    # the allowed regression none at all
    two = stats.mcnemar(*flips(2, 0))
    smallest = stats.detectable(two)
    assert 0.15 < smallest < 0.22
    assert stats.mcnemar_power(36, smallest, 0) == pytest.approx(0.8, abs=0.01)
    needed = stats.cases_needed(two, 0.10)
    assert 36 < needed < 200 and stats.mcnemar_power(needed, 0.10, 0) >= 0.8
    assert stats.cases_needed(stats.mcnemar(*flips(2, 0), allowed=0.1), 0.05) is None
    assert stats.detectable(stats.paired_scores(np.ones(5), np.ones(5))) is None  # nothing changed


def test_paired_scores_fail_pass_and_inconclusive() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.8, 36)
    same = stats.paired_scores(base, base)
    assert same.verdict() == Verdict.PASS and same.changed == 0 and same.low == same.high == 0
    worse = stats.paired_scores(base, base - 0.2 + rng.normal(0, 0.05, 36))
    assert worse.verdict() == Verdict.FAIL and worse.high < 0 and worse.p < 0.001
    noisy_head = base + rng.normal(0, 0.15, 36)
    noisy = stats.paired_scores(base, noisy_head)
    assert noisy.verdict() == Verdict.INCONCLUSIVE and noisy.low < 0 < noisy.high
    assert stats.paired_scores(base, noisy_head) == noisy  # the bootstrap's seed is fixed: same data, same bounds
    assert stats.paired_scores(base, base - 0.02, allowed=0.05).verdict() == Verdict.PASS  # within the allowance


def test_false_alarms_of_the_score_rule_stay_near_five_percent() -> None:
    # sim2.py's continuous case: no true change, per-case sd 0.15, 40 % of the answers identical
    rng = np.random.default_rng(7)
    fails = 0
    for _ in range(200):
        change = rng.normal(0, 0.15, 36)
        change[rng.random(36) < 0.4] = 0
        fails += stats.paired_scores(np.zeros(36), change).verdict() == Verdict.FAIL
    assert fails / 200 <= 0.08


def test_holm_adjusts_step_down() -> None:
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([0.0039, 1, 1, 1, 1, 1]) == pytest.approx([0.0234, 1, 1, 1, 1, 1])
    assert stats.holm([]) == []


def test_safety_counts_and_the_zero_out_of_n_bound() -> None:
    # beyond-llm-gating.md: 0 of 36 still allows a rate up to 8 %
    assert stats.rate_upper_bound(0, 36) == pytest.approx(1 - 0.05 ** (1 / 36))
    assert round(stats.rate_upper_bound(0, 36), 3) == 0.08
    assert stats.rate_upper_bound(0, 4) == pytest.approx(0.527, abs=0.001) and stats.rate_upper_bound(4, 4) == 1
    assert stats.newly_bad(np.array([1, 0, 0, 1]), np.array([1, 1, 0, 0])) == 1


def test_absolute_limits_on_bounds() -> None:
    low, high = stats.proportion_bounds(8, 36)
    assert (round(low, 3), round(high, 3)) == (0.116, 0.365)
    assert stats.limit_verdict(low, high, 0.10, None) == Verdict.PASS
    assert stats.limit_verdict(low, high, 0.20, None) == Verdict.INCONCLUSIVE  # chance cannot be told apart
    assert stats.limit_verdict(*stats.proportion_bounds(0, 36), 0.10, None) == Verdict.FAIL
    assert stats.limit_verdict(2.7, 3.4, None, 4.0) == Verdict.PASS
    assert stats.limit_verdict(4.1, 5.0, None, 4.0) == Verdict.FAIL
    assert stats.mean_bounds(np.full(5, 0.3)) == (0.3, 0.3)


def test_whole_split_statistics_and_their_paired_change() -> None:
    rng = np.random.default_rng(2)
    actual = rng.random(200) < 0.4
    good = np.where(rng.random(200) < 0.95, actual, ~actual)
    worse = np.where(rng.random(200) < 0.7, actual, ~actual)
    f1 = stats.f1_binary(actual, good)
    assert f1 == pytest.approx(2 * (actual & good).sum() / (2 * (actual & good).sum() + (actual ^ good).sum()))
    losses = ((good != actual).astype(float), (worse != actual).astype(float))
    dropped = stats.paired_statistic(stats.f1_binary, actual, good, worse, 0.03, losses)
    assert dropped.verdict() == Verdict.FAIL and dropped.estimate < -0.2
    same = stats.paired_statistic(stats.f1_binary, actual, good, good, 0.03)
    assert same.verdict() == Verdict.PASS and same.changed == 0
    truth = rng.normal(0, 1, 100)
    close, far = truth + rng.normal(0, 0.1, 100), truth + rng.normal(0, 0.5, 100)
    assert stats.neg_rmse(truth, close) == pytest.approx(-np.sqrt(np.mean((truth - close) ** 2)))
    assert stats.r2(truth, truth) == 1 and stats.neg_mae(truth, truth) == 0
    squared = ((truth - close) ** 2, (truth - far) ** 2)
    assert stats.paired_statistic(stats.neg_rmse, truth, close, far, 0.05, squared).verdict() == Verdict.FAIL
    labels = np.array(["a", "b", "c"] * 20)
    assert stats.f1_macro(labels, labels) == 1.0


def test_latency_ratio_of_interleaved_runs() -> None:
    rng = np.random.default_rng(4)
    base = rng.lognormal(np.log(0.7), 0.1, 36)
    slower = base * 1.5 * rng.lognormal(0, 0.05, 36)
    assert stats.latency_ratio(base, slower, 1.2).verdict() == Verdict.FAIL  # 50 % slower, 20 % allowed
    assert stats.latency_ratio(base, base * rng.lognormal(0, 0.05, 36), 1.2).verdict() == Verdict.PASS
