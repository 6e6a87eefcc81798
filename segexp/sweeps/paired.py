"""Paired differences between variants over matched seeds, with a bootstrap CI over test images.

For a factor (an override key such as `aug`) that takes several values while every other
override is held equal, each value is compared with the first: the difference in test mIoU is
averaged over the seeds both variants ran. The 95% interval resamples test images (the same
images for every run, so the comparison stays paired) and recomputes each run's mIoU from the
resampled per-image intersection and union counts.
"""

from dataclasses import dataclass

import numpy as np

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
    ci_low: float
    ci_high: float


def _miou_rows(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """(B, C) resampled counts -> (B,) mIoU over the classes present in each resample."""
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, intersection / np.maximum(union, 1), np.nan)
    present = union > 0
    return np.where(present.any(axis=1), np.nansum(iou, axis=1) / present.sum(axis=1), np.nan)


def bootstrap_ci(
    pairs: list[tuple[Job, Job]], replicates: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the seed-averaged mIoU difference; NaN if counts are missing."""
    counts = []
    ids = None
    for base, other in pairs:
        files = [job.path / "per_image.csv" for job in (base, other)]
        if not all(f.is_file() for f in files):
            return float("nan"), float("nan")
        (ids_a, _, inter_a, union_a), (ids_b, _, inter_b, union_b) = map(read_per_image_csv, files)
        ids = ids if ids is not None else ids_a
        if ids_a != ids or ids_b != ids:
            return float("nan"), float("nan")  # not the same test images: cannot pair
        counts.append((inter_a, union_a, inter_b, union_b))
    n = len(ids or [])
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)
    diffs = np.zeros(replicates)
    for inter_a, union_a, inter_b, union_b in counts:
        diffs += _miou_rows(weights @ inter_b, weights @ union_b)
        diffs -= _miou_rows(weights @ inter_a, weights @ union_a)
    diffs /= len(counts)
    low, high = np.nanpercentile(diffs, [2.5, 97.5])
    return float(low), float(high)


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
                diff = float(
                    np.mean(
                        [b.summary["test"]["mIoU"] - a.summary["test"]["mIoU"] for a, b in pairs]
                    )
                )
                low, high = bootstrap_ci(pairs, replicates)
                comparisons.append(
                    Comparison(
                        factor=factor,
                        held=" ".join(f"{k}={v}" for k, v in held if k in varying) or "-",
                        baseline=present[0],
                        value=value,
                        seeds=seeds,
                        diff=diff,
                        ci_low=low,
                        ci_high=high,
                    )
                )
    return comparisons
