"""The label check before a run: a pass is remembered until a file changes."""

import os

import numpy as np
import pytest
from PIL import Image

from segexp.data import checks
from segexp.errors import SegexpError
from tests.conftest import TINY_RUN, compose_config


def _folder_config(root):
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                root / split / "images" / f"{i}.png"
            )
            Image.fromarray(rng.integers(0, 2, (8, 8), dtype=np.uint8)).save(
                root / split / "masks" / f"{i}.png"
            )
    return compose_config([*TINY_RUN, "dataset=folder", f"dataset.root={root}"])


def test_preflight_pass_is_cached_until_a_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGEXP_CACHE_DIR", str(tmp_path / "cache"))
    cfg = _folder_config(tmp_path / "data")
    assert checks.preflight(cfg)  # scanned
    assert checks.preflight(cfg) == {}  # the cached pass
    mask = tmp_path / "data" / "val" / "masks" / "1.png"
    Image.fromarray(np.full((8, 8), 7, dtype=np.uint8)).save(mask)
    os.utime(mask, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    with pytest.raises(SegexpError, match="label check failed"):
        checks.preflight(cfg)
