"""Images and masks in two folders, paired by file stem: images/a.jpg <-> masks/a.png."""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from segexp.data.sample import Sample, to_tensors
from segexp.errors import SegexpError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SegexpError(f"folder {folder} does not exist: check dataset.root and the layout")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_array(path: Path, mode: str | None = None) -> np.ndarray:
    """Decode an image file, converted to ``mode`` (e.g. "L", "RGB") when given."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert(mode) if mode else image)
    except (UnidentifiedImageError, OSError) as err:
        raise SegexpError(f"cannot read {path}: {err}. Replace or remove the file") from None


class FolderSegmentation(Dataset):
    """One split: every image in ``image_dir`` must have a mask with the same stem."""

    def __init__(
        self,
        image_dir: str | Path,
        mask_dir: str | Path,
        in_channels: int = 3,
        binary_masks: bool = False,
        transform=None,
        num_classes: int | None = None,
        ignore_index: int = 255,
    ) -> None:
        image_dir, mask_dir = Path(image_dir), Path(mask_dir)
        images = list_images(image_dir)
        masks = {p.stem: p for p in list_images(mask_dir)}
        missing = [p.name for p in images if p.stem not in masks]
        if missing:
            raise SegexpError(
                f"{len(missing)} image(s) in {image_dir} have no mask in {mask_dir} "
                f"(first: {missing[0]}): add a mask with the same file stem or remove the image"
            )
        self.pairs = [(p, masks[p.stem]) for p in images]
        self.names = [p.stem for p in images]
        self.image_mode = {1: "L", 3: "RGB"}.get(int(in_channels))
        if self.image_mode is None:
            raise SegexpError(f"dataset.in_channels={in_channels}: folder images are 1 or 3")
        self.binary_masks = binary_masks
        self.transform = transform
        self.num_classes, self.ignore_index = num_classes, ignore_index
        if self.pairs and num_classes is not None:  # a wrong class count shows before training
            mask_path = self.pairs[0][1]
            mask = read_array(mask_path)
            self._check_classes((mask > 0).astype(np.uint8) if binary_masks else mask, mask_path)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Sample:
        image_path, mask_path = self.pairs[index]
        image = read_array(image_path, self.image_mode)
        mask = read_array(mask_path)
        if mask.ndim != 2:
            raise SegexpError(
                f"mask {mask_path} has shape {mask.shape}: masks are single-channel class maps"
            )
        if image.shape[:2] != mask.shape:
            raise SegexpError(
                f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its mask "
                f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}: they must be the same size"
            )
        if self.binary_masks:
            mask = (mask > 0).astype(np.uint8)
        self._check_classes(mask, mask_path)
        return image, mask

    def _check_classes(self, mask: np.ndarray, mask_path: Path) -> None:
        if self.num_classes is None:
            return
        values = np.unique(mask)
        bad = values[(values >= self.num_classes) & (values != self.ignore_index)]
        if bad.size:
            hint = " or dataset.binary_masks=true" if set(values.tolist()) <= {0, 255} else ""
            raise SegexpError(
                f"mask {mask_path} has value {int(bad.max())} but dataset.num_classes="
                f"{self.num_classes} (values {values.tolist()[:10]}): set dataset.num_classes="
                f"{int(bad.max()) + 1}{hint}, or mark such pixels with dataset.ignore_index="
                f"{self.ignore_index}"
            )

    def __getitem__(self, index: int):
        image, mask = self.load(index)
        return to_tensors(image, mask, self.transform)
