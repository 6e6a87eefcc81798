"""The paired intervals on plain arrays: jackknife influence, variance parts, the Behrens-Fisher
quantile, and the headline interval's coverage on synthetic experiments of known truth."""

import math
import sys

import numpy as np
import pytest
from scipy import stats

from segexp.metrics.calibration import ece_rows
from segexp.sweeps.intervals import (
    behrens_fisher_quantile,
    ece_influence,
    miou_influence,
    miou_rows,
    seeds_images_interval,
    t_interval,
    variance_parts,
)
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import coverage


def test_influence_values_are_the_jackknife_of_miou_and_ece():
    rng = np.random.default_rng(3)
    union = rng.integers(0, 50, size=(12, 3))
    union[:, 0] += 1
    inter = (union * rng.uniform(0, 1, size=(12, 3))).astype(int)
    left_out = [miou_rows((inter.sum(0) - inter[i])[None], (union.sum(0) - union[i])[None])[0]
                for i in range(12)]  # fmt: skip
    expected = 11 * (np.mean(left_out) - np.array(left_out))
    assert miou_influence(inter, union) == pytest.approx(expected)
    assert miou_influence(inter, union).sum() == pytest.approx(0, abs=1e-12)
    labelled = rng.integers(10, 20, size=12).astype(float)
    gaps = rng.normal(0, 2, size=(12, 15))
    loo = [ece_rows((gaps.sum(0) - gaps[i])[None], np.array([labelled.sum() - labelled[i]]))[0]
           for i in range(12)]  # fmt: skip
    assert ece_influence(labelled, gaps) == pytest.approx(11 * (np.mean(loo) - np.array(loo)))


def test_behrens_fisher_quantile_is_t_with_seeds_alone_and_normal_with_images_alone():
    for k in (2, 3, 5, 10):
        assert behrens_fisher_quantile(k, 1.0, 0.0) == pytest.approx(stats.t.ppf(0.975, k - 1))
        both = behrens_fisher_quantile(k, 1.0, 1.0)
        assert stats.norm.ppf(0.975) < both < stats.t.ppf(0.975, k - 1)
    assert behrens_fisher_quantile(2, 0.0, 1.0) == pytest.approx(stats.norm.ppf(0.975))
    assert behrens_fisher_quantile(3, 1e-9, 1.0) == pytest.approx(stats.norm.ppf(0.975), 1e-3)


def test_variance_parts_and_the_interval_by_hand():
    diffs = [0.01, 0.03, 0.02]
    influence = np.array([[1.0, -1.0, 0.5, -0.5], [0.8, -1.2, 0.6, -0.2], [1.2, -0.8, 0.4, -0.8]])
    seed_part, shared = variance_parts(diffs, influence)
    assert seed_part == pytest.approx(np.var(diffs, ddof=1) / 3)
    averaged = np.var(influence.mean(0), ddof=1) / 4
    own = np.mean([np.var(row, ddof=1) for row in influence]) / 4
    assert shared == pytest.approx((3 * averaged - own) / 2)
    low, high = seeds_images_interval(diffs, influence)
    half = behrens_fisher_quantile(3, seed_part, shared) * math.sqrt(seed_part + shared)
    assert (low, high) == pytest.approx((0.02 - half, 0.02 + half))
    assert all(math.isnan(v) for v in seeds_images_interval([0.1], influence[:1]))
    # Seeds that agree exactly: the test set is all the uncertainty left.
    same = seeds_images_interval([0.02] * 3, influence)
    assert same[1] - same[0] == pytest.approx(2 * stats.norm.ppf(0.975) * math.sqrt(shared))


def _coverage(scenario: str, seeds: int, reps: int, interval) -> float:
    s = coverage.SCENARIOS[scenario]
    truth, rng, hits = coverage.true_difference(s), np.random.default_rng(seeds), 0
    for _ in range(reps):
        diffs, influence = coverage.per_seed(coverage.draw_experiment(rng, s, seeds, 48))
        low, high = interval(diffs, influence)
        hits += low <= truth <= high
    return hits / reps


@pytest.mark.slow
def test_the_headline_interval_holds_the_true_difference_at_2_3_5_and_10_seeds():
    """Seeded synthetic experiments (benchmarks/coverage.py has the full table): 95% intervals
    cover 93-97% there; 200 repetitions leave about ±3% of sampling error. Welch-Satterthwaite
    degrees of freedom fail it at 2 seeds (91.5%)."""
    for seeds in (2, 3, 5, 10):
        covered = _coverage("seed-dominated", seeds, 200, seeds_images_interval)
        assert 0.93 <= covered <= 0.99, (seeds, covered)
    # The t interval over seeds alone misses the test set's share where the images dominate.
    seeds_only = _coverage("image-dominated", 5, 200, lambda d, _: t_interval(d))
    assert seeds_only < 0.8
