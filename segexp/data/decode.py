"""Decoding image and mask files into the arrays every dataset returns.

Images become uint8 (H, W) or (H, W, 3) whatever they were stored as (grayscale, RGB, RGBA,
palette, 16-bit); masks become integer class maps (H, W) from one of three encodings.
"""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segexp.errors import SegexpError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MASK_MODES = ("index", "binary", "color")
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # more than 8 bits per pixel
LOSSY_FORMATS = {"JPEG", "WEBP", "MPO"}  # a class map stored this way has changed values
LOSSY_FIX = (
    "store masks as PNG (lossless), or set dataset.lossy_masks=true to accept lossy masks "
    "(binary masks are then thresholded at half their top value)"
)


def open_image(path: Path) -> Image.Image:
    """Fully decoded PIL image; an unreadable or truncated file becomes a SegexpError."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise SegexpError(f"cannot read {path}: {err}. Replace or remove the file") from None


def _to_uint8(values: np.ndarray, scale: str) -> np.ndarray:
    values = values.astype(np.float32)
    if scale == "per_image":  # e.g. 12-bit microscopy stored in 16-bit files
        low, high = float(values.min()), float(values.max())
        values = (values - low) * (255.0 / max(high - low, 1e-6))
    else:
        values = values * (255.0 / 65535.0)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def read_image(path: Path, in_channels: int = 3, uint16_scale: str = "full") -> np.ndarray:
    """uint8 (H, W) for in_channels=1, (H, W, 3) for 3. Alpha is dropped.

    16-bit images are scaled to 0-255: ``uint16_scale=full`` divides by 257 (the whole 16-bit
    range), ``per_image`` stretches each image's own min..max.
    """
    image = open_image(path)
    if image.mode in WIDE_MODES:
        gray = _to_uint8(np.asarray(image), uint16_scale)
        if gray.ndim == 3:
            gray = gray[..., 0]
        return gray if in_channels == 1 else np.repeat(gray[..., None], 3, axis=2)
    return np.array(image.convert("L" if in_channels == 1 else "RGB"))


def read_mask(
    path: Path,
    mode: str = "index",
    colors: list | None = None,
    ignore_index: int = 255,
    lossy: bool = False,
) -> np.ndarray:
    """Class map (H, W) from an index PNG, a 0/255 binary mask or an RGB colour-coded mask.

    ``colors`` (mode "color"): one [r, g, b] per class in class order; a colour that is not in the
    table is an error rather than a silent class. A mask must hold the encoding it claims: a
    lossy file (JPEG) or a binary mask with more than two levels is an error unless ``lossy``.
    """
    image = open_image(path)
    if image.format in LOSSY_FORMATS and not lossy:
        raise SegexpError(
            f"mask {path} is {image.format}, a lossy format that changes class values near "
            f"edges: {LOSSY_FIX}"
        )
    if mode == "color":
        if colors is None:
            raise SegexpError(
                "dataset.mask_mode=color needs dataset.colors: one [r, g, b] per class"
            )
        rgb = np.asarray(image.convert("RGB")).astype(np.int32)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        table = np.array([(r << 16) | (g << 8) | b for r, g, b in colors], np.int32)
        order = np.argsort(table)
        pos = np.clip(np.searchsorted(table[order], codes), 0, len(table) - 1)
        known = table[order][pos] == codes
        if not known.all():
            y, x = np.argwhere(~known)[0]
            raise SegexpError(
                f"mask {path} has colour {tuple(int(v) for v in rgb[y, x])} at (x={x}, y={y}) "
                "which is not in dataset.colors: add it to the table (in class order)"
            )
        return order[pos].astype(np.uint8 if len(colors) <= 256 else np.int32)
    if image.mode == "P":  # palette PNG: the stored indices are the classes
        mask = np.array(image)
    elif image.mode in ("RGB", "RGBA"):
        mask = np.asarray(image.convert("RGB"))
        if (mask == mask[..., :1]).all():  # gray saved as RGB
            mask = mask[..., 0]
        else:
            raise SegexpError(
                f"mask {path} is a colour image: set dataset.mask_mode=color and list the class "
                "colours in dataset.colors, or store masks as single-channel class maps"
            )
    else:
        mask = np.array(image.convert("L") if image.mode == "LA" else image)
    if mask.ndim != 2:
        raise SegexpError(
            f"mask {path} has shape {mask.shape}: masks are single-channel class maps"
        )
    if mode == "binary":
        return _binary(mask, path, lossy)
    if mask.dtype.kind == "b":
        return mask.astype(np.uint8)
    return mask


def _binary(mask: np.ndarray, path: Path, lossy: bool) -> np.ndarray:
    """0 / non-zero -> 0 / 1, for a mask of (at most) two levels; with ``lossy``, the levels
    a lossy codec smeared are thresholded at half the top value instead."""
    levels = np.unique(mask)
    if lossy:
        return (mask > levels[-1] / 2).astype(np.uint8)
    if len(levels) > 2 or (len(levels) == 2 and levels[0] != 0):
        shown = ", ".join(str(v) for v in levels[:6]) + (" ..." if len(levels) > 6 else "")
        raise SegexpError(
            f"mask {path} has {len(levels)} levels ({shown}) but dataset.mask_mode=binary "
            f"expects 0 and one foreground value: {LOSSY_FIX}, or use mask_mode=index"
        )
    return (mask > 0).astype(np.uint8)


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header only; checks that the file is a readable image."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.verify()  # walks the file's structure (PNG CRCs, ...) without decoding
            return height, width
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise SegexpError(f"cannot read {path}: {err}. Replace or remove the file") from None
