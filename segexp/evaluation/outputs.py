"""Files segexp.evaluate writes besides metrics.json: per-class CSV, confusion-matrix picture,
class-index PNGs."""

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from segexp.errors import SegexpError


def write_per_class_csv(metrics: dict[str, Any], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "iou", "dice", "bf1"])
        for name, iou in metrics["per_class_iou"].items():
            bf1 = metrics.get("per_class_bf1", {}).get(name, "")
            writer.writerow([name, iou, metrics["per_class_dice"][name], bf1])


def confusion_figure(matrix: torch.Tensor, names: list[str]):
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
