"""Paired differences between variants over matched seeds, with intervals that cover both
sources of variation: which seeds were run and which test images were drawn.

For a factor (an override key such as `aug`) that takes several values while every other
override is held equal, each value is compared with the first: the difference in test mIoU is
averaged over the seeds both variants ran. Three 95% intervals are given:

- the headline, a hierarchical bootstrap: resample the seeds (pairs of runs) with replacement,
  then, within each drawn pair, the test images (the same images for both runs, so the
  comparison stays paired), recomputing each run's mIoU from the resampled per-image
  intersection and union counts (Davison & Hinkley 1997, two-stage bootstrap);
- a t-interval over the per-seed differences (mean ± t(0.975, k-1) · s / sqrt(k)), which covers
  seed-to-seed variation only and needs at least 2 seeds;
- the bootstrap over test images only, seeds held fixed: how much the test set alone moves the
  difference.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from segexp.metrics.per_image import read_per_image_csv
from segexp.sweeps.jobs import Job, Variant, varying_keys

MISSING = "(default)"


@dataclass
class Comparison:
    factor: str
    held: str  # the other overrides, held equal
    baseline: str  # the factor's first value
    value: str
    seeds: list[str]
    diff: float  # mean over matched seeds of test mIoU(value) - test mIoU(baseline)
    ci_low: float  # hierarchical bootstrap over seeds, then images
    ci_high: float
    seed_diffs: list[float] = field(default_factory=list)  # one difference per matched seed
    t_low: float = float("nan")  # t-interval over the per-seed differences
    t_high: float = float("nan")
    images_low: float = float("nan")  # bootstrap over test images only
    images_high: float = float("nan")

    @property
    def seed_std(self) -> float:
        """Sample standard deviation (ddof=1) of the per-seed differences; NaN below 2 seeds."""
        return float(np.std(self.seed_diffs, ddof=1)) if len(self.seed_diffs) > 1 else math.nan


def _miou_rows(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """(B, C) resampled counts -> (B,) mIoU over the classes present in each resample."""
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, intersection / np.maximum(union, 1), np.nan)
    present = union > 0
    return np.where(present.any(axis=1), np.nansum(iou, axis=1) / present.sum(axis=1), np.nan)


def _paired_counts(pairs: list[tuple[Job, Job]]) -> list[tuple[np.ndarray, ...]] | None:
    """Per pair: (inter_a, union_a, inter_b, union_b), (N, C) each over the same test images;
    None when a per_image.csv is missing or the runs saw different images."""
    counts = []
    ids = None
    for base, other in pairs:
        files = [job.path / "per_image.csv" for job in (base, other)]
        if not all(f.is_file() for f in files):
            return None
        (ids_a, _, inter_a, union_a), (ids_b, _, inter_b, union_b) = map(read_per_image_csv, files)
        ids = ids if ids is not None else ids_a
        if ids_a != ids or ids_b != ids:
            return None  # not the same test images: cannot pair
        counts.append((inter_a, union_a, inter_b, union_b))
    return counts if ids else None


def _pair_diffs(counts: tuple[np.ndarray, ...], weights: np.ndarray) -> np.ndarray:
    """(B,) mIoU(b) - mIoU(a) of one pair for (B, N) image weights."""
    inter_a, union_a, inter_b, union_b = counts
    return _miou_rows(weights @ inter_b, weights @ union_b) - _miou_rows(
        weights @ inter_a, weights @ union_a
    )


def bootstrap_ci(
    pairs: list[tuple[Job, Job]], replicates: int = 2000, seed: int = 0, *, seeds: bool = True
) -> tuple[float, float]:
    """95% percentile interval of the seed-averaged mIoU difference; NaN if counts are missing.

    ``seeds=True``: hierarchical, each replicate draws k pairs with replacement, then the test
    images of each drawn pair. ``seeds=False``: the pairs stay fixed, only images are drawn (the
    same draw for every pair).
    """
    counts = _paired_counts(pairs)
    if counts is None:
        return float("nan"), float("nan")
    n, k = len(counts[0][0]), len(counts)
    rng = np.random.default_rng(seed)
    diffs = np.zeros(replicates)
    if not seeds:
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)
        for pair in counts:
            diffs += _pair_diffs(pair, weights)
    else:
        drawn = rng.integers(0, k, size=(replicates, k))
        for slot in range(k):
            weights = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)
            per_pair = np.stack([_pair_diffs(pair, weights) for pair in counts], axis=1)
            diffs += per_pair[np.arange(replicates), drawn[:, slot]]
    diffs /= k
    low, high = np.nanpercentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """mean ± t((1+level)/2, k-1) · s / sqrt(k); NaN with fewer than 2 values."""
    k = len(values)
    if k < 2:
        return float("nan"), float("nan")
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, k - 1)) * sd / math.sqrt(k)
    return mean - half, mean + half


def compare(variants: list[Variant], replicates: int = 2000) -> list[Comparison]:
    keys = list(dict.fromkeys(k for v in variants for k in v.factors))
    varying = varying_keys(variants)
    comparisons = []
    for factor in keys:
        values = list(dict.fromkeys(v.factors.get(factor, MISSING) for v in variants))
        if len(values) < 2:
            continue
        groups: dict[tuple, dict[str, Variant]] = {}
        for variant in variants:
            held = tuple(sorted((k, v) for k, v in variant.factors.items() if k != factor))
            groups.setdefault(held, {})[variant.factors.get(factor, MISSING)] = variant
        for held, by_value in groups.items():
            present = [v for v in values if v in by_value]
            if len(present) < 2:
                continue
            base = by_value[present[0]]
            base_jobs = {job.seed: job for job in base.completed}
            for value in present[1:]:
                other_jobs = {job.seed: job for job in by_value[value].completed}
                seeds = [s for s in base_jobs if s in other_jobs]
                if not seeds:
                    continue
                pairs = [(base_jobs[s], other_jobs[s]) for s in seeds]
                seed_diffs = [
                    float(b.summary["test"]["mIoU"] - a.summary["test"]["mIoU"]) for a, b in pairs
                ]
                low, high = bootstrap_ci(pairs, replicates)
                images_low, images_high = bootstrap_ci(pairs, replicates, seeds=False)
                t_low, t_high = t_interval(seed_diffs)
                comparisons.append(
                    Comparison(
                        factor=factor,
                        held=" ".join(f"{k}={v}" for k, v in held if k in varying) or "-",
                        baseline=present[0],
                        value=value,
                        seeds=seeds,
                        diff=float(np.mean(seed_diffs)),
                        ci_low=low,
                        ci_high=high,
                        seed_diffs=seed_diffs,
                        t_low=t_low,
                        t_high=t_high,
                        images_low=images_low,
                        images_high=images_high,
                    )
                )
    return comparisons
