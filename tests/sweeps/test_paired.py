"""Paired comparisons: bootstrap intervals over seeds and images, t intervals over seeds."""

import math

import numpy as np
import pytest

from segexp.metrics.per_image import miou_from_counts
from segexp.sweeps.intervals import t_interval
from segexp.sweeps.jobs import Variant
from segexp.sweeps.paired import bootstrap_ci, compare
from tests.sweeps.conftest import _fake_job, seed_pairs


def test_bootstrap_interval_agrees_with_a_plain_resampling_loop(tmp_path):
    rng = np.random.default_rng(1)
    union = rng.integers(50, 100, size=(40, 2))
    base_inter = (union * rng.uniform(0.3, 0.7, size=(40, 2))).astype(int)
    better_inter = np.minimum(union, base_inter + rng.integers(0, 15, size=(40, 2)))
    a = _fake_job(tmp_path / "a", "0", base_inter, union)
    b = _fake_job(tmp_path / "b", "0", better_inter, union)
    low, high = bootstrap_ci([(a, b)], replicates=4000)
    diffs = []
    loop_rng = np.random.default_rng(123)
    for _ in range(4000):
        idx = loop_rng.integers(0, 40, size=40)
        diffs.append(
            miou_from_counts(better_inter[idx], union[idx])
            - miou_from_counts(base_inter[idx], union[idx])
        )
    ref_low, ref_high = np.percentile(diffs, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=0.004) and high == pytest.approx(ref_high, abs=0.004)
    assert 0 < low < high  # every image improved or stayed: the interval excludes zero
    same_low, same_high = bootstrap_ci([(a, _fake_job(tmp_path / "c", "0", base_inter, union))])
    assert same_low == 0 and same_high == 0


def test_hierarchical_bootstrap_agrees_with_a_plain_two_stage_loop(tmp_path):
    pairs, counts = seed_pairs(tmp_path, offsets=[2, 8, 14])
    low, high = bootstrap_ci(pairs, replicates=3000)
    rng, diffs = np.random.default_rng(99), []
    for _ in range(3000):  # draw seeds, then images within each drawn seed
        total = 0.0
        for s in rng.integers(0, 3, size=3):
            base, other, union = counts[s]
            idx = rng.integers(0, len(union), size=len(union))
            total += miou_from_counts(other[idx], union[idx]) - miou_from_counts(
                base[idx], union[idx]
            )
        diffs.append(total / 3)
    ref_low, ref_high = np.percentile(diffs, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=0.006) and high == pytest.approx(ref_high, abs=0.006)
    # Seeds that disagree widen the interval well beyond the images-only one.
    images_low, images_high = bootstrap_ci(pairs, replicates=1000, seeds=False)
    assert (high - low) > 2 * (images_high - images_low)
    per_seed = [
        miou_from_counts(o, u) - miou_from_counts(b, u) for b, o, u in counts
    ]  # fmt: skip
    outside = [d for d in per_seed if not images_low <= d <= images_high]
    assert len(outside) >= 2  # the failure the issue found: per-seed values outside the interval
    assert low < float(np.mean(per_seed)) < high


def test_t_interval_over_seeds_by_hand():
    low, high = t_interval([0.1, 0.2, 0.3])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2) · s / sqrt(3)
    assert low == pytest.approx(0.2 - half) and high == pytest.approx(0.2 + half)
    assert all(math.isnan(v) for v in t_interval([0.1]))


def test_compare_gives_all_three_intervals_and_the_seed_spread(tmp_path):
    pairs, _ = seed_pairs(tmp_path, offsets=[2, 8, 14])
    base = Variant("aug=none", {"aug": "none"}, [a for a, _ in pairs], ["aug=none"])
    other = Variant("aug=strong", {"aug": "strong"}, [b for _, b in pairs], ["aug=strong"])
    (c,) = compare([base, other], replicates=500)
    diffs = [b.summary["test"]["mIoU"] - a.summary["test"]["mIoU"] for a, b in pairs]
    assert c.seed_diffs == pytest.approx(diffs) and c.diff == pytest.approx(np.mean(diffs))
    assert c.seed_std == pytest.approx(np.std(diffs, ddof=1))
    assert (c.t_low, c.t_high) == pytest.approx(t_interval(diffs))
    assert c.images_low <= c.diff <= c.images_high and c.ci_low <= c.diff <= c.ci_high
