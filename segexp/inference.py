"""Inference on images of any size: whole-image, sliding-window with Gaussian blending, flip TTA.

Every function takes normalised float images (N, C, H, W) on the model's device and returns
class probabilities (N, num_classes, H, W) in float32.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segexp.errors import SegexpError


@dataclass(frozen=True)
class InferenceOptions:
    """How to turn a model into per-pixel probabilities.

    tile: (height, width) of sliding-window tiles, or None for one pass over the whole image.
    overlap: fraction of a tile shared with its neighbour (0 <= overlap < 1).
    tile_batch: tiles per forward pass; bounds activation memory whatever the image size.
    tta: "none", "flip" (horizontal) or "flip_hv" (horizontal and vertical).
    """

    tile: tuple[int, int] | None = None
    overlap: float = 0.5
    tile_batch: int = 8
    tta: str = "none"

    def __post_init__(self) -> None:
        if self.tta not in TTA_MODES:
            raise SegexpError(f"tta={self.tta!r} is not one of {', '.join(TTA_MODES)}")
        if not 0 <= self.overlap < 1:
            raise SegexpError(f"overlap={self.overlap}: use a fraction in [0, 1), e.g. 0.5")
        if self.tile is not None and min(self.tile) < 1:
            raise SegexpError(f"tile={self.tile}: tile height and width must be positive")
        if self.tile_batch < 1:
            raise SegexpError(f"tile_batch={self.tile_batch}: must be at least 1")


TTA_MODES = {"none": [], "flip": [[-1]], "flip_hv": [[-1], [-2]]}


def gaussian_weights(height: int, width: int, sigma_scale: float = 0.125) -> torch.Tensor:
    """(H, W) importance map peaking at the tile centre (nnU-Net's choice of sigma = size / 8).

    Clamped away from zero so that a pixel covered only by tile edges still gets a value.
    """

    def axis(n: int) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
        return torch.exp(-0.5 * (x / max(n * sigma_scale, 1e-6)) ** 2)

    weights = axis(height)[:, None] * axis(width)[None, :]
    weights = weights / weights.max()
    return weights.clamp_min(1e-3).float()


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets covering [0, size) with tiles of ``tile`` pixels; the last one ends at size."""
    if size <= tile:
        return [0]
    stride = max(1, int(tile * (1 - overlap)))
    count = math.ceil((size - tile) / stride) + 1
    return [min(i * stride, size - tile) for i in range(count)]


def _probs(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model(images).float().softmax(dim=1)


def whole_image(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return _probs(model, images)


def sliding_window(
    model: nn.Module,
    images: torch.Tensor,
    tile: tuple[int, int],
    overlap: float = 0.5,
    tile_batch: int = 8,
    accumulate_on: torch.device | str | None = None,
) -> torch.Tensor:
    """Probabilities from overlapping tiles, blended with Gaussian weights.

    Images smaller than a tile are padded with zeros (the mean, after normalisation) and the
    padding cropped off. Tiles go through the model ``tile_batch`` at a time; the running sums
    live on ``accumulate_on`` (default: the images' device; "cpu" keeps GPU memory bounded by
    the tile batch for very large images).
    """
    n, _, height, width = images.shape
    tile_h, tile_w = min(tile[0], height), min(tile[1], width)
    ys, xs = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
    weights = gaussian_weights(tile_h, tile_w).to(images.device)
    target = torch.device(accumulate_on) if accumulate_on is not None else images.device
    total = weight_sum = None
    windows = [(b, y, x) for b in range(n) for y in ys for x in xs]
    for first in range(0, len(windows), tile_batch):
        chunk = windows[first : first + tile_batch]
        crops = torch.stack([images[b, :, y : y + tile_h, x : x + tile_w] for b, y, x in chunk])
        probs = _probs(model, crops) * weights
        if total is None:
            total = torch.zeros(n, probs.shape[1], height, width, device=target)
            weight_sum = torch.zeros(n, 1, height, width, device=target)
        probs, tile_weights = probs.to(target), weights.to(target)
        for (b, y, x), p in zip(chunk, probs, strict=True):
            total[b, :, y : y + tile_h, x : x + tile_w] += p
            weight_sum[b, 0, y : y + tile_h, x : x + tile_w] += tile_weights
    return total / weight_sum


def _pad_to(images: torch.Tensor, tile: tuple[int, int]) -> tuple[torch.Tensor, int, int]:
    height, width = images.shape[-2:]
    pad_h, pad_w = max(0, tile[0] - height), max(0, tile[1] - width)
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h))
    return images, height, width


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    images: torch.Tensor,
    options: InferenceOptions,
    accumulate_on: torch.device | str | None = None,
) -> torch.Tensor:
    """Probabilities for normalised images, averaged over the TTA flips (each flipped back)."""

    def once(x: torch.Tensor) -> torch.Tensor:
        if options.tile is None:
            return whole_image(model, x)
        padded, height, width = _pad_to(x, options.tile)
        probs = sliding_window(
            model, padded, options.tile, options.overlap, options.tile_batch, accumulate_on
        )
        return probs[..., :height, :width]

    probs = once(images)
    flips = TTA_MODES[options.tta]
    for dims in flips:
        probs = probs + once(images.flip(dims)).flip(dims).to(probs.device)
    return probs / (1 + len(flips))
