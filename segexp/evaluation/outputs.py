"""Files segexp.evaluate writes besides metrics.json: per-class CSV, confusion-matrix picture,
reliability diagram, class-index PNGs (also the predictions the final test pass keeps)."""

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from segexp.errors import SegexpError

if TYPE_CHECKING:  # matplotlib is imported only when a picture is drawn
    from matplotlib.figure import Figure


def write_per_class_csv(metrics: dict[str, Any], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "iou", "dice", "bf1"])
        for name, iou in metrics["per_class_iou"].items():
            bf1 = metrics.get("per_class_bf1", {}).get(name, "")
            writer.writerow([name, iou, metrics["per_class_dice"][name], bf1])


def confusion_figure(matrix: torch.Tensor, names: list[str]) -> "Figure":
    """Row-normalised (recall) heat map with the fractions written in each cell: the picture
    segexp.evaluate saves and training logs to TensorBoard (val each epoch, test)."""
    from matplotlib.figure import Figure

    counts = matrix.cpu().double()
    rows = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    size = 1.0 + 0.7 * len(names)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.add_subplot()
    image = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if len(names) <= 12:
        for i in range(len(names)):
            for j in range(len(names)):
                colour = "white" if rows[i, j] > 0.5 else "black"
                ax.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", color=colour)
    fig.colorbar(image, ax=ax, label="fraction of the ground-truth row")
    fig.tight_layout()
    return fig


def save_confusion_png(matrix: torch.Tensor, names: list[str], path: Path) -> None:
    confusion_figure(matrix, names).savefig(path, dpi=100)


def save_class_map(classes: torch.Tensor | np.ndarray, path: Path) -> None:
    """An (H, W) class map as an 8-bit PNG of class indices."""
    array = classes.cpu().numpy() if isinstance(classes, torch.Tensor) else np.asarray(classes)
    if array.max(initial=0) > 255:
        raise SegexpError(f"class indices up to {array.max()} do not fit an 8-bit mask PNG")
    Image.fromarray(array.astype(np.uint8)).save(path)


class PredictionWriter:
    """An evaluation loop's ``on_sample``: each prediction as ``<folder>/<image name>.png``
    (class indices), the names in the loader's order."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        self.folder, self.names = Path(folder), names
        self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, index: int, prediction: torch.Tensor, _target: torch.Tensor) -> None:
        save_class_map(prediction, self.folder / f"{self.names[index]}.png")


def reliability_figure(curves: dict[str, dict[str, Any]], title: str = "reliability") -> "Figure":
    """Accuracy against mean confidence per confidence bin (a reliability diagram), one line per
    entry of ``curves`` (label -> the ``bins`` of metrics/calibration.py, with its ECE under
    ``ece``); the diagonal is perfect calibration."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for label, curve in curves.items():
        pairs = [
            (c, a)
            for c, a, n in zip(curve["confidence"], curve["accuracy"], curve["count"], strict=True)
            if n and c is not None and a is not None
        ]
        if pairs:
            confidence, accuracy = zip(*pairs, strict=True)
            ece = curve.get("ece")
            name = label if ece is None else f"{label} (ECE {ece:.3f})"
            ax.plot(confidence, accuracy, marker="o", markersize=3, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean confidence (max softmax probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def confusion_difference_figure(difference: np.ndarray, names: list[str], title: str) -> "Figure":
    """A difference of two row-normalised confusion matrices (variant - baseline, each row a
    true class): blue where the variant puts more of the row, red where less; the diagonal is
    the change in each class's recall."""
    from matplotlib.figure import Figure

    size = 1.0 + 0.7 * len(names)
    fig = Figure(figsize=(size + 1.8, size + 0.4))
    ax = fig.add_subplot()
    limit = max(float(np.nanmax(np.abs(difference))), 1e-3)
    image = ax.imshow(difference, cmap="RdBu", vmin=-limit, vmax=limit)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(title, fontsize=9)
    if len(names) <= 12:
        for i in range(len(names)):
            for j in range(len(names)):
                colour = "white" if abs(difference[i, j]) > 0.6 * limit else "black"
                ax.text(j, i, f"{difference[i, j]:+.3f}", ha="center", va="center", fontsize=8,
                        color=colour)  # fmt: skip
    fig.colorbar(image, ax=ax, label="variant - baseline (share of the row)")
    fig.tight_layout()
    return fig
