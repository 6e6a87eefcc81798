"""Reading every mask (and image) of a split once: the facts behind the label audit.

``scan_split`` collects what is there (counts, sizes, mask values, pixel statistics);
``findings`` turns that into fatal problems and warnings, each naming files and the fix.
"""

import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from segexp.data.decode import image_size
from segexp.errors import SegexpError
from segexp.runtime import interrupt

MAX_LISTED = 5
RARE_FRACTION = 0.02  # a class under 2% of the labelled pixels is rare
# A possible void label (see void_candidate) is read as void first when it holds under this
# share of the split's mask pixels, or its name in dataset.class_names says so: unlabelled
# pixels and object borders are usually a small part of a mask, and a value holding a tenth of
# the pixels or more is more often a class. Both readings are always given.
VOID_SHARE = 0.10
VOID_NAMES = re.compile(r"void|unlabel|ignore|unknown|don'?t.?care", re.IGNORECASE)


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
    out["values"] = _value_counts(mask)
    out["outline_values"] = _value_counts(mask[outlines(mask)])
    if image is not None:
        pixels = image.reshape(-1, 1 if image.ndim == 2 else image.shape[2]).astype(np.float64)
        out["sum"], out["sumsq"], out["n"] = pixels.sum(0), (pixels**2).sum(0), len(pixels)
    return out


def _value_counts(values: np.ndarray) -> dict[int, int]:
    if values.dtype == np.uint8:
        counts = np.bincount(values.ravel(), minlength=256)
        present = np.flatnonzero(counts)
        return dict(zip(present.tolist(), counts[present].tolist(), strict=True))
    present, counts = np.unique(values, return_counts=True)
    return dict(zip(present.tolist(), counts.tolist(), strict=True))


def outlines(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another value: each region's inner outline."""
    edge = np.zeros(mask.shape[:2], bool)
    rows, cols = mask[:-1] != mask[1:], mask[:, :-1] != mask[:, 1:]
    edge[:-1] |= rows
    edge[1:] |= rows
    edge[:, :-1] |= cols
    edge[:, 1:] |= cols
    return edge


def class_widths(class_pixels: Sequence[int], outline_pixels: Sequence[int]) -> list[float | None]:
    """Each class's typical width in pixels: 2 x area / outline, the width of a stripe (a disc
    gets its radius); None for a class absent or without an outline."""
    pairs = zip(class_pixels, outline_pixels, strict=True)
    return [2 * a / e if a and e else None for a, e in pairs]


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
    outline_pixels = np.zeros(num_classes, np.int64)  # pixels of class c on an outline
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
        for value, count in sample["outline_values"].items():
            if 0 <= value < num_classes:
                outline_pixels[value] += count
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
        "outline_pixels": outline_pixels.tolist(),
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


def void_candidate(bad: list[int], num_classes: int) -> int | None:
    """The out-of-range value that may be a void label: 255 alone, or the top of one contiguous
    run of values right above the classes (masks of 11 classes 0..10 with 11 for unlabelled
    pixels, read with num_classes=2: the run 2..11, whose top, 11, may be void)."""
    if bad == [255]:
        return 255
    if bad and bad == list(range(num_classes, bad[-1] + 1)):
        return bad[-1]
    return None


def void_or_class(
    scan: dict[str, Any], top: int, num_classes: int, class_names: Sequence[str] | None
) -> str:
    """Both readings of a possible void label with their overrides, the likelier first: void
    when 255, rare (VOID_SHARE) or named so in class_names; a class otherwise. Turning void
    into a class teaches the model to predict it; ignoring a class loses it."""
    share = scan["mask_values"][top] / sum(scan["mask_values"].values())
    name = class_names[top] if class_names is not None and top < len(class_names) else None
    named = name is not None and VOID_NAMES.search(str(name)) is not None
    held = f"{100 * share:.2f}% of the {scan['split']} pixels"
    held += f", named '{name}' in dataset.class_names" if named else ""
    void = f"dataset.ignore_index={top}"
    if top > num_classes:  # the values between are classes in both readings
        void = f"dataset.num_classes={top} {void}"
    as_class = f"dataset.num_classes={top + 1}"
    if top == 255 or share < VOID_SHARE or named:
        return (
            f"it looks like a void label: if {top} marks unlabelled pixels ({held}): {void}; "
            f"if it is a class: {as_class}"
        )
    return (
        f"{top} holds {held}, more than a void label usually does: if it is a class: "
        f"{as_class}; if it marks unlabelled pixels: {void}"
    )


def rare_class_share(class_pixels: list[int]) -> dict[int, float]:
    """{class: share of labelled pixels} of present classes under RARE_FRACTION."""
    total = sum(class_pixels)
    return {
        c: n / total for c, n in enumerate(class_pixels) if total and 0 < n / total < RARE_FRACTION
    }


def findings(
    scan: dict[str, Any],
    num_classes: int,
    ignore_index: int,
    class_names: Sequence[str] | None = None,
) -> tuple[list, list]:
    """(fatal problems, warnings) of one split's scan, each a sentence naming files and the fix.
    ``class_names``: as configured (it may name a value above num_classes, e.g. "void")."""
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
    elif bad and (top := void_candidate(bad, num_classes)) is not None:
        # "set num_classes=<top + 1>" alone would turn a void label into a class the model
        # must learn: both readings, the likelier first.
        values = f"value {top} is" if len(bad) == 1 else f"values {bad[0]}..{top} are"
        fatal.append(
            f"{split}: mask {values} >= num_classes={num_classes} and not ignore_index="
            f"{ignore_index} ({top} first in {first[top]}); "
            + void_or_class(scan, top, num_classes, class_names)
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
