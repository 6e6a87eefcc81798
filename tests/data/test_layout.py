"""Folder datasets in real-world layouts, set up by configuration alone."""

import numpy as np
import pytest
from PIL import Image

from segexp.data.folder import FolderSegmentation
from segexp.errors import SegexpError
from tests.data.conftest import folder_split
from tests.data_factory import blocky_mask, make_split_folders, write_sample


def test_default_layout_split_folders(tmp_path):
    make_split_folders(tmp_path, {"train": 3, "val": 2})
    assert folder_split(tmp_path, "train").names == ["train0", "train1", "train2"]
    assert folder_split(tmp_path, "val").names == ["val0", "val1"]


def test_camvid_layout_train_and_trainannot(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for stem in ("0001", "0002"):
            write_sample(tmp_path / split, tmp_path / f"{split}annot", stem, blocky_mask(rng))
    ds = folder_split(
        tmp_path, "val", "dataset.layout.images='{split}'", "dataset.layout.masks='{split}annot'"
    )
    assert ds.names == ["0001", "0002"]
    assert ds.pairs[0][1] == tmp_path / "valannot" / "0001.png"


def test_mask_suffix_and_extension_in_one_folder(tmp_path):
    rng = np.random.default_rng(0)
    pool = tmp_path / "all"
    for stem in ("a", "b"):
        mask = blocky_mask(rng)
        write_sample(pool, pool, stem, mask, image_ext=".jpg", mask_name=f"{stem}_mask.png")
        Image.fromarray(mask).save(pool / f"{stem}_mask.bmp")  # same suffix, other extension
    ds = FolderSegmentation(pool, pool, mask_suffix="_mask", mask_ext="png")
    assert ds.names == ["a", "b"]
    assert [m.name for _, m in ds.pairs] == ["a_mask.png", "b_mask.png"]


def test_split_from_list_files(tmp_path):
    rng = np.random.default_rng(0)
    for stem in ("a", "b", "c", "d"):
        write_sample(tmp_path / "images", tmp_path / "masks", stem, blocky_mask(rng))
    (tmp_path / "train.txt").write_text("d\n# a comment\nimages/b.png\n\n")
    (tmp_path / "val.txt").write_text("a\nc.png\n")
    common = [
        "dataset.layout.images=images",
        "dataset.layout.masks=masks",
        "dataset.split_by=lists",
    ]
    assert folder_split(tmp_path, "train", *common).names == ["d", "b"]
    assert folder_split(tmp_path, "val", *common).names == ["a", "c"]
    (tmp_path / "val.txt").write_text("a\nzzz\n")
    with pytest.raises(SegexpError, match=r"val\.txt names 1 sample.*zzz"):
        folder_split(tmp_path, "val", *common)


def test_random_fraction_split_is_disjoint_complete_and_seeded(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(30):
        write_sample(tmp_path / "images", tmp_path / "masks", f"{i:02d}", blocky_mask(rng, (8, 8)))
    common = [
        "dataset.layout.images=images",
        "dataset.layout.masks=masks",
        "dataset.split_by=random",
    ]
    train = folder_split(tmp_path, "train", *common).names
    val = folder_split(tmp_path, "val", *common).names
    assert len(train) == 24 and len(val) == 6
    assert sorted(train + val) == [f"{i:02d}" for i in range(30)]
    assert folder_split(tmp_path, "val", *common).names == val  # deterministic
    other = folder_split(tmp_path, "val", *common, "dataset.split_seed=1").names
    assert other != val and len(other) == 6
