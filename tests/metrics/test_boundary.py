"""Boundary F1: a hand-worked case, and the counts against scipy's distance transform."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from segexp.errors import SegexpError
from segexp.metrics.boundary import BoundaryF1, tolerance_pixels
from tests.metrics.conftest import IGNORE, hand_case


@pytest.mark.parametrize(
    ("tolerance", "class0", "class1"),
    [
        # 1 px: class 0 P = 4/6, R = 1 -> F1 0.8; class 1 P = 1/2, R = 1 -> F1 2/3
        (1, 0.8, 2 / 3),
        # 2 px: (0,1) and (1,0) are within sqrt(2) -> class 0 F1 1; (0,0) still sqrt(8) away
        (2, 1.0, 2 / 3),
        # 3 px: everything matches
        (3, 1.0, 1.0),
    ],
)
def test_hand_worked_case(tolerance, class0, class1):
    metric = BoundaryF1(2, IGNORE, tolerance)
    metric.update(*hand_case())
    result = metric.compute(["bg", "fg"])
    assert result["per_class_bf1"]["bg"] == pytest.approx(class0)
    assert result["per_class_bf1"]["fg"] == pytest.approx(class1)
    assert result["mBF1"] == pytest.approx((class0 + class1) / 2)


def test_a_missed_object_scores_zero_and_a_class_without_edges_is_left_out():
    target = torch.zeros(6, 6, dtype=torch.long)
    target[2:4, 2:4] = 1
    metric = BoundaryF1(3, IGNORE, 2)
    metric.update(torch.zeros_like(target), target)  # nothing predicted: recall 0
    result = metric.compute()
    assert result["per_class_bf1"]["0"] == 0 and result["per_class_bf1"]["1"] == 0
    assert math.isnan(result["per_class_bf1"]["2"])  # no class-2 edge anywhere
    assert result["mBF1"] == 0


def test_ignored_pixels_are_neither_boundaries_nor_neighbours():
    target = torch.zeros(8, 8, dtype=torch.long)
    target[:, 4:] = IGNORE  # right half unlabelled
    prediction = torch.zeros(8, 8, dtype=torch.long)
    metric = BoundaryF1(2, IGNORE, 1)
    metric.update(prediction, target)
    assert metric.counts.sum() == 0  # class 0 next to the ignored half has no edge there
    noisy = prediction.clone()
    noisy[1:7, 5:7] = 1  # anything under the ignored region changes nothing
    metric.update(noisy, target)
    assert metric.counts.sum() == 0


def reference_counts(
    prediction: np.ndarray, target: np.ndarray, num_classes: int, radius: float
) -> np.ndarray:
    """The same four counts with numpy shifts and scipy's Euclidean distance transform."""
    valid = target != IGNORE

    def boundary(classes: np.ndarray, c: int) -> np.ndarray:
        other = np.pad((classes != c) & valid, 1)
        neighbour = other[:-2, 1:-1] | other[2:, 1:-1] | other[1:-1, :-2] | other[1:-1, 2:]
        return (classes == c) & valid & neighbour

    def near(edges: np.ndarray) -> np.ndarray:
        if not edges.any():
            return np.zeros_like(edges)
        return ndimage.distance_transform_edt(~edges) <= radius

    counts = np.zeros((4, num_classes), dtype=np.int64)
    for c in range(num_classes):
        p, t = boundary(prediction, c), boundary(target, c)
        counts[:, c] = [p.sum(), (p & near(t)).sum(), t.sum(), (t & near(p)).sum()]
    return counts


def blobs(rng: np.random.Generator, shape: tuple[int, int], num_classes: int) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.normal(size=(num_classes, *shape)), (0, 3, 3))
    return noise.argmax(axis=0)


@pytest.mark.parametrize("tolerance", [0, 1, 2, 3, 0.05])
def test_counts_equal_scipy_distance_transforms_summed_over_images(tolerance):
    rng = np.random.default_rng(0)
    shape, num_classes = (40, 50), 3
    metric = BoundaryF1(num_classes, IGNORE, tolerance)
    expected = np.zeros((4, num_classes), dtype=np.int64)
    radius = tolerance_pixels(tolerance, *shape)
    for _ in range(3):
        target = blobs(rng, shape, num_classes)
        target[rng.random(shape) < 0.03] = IGNORE
        target[:5, :8] = IGNORE
        prediction = blobs(rng, shape, num_classes)
        prediction = np.where(rng.random(shape) < 0.7, target % IGNORE, prediction)
        prediction[target == IGNORE] = rng.integers(0, num_classes, (target == IGNORE).sum())
        metric.update(torch.from_numpy(prediction), torch.from_numpy(target))
        expected += reference_counts(prediction, target, num_classes, radius)
    assert metric.counts.numpy().tolist() == expected.tolist()
    assert expected[0].min() > 0 and expected[1].sum() < expected[0].sum()  # a real test
    # F1 from the summed counts (not a mean of per-image scores)
    p, h, t, f = expected.astype(float)
    f1 = 2 * (h / p) * (f / t) / (h / p + f / t)
    assert metric.compute()["mBF1"] == pytest.approx(f1.mean())


def test_batched_update_equals_one_image_at_a_time():
    rng = np.random.default_rng(1)
    targets = torch.from_numpy(np.stack([blobs(rng, (24, 24), 4) for _ in range(3)]))
    predictions = torch.from_numpy(np.stack([blobs(rng, (24, 24), 4) for _ in range(3)]))
    batched, single = BoundaryF1(4, IGNORE, 2), BoundaryF1(4, IGNORE, 2)
    batched.update(predictions, targets)
    for p, t in zip(predictions, targets, strict=True):
        single.update(p, t)
    assert torch.equal(batched.counts, single.counts)


def test_tolerance_as_a_fraction_of_the_diagonal_and_bad_values():
    assert tolerance_pixels(2, 100, 100) == 2
    assert tolerance_pixels(0.0075, 300, 400) == 4  # 0.0075 * 500 = 3.75
    with pytest.raises(SegexpError, match=r"metrics\.boundary_tolerance=-1"):
        BoundaryF1(2, IGNORE, -1)
