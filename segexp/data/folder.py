"""Images and masks from folders, in the layouts of segexp/data/layout.py.

FolderSegmentation("{split}/images", "{split}/masks", root="/data/mine", split="train")
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from segexp.data.decode import MASK_MODES, read_image, read_mask
from segexp.data.layout import pair_files, select_split
from segexp.data.sample import Sample, to_tensors
from segexp.errors import SegexpError


def _resolve(root: str | Path | None, path: str | Path, split: str) -> Path:
    path = Path(str(path).replace("{split}", split))
    return path if root is None or path.is_absolute() else Path(root) / path


class FolderSegmentation(Dataset):
    """One split of a folder dataset. Every image must have a mask.

    ``image_dir`` / ``mask_dir`` may contain ``{split}`` and are relative to ``root`` when given.
    ``split_by``: ``folders`` (the folders hold exactly this split), ``lists`` (the file
    ``split_lists[split]`` names the samples, one per line) or ``random`` (a seeded share
    ``split_fractions[split]`` of one pool). ``mask_mode``: ``index`` (stored values are classes),
    ``binary`` (0 / non-zero -> 0 / 1, e.g. 0/255 masks) or ``color`` (RGB colours, ``colors``
    gives one [r, g, b] per class). ``lossy_masks=True`` accepts JPEG masks and binary masks
    with more than two levels (data/decode.py ``read_mask``). ``cache=True`` decodes everything
    once, up front, and keeps the uint8 arrays in memory (shared with forked DataLoader workers).
    """

    def __init__(
        self,
        image_dir: str | Path,
        mask_dir: str | Path,
        *,
        root: str | Path | None = None,
        split: str = "train",
        mask_suffix: str = "",
        mask_ext: str | None = None,
        split_by: str = "folders",
        split_lists: dict | None = None,
        split_fractions: dict | None = None,
        split_seed: int = 0,
        in_channels: int = 3,
        mask_mode: str = "index",
        binary_masks: bool = False,
        lossy_masks: bool = False,
        colors: list | None = None,
        ignore_index: int = 255,
        uint16_scale: str = "full",
        cache: bool = False,
        transform=None,
    ) -> None:
        if int(in_channels) not in (1, 3):
            raise SegexpError(f"dataset.in_channels={in_channels}: folder images are 1 or 3")
        mask_mode = "binary" if binary_masks else str(mask_mode)
        if mask_mode not in MASK_MODES:
            raise SegexpError(f"dataset.mask_mode={mask_mode!r} is not one of {MASK_MODES}")
        self.image_dir = _resolve(root, image_dir, split)
        self.mask_dir = _resolve(root, mask_dir, split)
        list_file = None
        if split_by == "lists" and split_lists and split_lists.get(split):
            list_file = _resolve(root, split_lists[split], split)
        pairing = select_split(
            pair_files(self.image_dir, self.mask_dir, mask_suffix or "", mask_ext),
            split,
            split_by,
            list_file,
            split_fractions,
            split_seed,
        )
        missing = pairing.images_without_mask
        if missing:
            names = ", ".join(p.name for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
            expected = f"<stem>{mask_suffix or ''}{mask_ext or '.<image extension>'}"
            raise SegexpError(
                f"{len(missing)} image(s) in {self.image_dir} have no mask in {self.mask_dir} "
                f"({names}): add a mask with the same file stem ({expected}) or remove the image"
            )
        self.split = split
        self.pairs = pairing.pairs
        self.masks_without_image = pairing.masks_without_image
        self.names = [image.stem for image, _ in self.pairs]
        self.in_channels = int(in_channels)
        self.mask_mode = mask_mode
        self.lossy_masks = bool(lossy_masks)
        self.colors = None if colors is None else [tuple(int(v) for v in c) for c in colors]
        self.ignore_index = int(ignore_index)
        self.uint16_scale = uint16_scale
        self.transform = transform
        self._cache: list[Sample] | None = None
        if cache:
            with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes without the GIL
                self._cache = list(pool.map(self._decode, range(len(self.pairs))))

    def __len__(self) -> int:
        return len(self.pairs)

    def read_image(self, index: int) -> np.ndarray:
        return read_image(self.pairs[index][0], self.in_channels, self.uint16_scale)

    def read_mask(self, index: int) -> np.ndarray:
        return read_mask(
            self.pairs[index][1], self.mask_mode, self.colors, self.ignore_index, self.lossy_masks
        )

    def _decode(self, index: int) -> Sample:
        image_path, mask_path = self.pairs[index]
        image, mask = self.read_image(index), self.read_mask(index)
        if image.shape[:2] != mask.shape:
            raise SegexpError(
                f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its mask "
                f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}: they must be the same size"
            )
        return image, mask

    def load(self, index: int) -> Sample:
        return self._cache[index] if self._cache is not None else self._decode(index)

    def __getitem__(self, index: int):
        image, mask = self.load(index)
        return to_tensors(image, mask, self.transform)
