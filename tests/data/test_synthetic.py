"""The synthetic dataset: reproducible scenes of every class, shape deciding, not colour."""

import numpy as np
import pytest

from segexp.data.synthetic import CLASS_NAMES, SyntheticSegmentation
from segexp.errors import SegexpError
from tests.conftest import compose_config


def test_samples_are_reproducible_and_splits_differ():
    a = SyntheticSegmentation("train", 4, (48, 64), seed=3)
    b = SyntheticSegmentation("train", 4, (48, 64), seed=3)
    val = SyntheticSegmentation("val", 4, (48, 64), seed=3)
    for i in range(4):
        np.testing.assert_array_equal(a.load(i)[0], b.load(i)[0])
        np.testing.assert_array_equal(a.load(i)[1], b.load(i)[1])
    assert not np.array_equal(a.load(0)[0], val.load(0)[0])
    assert not np.array_equal(
        a.load(0)[0], SyntheticSegmentation("train", 1, (48, 64), 4).load(0)[0]
    )


def test_tensors_are_uint8_chw_and_class_maps():
    ds = SyntheticSegmentation("train", 2, (48, 64))
    image, mask = ds[0]
    assert image.dtype.is_floating_point is False and tuple(image.shape) == (3, 48, 64)
    assert tuple(mask.shape) == (48, 64)


def test_every_class_appears_at_varied_sizes():
    ds = SyntheticSegmentation("train", 32, (96, 96))
    masks = np.stack([ds.load(i)[1] for i in range(len(ds))])
    counts = np.bincount(masks.ravel(), minlength=len(CLASS_NAMES))
    assert len(counts) == len(CLASS_NAMES) >= 4
    assert (counts > 0).all()
    assert counts[0] == counts.max()  # background dominates, as in real data


def test_colour_does_not_give_the_class_away():
    """The mean colour of each foreground class is about the same: shape has to decide."""
    ds = SyntheticSegmentation("train", 64, (64, 64))
    samples = [ds.load(i) for i in range(len(ds))]
    images = np.stack([s[0] for s in samples]).astype(np.float64)
    masks = np.stack([s[1] for s in samples])
    means = [images[masks == c].mean() for c in range(1, len(CLASS_NAMES))]
    assert max(means) - min(means) < 15, means


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split"):
        SyntheticSegmentation("holdout", 1, (8, 8))


def test_imbalanced_preset_has_rare_classes_under_one_percent():
    cfg = compose_config(["dataset=synthetic_imbalanced"])
    data = SyntheticSegmentation(
        "train", 150, cfg.dataset.image_size, object_probs=cfg.dataset.object_probs
    )
    counts = sum(np.bincount(data.load(i)[1].ravel(), minlength=5) for i in range(len(data)))
    share = counts / counts.sum()
    assert 0 < share[2] < 0.01 and 0 < share[4] < 0.01  # ring, thread
    assert share[1] > 0.05 and share[3] > 0.05
    with pytest.raises(SegexpError, match="object_probs"):
        SyntheticSegmentation("train", 1, (8, 8), object_probs=[1, 2])
