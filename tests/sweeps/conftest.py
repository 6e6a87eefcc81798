"""Job folders with per-image counts, made up for the tests of the sweep report."""

import csv
import json
from pathlib import Path

import numpy as np

from segexp.metrics.per_image import miou_from_counts
from segexp.sweeps.jobs import Job


def _fake_job(path: Path, seed: str, inter: np.ndarray, union: np.ndarray) -> Job:
    path.mkdir(parents=True)
    with (path / "per_image.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "inter_a", "union_a", "inter_b", "union_b"])
        for i, (ir, ur) in enumerate(zip(inter, union, strict=True)):
            writer.writerow([i, ir[0], ur[0], ir[1], ur[1]])
    miou = miou_from_counts(inter, union)
    return Job(path.name, path, [], seed, "completed", summary={"test": {"mIoU": miou}})


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


def job_folder(
    folder: Path, overrides: list[str], seed: int, offset: int, images: int = 30, **summary
) -> Path:
    """A completed job as a sweep leaves it: summary.json (overrides with the seed, test mIoU)
    and per_image.csv over the same ``images`` test images for every job; ``offset``: extra
    intersection per image and class (higher: better), with seed-to-seed noise."""
    rng = np.random.default_rng(0)  # the same images and baseline for every job
    union = rng.integers(60, 100, size=(images, 2))
    base = (union * rng.uniform(0.3, 0.6, size=(images, 2))).astype(int)
    noise = np.random.default_rng(seed + 100).integers(-3, 4, size=(images, 2))
    inter = np.clip(base + offset + noise, 0, union)
    folder.mkdir(parents=True)
    with (folder / "per_image.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "inter_a", "union_a", "inter_b", "union_b"])
        for i, (ir, ur) in enumerate(zip(inter, union, strict=True)):
            writer.writerow([f"img{i}", ir[0], ur[0], ir[1], ur[1]])
    miou = miou_from_counts(inter, union)
    record = {
        "status": "completed",
        "overrides": [*overrides, f"seed={seed}"],
        "test": {"mIoU": miou, "per_class_iou": {"a": miou, "b": miou}},
        "val": {"mIoU": miou},
        **summary,
    }
    (folder / "summary.json").write_text(json.dumps(record))
    return folder
