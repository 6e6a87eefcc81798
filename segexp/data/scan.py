"""Reading every mask (and image) of a split once: the facts behind the label audit.

``scan_split`` collects what is there (counts, sizes, mask values, pixel statistics);
``findings`` turns that into fatal problems and warnings, each naming files and the fix.
"""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from segexp.data.decode import image_size
from segexp.errors import SegexpError
from segexp.runtime import interrupt

MAX_LISTED = 5
RARE_FRACTION = 0.02  # a class under 2% of the labelled pixels is rare


def _one(dataset, index: int, images: str) -> dict[str, Any]:
    """Facts about one sample; decoding problems are returned, not raised."""
    interrupt.check()  # a long scan stops at SIGINT/SIGTERM
    pairs = getattr(dataset, "pairs", None)
    image_path, mask_path = pairs[index] if pairs else (None, None)
    name = str(image_path) if image_path else f"{getattr(dataset, 'split', '')}[{index}]"
    out: dict[str, Any] = {"name": name, "mask_name": str(mask_path or name)}
    try:
        if pairs is None:
            image, mask = dataset.load(index)
            out["image_hw"] = image.shape[:2]
        else:
            mask = dataset.read_mask(index)
            if images == "full":
                image = dataset.read_image(index)
                out["image_hw"] = image.shape[:2]
            else:
                image = None
                out["image_hw"] = image_size(image_path)
    except SegexpError as err:
        out["error"] = str(err)
        return out
    out["mask_hw"] = mask.shape[:2]
    if mask.dtype == np.uint8:
        counts = np.bincount(mask.ravel(), minlength=256)
        values = np.flatnonzero(counts)
        out["values"] = dict(zip(values.tolist(), counts[values].tolist(), strict=True))
    else:
        values, counts = np.unique(mask, return_counts=True)
        out["values"] = dict(zip(values.tolist(), counts.tolist(), strict=True))
    if image is not None:
        pixels = image.reshape(-1, 1 if image.ndim == 2 else image.shape[2]).astype(np.float64)
        out["sum"], out["sumsq"], out["n"] = pixels.sum(0), (pixels**2).sum(0), len(pixels)
    return out


def _samples(dataset, images: str) -> list[dict[str, Any]]:
    indices = range(len(dataset))
    if getattr(dataset, "pairs", None) is not None:
        with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes without the GIL
            return list(pool.map(lambda i: _one(dataset, i, images), indices))
    return [_one(dataset, i, images) for i in indices]


def scan_split(dataset, split: str, num_classes: int, images: str = "full") -> dict[str, Any]:
    """Read every sample of ``dataset``. ``images``: ``full`` decodes images (mean/std),
    ``header`` only checks that they open and reads their size."""
    samples = _samples(dataset, images)
    values: Counter = Counter()
    first_file: dict[int, str] = {}
    class_pixels = np.zeros(num_classes, np.int64)
    presence_pixels = np.zeros(num_classes, np.int64)  # labelled pixels of images holding c
    sizes: Counter = Counter()
    unreadable, mismatched = [], []
    total = total_sq = None
    n_pixels = 0
    for sample in samples:
        if "error" in sample:
            unreadable.append(sample["error"])
            continue
        if tuple(sample["image_hw"]) != tuple(sample["mask_hw"]):
            (ih, iw), (mh, mw) = sample["image_hw"], sample["mask_hw"]
            mismatched.append(
                f"{sample['name']} is {iw}x{ih} but its mask {sample['mask_name']} is {mw}x{mh}"
            )
        sizes[f"{sample['image_hw'][1]}x{sample['image_hw'][0]}"] += 1
        labelled = 0
        for value, count in sample["values"].items():
            values[value] += count
            first_file.setdefault(value, sample["mask_name"])
            if 0 <= value < num_classes:
                class_pixels[value] += count
                labelled += count
        for value in sample["values"]:
            if 0 <= value < num_classes:
                presence_pixels[value] += labelled
        if "sum" in sample:
            total = sample["sum"] if total is None else total + sample["sum"]
            total_sq = sample["sumsq"] if total_sq is None else total_sq + sample["sumsq"]
            n_pixels += sample["n"]
    mean = std = None
    if n_pixels:
        mean = total / n_pixels
        std = np.sqrt(np.maximum(total_sq / n_pixels - mean**2, 0.0))
    return {
        "split": split,
        "samples": len(samples),
        "masks_without_image": [str(p) for p in getattr(dataset, "masks_without_image", [])],
        "unreadable": unreadable,
        "size_mismatches": mismatched,
        "image_sizes": dict(sizes),
        "mask_values": {int(k): int(v) for k, v in sorted(values.items())},
        "first_file_with_value": {int(k): v for k, v in sorted(first_file.items())},
        "class_pixels": class_pixels.tolist(),
        "presence_pixels": presence_pixels.tolist(),
        "image_mean": None if mean is None else [round(float(v), 3) for v in mean],
        "image_std": None if std is None else [round(float(v), 3) for v in std],
    }


