"""Confidence intervals for a paired difference between two variants, on plain arrays.

A difference in a test metric between two variants varies with the seed (initialisation, data
order, augmentation) and with the test images, which are one draw from the images the model
will meet. Per seed it behaves like

    d_s = Δ + (test-set effect, shared by every seed) + (seed effect) + (seed x image noise)

so the mean over ``k`` seeds has variance ``σ²_seed / k + σ²_shared`` (the seed x image noise
is part of each seed's spread). The headline interval, ``seeds_images_interval``, estimates the
two parts separately: the seed part from the spread of the per-seed differences (``k - 1``
degrees of freedom), the shared part from per-image jackknife influence values (precise: one
value per test image), and takes the Behrens-Fisher (fiducial) quantile of their sum, which is
Student's t with ``k - 1`` degrees of freedom when the seeds are all there is and the normal
quantile when the test set is. Welch-Satterthwaite degrees of freedom, the usual shortcut, are
too optimistic at 2 seeds (a pair of close per-seed values looks like a precise estimate).
``benchmarks/coverage.py`` measures the coverage of this interval and of the others at 2, 3, 5
and 10 seeds (docs/sweeps.md, "How often the intervals hold"); a bootstrap over seeds
(``bootstrap_interval``) can only reproduce the range of the per-seed differences and covers
far less at few seeds, and the t interval over seeds alone misses the test set's share.
"""

import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special, stats

from segexp.metrics.calibration import ece_rows

# One run's per-image counts paired with another's over the same images:
# (intersection_a, union_a, intersection_b, union_b), each (images, classes).
PairCounts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
# Quantiles of the chi-square distribution the Behrens-Fisher quantile integrates over.
_GRID = 4096


def miou_rows(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """(B, C) summed counts -> (B,) mIoU over the classes present in each row."""
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, intersection / np.maximum(union, 1), np.nan)
    present = union > 0
    count = present.sum(axis=1)
    return np.where(count > 0, np.nansum(iou, axis=1) / np.maximum(count, 1), np.nan)


def jackknife_influence(left_out: np.ndarray) -> np.ndarray:
    """(N,) influence of each image from the N leave-one-image-out values of a statistic:
    ``(N - 1) · (mean - left_out[i])``. They sum to 0 and ``var(influence) / N`` is the
    jackknife variance of the statistic over draws of N test images."""
    left_out = np.asarray(left_out, float)
    return (len(left_out) - 1) * (np.nanmean(left_out) - left_out)


def miou_influence(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """(N,) jackknife influence of each image on a run's mIoU (a ratio of sums over images,
    averaged over the classes present), from its (N, C) per-image counts."""
    intersection, union = np.asarray(intersection, float), np.asarray(union, float)
    if len(union) < 2:
        return np.zeros(len(union))
    left_out = miou_rows(intersection.sum(axis=0) - intersection, union.sum(axis=0) - union)
    return jackknife_influence(left_out)


def ece_influence(labelled: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """(N,) jackknife influence of each image on a run's expected calibration error, from its
    (N,) labelled pixels and (N, bins) per-bin gaps (metrics/calibration.py)."""
    labelled, gaps = np.asarray(labelled, float), np.asarray(gaps, float)
    if len(labelled) < 2:
        return np.zeros(len(labelled))
    return jackknife_influence(ece_rows(gaps.sum(axis=0) - gaps, labelled.sum() - labelled))


def behrens_fisher_quantile(
    seeds: int, seed_part: float, shared: float, level: float = 0.95
) -> float:
    """The critical value c of ``mean ± c · sqrt(seed_part + shared)``, where ``seed_part``
    (the per-seed variance over ``seeds``) is estimated with ``seeds - 1`` degrees of freedom
    and ``shared`` is taken as known: c solves P(|Z| · sqrt(S + shared) <= c · sqrt(seed_part +
    shared)) = level, with S = seed_part · (k - 1) / chi²(k - 1) (Behrens-Fisher's fiducial
    solution; Robinson 1976 shows it errs on the safe side)."""
    normal = float(stats.norm.ppf((1 + level) / 2))
    if seed_part <= 0:
        return normal
    if shared <= 0:
        return float(stats.t.ppf((1 + level) / 2, seeds - 1))
    drawn = np.sqrt(seed_part * (seeds - 1) / _chi2_grid(seeds - 1) + shared)
    scale = math.sqrt(seed_part + shared)

    def shortfall(c: float) -> float:
        return float(np.mean(2 * special.ndtr(c * scale / drawn) - 1)) - level

    upper = float(stats.t.ppf((1 + level) / 2, seeds - 1))  # shared only narrows it
    if shortfall(upper) <= 0:
        return upper
    return normal if shortfall(normal) >= 0 else float(optimize.brentq(shortfall, normal, upper))


@functools.cache
def _chi2_grid(df: int) -> np.ndarray:
    """Equally likely quantiles of chi-square(df), the seed variance's sampling distribution."""
    return stats.chi2.ppf((np.arange(_GRID) + 0.5) / _GRID, df)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """mean ± t((1+level)/2, k-1) · s / sqrt(k); NaN with fewer than 2 values."""
    k = len(values)
    if k < 2:
        return math.nan, math.nan
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, k - 1)) * sd / math.sqrt(k)
    return mean - half, mean + half


