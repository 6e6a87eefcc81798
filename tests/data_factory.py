"""Tiny image/mask folders written on the fly for the folder-dataset and audit tests."""

from pathlib import Path

import numpy as np
from PIL import Image


def blocky_mask(rng: np.random.Generator, size=(24, 32), classes: int = 2, block: int = 8):
    h, w = size
    coarse = rng.integers(0, classes, (-(-h // block), -(-w // block)))
    return np.kron(coarse, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)


def write_sample(
    image_dir: Path,
    mask_dir: Path,
    stem: str,
    mask: np.ndarray,
    *,
    image_ext: str = ".png",
    mask_name: str | None = None,
    mask_scale: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """An RGB image whose pixels depend on the class (so a model can learn it) and its mask."""
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    image = (40 + 150 * (mask > 0)[..., None] + rng.integers(0, 30, (*mask.shape, 3))).astype(
        np.uint8
    )
    Image.fromarray(image).save(image_dir / f"{stem}{image_ext}")
    Image.fromarray((mask * mask_scale).astype(np.uint8)).save(
        mask_dir / (mask_name or f"{stem}.png")
    )
    return image


def make_split_folders(root: Path, counts=None, size=(24, 32), mask_scale: int = 1) -> Path:
    """<root>/<split>/images + masks with ``counts[split]`` samples each."""
    counts = counts or {"train": 8, "val": 4, "test": 4}
    rng = np.random.default_rng(1)
    for split, n in counts.items():
        for i in range(n):
            write_sample(
                root / split / "images",
                root / split / "masks",
                f"{split}{i}",
                blocky_mask(rng, size),
                mask_scale=mask_scale,
                seed=i,
            )
    return root
