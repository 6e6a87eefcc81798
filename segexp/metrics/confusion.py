"""Confusion-matrix accumulation of segmentation metrics (IoU, Dice, accuracies).

Metrics come from the matrix summed over the whole split, never from averaging per-batch scores.
"""

import torch
import torch.distributed as dist
from torch import Tensor

_INT64_MAX = torch.iinfo(torch.int64).max


class ConfusionMatrix:
    """Accumulates ``matrix[ground_truth, prediction]`` pixel counts on the tensors' device.

    ``update`` never synchronises with the host (it is meant for the evaluation loop), so it
    cannot raise on bad labels: a non-ignored pixel whose target or prediction lies outside
    ``[0, num_classes)`` is left out of the matrix and recorded, and ``compute`` then raises a
    ValueError naming how many such pixels there were and the range of their values.
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        # Row 0: targets, row 1: predictions. Extremes hold [min, -max] so that a single MIN
        # all-reduce combines them across processes.
        self._out_of_range_counts = torch.zeros(2, dtype=torch.int64, device=device)
        self._out_of_range_extremes = torch.full((2, 2), _INT64_MAX, device=device)

    def reset(self) -> None:
        self.matrix.zero_()
        self._out_of_range_counts.zero_()
        self._out_of_range_extremes.fill_(_INT64_MAX)

    def update(self, prediction: Tensor, target: Tensor) -> None:
        """Add integer class maps of equal shape (any leading dims); ignored pixels are dropped."""
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
            )
        if prediction.is_floating_point() or target.is_floating_point():
            raise ValueError("prediction and target must be integer class maps, not scores")
        device = self.matrix.device
        prediction = prediction.to(device=device, dtype=torch.int64).flatten()
        target = target.to(device=device, dtype=torch.int64).flatten()

        considered = target != self.ignore_index
        target_in_range = (target >= 0) & (target < self.num_classes)
        prediction_in_range = (prediction >= 0) & (prediction < self.num_classes)
        self._record_out_of_range(0, target, considered & ~target_in_range)
        self._record_out_of_range(1, prediction, considered & ~prediction_in_range)

        # scatter_add_ rather than bincount: CUDA bincount reads the input's max back to the host.
        counted = considered & target_in_range & prediction_in_range
        cell = torch.where(counted, target * self.num_classes + prediction, 0)
        self.matrix.view(-1).scatter_add_(0, cell, counted.to(torch.int64))

    def _record_out_of_range(self, row: int, values: Tensor, bad: Tensor) -> None:
        if values.numel() == 0:
            return
        self._out_of_range_counts[row] += bad.sum()
        extremes = torch.stack(
            [
                torch.where(bad, values, _INT64_MAX).amin(),
                torch.where(bad, -values, _INT64_MAX).amin(),
            ]
        )
        self._out_of_range_extremes[row] = torch.minimum(self._out_of_range_extremes[row], extremes)

    def all_reduce(self) -> None:
        """Sum the counts over processes when torch.distributed is initialised; else no-op."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)
        dist.all_reduce(self._out_of_range_counts, op=dist.ReduceOp.SUM)
        dist.all_reduce(self._out_of_range_extremes, op=dist.ReduceOp.MIN)

    def _raise_if_out_of_range(self) -> None:
        counts = self._out_of_range_counts.tolist()
        extremes = self._out_of_range_extremes.tolist()
        problems = [
            f"{count} pixel(s) with {source} values from {low} to {-negated_high}"
            for source, count, (low, negated_high) in zip(
                ("target", "prediction"), counts, extremes, strict=True
            )
            if count
        ]
        if problems:
            raise ValueError(
                f"values outside [0, {self.num_classes}) that are not ignore_index="
                f"{self.ignore_index}: " + "; ".join(problems)
            )

    def compute(self, class_names: list[str] | None = None) -> dict:
        """Metrics as plain floats.

        A class absent from both ground truth and prediction has NaN IoU and Dice and is left
        out of mIoU / mDice. Mean class accuracy averages recall over the classes present in
        the ground truth. Keys: mIoU, mDice, pixel_acc, mean_class_acc, per_class_iou,
        per_class_dice (the last two map class name to value; names default to "0", "1", ...).
        """
        self._raise_if_out_of_range()
        if class_names is None:
            class_names = [str(c) for c in range(self.num_classes)]
        if len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names given for {self.num_classes} classes")
        counts = self.matrix.to(device="cpu", dtype=torch.float64)
        true_positive = counts.diag()
        in_ground_truth = counts.sum(dim=1)
        in_prediction = counts.sum(dim=0)
        # 0 / 0 gives NaN, which marks exactly the classes to leave out of the means.
        iou = true_positive / (in_ground_truth + in_prediction - true_positive)
        dice = 2 * true_positive / (in_ground_truth + in_prediction)
        class_accuracy = true_positive / in_ground_truth
        return {
            "mIoU": iou.nanmean().item(),
            "mDice": dice.nanmean().item(),
            "pixel_acc": (true_positive.sum() / counts.sum()).item(),
            "mean_class_acc": class_accuracy.nanmean().item(),
            "per_class_iou": dict(zip(class_names, iou.tolist(), strict=True)),
            "per_class_dice": dict(zip(class_names, dice.tolist(), strict=True)),
        }
