"""Calibration: does a model's confidence match how often it is right?

Expected calibration error (ECE, Guo et al. 2017) over the labelled pixels of a split: each
pixel's confidence is its maximum softmax probability; pixels fall into ``bins`` equal-width
bins of confidence ((k-1)/M, k/M]; per bin, the gap between the share of pixels predicted
correctly and their mean confidence, weighted by the bin's share of the pixels:

    ECE = sum over bins of |correct_b - confidence_b| / N

(``correct_b`` and ``confidence_b`` summed over the bin's pixels, N the labelled pixels). Like
the confusion matrix, the sums run over the whole split (and across processes), never over
per-image scores. Per image, the per-bin gaps are kept too (``calibration.csv``): the sweep
report's paired interval needs each image's share.
"""

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from segexp.storage.files import atomic_write

BINS = 15


class Calibration:
    """Per confidence bin: pixel count, summed confidence and summed correctness (float64)."""

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        bins: int = BINS,
        device: torch.device | str | None = None,
    ) -> None:
        self.num_classes, self.ignore_index, self.bins = num_classes, ignore_index, bins
        self._sums = torch.zeros(3, bins, dtype=torch.float64, device=device)
        self._per_image: list[Tensor] = []  # (bins + 1,): labelled pixels, then each bin's gap

    def reset(self) -> None:
        self._sums.zero_()
        self._per_image.clear()

    def update(self, probabilities: Tensor, target: Tensor) -> None:
        """One image: (classes, H, W) probabilities and its (H, W) integer target."""
        target = target.to(probabilities.device).long()
        labelled = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        confidence, prediction = probabilities.float().max(dim=0)
        confidence, correct = confidence[labelled], (prediction == target)[labelled]
        # (k-1)/M < confidence <= k/M falls into bin k-1.
        index = (confidence * self.bins).ceil().long().clamp(1, self.bins) - 1
        sums = torch.zeros(3, self.bins, dtype=torch.float64, device=probabilities.device)
        sums[0].scatter_add_(0, index, torch.ones_like(confidence, dtype=torch.float64))
        sums[1].scatter_add_(0, index, confidence.double())
        sums[2].scatter_add_(0, index, correct.double())
        self._sums += sums.to(self._sums.device)
        gap = (sums[2] - sums[1]).cpu()
        self._per_image.append(torch.cat([sums[0].sum().cpu()[None], gap]))

    def all_reduce(self) -> None:
        """Sum over processes when torch.distributed is initialised; else a no-op."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self._sums, op=dist.ReduceOp.SUM)

    def compute(self) -> dict[str, Any]:
        """``ece`` and the reliability diagram's bins: pixel count, mean confidence and accuracy
        per bin (null where a bin is empty); ECE is NaN without labelled pixels."""
        count, confidence, correct = self._sums.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_confidence = np.where(count > 0, confidence / count, np.nan)
            accuracy = np.where(count > 0, correct / count, np.nan)
        return {
            "ece": float(ece_rows((correct - confidence)[None], count.sum()[None])[0]),
            "bins": {
                "count": [int(c) for c in count],
                "confidence": mean_confidence.tolist(),
                "accuracy": accuracy.tolist(),
            },
        }

    def per_image(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) labelled pixels and (N, bins) per-bin gaps (correct - confidence), in update
        order."""
        if not self._per_image:
            return np.zeros(0), np.zeros((0, self.bins))
        rows = torch.stack(self._per_image).numpy()
        return rows[:, 0], rows[:, 1:]

    def write_csv(self, path: Path, image_ids: list[str]) -> None:
        labelled, gaps = self.per_image()
        write_calibration_csv(path, image_ids[: len(labelled)], labelled, gaps)


def calibration_summary(calibration: Calibration) -> dict[str, Any]:
    """What summary.json and metrics.json hold: ``ece`` and the ``reliability`` bins."""
    computed = calibration.compute()
    return {"ece": computed["ece"], "reliability": computed["bins"]}


def ece_rows(gaps: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """(B, bins) summed gaps and (B,) labelled pixels -> (B,) ECE (NaN without pixels)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(labelled > 0, np.abs(gaps).sum(axis=1) / np.maximum(labelled, 1), np.nan)


def write_calibration_csv(
    path: Path, image_ids: list[str], labelled: np.ndarray, gaps: np.ndarray
) -> None:
    """Columns: image, labelled (pixels), gap_00 ... (correct - confidence summed per bin)."""
    with atomic_write(path) as f:
        writer = csv.writer(f)
        writer.writerow(["image", "labelled", *(f"gap_{b:02d}" for b in range(gaps.shape[1]))])
        for image_id, pixels, row in zip(image_ids, labelled, gaps, strict=True):
            writer.writerow([image_id, int(pixels), *(f"{v:.6g}" for v in row)])


def read_calibration_csv(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Returns (image ids, labelled pixels (N,), gaps (N, bins))."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    values = np.array([[float(v) for v in row[1:]] for row in rows]).reshape(len(rows), -1)
    return [row[0] for row in rows], values[:, 0], values[:, 1:]
