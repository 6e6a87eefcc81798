"""Cross-entropy against its definition, computed pixel by pixel."""

import math

import pytest
import torch

from segexp.losses.cross_entropy import cross_entropy
from tests.losses.conftest import CE_LOGITS, CE_TARGET, IGNORE, as_image


def hand_cross_entropy(logits, target, weights, smoothing) -> float:
    """Reference from the definition, pixel by pixel: smoothed target distribution q,
    sum of -w_c q_c log p_c, divided by the summed weight of the labelled pixels."""
    num_classes = len(weights)
    numerator = denominator = 0.0
    for row, label in zip(logits.tolist(), target.tolist(), strict=True):
        if label == IGNORE:
            continue
        log_normaliser = math.log(sum(math.exp(v) for v in row))
        for c in range(num_classes):
            q = (1 - smoothing) * (c == label) + smoothing / num_classes
            numerator += weights[c] * q * (log_normaliser - row[c])
        denominator += weights[label]
    return numerator / denominator


@pytest.mark.parametrize(
    ("weights", "smoothing"),
    [(None, 0.0), ([1.0, 2.0, 0.5], 0.0), (None, 0.1), ([1.0, 2.0, 0.5], 0.1)],
)
def test_cross_entropy_matches_hand_computation(weights, smoothing):
    loss = cross_entropy(class_weights=weights, label_smoothing=smoothing)
    got = loss(as_image(CE_LOGITS), as_image(CE_TARGET)).item()
    expected = hand_cross_entropy(CE_LOGITS, CE_TARGET, weights or [1.0] * 3, smoothing)
    assert got == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_unweighted_value_by_hand():
    # One pixel, logits (0, 0), label 1: -log(1/2).
    loss = cross_entropy()(torch.zeros(1, 2, 1, 1), torch.ones(1, 1, 1, dtype=torch.long))
    assert loss.item() == pytest.approx(math.log(2))


def test_cross_entropy_weights_are_a_buffer_that_follows_the_module():
    loss = cross_entropy(class_weights=[1.0, 2.0])
    assert "weight" in dict(loss.named_buffers())
    assert loss.to(torch.float64).weight.dtype == torch.float64


@pytest.mark.parametrize("bad", [[1.0, 0.0], [1.0, -2.0]])
def test_cross_entropy_rejects_non_positive_weights(bad):
    with pytest.raises(ValueError, match="positive"):
        cross_entropy(class_weights=bad)
