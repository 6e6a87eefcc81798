"""How often does each 95% interval of the sweep report cover the true difference?

Synthetic experiments whose true difference is known: per test image and class, a run's
intersection is its IoU fraction times the union, and that fraction is a logistic function of
the class's level, the image's difficulty (shared by both variants and every seed), the variant's
effect (on average ``delta``, varying from image to image: the test-set part of a difference), a
seed effect per variant (shared by the classes and per class: the seed part) and seed x image
noise. The true difference is the expected mIoU over seeds and over the whole population of
images, computed exactly (Gauss-Hermite quadrature), not estimated. Each repetition draws a
test set of ``--images`` images and ``k`` seeds of both variants, computes every interval and
checks whether it holds the truth.

    python benchmarks/coverage.py                            # the table in docs/sweeps.md
    python benchmarks/coverage.py --reps 400 --seeds 3       # quicker
    python benchmarks/coverage.py --tiny                     # the test suite's run

Prints the table (coverage and median width per scenario, seed count and method) and merges
the results into ``--out`` (default benchmarks/results/coverage.json).
"""

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import stats

from segexp.sweeps.intervals import (
    PairCounts,
    bootstrap_interval,
    miou_influence,
    miou_rows,
    seeds_images_interval,
    t_interval,
    variance_parts,
)

RESULTS = Path(__file__).resolve().parent / "results" / "coverage.json"
# Logit level of each class's IoU (about 0.92, 0.69, 0.57, 0.62, 0.43, like the synthetic
# scenes), how often a test image holds the class, and its typical area in pixels.
LEVELS = np.array([2.5, 0.8, 0.3, 0.5, -0.3])
PRESENCE = np.array([1.0, 0.6, 0.5, 0.5, 0.4])
AREA = np.array([2500.0, 300.0, 300.0, 300.0, 150.0])
# The report's headline first; the others for comparison ("Welch df": the same variance parts
# with Welch-Satterthwaite degrees of freedom instead of the Behrens-Fisher quantile).
METHODS = (
    "seeds + images",
    "seeds + images, Welch df",
    "hierarchical bootstrap",
    "t over seeds",
    "images only",
)


@dataclass(frozen=True)
class Scenario:
    """Standard deviations on the logit scale (near IoU 0.6 one logit unit is about 0.23 IoU)."""

    delta: float = 0.1  # the variant's mean effect
    image: float = 0.8  # image x class difficulty, shared by both variants
    variant_image: float = 0.4  # the variant's effect, image by image (the test-set part)
    seed: float = 0.05  # per seed and variant: one shift for all classes, one per class
    noise: float = 0.3  # seed x image x class


