"""Colour class maps, legends, and image / ground truth / prediction grids.

Colours come from ``dataset.palette`` (one [r, g, b] per class) when given; otherwise from a
default in which every class is visible against an image: black is used for class 0 only when
that class is named background.
"""

from collections.abc import Sequence

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image, ImageDraw

from segexp.config.build import class_names
from segexp.config.checks import check_palette

# Distinct colours for the first classes; further classes get reproducible random colours.
BASE_PALETTE = [
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
]
IGNORE_COLOUR = (255, 255, 255)
BACKGROUND_NAMES = {"background", "bg", "_background_"}
LEGEND_ROW = 16


def palette(
    num_classes: int, names: Sequence[str] | None = None, given: Sequence | None = None
) -> torch.Tensor:
    """(num_classes, 3) uint8 colours: ``given`` (checked), else the default palette."""
    if given is not None:
        return torch.tensor(check_palette(given, num_classes), dtype=torch.uint8)
    background = bool(names) and str(names[0]).lower() in BACKGROUND_NAMES
    base = BASE_PALETTE if background else BASE_PALETTE[1:]
    extra = np.random.default_rng(0).integers(0, 256, size=(max(0, num_classes - len(base)), 3))
    colours = np.concatenate([np.array(base, np.uint8).reshape(-1, 3), extra.astype(np.uint8)])
    return torch.from_numpy(colours[:num_classes])


def dataset_palette(dataset: DictConfig) -> torch.Tensor:
    """The colours of a dataset config's classes (``dataset.palette`` or the default)."""
    return palette(int(dataset.num_classes), class_names(dataset), dataset.get("palette"))


def legend(names: Sequence[str], colours, width: int, per_row: int = 4) -> np.ndarray:
    """uint8 (H, width, 3): a swatch and the name of each class, and of the ignore colour."""
    entries = [*zip(names, np.asarray(colours).tolist(), strict=True), ("ignore", IGNORE_COLOUR)]
    per_row = max(1, min(per_row, width // 60))
    canvas = Image.new("RGB", (width, LEGEND_ROW * (-(-len(entries) // per_row)) + 6), "gray")
    draw = ImageDraw.Draw(canvas)
    slot = width // per_row
    for i, (name, colour) in enumerate(entries):
        x, y = (i % per_row) * slot + 4, 3 + LEGEND_ROW * (i // per_row)
        draw.rectangle((x, y, x + 11, y + 11), fill=tuple(int(c) for c in colour), outline="white")
        draw.text((x + 16, y), str(name), fill="white")
    return np.asarray(canvas)


def colorize(mask: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """(..., H, W) class map -> (..., 3, H, W) uint8; out-of-range labels (ignore) are white."""
    mask = mask.long().cpu()
    valid = (mask >= 0) & (mask < len(colours))
    rgb = colours[mask.clamp(0, len(colours) - 1)]
    rgb[~valid] = torch.tensor(IGNORE_COLOUR, dtype=torch.uint8)
    return rgb.movedim(-1, -3)


def preview_grid(
    images: torch.Tensor,
    targets: torch.Tensor,
    predictions: torch.Tensor,
    colours: torch.Tensor,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """uint8 (3, N*H [+ legend], 3*W): one row per sample with image, ground truth and
    prediction; the class legend below when ``names`` are given."""
    return class_map_grid(images, [targets, predictions], colours, names)


def class_map_grid(
    images: torch.Tensor,
    maps: Sequence[torch.Tensor],
    colours: torch.Tensor,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """uint8 (3, N*H [+ legend], (1 + len(maps))*W): one row per sample, the image and then each
    of ``maps`` (N, H, W) in colour (e.g. truth, baseline, variant); the class legend below
    when ``names`` are given."""
    images = images.cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    rows = [
        torch.cat([image[:3], *(colorize(m[k], colours) for m in maps)], dim=-1)
        for k, image in enumerate(images)
    ]
    grid = torch.cat(rows, dim=-2)
    if names is not None:
        strip = torch.from_numpy(legend(names, colours, grid.shape[-1]).copy()).movedim(-1, 0)
        grid = torch.cat([grid, strip], dim=-2)
    return grid


def overlay(image: np.ndarray, mask: np.ndarray, colours, alpha: float = 0.45) -> np.ndarray:
    """uint8 (H, W, 3): a uint8 (H, W[, C]) image blended with its class colours (ignore white)."""
    if image.ndim == 2:
        image = image[:, :, None]
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]
    colour = colorize(torch.from_numpy(np.asarray(mask)), torch.as_tensor(colours)).numpy()
    return (rgb * (1 - alpha) + colour.transpose(1, 2, 0) * alpha).astype(np.uint8)
