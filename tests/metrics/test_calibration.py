"""Expected calibration error and the reliability bins, against a case worked by hand."""

import math

import numpy as np
import pytest
import torch

from segexp.metrics.calibration import Calibration, ece_rows, read_calibration_csv

IGNORE = 255


def _image(pixels: list[tuple[float, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1 x len(pixels) image of two classes: (probability of class 0, target) per pixel."""
    p0 = torch.tensor([[p for p, _ in pixels]])
    probabilities = torch.stack([p0, 1 - p0])
    target = torch.tensor([[t for _, t in pixels]])
    return probabilities, target


# (probability of class 0, target). Confidence = max probability; bins ((k-1)/15, k/15].
CASE = [
    [(0.90, 0), (0.38, 0), (0.30, 1), (0.50, IGNORE)],  # conf .90 right, .62 wrong, .70 right
    [(0.19, 0), (1.00, 0)],  # conf .81 wrong, 1.0 right
    [(0.85, 0)],  # conf .85 right: the same bin as .81
]


def test_ece_of_a_hand_made_case():
    """By hand: bin 13 {.90 right}: |1 - .90| = .10; bin 9 {.62 wrong}: .62; bin 10 {.70
    right}: .30; bin 12 {.81 wrong, .85 right}: |1 - 1.66| = .66; bin 14 {1.0 right}: 0.
    ECE = (.10 + .62 + .30 + .66 + 0) / 6 labelled pixels = 0.28."""
    calibration = Calibration(num_classes=2, ignore_index=IGNORE)
    for pixels in CASE:
        calibration.update(*_image(pixels))
    result = calibration.compute()
    assert result["ece"] == pytest.approx(0.28, abs=1e-6)
    bins = result["bins"]
    assert bins["count"] == [0] * 9 + [1, 1, 0, 2, 1, 1]
    assert bins["confidence"][12] == pytest.approx((0.81 + 0.85) / 2, abs=1e-6)
    assert bins["accuracy"][12] == 0.5 and bins["accuracy"][9] == 0.0
    assert math.isnan(bins["accuracy"][0])  # an empty bin
    labelled, gaps = calibration.per_image()
    assert labelled.tolist() == [3, 2, 1]  # the ignored pixel never counts
    assert gaps[1, 12] == pytest.approx(-0.81, abs=1e-6) and gaps[1, 14] == pytest.approx(0)
    # Summed over images, the per-image gaps give the split's ECE exactly.
    assert ece_rows(gaps.sum(0)[None], labelled.sum()[None])[0] == pytest.approx(0.28, abs=1e-6)


def test_ece_agrees_with_an_independent_computation_on_random_maps(tmp_path):
    rng = np.random.default_rng(0)
    calibration = Calibration(num_classes=3, ignore_index=IGNORE)
    confidences, right = [], []
    for _ in range(4):
        logits = torch.from_numpy(rng.normal(size=(3, 6, 7)) * 2)
        probabilities = logits.softmax(dim=0)
        target = torch.from_numpy(rng.integers(0, 3, size=(6, 7)))
        target[0, :3] = IGNORE
        calibration.update(probabilities, target)
        keep = (target != IGNORE).numpy()
        confidences += probabilities.max(0).values.numpy()[keep].tolist()
        right += (probabilities.argmax(0) == target).numpy()[keep].tolist()
    confidences, right = np.array(confidences), np.array(right, float)
    edges = np.linspace(0, 1, 16)
    index = np.digitize(confidences, edges[1:-1], right=True)  # (lower, upper] bins
    expected = sum(
        abs(right[index == b].mean() - confidences[index == b].mean()) * (index == b).mean()
        for b in range(15)
        if (index == b).any()
    )
    assert calibration.compute()["ece"] == pytest.approx(expected, abs=1e-6)
    calibration.write_csv(tmp_path / "calibration.csv", ["a", "b", "c", "d"])
    ids, labelled, gaps = read_calibration_csv(tmp_path / "calibration.csv")
    assert ids == ["a", "b", "c", "d"] and labelled.sum() == len(confidences)
    assert ece_rows(gaps.sum(0)[None], labelled.sum()[None])[0] == pytest.approx(expected, 1e-4)
