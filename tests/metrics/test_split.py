"""SplitMetrics: the confusion matrix and boundary F1 of a split, together."""

import pytest

from segexp.metrics.split import SplitMetrics
from tests.metrics.conftest import IGNORE, hand_case


def test_split_metrics_join_the_confusion_matrix_and_boundary_f1():
    prediction, target = hand_case()
    metrics = SplitMetrics(2, IGNORE, 1)
    metrics.update(prediction, target)
    result = metrics.compute(["bg", "fg"])
    assert result["per_class_iou"]["fg"] == pytest.approx(0.5)
    assert result["mBF1"] == pytest.approx((0.8 + 2 / 3) / 2)
    metrics.reset()
    assert metrics.matrix.sum() == 0 and metrics.boundary.counts.sum() == 0
