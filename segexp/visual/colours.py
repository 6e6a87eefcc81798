"""Colour class maps and build image / ground truth / prediction grids."""

import numpy as np
import torch

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


def palette(num_classes: int) -> torch.Tensor:
    """(num_classes, 3) uint8 colours."""
    extra = np.random.default_rng(0).integers(0, 256, size=(max(0, num_classes - 16), 3))
    colours = np.concatenate([np.array(BASE_PALETTE, np.uint8), extra.astype(np.uint8)])
    return torch.from_numpy(colours[:num_classes])


def colorize(mask: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """(..., H, W) class map -> (..., 3, H, W) uint8; out-of-range labels (ignore) are white."""
    mask = mask.long().cpu()
    valid = (mask >= 0) & (mask < len(colours))
    rgb = colours[mask.clamp(0, len(colours) - 1)]
    rgb[~valid] = torch.tensor(IGNORE_COLOUR, dtype=torch.uint8)
    return rgb.movedim(-1, -3)


def preview_grid(
    images: torch.Tensor, targets: torch.Tensor, predictions: torch.Tensor, colours: torch.Tensor
) -> torch.Tensor:
    """uint8 (3, N*H, 3*W): one row per sample with image, ground truth and prediction."""
    images = images.cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    rows = [
        torch.cat([image[:3], colorize(target, colours), colorize(pred, colours)], dim=-1)
        for image, target, pred in zip(images, targets, predictions, strict=True)
    ]
    return torch.cat(rows, dim=-2)


def overlay(image: np.ndarray, mask: np.ndarray, colours, alpha: float = 0.45) -> np.ndarray:
    """uint8 (H, W, 3): a uint8 (H, W[, C]) image blended with its class colours (ignore white)."""
    if image.ndim == 2:
        image = image[:, :, None]
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]
    colour = colorize(torch.from_numpy(np.asarray(mask)), torch.as_tensor(colours)).numpy()
    return (rgb * (1 - alpha) + colour.transpose(1, 2, 0) * alpha).astype(np.uint8)
