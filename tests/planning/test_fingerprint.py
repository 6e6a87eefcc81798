"""A dataset's fingerprint: the numbers of the audit's survey, a void label read from the masks,
the palette of palette PNG masks."""

import numpy as np
import pytest
from PIL import Image

from segexp.data.scan import outlines
from segexp.errors import SegexpError
from segexp.planning.fingerprint import fingerprint
from tests.conftest import compose_config

PALETTE = [[0, 0, 0], [200, 30, 30], [30, 200, 30]]


def palette_folders(root, sizes, void_pixels: int = 4):
    """<root>/<split>/images + masks: three classes in palette PNG masks, and value 3 (void) on
    ``void_pixels`` pixels of each mask."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            mask = rng.integers(0, 3, (h, w)).astype(np.uint8)
            mask.flat[:void_pixels] = 3
            image = (40 + 60 * mask[..., None] + rng.integers(0, 9, (h, w, 3))).astype(np.uint8)
            Image.fromarray(image).save(root / split / "images" / f"{i}.png")
            png = Image.fromarray(mask, mode="P")
            png.putpalette([v for colour in PALETTE for v in colour] + [255] * 3)
            png.save(root / split / "masks" / f"{i}.png")
    return root


def config(root, *overrides):
    return compose_config(
        ["dataset=folder", f"dataset.root={root}", "dataset.num_classes=3", *overrides]
    )


def test_the_fingerprint_reads_sizes_shares_void_and_palette(tmp_path):
    root = palette_folders(tmp_path, [(20, 30), (24, 36), (40, 60)])
    found, cfg = fingerprint(config(root))
    assert found.median_hw == (24, 36) and found.images == {"train": 3, "val": 3, "test": 3}
    # Value 3, right above the 3 classes, on 4 of each mask's pixels: void, the plan's ignore.
    total = 20 * 30 + 24 * 36 + 40 * 60
    assert found.ignore_index == 3 and cfg.dataset.ignore_index == 3
    assert found.void_share == pytest.approx(12 / total)
    assert found.palette == PALETTE
    masks = [np.asarray(Image.open(root / "train" / "masks" / f"{i}.png")) for i in range(3)]
    labelled = np.concatenate([m[m < 3].ravel() for m in masks])
    shares = np.bincount(labelled, minlength=3) / labelled.size
    assert found.class_shares == pytest.approx(shares.tolist())
    on_outline = np.concatenate([m[outlines(m)] for m in masks])
    outline_pixels = np.bincount(on_outline[on_outline < 3], minlength=3)
    counts = np.bincount(labelled, minlength=3)
    assert found.class_widths == pytest.approx((2 * counts / outline_pixels).tolist())
    assert len(found.mean) == 3 and len(found.std) == 3


def test_a_dataset_the_audit_refuses_gets_its_lines_and_no_plan(tmp_path):
    root = palette_folders(tmp_path, [(20, 30)], void_pixels=0)
    (root / "train" / "masks" / "0.png").write_bytes(b"not a png")
    with pytest.raises(SegexpError, match=r"the label audit found problems, so there is no plan"):
        fingerprint(config(root))
