from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segexp.data.folder import FolderSegmentation
from segexp.errors import SegexpError


def write_pair(root: Path, stem: str, size=(20, 30), mask_suffix=".png", mask_size=None):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    h, w = size
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / "images" / f"{stem}.jpg")
    mh, mw = mask_size or size
    mask = np.zeros((mh, mw), np.uint8)
    mask[: mh // 2] = 255
    Image.fromarray(mask).save(root / "masks" / f"{stem}{mask_suffix}")
    return image, mask


def test_pairs_by_stem_and_maps_binary_masks(tmp_path):
    write_pair(tmp_path, "b")
    write_pair(tmp_path, "a")
    ds = FolderSegmentation(tmp_path / "images", tmp_path / "masks", binary_masks=True)
    assert ds.names == ["a", "b"]
    image, mask = ds[0]
    assert tuple(image.shape) == (3, 20, 30)
    assert set(np.unique(mask.numpy())) == {0, 1}


def test_grayscale_reading(tmp_path):
    write_pair(tmp_path, "a")
    image, _ = FolderSegmentation(tmp_path / "images", tmp_path / "masks", in_channels=1)[0]
    assert tuple(image.shape) == (1, 20, 30)


def test_missing_mask_names_the_image(tmp_path):
    write_pair(tmp_path, "a")
    write_pair(tmp_path, "lonely")
    (tmp_path / "masks" / "lonely.png").unlink()
    with pytest.raises(SegexpError, match=r"lonely\.jpg.*same file stem"):
        FolderSegmentation(tmp_path / "images", tmp_path / "masks")


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(SegexpError, match="does not exist"):
        FolderSegmentation(tmp_path / "nope", tmp_path / "masks")


def test_unreadable_image_is_named(tmp_path):
    write_pair(tmp_path, "a")
    (tmp_path / "images" / "a.jpg").write_bytes(b"not a jpeg")
    ds = FolderSegmentation(tmp_path / "images", tmp_path / "masks")
    with pytest.raises(SegexpError, match=r"cannot read .*a\.jpg"):
        ds[0]


def test_size_mismatch_is_named(tmp_path):
    write_pair(tmp_path, "a", mask_size=(10, 10))
    ds = FolderSegmentation(tmp_path / "images", tmp_path / "masks")
    with pytest.raises(SegexpError, match="same size"):
        ds[0]
