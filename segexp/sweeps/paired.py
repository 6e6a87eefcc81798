"""Paired differences between variants over matched seeds, with intervals that cover both
sources of variation: which seeds were run and which test images were drawn.

Two variants are paired seed by seed (the same seed: the same initialisation and data order) and
image by image (every run scores the same test images). The difference in test mIoU is
averaged over the seeds both ran; three 95% intervals are given (segexp/sweeps/intervals.py):

- the headline, over seeds and test images: the per-seed spread (k - 1 degrees of freedom) plus
  the test set's share from per-image influence values, with the Behrens-Fisher quantile; its
  coverage at 2 to 10 seeds is measured by benchmarks/coverage.py;
- a t-interval over the per-seed differences (seed-to-seed variation only);
- the bootstrap over test images only, seeds held fixed: how much the test set alone moves the
  difference.

The expected calibration error (ECE) is compared the same way, with its headline interval.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from segexp.metrics.calibration import read_calibration_csv
from segexp.metrics.per_image import read_per_image_csv
from segexp.sweeps.intervals import (
    PairCounts,
    bootstrap_interval,
    ece_influence,
    miou_influence,
    seeds_images_interval,
    t_interval,
)
from segexp.sweeps.jobs import Job, Variant, varying_keys

MISSING = "(default)"
NAN = (math.nan, math.nan)


@dataclass
class Comparison:
    factor: str
    held: str  # the other overrides, held equal
    baseline: str  # the factor's first value (or the baseline run's label)
    value: str
    seeds: list[str]
    diff: float  # mean over matched seeds of test mIoU(value) - test mIoU(baseline)
    ci_low: float  # the headline interval: seeds and test images
    ci_high: float
    seed_diffs: list[float] = field(default_factory=list)  # one difference per matched seed
    t_low: float = math.nan  # t-interval over the per-seed differences
    t_high: float = math.nan
    images_low: float = math.nan  # bootstrap over test images only
    images_high: float = math.nan
    ece_diff: float = math.nan  # the same for the expected calibration error (lower is better)
    ece_low: float = math.nan
    ece_high: float = math.nan
    pairs: list[tuple[Job, Job]] = field(default_factory=list, repr=False)

    @property
    def seed_std(self) -> float:
        """Sample standard deviation (ddof=1) of the per-seed differences; NaN below 2 seeds."""
        return float(np.std(self.seed_diffs, ddof=1)) if len(self.seed_diffs) > 1 else math.nan


def paired_counts(pairs: list[tuple[Job, Job]]) -> list[PairCounts] | None:
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


def bootstrap_ci(
    pairs: list[tuple[Job, Job]], replicates: int = 2000, seed: int = 0, *, seeds: bool = True
) -> tuple[float, float]:
    """``bootstrap_interval`` over the jobs' per-image counts; NaN if counts are missing."""
    counts = paired_counts(pairs)
    return NAN if counts is None else bootstrap_interval(counts, replicates, seed, seeds=seeds)


def miou_interval(pairs: list[tuple[Job, Job]], diffs: list[float]) -> tuple[float, float]:
    """The headline interval of the seed-averaged mIoU difference; NaN without counts."""
    counts = paired_counts(pairs)
    if counts is None:
        return NAN
    influence = np.stack([miou_influence(ib, ub) - miou_influence(ia, ua)
                          for ia, ua, ib, ub in counts])  # fmt: skip
    return seeds_images_interval(diffs, influence)


def ece_comparison(pairs: list[tuple[Job, Job]]) -> tuple[float, float, float]:
    """(mean ECE difference, headline interval) over the pairs; NaN where a run has no
    calibration.csv or no ECE (runs made before segexp measured it)."""
    diffs, influence = [], []
    for base, other in pairs:
        files = [job.path / "calibration.csv" for job in (base, other)]
        values = [job.summary.get("test", {}).get("ece") for job in (base, other)]
        if not all(f.is_file() for f in files) or None in values:
            return math.nan, math.nan, math.nan
        (ids_a, pixels_a, gaps_a), (ids_b, pixels_b, gaps_b) = map(read_calibration_csv, files)
        if ids_a != ids_b:
            return math.nan, math.nan, math.nan
        diffs.append(float(values[1]) - float(values[0]))
        influence.append(ece_influence(pixels_b, gaps_b) - ece_influence(pixels_a, gaps_a))
    if len({len(row) for row in influence}) != 1:
        return math.nan, math.nan, math.nan
    return float(np.mean(diffs)), *seeds_images_interval(diffs, np.stack(influence))


def compare_variants(
    base: Variant, other: Variant, replicates: int, *, factor: str, held: str = "-",
    baseline: str | None = None, value: str | None = None,
) -> Comparison | None:  # fmt: skip
    """``other`` against ``base`` over the seeds both completed; None when they share none."""
    base_jobs = {job.seed: job for job in base.completed}
    other_jobs = {job.seed: job for job in other.completed}
    seeds = [s for s in base_jobs if s in other_jobs]
    if not seeds:
        return None
    pairs = [(base_jobs[s], other_jobs[s]) for s in seeds]
    diffs = [float(b.summary["test"]["mIoU"] - a.summary["test"]["mIoU"]) for a, b in pairs]
    ci_low, ci_high = miou_interval(pairs, diffs)
    images_low, images_high = bootstrap_ci(pairs, replicates, seeds=False)
    t_low, t_high = t_interval(diffs)
    ece_diff, ece_low, ece_high = ece_comparison(pairs)
    return Comparison(
        factor=factor,
        held=held,
        baseline=base.label if baseline is None else baseline,
        value=other.label if value is None else value,
        seeds=seeds,
        diff=float(np.mean(diffs)),
        ci_low=ci_low,
        ci_high=ci_high,
        seed_diffs=diffs,
        t_low=t_low,
        t_high=t_high,
        images_low=images_low,
        images_high=images_high,
        ece_diff=ece_diff,
        ece_low=ece_low,
        ece_high=ece_high,
        pairs=pairs,
    )


def compare_to(baseline: Variant, variants: list[Variant], replicates: int) -> list[Comparison]:
    """Every other variant against ``baseline`` (runs compared, adaptive seeds)."""
    found = [
        compare_variants(baseline, variant, replicates, factor="variant")
        for variant in variants
        if variant is not baseline
    ]
    return [c for c in found if c is not None]


def compare(variants: list[Variant], replicates: int = 2000) -> list[Comparison]:
    """For each override key that takes several values while the others are held equal, each
    value against the key's first value (a sweep)."""
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
            held_label = " ".join(f"{k}={v}" for k, v in held if k in varying) or "-"
            for value in present[1:]:
                found = compare_variants(
                    by_value[present[0]], by_value[value], replicates,
                    factor=factor, held=held_label, baseline=present[0], value=value,
                )  # fmt: skip
                if found is not None:
                    comparisons.append(found)
    return comparisons
