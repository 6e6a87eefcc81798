"""Confusion-matrix accumulation of segmentation metrics (IoU, Dice, accuracies).

Metrics come from the matrix summed over the whole split, never from averaging per-batch scores.
"""

import torch
import torch.distributed as dist
from torch import Tensor

_INT64_MIN, _INT64_MAX = torch.iinfo(torch.int64).min, torch.iinfo(torch.int64).max


class ConfusionMatrix:
    """Accumulates ``matrix[ground_truth, prediction]`` pixel counts on the tensors' device.

    ``update`` never synchronises with the host (it is meant for the evaluation loop), so it
    cannot raise on bad labels: a non-ignored pixel whose target or prediction lies outside
    ``[0, num_classes)`` is left out of the matrix and recorded, and ``compute`` then raises a
    ValueError naming how many such pixels there were and the range of their values.

    An update makes a fixed handful of passes over the pixels, whatever the number of classes
    or of bad values: each value is sorted into a bucket (one per class, one holding exactly
    ``ignore_index``, one per interval of out-of-range values), pixels are counted per
    (target bucket, prediction bucket) cell, and each cell keeps the extremes of its values
    for the error message. The matrix is read off those counts.
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # bucketize(right=True) puts v in bucket b when edges[b - 1] <= v < edges[b].
        edges = sorted({*range(num_classes + 1), ignore_index, ignore_index + 1})
        self._edges = torch.tensor(edges, dtype=torch.int64, device=device)
        self._buckets = len(edges) + 1
        self._class_buckets = [edges.index(c) + 1 for c in range(num_classes)]
        self._ignore_bucket = edges.index(ignore_index) + 1
        cells = self._buckets**2
        self._counts = torch.zeros(cells, dtype=torch.int64, device=device)
        # Rows: target, prediction.
        self._minima = torch.full((2, cells), _INT64_MAX, device=device)
        self._maxima = torch.full((2, cells), _INT64_MIN, device=device)

    def reset(self) -> None:
        self._counts.zero_()
        self._minima.fill_(_INT64_MAX)
        self._maxima.fill_(_INT64_MIN)

    @property
    def matrix(self) -> Tensor:
        """``[num_classes, num_classes]`` int64 counts, rows ground truth, columns prediction."""
        by_cell = self._counts.view(self._buckets, self._buckets)
        matrix = by_cell[self._class_buckets][:, self._class_buckets]
        if 0 <= self.ignore_index < self.num_classes:
            matrix[self.ignore_index] = 0  # an ignored class's target pixels are not counted
        return matrix

    def update(self, prediction: Tensor, target: Tensor) -> None:
        """Add integer class maps of equal shape (any leading dims); ignored pixels are dropped."""
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
            )
        if prediction.is_floating_point() or target.is_floating_point():
            raise ValueError("prediction and target must be integer class maps, not scores")
        device = self._counts.device
        prediction = prediction.to(device=device, dtype=torch.int64).flatten()
        target = target.to(device=device, dtype=torch.int64).flatten()
        target_bucket = torch.bucketize(target, self._edges, right=True)
        prediction_bucket = torch.bucketize(prediction, self._edges, right=True)
        cell = torch.add(prediction_bucket, target_bucket, alpha=self._buckets)
        # scatter_add_ rather than bincount: CUDA bincount reads the input's max back to the host.
        ones = torch.ones(1, dtype=torch.int64, device=device).expand_as(cell)
        self._counts.scatter_add_(0, cell, ones)
        for row, values in enumerate((target, prediction)):
            self._minima[row].scatter_reduce_(0, cell, values, "amin")
            self._maxima[row].scatter_reduce_(0, cell, values, "amax")

    def all_reduce(self) -> None:
        """Sum the counts over processes when torch.distributed is initialised; else no-op."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        dist.all_reduce(self._counts, op=dist.ReduceOp.SUM)
        dist.all_reduce(self._minima, op=dist.ReduceOp.MIN)
        dist.all_reduce(self._maxima, op=dist.ReduceOp.MAX)

    def _raise_if_out_of_range(self) -> None:
        buckets = self._buckets
        valid_prediction = torch.zeros(buckets, dtype=torch.bool)
        valid_prediction[self._class_buckets] = True
        ignored_target = torch.zeros(buckets, dtype=torch.bool)
        ignored_target[self._ignore_bucket] = True
        bad_cells = (  # target, prediction
            (~valid_prediction & ~ignored_target)[:, None].expand(buckets, buckets),
            ~ignored_target[:, None] & ~valid_prediction[None, :],
        )
        counts = self._counts.cpu().view(buckets, buckets)
        minima = self._minima.cpu().view(2, buckets, buckets)
        maxima = self._maxima.cpu().view(2, buckets, buckets)
        problems = []
        for row, (source, bad) in enumerate(zip(("target", "prediction"), bad_cells, strict=True)):
            bad = bad & (counts > 0)
            if bad.any():
                low = minima[row][bad].min().item()
                high = maxima[row][bad].max().item()
                problems.append(
                    f"{counts[bad].sum().item()} pixel(s) with {source} values from {low} to {high}"
                )
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
