"""dataset.resize and dataset.eval_resize: before every preset, and at evaluation alone."""

import numpy as np
import pytest

from segexp.data.loaders import evaluation_transform, training_transform
from segexp.errors import SegexpError
from tests.conftest import TINY, compose_config


def _apply(transform, size=(40, 60)):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    mask = np.kron(rng.integers(0, 3, (size[0] // 10, size[1] // 10)), np.ones((10, 10), np.uint8))
    out = transform(image=image, mask=mask.astype(np.uint8))
    return out["image"], out["mask"], mask


def test_resize_keys_come_before_every_preset_and_evaluation():
    cfg = compose_config([*TINY, "aug=strong", "dataset.resize=0.5", "dataset.image_size=[8,8]"])
    image, mask, original = _apply(evaluation_transform(cfg))
    assert image.shape == (20, 30, 3)  # half size, no crop at evaluation
    assert np.array_equal(mask, original[::2, ::2])  # nearest: no new label values
    image, mask, _ = _apply(training_transform(cfg))
    assert image.shape == (8, 8, 3) and mask.shape == (8, 8)  # then the preset's crop
    cfg = compose_config([*TINY, "dataset.resize=[20,30]", "dataset.eval_resize=[10,12]"])
    assert _apply(evaluation_transform(cfg))[0].shape == (10, 12, 3)
    assert evaluation_transform(compose_config(TINY)) is None  # nothing asked, nothing added
    with pytest.raises(SegexpError, match=r"dataset.resize=.*\[height, width\]"):
        training_transform(compose_config([*TINY, "dataset.resize=[0,5]"]))