def variance_parts(diffs: Sequence[float], influence: np.ndarray) -> tuple[float, float]:
    """(seed part, shared test-set part) of the variance of the seed-averaged difference.

    ``diffs``: (k,) per-seed differences; ``influence``: (k, N) per-seed, per-image influence of
    the difference (the variant's influence minus the baseline's, ``miou_influence``), the same
    N images in every row; k >= 2.
    """
    diffs, influence = np.asarray(diffs, float), np.asarray(influence, float)
    k, n = influence.shape
    seed_part = float(np.var(diffs, ddof=1)) / k
    # The image variance of the seed-averaged influence holds the shared part plus 1/k of each
    # seed's own image noise, which the seed part already counts: remove it.
    averaged = float(np.var(influence.mean(axis=0), ddof=1)) / n
    own = float(np.mean(np.var(influence, axis=1, ddof=1))) / n
    return seed_part, max(0.0, (k * averaged - own) / (k - 1))


def seeds_images_interval(
    diffs: Sequence[float], influence: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """The headline interval of the seed-averaged difference, over seeds and test images (see
    ``variance_parts`` for the arguments). NaN with fewer than 2 seeds or test images: one seed
    says nothing about the seed spread."""
    diffs, influence = np.asarray(diffs, float), np.asarray(influence, float)
    k = len(diffs)
    if k < 2 or influence.shape != (k, influence.shape[1]) or influence.shape[1] < 2:
        return math.nan, math.nan
    seed_part, shared = variance_parts(diffs, influence)
    half = behrens_fisher_quantile(k, seed_part, shared, level) * math.sqrt(seed_part + shared)
    mean = float(diffs.mean())
    return mean - half, mean + half


def _pair_diffs(counts: PairCounts, weights: np.ndarray) -> np.ndarray:
    """(B,) mIoU(b) - mIoU(a) of one pair for (B, N) image weights."""
    inter_a, union_a, inter_b, union_b = counts
    return miou_rows(weights @ inter_b, weights @ union_b) - miou_rows(
        weights @ inter_a, weights @ union_a
    )


def bootstrap_interval(
    counts: list[PairCounts],
    replicates: int = 2000,
    seed: int = 0,
    *,
    seeds: bool = True,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the seed-averaged mIoU difference of k pairs of runs.

    ``seeds=True``: hierarchical (Davison & Hinkley 1997, two-stage): each replicate draws k
    pairs with replacement, then the test images of each drawn pair (the same images for both
    runs of a pair). ``seeds=False``: the pairs stay fixed and only images are drawn, the same
    draw for every pair: how much the test set alone moves the difference.
    """
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
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(diffs, [tail, 100 - tail])
    return float(low), float(high)
