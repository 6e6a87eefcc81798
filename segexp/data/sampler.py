"""`dataset.sampler=rare_class`: draw training images holding rare classes more often.

The idea of nnU-Net's foreground oversampling and LVIS's repeat-factor sampling, at the level of
whole images: half of the draws are uniform, the other half go to each image in proportion to
its share of the rare classes' pixels (a class is rare under RARE_FRACTION of the labelled
pixels; when none is, the rarest class). torch's WeightedRandomSampler does the drawing with the
DataLoader's own generator, so the order follows the run's seed and is restored on resume with
the loader's state (training/resume.py capture_rng).
"""

import numpy as np
from torch.utils.data import Sampler, WeightedRandomSampler

from segexp.data.scan import RARE_FRACTION, per_sample_class_pixels
from segexp.errors import SegexpError

SAMPLERS = ("uniform", "rare_class")


def rare_classes(class_pixels: np.ndarray) -> list[int]:
    """Classes under RARE_FRACTION of the labelled pixels (present ones; else the rarest)."""
    total = class_pixels.sum()
    if total == 0:
        return []
    share = class_pixels / total
    rare = [c for c in range(len(share)) if 0 < share[c] < RARE_FRACTION]
    if not rare:
        present = np.flatnonzero(share > 0)
        rare = [int(present[np.argmin(share[present])])]
    return rare


def rare_class_weights(pixels: np.ndarray) -> np.ndarray:
    """(N,) draw weights from (N, C) per-sample class pixel counts."""
    rare = rare_classes(pixels.sum(0))
    if not rare:
        return np.ones(len(pixels))
    share = pixels[:, rare] / np.maximum(pixels[:, rare].sum(0), 1)  # image i's part of class c
    return 1.0 + len(pixels) * share.mean(1)


def training_sampler(dataset, name: str, num_classes: int, generator) -> Sampler | None:
    """None for ``uniform`` (the DataLoader shuffles); the weighted sampler for ``rare_class``."""
    if name == "uniform":
        return None
    if name != "rare_class":
        raise SegexpError(f"dataset.sampler={name!r} is not one of {list(SAMPLERS)}")
    weights = rare_class_weights(per_sample_class_pixels(dataset, num_classes))
    return WeightedRandomSampler(
        weights.tolist(), num_samples=len(weights), replacement=True, generator=generator
    )
