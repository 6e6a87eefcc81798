"""Model statistics: parameters and GFLOPs against a hand count."""

import pytest
from torch import nn

from segexp.models.stats import model_stats
from segexp.models.wrapper import SegmentationModel


def test_gflops_match_a_hand_count():
    conv = SegmentationModel(nn.Conv2d(3, 4, 3, padding=1, bias=False))
    stats = model_stats(conv, in_channels=3, size=(8, 8), device="cpu")
    assert stats["num_parameters"] == 4 * 3 * 9
    # multiply and add counted separately; summary.json keeps 4 significant digits
    assert stats["gflops"] == pytest.approx(2 * 4 * 3 * 9 * 8 * 8 / 1e9, rel=1e-3)
