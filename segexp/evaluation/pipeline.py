"""The one inference pipeline: the model's scores for images of any size, mapped back to the size
of the labels (or of the input image).

Validation, the final test pass, ``segexp.evaluate`` and ``segexp.predict`` all call these
functions (and ``segexp.export`` exports the same model), so an image gets the same prediction
whichever of them produced it:

    decoded uint8 image -> the run's evaluation transform (aug.eval, e.g. a resize)
      -> model (normalises, pads to its size multiple, crops back) [sliding window, flip and
         multi-scale TTA] -> scores mapped back to the original size -> argmax

Scores are logits for a single whole-image pass, and probabilities (float32, averaged over
tiles, flips and scales) otherwise. Mapping back to another size resizes probabilities
bilinearly, then takes the argmax, as papers report. Multi-scale TTA (``ms``, ``ms_flip``)
resizes the normalised image by each scale, and each scale's probabilities go straight to the
size asked for (the labels' resolution) and are averaged there (MMSegmentation's aug_test).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segexp.config.build import build
from segexp.errors import SegexpError
from segexp.ops.padding import pad_to_size

# The flips of each TTA mode; the "ms" modes also run every scale of InferenceOptions.scales.
TTA_MODES = {
    "none": [],
    "flip": [[-1]],
    "flip_hv": [[-1], [-2]],
    "ms": [],
    "ms_flip": [[-1]],
}


@dataclass(frozen=True)
class InferenceOptions:
    """How to turn a model into per-pixel scores (conf/inference/default.yaml).

    tile: (height, width) of sliding-window tiles, or None for one pass over the whole image.
    overlap: fraction of a tile shared with its neighbour (0 <= overlap < 1).
    tile_batch: tiles per forward pass; bounds activation memory whatever the image size.
    tta: "none", "flip" (horizontal), "flip_hv" (horizontal and vertical), "ms" (the scales)
        or "ms_flip" (the scales, each also flipped horizontally).
    scales: image scale factors of the "ms" modes (other modes run at scale 1 only).
    """

    tile: Sequence[int] | None = None
    overlap: float = 0.5
    tile_batch: int = 8
    tta: str = "none"
    scales: Sequence[float] = (0.75, 1.0, 1.25)

    def __post_init__(self) -> None:
        if self.tta not in TTA_MODES:
            raise SegexpError(f"inference.tta={self.tta!r} is not one of {', '.join(TTA_MODES)}")
        if not 0 <= self.overlap < 1:
            raise SegexpError(
                f"inference.overlap={self.overlap}: use a fraction in [0, 1), e.g. 0.5"
            )
        if self.tile is not None:
            tile = tuple(int(v) for v in self.tile)
            if len(tile) != 2 or min(tile) < 1:
                raise SegexpError(
                    f"inference.tile={list(self.tile)}: give [height, width] in pixels, "
                    "e.g. inference.tile=[256,256] (or null for one whole-image pass)"
                )
            object.__setattr__(self, "tile", tile)
        if self.tile_batch < 1:
            raise SegexpError(f"inference.tile_batch={self.tile_batch}: must be at least 1")
        scales = tuple(float(s) for s in self.scales)
        if not scales or min(scales) <= 0:
            raise SegexpError(
                f"inference.scales={list(self.scales)}: give positive factors, "
                "e.g. inference.scales=[0.75,1.0,1.25]"
            )
        object.__setattr__(self, "scales", scales)

    @property
    def scale_factors(self) -> tuple[float, ...]:
        return self.scales if self.tta.startswith("ms") else (1.0,)

    @property
    def relative_cost(self) -> float:
        """Forward passes per image, in passes over the whole image at scale 1 (tiles aside)."""
        return sum(s * s for s in self.scale_factors) * (1 + len(TTA_MODES[self.tta]))

    @property
    def plain(self) -> bool:
        """One whole-image pass: the scores are the model's logits."""
        return self.tile is None and self.tta == "none"


def test_options(cfg) -> InferenceOptions | None:
    """The final test pass's inference options (``test.inference``), or None: one plain pass."""
    test_cfg = cfg.get("test") or {}
    return build(test_cfg["inference"]) if "inference" in test_cfg else None


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


