"""Paired intervals that cover seeds and images, and the report's warnings."""

import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from segexp.metrics.per_image import miou_from_counts
from segexp.sweeps.caveats import caveats, shortcuts
from segexp.sweeps.jobs import Variant
from segexp.sweeps.paired import bootstrap_ci, compare, t_interval
from segexp.sweeps.report import markdown, variant_rows

from .test_sweep import _fake_job


def seed_pairs(tmp_path, offsets, images: int = 30):
    """Per seed: a baseline and a variant better by ``offset`` intersections per image."""
    rng = np.random.default_rng(2)
    union = rng.integers(60, 100, size=(images, 2))
    pairs, counts = [], []
    for s, offset in enumerate(offsets):
        base = (union * rng.uniform(0.3, 0.6, size=(images, 2))).astype(int)
        other = np.clip(base + offset + rng.integers(-4, 5, size=(images, 2)), 0, union)
        a = _fake_job(tmp_path / f"a{s}", str(s), base, union)
        b = _fake_job(tmp_path / f"b{s}", str(s), other, union)
        pairs.append((a, b))
        counts.append((base, other, union))
    return pairs, counts


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


def test_report_warns_about_few_seeds_debug_runs_and_differences_within_the_spread(tmp_path):
    pairs, _ = seed_pairs(tmp_path, offsets=[-6, 1, 6])
    for job in (pairs[0][0], pairs[0][1]):
        job.summary["choices"] = {"trainer": "debug"}
        OmegaConf.save({"trainer": {"limit_train_batches": 3}}, job.path / "resolved_config.yaml")
    assert shortcuts(pairs[0][0]) == ["trainer=debug", "trainer.limit_train_batches=3"]
    assert shortcuts(pairs[1][0]) == []
    base = Variant("aug=none", {"aug": "none"}, [a for a, _ in pairs], ["aug=none"])
    other = Variant("aug=strong", {"aug": "strong"}, [b for _, b in pairs[:2]], ["aug=strong"])
    comparisons = compare([base, other], replicates=300)
    warnings = caveats([base, other], comparisons)
    text = "\n".join(warnings)
    assert "Fewer than 3 completed seeds" in text and "`aug=strong` (2)" in text
    assert "`aug=none`" not in text.split("\n")[0]
    assert "(`trainer=debug trainer.limit_train_batches=3`) in job(s) a0, b0:" in text
    assert "smaller than its seed-to-seed spread" in text
    page = markdown(tmp_path, [*base.jobs, *other.jobs], [], variant_rows([base, other], []),
                    [], comparisons, warnings)  # fmt: skip
    assert "## Read with care" in page and "sample standard deviation (ddof=1)" in page
    assert "95% CI (seeds + images)" in page and "95% t over seeds" in page
    clean = caveats([base], [])
    assert all("Shortened" not in w for w in clean if "a0" not in w)


def test_trial_labels_are_rounded_and_trials_ranked_by_the_objective():
    from segexp.sweeps.jobs import readable
    from segexp.sweeps.report import rank_trials

    assert readable("optimizer.lr=0.0012345678") == "optimizer.lr=0.00123"
    assert readable("loss.weights.ce=1.2345678") == "loss.weights.ce=1.23"
    assert readable("seed=3") == "seed=3" and readable("aug=strong") == "aug=strong"
    rows = [{"variant": n, "val_mIoU_mean": v} for n, v in (("a", 0.2), ("b", 0.5), ("c", 0.3))]
    assert [r["variant"] for r in rank_trials(rows)] == ["b (best)", "c", "a"]
