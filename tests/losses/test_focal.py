"""Focal loss by hand and against smp, with per-class and scalar alpha."""

import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from segmentation_models_pytorch.losses._functional import softmax_focal_loss_with_logits

from segexp.losses.focal import FocalLoss
from tests.losses.conftest import CE_LOGITS, CE_TARGET, IGNORE, as_image, random_batch


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, target = random_batch(seed=1)
    expected = F.cross_entropy(logits, target, ignore_index=IGNORE)
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(expected.item(), rel=1e-12)


def hand_focal(logits, target, gamma, alpha=None) -> float:
    total, count = 0.0, 0
    for row, label in zip(logits.tolist(), target.tolist(), strict=True):
        if label == IGNORE:
            continue
        p_t = math.exp(row[label]) / sum(math.exp(v) for v in row)
        weight = 1.0 if alpha is None else alpha[label]
        total += -weight * (1 - p_t) ** gamma * math.log(p_t)
        count += 1
    return total / count


def test_focal_gamma_two_by_hand():
    # Single pixel, logits (2, 0, 0), label 0: p_t = e^2 / (e^2 + 2).
    p_t = math.e**2 / (math.e**2 + 2)
    expected = -((1 - p_t) ** 2) * math.log(p_t)
    one_pixel = torch.tensor([2.0, 0.0, 0.0])[None, :, None, None]
    got = FocalLoss(gamma=2.0)(one_pixel, torch.zeros(1, 1, 1).long())
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.010869, abs=1e-6)

    got = FocalLoss(gamma=2.0)(as_image(CE_LOGITS), as_image(CE_TARGET))
    assert got.item() == pytest.approx(hand_focal(CE_LOGITS, CE_TARGET, 2.0), rel=1e-6)


def test_focal_matches_smp_softmax_focal_without_ignored_pixels():
    logits, target = random_batch(seed=2)
    target[target == IGNORE] = 0
    reference = softmax_focal_loss_with_logits(logits, target, gamma=2.0)
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(reference.item(), rel=1e-12)


def test_focal_per_class_and_scalar_alpha():
    alpha = [0.25, 1.0, 2.0]
    got = FocalLoss(gamma=2.0, alpha=alpha)(as_image(CE_LOGITS), as_image(CE_TARGET))
    assert got.item() == pytest.approx(hand_focal(CE_LOGITS, CE_TARGET, 2.0, alpha), rel=1e-6)

    scaled = FocalLoss(gamma=2.0, alpha=0.25)(as_image(CE_LOGITS), as_image(CE_TARGET))
    unweighted = hand_focal(CE_LOGITS, CE_TARGET, 2.0)
    assert scaled.item() == pytest.approx(0.25 * unweighted, rel=1e-6)


def test_focal_alpha_length_must_match_classes():
    with pytest.raises(ValueError, match="2 entries"):
        FocalLoss(alpha=[1.0, 1.0])(torch.zeros(1, 3, 1, 1), torch.zeros(1, 1, 1).long())


def test_focal_accepts_hydra_list_for_alpha():
    loss = instantiate(
        OmegaConf.create({"_target_": "segexp.losses.focal.FocalLoss", "alpha": [1, 3]})
    )
    assert loss.class_alpha.tolist() == [1.0, 3.0]


def test_focal_all_ignored_is_zero_with_finite_gradient():
    logits = torch.randn(2, 3, 2, 2, requires_grad=True)
    loss = FocalLoss(gamma=2.0, alpha=[1.0, 2.0, 3.0])(logits, torch.full((2, 2, 2), IGNORE))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(logits.grad).all()


def test_focal_gradient_stays_finite_for_fractional_gamma_on_certain_pixels():
    # p_t rounds to exactly 1; d/dx (1 - p_t)^0.5 would be infinite there without the clamp.
    logits = torch.tensor([200.0, 0.0])[None, :, None, None].requires_grad_()
    loss = FocalLoss(gamma=0.5)(logits, torch.zeros(1, 1, 1).long())
    loss.backward()
    assert torch.isfinite(logits.grad).all()
