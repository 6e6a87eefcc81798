"""Image and mask files in every encoding the folder datasets read."""

import numpy as np
import pytest
from PIL import Image

from segexp.data.decode import read_image, read_mask
from segexp.errors import SegexpError


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