# What the real sweeps show (docs/sweeps.md): per-seed differences with a sample std of 0.004 to
# 0.03 mIoU, and images-only intervals about 0.01 to 0.02 wide.
SCENARIOS = {
    "seed-dominated": Scenario(seed=0.06, variant_image=0.25, noise=0.2),
    "balanced": Scenario(seed=0.03, variant_image=0.4, noise=0.3),
    "image-dominated": Scenario(seed=0.008, variant_image=0.6, noise=0.3),
}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def true_difference(s: Scenario) -> float:
    """E[mIoU(variant)] - E[mIoU(baseline)] over seeds and the population of images: every
    effect is normal and independent of the areas, so each class's IoU is E[sigmoid(level +
    effect + sd · Z)], a one-dimensional integral."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / math.sqrt(2 * math.pi)
    common = s.image**2 + 2 * s.seed**2 + s.noise**2
    base = sigmoid(LEVELS[:, None] + math.sqrt(common) * nodes) @ weights
    sd = math.sqrt(common + s.variant_image**2)
    other = sigmoid(LEVELS[:, None] + s.delta + sd * nodes) @ weights
    return float(np.mean(other - base))


def draw_experiment(
    rng: np.random.Generator, s: Scenario, seeds: int, images: int
) -> list[PairCounts]:
    """One test set and ``seeds`` seeds of both variants: per seed (inter_a, union, inter_b,
    union), integer pixel counts of shape (images, classes)."""
    classes = len(LEVELS)
    present = rng.random((images, classes)) < PRESENCE
    union = np.where(present, np.maximum(1, rng.lognormal(np.log(AREA), 0.8, (images, classes))), 0)
    union = np.round(union)
    difficulty = rng.normal(0, s.image, (images, classes))
    effect = s.delta + rng.normal(0, s.variant_image, (images, classes))
    pairs = []
    for _ in range(seeds):
        runs = []
        for shift in (0.0, effect):
            seed_effect = rng.normal(0, s.seed) + rng.normal(0, s.seed, classes)
            noise = rng.normal(0, s.noise, (images, classes))
            fraction = sigmoid(LEVELS + difficulty + shift + seed_effect + noise)
            runs.append(np.round(fraction * union))
        pairs.append((runs[0], union, runs[1], union))
    return pairs


def per_seed(pairs: list[PairCounts]) -> tuple[np.ndarray, np.ndarray]:
    """(k,) per-seed mIoU differences and (k, N) their per-image influence values."""
    diffs = np.array([miou_rows(ib.sum(0)[None], ub.sum(0)[None])[0]
                      - miou_rows(ia.sum(0)[None], ua.sum(0)[None])[0]
                      for ia, ua, ib, ub in pairs])  # fmt: skip
    influence = np.stack([miou_influence(ib, ub) - miou_influence(ia, ua)
                          for ia, ua, ib, ub in pairs])  # fmt: skip
    return diffs, influence


def welch(diffs: np.ndarray, influence: np.ndarray) -> tuple[float, float]:
    k, n = influence.shape
    seed_part, shared = variance_parts(diffs, influence)
    variance = seed_part + shared
    df = variance**2 / (seed_part**2 / (k - 1) + shared**2 / (n - 1))
    half = float(stats.t.ppf(0.975, df)) * math.sqrt(variance)
    return float(diffs.mean()) - half, float(diffs.mean()) + half


def intervals(
    pairs: list[PairCounts], replicates: int, rng_seed: int
) -> dict[str, tuple[float, float]]:
    diffs, influence = per_seed(pairs)
    return {
        "seeds + images": seeds_images_interval(diffs, influence),
        "seeds + images, Welch df": welch(diffs, influence),
        "hierarchical bootstrap": bootstrap_interval(pairs, replicates, rng_seed),
        "t over seeds": t_interval(diffs),
        "images only": bootstrap_interval(pairs, replicates, rng_seed, seeds=False),
    }


def coverage(s: Scenario, seeds: int, reps: int, images: int, replicates: int, seed: int) -> dict:
    """Per method: the share of ``reps`` experiments whose interval holds the truth, and the
    median width; also the realism checks (median sample std of the per-seed differences and
    median images-only standard error)."""
    truth = true_difference(s)
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(METHODS, 0)
    widths: dict[str, list[float]] = {m: [] for m in METHODS}
    spreads, image_errors = [], []
    for rep in range(reps):
        pairs = draw_experiment(rng, s, seeds, images)
        for method, (low, high) in intervals(pairs, replicates, rep).items():
            hits[method] += bool(low <= truth <= high)
            widths[method].append(high - low)
        diffs, influence = per_seed(pairs)
        spreads.append(np.std(diffs, ddof=1))
        image_errors.append(np.std(influence[0], ddof=1) / math.sqrt(images))
    return {
        "truth": truth,
        "coverage": {m: hits[m] / reps for m in METHODS},
        "median_width": {m: float(np.median(widths[m])) for m in METHODS},
        "seed_std": float(np.median(spreads)),
        "image_se": float(np.median(image_errors)),
    }


def table(results: dict) -> str:
    lines = [
        "| scenario | seeds | per-seed std | image SE | " + " | ".join(METHODS) + " |",
        "|---|---|---|---|" + "---|" * len(METHODS),
    ]
    for name, by_seeds in results.items():
        for seeds, r in by_seeds.items():
            cells = [f"{100 * r['coverage'][m]:.1f}% ({r['median_width'][m]:.3f})" for m in METHODS]
            lines.append(
                f"| {name} | {seeds} | {r['seed_std']:.4f} | {r['image_se']:.4f} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000, help="experiments per cell")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5, 10])
    parser.add_argument("--images", type=int, default=96, help="test images (synthetic: 96)")
    parser.add_argument("--replicates", type=int, default=400, help="bootstrap resamples")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a few experiments (the tests)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.reps, args.seeds, args.images, args.replicates = 20, [2, 3], 24, 100
    started = time.perf_counter()
    results = {
        name: {
            str(k): coverage(
                SCENARIOS[name], k, args.reps, args.images, args.replicates, args.seed + k
            )
            for k in args.seeds
        }
        for name in args.scenarios
    }
    record = {
        "machine": platform.machine(),
        "load_average": list(os.getloadavg()),
        "seconds": round(time.perf_counter() - started, 1),
        "reps": args.reps,
        "images": args.images,
        "replicates": args.replicates,
        "scenarios": {name: asdict(SCENARIOS[name]) for name in args.scenarios},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(table(results))
    print(f"{record['seconds']} s, load average {record['load_average']}")
    return record


if __name__ == "__main__":
    run()
