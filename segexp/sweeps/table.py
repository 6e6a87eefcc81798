"""The report's numbers per variant: mean and sample std over seeds of every metric column,
as the markdown page, report.csv and report.png show them."""

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from segexp.storage.files import atomic_write
from segexp.sweeps.jobs import Job, Variant

# (column, where in summary.json)
SCALARS = (
    [
        (f"{split}_{key}", (split, key))
        for split in ("val", "test")
        for key in ("mIoU", "mDice", "pixel_acc", "mBF1")
    ]
    + [("train_time_s", ("train_time_s",)), ("images_per_s", ("images_per_s",))]
    + [("steps", ("steps",))]  # optimizer steps: what a time budget gave each job
    + [("test_ece", ("test", "ece"))]
)


def number(value: Any) -> float:
    """A value of summary.json as a float: null (NaN when written) is NaN."""
    return math.nan if value is None else float(value)


def _get(summary: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = summary
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return number(value)


def class_names_of(jobs: list[Job]) -> list[str]:
    names: dict[str, None] = {}
    for job in jobs:
        names.update(dict.fromkeys(job.summary.get("test", {}).get("per_class_iou", {})))
    return list(names)


def _columns(class_names: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    per_class = [
        (f"{split}_iou_{name}", (split, "per_class_iou", name))
        for split in ("val", "test")
        for name in class_names
    ]
    return SCALARS + per_class


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return float("nan"), float("nan")
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")
    return float(np.mean(finite)), std


def variant_rows(variants: list[Variant], class_names: list[str]) -> list[dict[str, Any]]:
    """One dict per variant: seeds, failed, then <column>_mean and <column>_std."""
    rows = []
    for variant in variants:
        done = variant.completed
        row: dict[str, Any] = {
            "variant": variant.label,
            "seeds": len(done),
            "failed": sum(job.status != "completed" for job in variant.jobs),
        }
        for column, path in _columns(class_names):
            mean, std = _mean_std([_get(job.summary, path) for job in done])
            row[f"{column}_mean"], row[f"{column}_std"] = mean, std
        rows.append(row)
    return rows


def rank_trials(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials sorted by val mIoU (the objective Optuna maximises), the best marked."""
    ranked = sorted(
        rows,
        key=lambda r: -r["val_mIoU_mean"] if not math.isnan(r["val_mIoU_mean"]) else math.inf,
    )
    if ranked and not math.isnan(ranked[0]["val_mIoU_mean"]):
        ranked[0] = {**ranked[0], "variant": f"{ranked[0]['variant']} (best)"}
    return ranked


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_write(path) as f:  # processes of a shared study may write it at the same time
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v
                             for k, v in row.items()})  # fmt: skip