def sliding_window(
    model: nn.Module,
    images: torch.Tensor,
    tile: Sequence[int],
    overlap: float = 0.5,
    tile_batch: int = 8,
    accumulate_on: torch.device | str | None = None,
) -> torch.Tensor:
    """Probabilities of normalised images from overlapping tiles, blended with Gaussian weights.

    Images smaller than a tile are padded with zeros (the mean, after normalisation) and the
    padding cropped off. Tiles go through the model ``tile_batch`` at a time; the running sums
    live on ``accumulate_on`` (default: the images' device; "cpu" keeps GPU memory bounded by
    the tile batch for very large images).
    """
    n, _, height, width = images.shape
    images = pad_to_size(images, int(tile[0]), int(tile[1]))
    padded_h, padded_w = images.shape[-2:]
    tile_h, tile_w = min(int(tile[0]), padded_h), min(int(tile[1]), padded_w)
    ys, xs = tile_starts(padded_h, tile_h, overlap), tile_starts(padded_w, tile_w, overlap)
    weights = gaussian_weights(tile_h, tile_w).to(images.device)
    target = torch.device(accumulate_on) if accumulate_on is not None else images.device
    total = weight_sum = None
    windows = [(b, y, x) for b in range(n) for y in ys for x in xs]
    for first in range(0, len(windows), tile_batch):
        chunk = windows[first : first + tile_batch]
        crops = torch.stack([images[b, :, y : y + tile_h, x : x + tile_w] for b, y, x in chunk])
        probs = _probs(model, crops) * weights
        if total is None:
            total = torch.zeros(n, probs.shape[1], padded_h, padded_w, device=target)
            weight_sum = torch.zeros(n, 1, padded_h, padded_w, device=target)
        probs, tile_weights = probs.to(target), weights.to(target)
        for (b, y, x), p in zip(chunk, probs, strict=True):
            total[b, :, y : y + tile_h, x : x + tile_w] += p
            weight_sum[b, 0, y : y + tile_h, x : x + tile_w] += tile_weights
    return (total / weight_sum)[..., :height, :width]


def _normalised(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Tiles and flips of uint8 images are cut from the normalised image (padding = the mean)."""
    if images.is_floating_point():
        return images
    normalize = getattr(model, "normalize", None)
    return images.float() if normalize is None else normalize(images)


def _resized(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(probs.shape[-2:]) == size:
        return probs
    return F.interpolate(probs, size=size, mode="bilinear", align_corners=False)


@torch.inference_mode()
def scores(
    model: nn.Module,
    images: torch.Tensor,
    options: InferenceOptions,
    accumulate_on: torch.device | str | None = None,
    size: Sequence[int] | None = None,
) -> torch.Tensor:
    """(N, classes, H, W) scores of uint8 images (N, C, H, W): logits at the images' size when
    ``options.plain``, else probabilities averaged over the TTA flips (each flipped back) and
    scales, at ``size`` (default: the images' own size)."""
    if options.plain:
        return model(images)
    x = _normalised(model, images)
    height, width = x.shape[-2:]
    size = (height, width) if size is None else (int(size[0]), int(size[1]))

    def once(x: torch.Tensor) -> torch.Tensor:
        if options.tile is None:
            return _probs(model, x)
        return sliding_window(
            model, x, options.tile, options.overlap, options.tile_batch, accumulate_on
        )

    total, passes = None, 0
    for scale in options.scale_factors:
        scaled = x
        if scale != 1.0:
            scaled_size = (max(1, round(height * scale)), max(1, round(width * scale)))
            scaled = F.interpolate(x, size=scaled_size, mode="bilinear", align_corners=False)
        probs = once(scaled)
        for dims in TTA_MODES[options.tta]:
            probs = probs + once(scaled.flip(dims)).flip(dims).to(probs.device)
        probs = _resized(probs, size)
        total = probs if total is None else total + probs.to(total.device)
        passes += 1 + len(TTA_MODES[options.tta])
    return total / passes


def to_probabilities(scores: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
    return scores.float().softmax(dim=1) if options.plain else scores


def at_size(scores: torch.Tensor, size: Sequence[int], options: InferenceOptions) -> torch.Tensor:
    """Scores mapped to ``size`` (height, width): unchanged at that size already, otherwise
    probabilities resized bilinearly (then an argmax gives the class map at ``size``)."""
    size = (int(size[0]), int(size[1]))
    if tuple(scores.shape[-2:]) == size:
        return scores
    probs = to_probabilities(scores, options)
    return F.interpolate(probs, size=size, mode="bilinear", align_corners=False)


@torch.inference_mode()
def predict_image(
    model: nn.Module,
    image: torch.Tensor,
    size: Sequence[int],
    options: InferenceOptions,
    accumulate_on: torch.device | str | None = None,
) -> torch.Tensor:
    """Scores (1, classes, *size) of one transformed uint8 image (1, C, h, w) on the model's
    device: what predict writes, and what the evaluation loop computes for the same image."""
    return at_size(scores(model, image, options, accumulate_on, size), size, options)
