"""The metrics of one split, filled by the evaluation loop: the confusion matrix (IoU, Dice,
accuracies) and boundary F1, both accumulated over the whole split."""

import torch
from torch import Tensor

from segexp.metrics.boundary import BoundaryF1
from segexp.metrics.confusion import ConfusionMatrix


class SplitMetrics:
    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        boundary_tolerance: float = 2,
        device: torch.device | str | None = None,
    ) -> None:
        self.confusion = ConfusionMatrix(num_classes, ignore_index, device=device)
        self.boundary = BoundaryF1(num_classes, ignore_index, boundary_tolerance, device=device)

    def empty_like(self) -> "SplitMetrics":
        """A new, empty accumulator with the same classes, ignore index, tolerance and device
        (e.g. for the post-processed predictions beside the model's own)."""
        confusion = self.confusion
        return SplitMetrics(
            confusion.num_classes,
            confusion.ignore_index,
            self.boundary.tolerance,
            self.matrix.device,
        )

    @property
    def ignore_index(self) -> int:
        return self.confusion.ignore_index

    @property
    def matrix(self) -> Tensor:
        return self.confusion.matrix

    def reset(self) -> None:
        self.confusion.reset()
        self.boundary.reset()

    def update(self, prediction: Tensor, target: Tensor) -> None:
        self.confusion.update(prediction, target)
        self.boundary.update(prediction, target)

    def all_reduce(self) -> None:
        self.confusion.all_reduce()
        self.boundary.all_reduce()

    def compute(self, class_names: list[str] | None = None) -> dict:
        """ConfusionMatrix.compute's keys, then mBF1, boundary_precision, boundary_recall and
        per_class_bf1 (BoundaryF1.compute)."""
        return {**self.confusion.compute(class_names), **self.boundary.compute(class_names)}
