"""FolderSegmentation: pairs by stem, reads, caches, and names the file it cannot use."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segexp.data.folder import FolderSegmentation
from segexp.errors import SegexpError
from tests.data.conftest import folder_split
from tests.data_factory import make_split_folders


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


def test_binary_masks_through_the_config(tmp_path):
    make_split_folders(tmp_path, {"train": 2}, mask_scale=255)
    _, mask = folder_split(tmp_path, "train", "dataset.mask_mode=binary")[0]
    assert set(np.unique(mask.numpy())) == {0, 1}


def test_cache_returns_the_same_samples(tmp_path):
    make_split_folders(tmp_path, {"train": 3})
    plain = folder_split(tmp_path, "train")
    cached = folder_split(tmp_path, "train", "dataset.cache=true")
    for i in range(3):
        for a, b in zip(plain[i], cached[i], strict=True):
            assert a.dtype == b.dtype == np.dtype("uint8") or a.dtype == b.dtype
            assert np.array_equal(a.numpy(), b.numpy())
    assert cached[0][0].dtype.is_floating_point is False
