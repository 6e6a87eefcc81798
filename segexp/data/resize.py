"""`dataset.resize` / `dataset.eval_resize`: a resolution change in front of the run's transforms.

The resize is the first step of aug.train and aug.eval, so every augmentation preset composes
with it and every consumer of those transforms (training, validation, the final test pass,
segexp-evaluate, segexp-predict) works at the same resolution; scores are still mapped back to
the labels' own size by evaluation/pipeline.py ``at_size``. Image bilinear, mask nearest.
"""

from collections.abc import Sequence

import albumentations as A
import cv2
from omegaconf import DictConfig, ListConfig

from segexp.errors import SegexpError


def resize_step(value, key: str) -> A.BasicTransform | None:
    """``null`` -> None; ``[H, W]`` -> a fixed size; a number ``f`` -> every side times ``f``."""
    if value is None:
        return None
    if isinstance(value, (Sequence, ListConfig)) and not isinstance(value, str):
        if len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
            return A.Resize(
                int(value[0]),
                int(value[1]),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
            )
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        factor = float(value) - 1.0
        return A.RandomScale(
            scale_limit=(factor, factor),  # a fixed factor: RandomScale draws from [f, f]
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST,
            p=1.0,
        )
    raise SegexpError(
        f"{key}={value!r} is not a size: use null, [height, width] (e.g. [180, 240]) "
        "or a positive scale factor (e.g. 0.5)"
    )


def with_resize(transform, dataset: DictConfig, *, evaluation: bool):
    """``transform`` preceded by the dataset's resize (``eval_resize`` when ``evaluation``;
    it defaults to ``resize``)."""
    key = "eval_resize" if evaluation and dataset.get("eval_resize") is not None else "resize"
    step = resize_step(dataset.get(key), f"dataset.{key}")
    if step is None:
        return transform
    return A.Compose([step] if transform is None else [step, transform])
