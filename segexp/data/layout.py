"""Which files make up a split: listing folders, pairing images with masks, choosing samples.

Layouts covered by configuration alone:
- split folders: ``{split}/images`` + ``{split}/masks``, or ``{split}`` + ``{split}annot``;
- one pool (``images/`` + ``masks/``) split by list files or by a seeded random fraction;
- masks named like the image (``a.jpg`` -> ``a.png``) or with a suffix (``a_mask.png``).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segexp.data.decode import IMAGE_SUFFIXES
from segexp.errors import SegexpError

SPLITS = ("train", "val", "test")
SPLIT_MODES = ("folders", "lists", "random")
IGNORED_FILES = {"thumbs.db", "desktop.ini"}


@dataclass
class Pairing:
    pairs: list[tuple[Path, Path]]
    images_without_mask: list[Path] = field(default_factory=list)
    masks_without_image: list[Path] = field(default_factory=list)


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder``; another kind of file there is an error naming it."""
    if not folder.is_dir():
        raise SegexpError(f"folder {folder} does not exist: check dataset.root and the layout")
    entries = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.name.lower() not in IGNORED_FILES
    ]
    dangling = [p for p in entries if p.is_symlink() and not p.exists()]
    if dangling:
        raise SegexpError(
            f"{dangling[0]} is a link to {os.readlink(dangling[0])}, which does not exist "
            f"({len(dangling)} such link(s) in {folder}): fix or remove the link"
        )
    files = sorted(p for p in entries if p.is_file())
    strangers = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if strangers:
        raise SegexpError(
            f"{strangers[0]} is not an image ({len(strangers)} such file(s) in {folder}; image "
            f"files end in {', '.join(sorted(IMAGE_SUFFIXES))}): move it out of the folder"
        )
    if not files:
        raise SegexpError(f"folder {folder} has no images: check dataset.root and the layout")
    return files


def _unique_stems(files: list[Path], folder: Path, strip: str = "") -> None:
    """Two files that differ only in extension (a.png, a.jpg) would pair by chance."""
    seen: dict[str, Path] = {}
    for path in files:
        other = seen.setdefault(path.stem, path)
        if other is not path:
            raise SegexpError(
                f"{other.name} and {path.name} in {folder} have the same name stem: keep one of "
                "them (samples are paired by stem)"
                + (" or set dataset.layout.mask_ext" if strip == "mask" else "")
            )


def pair_files(
    image_dir: Path, mask_dir: Path, mask_suffix: str = "", mask_ext: str | None = None
) -> Pairing:
    """Pair each image with the mask named ``<image stem><mask_suffix><mask_ext>``.

    ``mask_ext=None`` accepts any image extension for the mask.
    """
    images = list_images(image_dir)
    masks = list_images(mask_dir)
    if image_dir.resolve() == mask_dir.resolve():
        # Images and masks in one folder, told apart by the suffix.
        if not mask_suffix:
            raise SegexpError(
                f"images and masks share {image_dir}: set dataset.layout.mask_suffix (e.g. _mask)"
            )
        masks = [p for p in masks if p.stem.endswith(mask_suffix)]
        images = [p for p in images if not p.stem.endswith(mask_suffix)]
    ext = None if mask_ext is None else ("." + str(mask_ext).lstrip(".")).lower()
    _unique_stems(images, image_dir)
    _unique_stems([m for m in masks if ext is None or m.suffix.lower() == ext], mask_dir, "mask")
    by_name: dict[str, Path] = {}
    for mask in masks:
        if ext is not None and mask.suffix.lower() != ext:
            continue
        if mask_suffix and not mask.stem.endswith(mask_suffix):
            continue
        by_name.setdefault(mask.stem[: len(mask.stem) - len(mask_suffix)], mask)
    pairs, missing = [], []
    for image in images:
        mask = by_name.get(image.stem)
        if mask is None:
            missing.append(image)
        else:
            pairs.append((image, mask))
    used = {mask for _, mask in pairs}
    orphans = [m for m in masks if m not in used]
    return Pairing(pairs, missing, orphans)


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise SegexpError(f"split list {path} does not exist: check dataset.split_lists")
    entries = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(Path(line).stem)  # "a", "a.png" and "images/a.png" all mean a
    return entries


def select_split(
    pairing: Pairing,
    split: str,
    split_by: str = "folders",
    list_file: Path | None = None,
    fractions: dict | None = None,
    seed: int = 0,
) -> Pairing:
    """The samples of ``split``: all of them (folders), those in a list file, or a seeded share."""
    if split_by == "folders":
        return pairing
    if split_by == "lists":
        if list_file is None:
            raise SegexpError(f"dataset.split_by=lists needs dataset.split_lists.{split}")
        wanted = _read_list(Path(list_file))
        by_stem = {image.stem: (image, mask) for image, mask in pairing.pairs}
        missing_images = {image.stem: image for image in pairing.images_without_mask}
        unknown = [s for s in wanted if s not in by_stem and s not in missing_images]
        if unknown:
            raise SegexpError(
                f"{list_file} names {len(unknown)} sample(s) with no image (first: {unknown[0]}): "
                "fix the list or add the files"
            )
        return Pairing(
            [by_stem[s] for s in wanted if s in by_stem],
            [missing_images[s] for s in wanted if s in missing_images],
            [],
        )
    if split_by == "random":
        shares = {s: float((fractions or {}).get(s, 0.0)) for s in SPLITS}
        if any(v < 0 for v in shares.values()) or abs(sum(shares.values()) - 1.0) > 1e-6:
            raise SegexpError(f"dataset.split_fractions={shares} must be non-negative and sum to 1")
        items = [(image, mask) for image, mask in pairing.pairs]
        items += [(image, None) for image in pairing.images_without_mask]
        items.sort(key=lambda item: item[0].name)
        order = np.random.default_rng(int(seed)).permutation(len(items))
        bounds = np.rint(np.cumsum([shares[s] for s in SPLITS]) * len(items)).astype(int)
        start = 0 if split == "train" else bounds[SPLITS.index(split) - 1]
        chosen = [items[i] for i in sorted(order[start : bounds[SPLITS.index(split)]])]
        return Pairing(
            [(i, m) for i, m in chosen if m is not None],
            [i for i, m in chosen if m is None],
            [],
        )
    raise SegexpError(f"dataset.split_by={split_by!r} is not one of {', '.join(SPLIT_MODES)}")
