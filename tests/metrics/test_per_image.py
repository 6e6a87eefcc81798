"""Per-image counts: summed, they are the split's confusion matrix."""

import pytest
import torch

from segexp.metrics.confusion import ConfusionMatrix
from segexp.metrics.per_image import PerImageScores, miou_from_counts


def test_per_image_counts_sum_to_the_split_confusion_matrix():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (5, 9, 7), generator=gen)
    target[target == 3] = 255  # class 3 never appears: ignore pixels instead
    prediction = torch.randint(0, 4, (5, 9, 7), generator=gen)
    scores = PerImageScores(num_classes=4, ignore_index=255)
    scores.add(prediction[:2], target[:2])
    for i in range(2, 5):  # one image at a time, as the evaluation loop calls it
        scores(i, prediction[i], target[i])
    intersection, union = scores.arrays()
    for i in range(5):  # independent: boolean masks per image and class
        valid = target[i] != 255
        for c in range(4):
            p, t = (prediction[i] == c) & valid, (target[i] == c) & valid
            assert intersection[i, c] == (p & t).sum().item()
            assert union[i, c] == (p | t).sum().item()
    confusion = ConfusionMatrix(4, 255)
    confusion.update(prediction, target)
    assert miou_from_counts(intersection, union) == pytest.approx(confusion.compute()["mIoU"])
