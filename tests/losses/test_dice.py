"""Soft Dice: a worked example by hand, smp's Dice loss, smoothing and ignored pixels."""

import pytest
import torch
from segmentation_models_pytorch.losses import DiceLoss as SmpDiceLoss

from segexp.losses.dice import SoftDiceLoss, soft_dice_per_class
from tests.losses.conftest import IGNORE, random_batch

# Worked example: foreground probabilities and ground truth of a 4x4 image.
FOREGROUND_PROBABILITY = torch.tensor(
    [
        [0.9, 0.8, 0.1, 0.0],
        [0.7, 0.6, 0.2, 0.1],
        [0.1, 0.3, 0.1, 0.0],
        [0.0, 0.1, 0.0, 0.0],
    ],
    dtype=torch.float64,
)

FOREGROUND_TRUTH = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


# By hand: intersection 0.9+0.8+0.7+0.6+0.2 = 3.2, sum of p = 4.0, foreground pixels = 5.
FOREGROUND_DICE = 2 * 3.2 / (4.0 + 5)


# Background: intersection = sum of (1 - p) over its 11 pixels = 10.2, sum of (1 - p) = 12.
BACKGROUND_DICE = 2 * 10.2 / (12 + 11)


def worked_example_logits() -> torch.Tensor:
    """Two-class logits (1, 2, 4, 4) whose softmax is (1 - p, p); log(0) replaced by -60."""
    p = FOREGROUND_PROBABILITY
    return torch.stack([log_or_very_negative(1 - p), log_or_very_negative(p)])[None]


def log_or_very_negative(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x.clamp_min(1e-300).log(), -60.0)


def log_probability_logits(probabilities: list[list[float]]) -> torch.Tensor:
    """(1, C, 1, W) logits whose softmax is exactly the given per-pixel probabilities."""
    return torch.tensor(probabilities, dtype=torch.float64).log().T[None, :, None, :]


def test_worked_example_foreground_dice_from_probabilities():
    probabilities = torch.stack([1 - FOREGROUND_PROBABILITY, FOREGROUND_PROBABILITY])[None]
    scores, present = soft_dice_per_class(probabilities, FOREGROUND_TRUTH[None])
    assert scores[1].item() == pytest.approx(0.7111, abs=1e-4)
    assert scores[1].item() == pytest.approx(FOREGROUND_DICE)
    assert scores[0].item() == pytest.approx(BACKGROUND_DICE)
    assert present.tolist() == [True, True]


def test_worked_example_dice_loss_from_logits():
    logits = worked_example_logits()
    scores, _ = soft_dice_per_class(logits.softmax(dim=1), FOREGROUND_TRUTH[None])
    assert 1 - scores[1].item() == pytest.approx(1 - 0.7111, abs=1e-4)

    loss = SoftDiceLoss(num_classes=2)(logits, FOREGROUND_TRUTH[None])
    expected = ((1 - FOREGROUND_DICE) + (1 - BACKGROUND_DICE)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_multiclass_dice_by_hand_averages_only_classes_present_in_target():
    # Pixels 0-3 are labelled; pixels 4-5 are ignored. Class 2 never occurs in the target.
    logits = log_probability_logits(
        [
            [0.7, 0.2, 0.1],
            [0.5, 0.3, 0.2],
            [0.1, 0.8, 0.1],
            [0.2, 0.4, 0.4],
            [0.1, 0.1, 0.8],
            [0.3, 0.3, 0.4],
        ]
    )
    target = torch.tensor([[[0, 0, 1, 1, IGNORE, IGNORE]]])
    class0 = 2 * (0.7 + 0.5) / ((0.7 + 0.5 + 0.1 + 0.2) + 2)
    class1 = 2 * (0.8 + 0.4) / ((0.2 + 0.3 + 0.8 + 0.4) + 2)
    expected = ((1 - class0) + (1 - class1)) / 2  # not / 3: class 2 is absent

    loss = SoftDiceLoss(num_classes=3)(logits, target)

    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_dice_matches_smp_when_every_class_is_present():
    # smp differs from ours only in dividing by all C classes; with all present they agree.
    logits, target = random_batch(seed=0)
    ours = SoftDiceLoss(num_classes=4)(logits, target)
    smp = SmpDiceLoss(mode="multiclass", from_logits=True, ignore_index=IGNORE)(logits, target)
    assert ours.item() == pytest.approx(smp.item(), rel=1e-9)


def test_dice_smoothing_follows_the_documented_formula():
    probabilities = torch.stack([1 - FOREGROUND_PROBABILITY, FOREGROUND_PROBABILITY])[None]
    scores, _ = soft_dice_per_class(probabilities, FOREGROUND_TRUTH[None], smooth=1.0)
    assert scores[1].item() == pytest.approx((2 * 3.2 + 1) / (4.0 + 5 + 1))


def test_dice_all_ignored_is_zero_with_finite_gradient():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = SoftDiceLoss(num_classes=3)(logits, torch.full((1, 2, 2), IGNORE))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(logits.grad).all()


def test_dice_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="3 channels"):
        SoftDiceLoss(num_classes=4)(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_dice_with_bool_one_hot_matches_the_int64_one_hot_formula():
    torch.manual_seed(0)
    probabilities = torch.rand(2, 4, 5, 6).softmax(1)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0] = 255
    dice, present = soft_dice_per_class(probabilities, target, ignore_index=255)
    valid = target != 255
    one_hot = torch.nn.functional.one_hot(torch.where(valid, target, 0), 4).movedim(-1, 1)
    one_hot = one_hot * valid.unsqueeze(1)
    p = probabilities * valid.unsqueeze(1)
    expected = 2 * (p * one_hot).sum((0, 2, 3)) / (p.sum((0, 2, 3)) + one_hot.sum((0, 2, 3)))
    torch.testing.assert_close(dice, expected)
    assert present.tolist() == (one_hot.sum((0, 2, 3)) > 0).tolist()
