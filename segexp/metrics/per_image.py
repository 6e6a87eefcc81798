"""Per-image, per-class intersection and union on the test split (per_image.csv).

A sweep report bootstraps over test images from these counts; summed over all images they
give exactly the split's confusion-matrix IoU (intersection = TP, union = GT + prediction - TP).
"""

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


class PerImageScores:
    """Collects (N, C) intersection and union pixel counts, one row per image, in loader order."""

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._intersection: list[Tensor] = []
        self._union: list[Tensor] = []

    def __call__(self, index: int, prediction: Tensor, target: Tensor) -> None:
        """One image (the evaluation loop's ``on_sample``): (H, W) class maps, in loader order."""
        self.add(prediction[None], target[None])

    def add(self, prediction: Tensor, target: Tensor) -> None:
        """prediction, target: (N, H, W) integer class maps; ignore_index pixels are dropped."""
        n, c = target.shape[0], self.num_classes
        target = target.flatten(1).long()
        prediction = prediction.flatten(1).long()
        counted = (target != self.ignore_index) & (target >= 0) & (target < c)
        counted &= (prediction >= 0) & (prediction < c)
        image = torch.arange(n, device=target.device).view(-1, 1)
        # One confusion matrix per image, by scatter-adding into (N * C * C) cells.
        cell = torch.where(counted, (image * c + target) * c + prediction, 0)
        matrix = torch.zeros(n * c * c, dtype=torch.int64, device=target.device)
        matrix.scatter_add_(0, cell.flatten(), counted.flatten().long())
        matrix = matrix.view(n, c, c)
        true_positive = matrix.diagonal(dim1=1, dim2=2)
        self._intersection.append(true_positive.cpu())
        self._union.append((matrix.sum(dim=2) + matrix.sum(dim=1) - true_positive).cpu())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        empty = torch.zeros(0, self.num_classes, dtype=torch.int64)
        intersection = torch.cat(self._intersection) if self._intersection else empty
        union = torch.cat(self._union) if self._union else empty
        return intersection.numpy(), union.numpy()

    def write_csv(self, path: Path, class_names: list[str], image_ids: list[str]) -> None:
        intersection, union = self.arrays()
        write_per_image_csv(path, class_names, image_ids[: len(intersection)], intersection, union)


def write_per_image_csv(
    path: Path,
    class_names: list[str],
    image_ids: list[str],
    intersection: np.ndarray,
    union: np.ndarray,
) -> None:
    """Columns: image, then inter_<class> and union_<class> for every class."""
    header = ["image"]
    for name in class_names:
        header += [f"inter_{name}", f"union_{name}"]
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for image_id, inter_row, union_row in zip(image_ids, intersection, union, strict=True):
            cells = [int(v) for pair in zip(inter_row, union_row, strict=True) for v in pair]
            writer.writerow([image_id, *cells])
    tmp.replace(path)


def read_per_image_csv(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Returns (image ids, class names, intersection (N, C), union (N, C))."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    names = [h.removeprefix("inter_") for h in header[1::2]]
    counts = np.array([[int(v) for v in row[1:]] for row in body], dtype=np.int64)
    counts = counts.reshape(len(body), len(names), 2)
    return [row[0] for row in body], names, counts[:, :, 0], counts[:, :, 1]


def miou_from_counts(intersection: np.ndarray, union: np.ndarray) -> float:
    """mIoU over classes present (union > 0), from counts summed over images."""
    inter, uni = intersection.sum(axis=0), union.sum(axis=0)
    present = uni > 0
    return float(np.mean(inter[present] / uni[present])) if present.any() else float("nan")
