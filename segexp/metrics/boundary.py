"""Boundary F1 (BF score, Csurka et al. 2013): how well the edges between segments are kept.

For each class c, the boundary of a class map is the set of pixels of class c with a
4-neighbour of another class. A predicted boundary pixel is a hit when a true boundary pixel of
the same class lies within ``tolerance`` pixels (Euclidean distance), and a true boundary pixel
is found when a predicted one lies within the tolerance. Precision and recall come from these
counts summed over the whole split (never averaged per image), like the confusion matrix.

Ignored target pixels are neither boundary pixels nor neighbours: a class next to an ignored
region has no boundary there, in the ground truth or in the prediction.

The computation is in torch (a disk-shaped dilation by convolution), so it runs on the
evaluation device; tests check it against scipy's Euclidean distance transform.
"""

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from segexp.errors import SegexpError


def tolerance_pixels(tolerance: float, height: int, width: int) -> int:
    """``tolerance`` >= 1: pixels; 0 < tolerance < 1: a fraction of the image diagonal (e.g.
    0.0075, as in the BF-score literature), rounded to whole pixels."""
    if tolerance >= 1 or tolerance == 0:
        return round(tolerance)
    return round(tolerance * math.hypot(height, width))


def check_tolerance(tolerance: float) -> float:
    if not isinstance(tolerance, int | float) or tolerance < 0 or math.isnan(tolerance):
        raise SegexpError(
            f"metrics.boundary_tolerance={tolerance!r}: give pixels (e.g. 2) or a fraction of "
            "the image diagonal in (0, 1) (e.g. 0.0075)"
        )
    return float(tolerance)


def _disk(radius: int, device: torch.device) -> Tensor:
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    inside = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    return inside.float()[None, None]


def class_boundaries(classes: Tensor, valid: Tensor, num_classes: int) -> Tensor:
    """(N, C, H, W) bool: pixel of class c (and valid) with a valid 4-neighbour of another class."""
    one_hot = torch.stack([(classes == c) & valid for c in range(num_classes)], dim=1)
    other = torch.stack([(classes != c) & valid for c in range(num_classes)], dim=1).float()
    # A neighbour of another class: max over the 4-neighbourhood (a cross kernel).
    cross = torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=torch.float32)
    cross = cross.to(classes.device).expand(num_classes, 1, 3, 3)
    has_other = F.conv2d(other, cross, padding=1, groups=num_classes) > 0
    return one_hot & has_other


def _within(boundary: Tensor, radius: int) -> Tensor:
    """(N, C, H, W) bool: within ``radius`` pixels of a boundary pixel of the same class."""
    if radius == 0:
        return boundary
    c = boundary.shape[1]
    kernel = _disk(radius, boundary.device).expand(c, 1, -1, -1)
    return F.conv2d(boundary.float(), kernel, padding=radius, groups=c) > 0.5


class BoundaryF1:
    """Accumulates per-class boundary hits over a split on the tensors' device.

    counts[0]: predicted boundary pixels, [1]: of those, within tolerance of a true boundary,
    [2]: true boundary pixels, [3]: of those, within tolerance of a predicted boundary.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        tolerance: float = 2,
        device: torch.device | str | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.tolerance = check_tolerance(tolerance)
        self.counts = torch.zeros(4, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.counts.zero_()

    def update(self, prediction: Tensor, target: Tensor) -> None:
        """Add integer class maps of equal shape, (H, W) or (N, H, W)."""
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
            )
        device = self.counts.device
        prediction = prediction.to(device=device, dtype=torch.int64).reshape(-1, *target.shape[-2:])
        target = target.to(device=device, dtype=torch.int64).reshape(prediction.shape)
        valid = target != self.ignore_index
        radius = tolerance_pixels(self.tolerance, *target.shape[-2:])
        predicted = class_boundaries(prediction, valid, self.num_classes)
        true = class_boundaries(target, valid, self.num_classes)
        sums = torch.stack(
            [
                predicted.sum(dim=(0, 2, 3)),
                (predicted & _within(true, radius)).sum(dim=(0, 2, 3)),
                true.sum(dim=(0, 2, 3)),
                (true & _within(predicted, radius)).sum(dim=(0, 2, 3)),
            ]
        )
        self.counts += sums

    def all_reduce(self) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.counts, op=dist.ReduceOp.SUM)

    def compute(self, class_names: list[str] | None = None) -> dict:
        """mBF1 (mean over classes with a boundary in the ground truth or the prediction),
        per_class_bf1, and the split's boundary_precision / boundary_recall (all classes pooled).
        """
        names = class_names or [str(c) for c in range(self.num_classes)]
        counts = self.counts.to(device="cpu", dtype=torch.float64)
        predicted, hits, true, found = counts
        # 0 / 0 is NaN: a class with no boundary anywhere is left out of the mean.
        precision = hits / predicted
        recall = found / true
        f1 = 2 * precision * recall / (precision + recall)
        f1 = torch.where((predicted + true > 0) & f1.isnan(), 0.0, f1)
        f1 = torch.where(predicted + true == 0, float("nan"), f1)
        return {
            "mBF1": f1.nanmean().item(),
            "boundary_precision": (hits.sum() / predicted.sum()).item(),
            "boundary_recall": (found.sum() / true.sum()).item(),
            "per_class_bf1": dict(zip(names, f1.tolist(), strict=True)),
        }
