"""Procedural segmentation scenes: the embedded default dataset, no files needed.

Every object's colour is drawn from the same distribution whatever its class, so colour alone
cannot tell a disc from a ring or a bar: a model has to use shape (solid vs hollow, round vs
elongated, thick vs thin) and context (a ring's hole shows the background). Sizes vary from a few
pixels to a fifth of the image, threads are 3 pixels wide, and background texture, per-object
shading and sensor noise keep a colour threshold from working.
"""

import multiprocessing
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from segexp.data.sample import Sample, to_tensors
from segexp.errors import SegexpError

CLASS_NAMES = ("background", "disc", "ring", "bar", "thread")
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour texture: a coarse random field, bilinearly upsampled, plus a gradient."""
    coarse = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), np.float32)
    ramp = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :, None]
    return field + rng.uniform(-25, 25) * ramp


def _draw_shape(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cls: int, h: int, w: int):
    scale = min(h, w)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    if cls == 1:  # disc: a filled ellipse, from tiny to large
        ry = rng.uniform(0.03, 0.16) * scale
        rx = ry * rng.uniform(0.7, 1.4)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=1)
    elif cls == 2:  # ring: a hollow ellipse whose inside shows what lies beneath
        r = rng.uniform(0.08, 0.2) * scale
        rx = r * rng.uniform(0.8, 1.25)
        thickness = int(rng.integers(2, max(3, int(r / 2.5)) + 1))
        draw.ellipse((cx - rx, cy - r, cx + rx, cy + r), outline=1, width=thickness)
    elif cls == 3:  # bar: a rotated rectangle
        length = rng.uniform(0.15, 0.45) * scale
        thick = rng.uniform(0.08, 0.14) * scale
        angle = rng.uniform(0, np.pi)
        d = np.array([np.cos(angle), np.sin(angle)])
        n = np.array([-d[1], d[0]])
        c = np.array([cx, cy])
        corners = [
            c + sa * d * length / 2 + sb * n * thick / 2
            for sa, sb in ((1, 1), (1, -1), (-1, -1), (-1, 1))
        ]
        draw.polygon([(float(x), float(y)) for x, y in corners], fill=1)
    else:  # thread: a thin wandering polyline
        steps = int(rng.integers(3, 6))
        points = [(cx, cy)]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(steps):
            heading += rng.uniform(-0.8, 0.8)
            step = rng.uniform(0.06, 0.14) * scale
            cx, cy = cx + step * np.cos(heading), cy + step * np.sin(heading)
            points.append((cx, cy))
        draw.line(points, fill=1, width=3, joint="curve")


def generate_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_objects: tuple[int, int] = (4, 9),
    object_probs: Sequence[float] | None = None,
) -> Sample:
    """One scene: a uint8 RGB image (H, W, 3) and a uint8 class map (H, W). ``object_probs``:
    how likely each object class (1, 2, ...) is; None: all alike."""
    image = _background(rng, height, width)
    mask = np.zeros((height, width), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(int(rng.integers(num_objects[0], num_objects[1] + 1))):
        if object_probs is None:
            cls = int(rng.integers(1, len(CLASS_NAMES)))
        else:
            cls = 1 + int(rng.choice(len(object_probs), p=object_probs))
        layer = Image.new("L", (width, height), 0)
        _draw_shape(ImageDraw.Draw(layer), rng, cls, height, width)
        inside = np.asarray(layer, bool)
        if not inside.any():
            continue
        # Same colour law for every class; contrast against the local background keeps the
        # object visible without giving its class away.
        local = image[inside].mean(axis=0)
        offset = rng.uniform(45, 95) * rng.choice([-1.0, 1.0], size=3)
        colour = np.clip(local + offset * rng.uniform(0.3, 1.0, size=3), 0, 255)
        shading = 1 + 0.25 * np.sin(rng.uniform(0.05, 0.3) * (xx + yy) + rng.uniform(0, 6.3))
        image[inside] = colour * shading[inside, None]
        mask[inside] = cls
    image += rng.normal(0, rng.uniform(4, 10), size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _scene(recipe: tuple) -> Sample:
    seed, split_id, index, height, width, object_probs = recipe
    rng = np.random.default_rng([seed, split_id, index])
    return generate_scene(rng, height, width, object_probs=object_probs)


class SyntheticSegmentation(Dataset):
    """A fixed, reproducible split: sample ``i`` of ``split`` is the same on every machine."""

    def __init__(
        self,
        split: str,
        num_samples: int,
        image_size: Sequence[int],
        seed: int = 0,
        transform=None,
        object_probs: Sequence[float] | None = None,
    ) -> None:
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
        if object_probs is not None:
            if len(object_probs) != len(CLASS_NAMES) - 1 or min(object_probs) < 0:
                raise SegexpError(
                    f"object_probs={list(object_probs)}: give {len(CLASS_NAMES) - 1} "
                    f"non-negative numbers, one per object class {list(CLASS_NAMES[1:])}"
                )
            total = float(sum(object_probs))
            object_probs = [float(p) / total for p in object_probs]
        self.object_probs = object_probs
        self.split, self.num_samples, self.seed = split, int(num_samples), int(seed)
        self.height, self.width = (int(s) for s in image_size)
        self.transform = transform
        self.names = [f"{split}_{i:05d}" for i in range(self.num_samples)]
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return self.num_samples

    @property
    def source(self) -> dict:
        """The settings that decide every scene (data/split_hash.py)."""
        return {
            "generator": "synthetic",
            "split": self.split,
            "seed": self.seed,
            "image_size": [self.height, self.width],
            "object_probs": self.object_probs,
        }

    def _recipe(self, index: int) -> tuple:
        return (self.seed, SPLIT_IDS[self.split], index, self.height, self.width, self.object_probs)

    def load(self, index: int) -> Sample:
        if index not in self._cache:
            self._cache[index] = _scene(self._recipe(index))
        return self._cache[index]

    def prefill(self, processes: int = 1) -> None:
        """Generate every scene now, in ``processes`` forked processes when there are many:
        a benchmark then times its loader, not the scene generator."""
        missing = [index for index in range(len(self)) if index not in self._cache]
        recipes = [self._recipe(index) for index in missing]
        if processes > 1 and len(missing) > 64:
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                scenes = pool.map(_scene, recipes, chunksize=8)
        else:
            scenes = [_scene(recipe) for recipe in recipes]
        self._cache.update(zip(missing, scenes, strict=True))

    def __getitem__(self, index: int):
        image, mask = self.load(index)
        return to_tensors(image, mask, self.transform)