def per_sample_class_pixels(dataset, num_classes: int) -> np.ndarray:
    """(N, num_classes) int64: pixels of each class in each sample's mask (as stored)."""
    pixels = np.zeros((len(dataset), num_classes), np.int64)
    for i, sample in enumerate(_samples(dataset, "none")):
        if "error" in sample:
            raise SegexpError(sample["error"])
        for value, count in sample["values"].items():
            if 0 <= value < num_classes:
                pixels[i, value] = count
    return pixels


def median_frequency_weights(class_pixels, presence_pixels) -> list[float]:
    """Eigen & Fergus: w_c = median(freq) / freq_c, freq_c = pixels of c / pixels of the images
    where c appears. A class that never appears gets weight 1."""
    class_pixels = np.asarray(class_pixels, np.float64)
    presence = np.asarray(presence_pixels, np.float64)
    present = (class_pixels > 0) & (presence > 0)
    if not present.any():
        return [1.0] * len(class_pixels)
    freq = np.where(present, class_pixels / np.maximum(presence, 1), np.nan)
    median = float(np.nanmedian(freq))
    return [round(float(median / f), 4) if ok else 1.0 for f, ok in zip(freq, present, strict=True)]


def _listed(items: list[str]) -> str:
    more = f" (and {len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return "; ".join(items[:MAX_LISTED]) + more


def looks_void(bad: list[int], classes: set[int], num_classes: int) -> bool:
    """One out-of-range value that is 255 or one above a contiguous range of classes."""
    if len(bad) != 1:
        return False
    value = bad[0]
    contiguous = bool(classes) and classes == set(range(max(classes) + 1))
    return value == 255 or (contiguous and value == max(classes) + 1 >= num_classes)


def rare_class_share(class_pixels: list[int]) -> dict[int, float]:
    """{class: share of labelled pixels} of present classes under RARE_FRACTION."""
    total = sum(class_pixels)
    return {
        c: n / total for c, n in enumerate(class_pixels) if total and 0 < n / total < RARE_FRACTION
    }


def findings(scan: dict[str, Any], num_classes: int, ignore_index: int) -> tuple[list, list]:
    """(fatal problems, warnings) of one split's scan, each a sentence naming files and the fix."""
    fatal, warnings = [], []
    split = scan["split"]
    if scan["samples"] == 0:
        fatal.append(f"{split}: no samples: check dataset.root and the layout")
    if scan["unreadable"]:
        fatal.append(
            f"{split}: {len(scan['unreadable'])} unreadable file(s): " + _listed(scan["unreadable"])
        )
    if scan["size_mismatches"]:
        fatal.append(
            f"{split}: {len(scan['size_mismatches'])} image/mask size mismatch(es): "
            + _listed(scan["size_mismatches"])
            + ". Each mask must have its image's size"
        )
    values = set(scan["mask_values"])
    bad = sorted(v for v in values if not 0 <= v < num_classes and v != ignore_index)
    classes = {v for v in values if 0 <= v < num_classes}
    first = scan["first_file_with_value"]
    if bad and set(bad) == {255} and classes <= {0}:
        fatal.append(
            f"{split}: masks hold 0 and 255 (e.g. {first[255]}) but num_classes={num_classes}: "
            "foreground stored as 255 instead of 1. Set dataset.mask_mode=binary (0/255 -> 0/1)"
        )
    elif bad and looks_void(bad, classes, num_classes):
        # A single value at 255 or just above the class range is nearly always a void label:
        # making it a class (num_classes + 1) would teach the model to predict "void".
        fatal.append(
            f"{split}: mask value {bad[0]} is >= num_classes={num_classes} and not ignore_index="
            f"{ignore_index} (first in {first[bad[0]]}); it looks like a void label: set "
            f"dataset.ignore_index={bad[0]}. Only if {bad[0]} is a real class: "
            f"dataset.num_classes={bad[0] + 1}"
        )
    elif bad:
        fatal.append(
            f"{split}: mask values {bad} are >= num_classes={num_classes} and not ignore_index="
            f"{ignore_index} (first in {first[bad[0]]}): set dataset.num_classes={bad[-1] + 1}, "
            "set dataset.ignore_index, or remap the masks"
        )
    elif ignore_index in values and classes <= {0} and num_classes >= 2 and ignore_index == 255:
        fatal.append(
            f"{split}: masks hold only 0 and 255 (e.g. {first[255]}) and 255 is ignore_index, so "
            "every foreground pixel would be ignored: foreground stored as 255 instead of 1? "
            "Set dataset.mask_mode=binary (0/255 -> 0/1)"
        )
    if scan["masks_without_image"]:
        warnings.append(
            f"{split}: {len(scan['masks_without_image'])} mask(s) without an image, not used: "
            + _listed(scan["masks_without_image"])
        )
    if len(scan["image_sizes"]) > 1:
        warnings.append(f"{split}: images of {len(scan['image_sizes'])} different sizes")
    if scan["samples"] and not bad and split == "train":
        absent = [c for c in range(num_classes) if scan["class_pixels"][c] == 0]
        if absent:
            warnings.append(f"train: class(es) {absent} never appear in the masks")
    return fatal, warnings
