"""Folder datasets in real-world layouts and encodings, set up by configuration alone."""

import numpy as np
import pytest
from PIL import Image

from segexp.config.build import build
from segexp.data.decode import read_image, read_mask
from segexp.data.folder import FolderSegmentation
from segexp.errors import SegexpError

from .conftest import compose_config
from .data_factory import blocky_mask, make_split_folders, write_sample


def folder_split(root, split, *overrides):
    cfg = compose_config(["dataset=folder", f"dataset.root={root}", *overrides])
    return build(cfg.dataset[split])


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


def test_image_encodings_grayscale_rgb_rgba_16bit(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rgba = np.concatenate([rgb, np.full((5, 6, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    wide = rgb[..., 0].astype(np.uint16) * 257
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert np.array_equal(read_image(tmp_path / "rgb.png", 3), rgb)
    assert np.array_equal(read_image(tmp_path / "rgba.png", 3), rgb)
    assert np.array_equal(read_image(tmp_path / "gray.png", 3), np.repeat(rgb[..., :1], 3, 2))
    assert np.array_equal(read_image(tmp_path / "gray.png", 1), rgb[..., 0])
    assert np.array_equal(read_image(tmp_path / "wide.png", 1), rgb[..., 0])
    twelve_bit = (np.arange(30, dtype=np.uint16).reshape(5, 6) * 100) + 1000
    Image.fromarray(twelve_bit).save(tmp_path / "twelve.png")
    stretched = read_image(tmp_path / "twelve.png", 1, uint16_scale="per_image")
    assert stretched.min() == 0 and stretched.max() == 255 and stretched.dtype == np.uint8
    assert read_image(tmp_path / "twelve.png", 3).shape == (5, 6, 3)


def test_mask_encodings_index_binary_palette_and_colour(tmp_path):
    classes = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    Image.fromarray(classes).save(tmp_path / "index.png")
    Image.fromarray((classes > 0).astype(np.uint8) * 255).save(tmp_path / "binary.png")
    palette_mask = Image.fromarray(classes, mode="P")
    palette_mask.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10])
    palette_mask.save(tmp_path / "palette.png")
    colours = [[0, 0, 0], [128, 64, 128], [70, 70, 70]]
    Image.fromarray(np.array(colours, np.uint8)[classes]).save(tmp_path / "colour.png")
    assert np.array_equal(read_mask(tmp_path / "index.png"), classes)
    assert np.array_equal(read_mask(tmp_path / "binary.png", "binary"), classes > 0)
    assert np.array_equal(read_mask(tmp_path / "palette.png"), classes)
    assert np.array_equal(read_mask(tmp_path / "colour.png", "color", colours), classes)
    with pytest.raises(SegexpError, match=r"colour \(70, 70, 70\).*not in dataset.colors"):
        read_mask(tmp_path / "colour.png", "color", colours[:2])
    with pytest.raises(SegexpError, match="mask_mode=color"):
        read_mask(tmp_path / "colour.png", "index")


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
