import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from segmentation_models_pytorch.losses import DiceLoss as SmpDiceLoss
from segmentation_models_pytorch.losses._functional import softmax_focal_loss_with_logits

from segexp.losses.combined import CombinedLoss
from segexp.losses.cross_entropy import cross_entropy
from segexp.losses.dice import SoftDiceLoss, soft_dice_per_class
from segexp.losses.focal import FocalLoss

IGNORE = 255

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


def random_batch(seed: int, num_classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, num_classes, 5, 6, generator=generator, dtype=torch.float64)
    target = torch.randint(0, num_classes, (2, 5, 6), generator=generator)
    target[torch.rand(2, 5, 6, generator=generator) < 0.3] = IGNORE
    target[0, 0, :num_classes] = torch.arange(num_classes)  # every class present
    return logits, target


# Dice


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


# Cross-entropy


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


CE_LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3], [-0.5, 0.2, 1.5], [3.0, -3.0, 0.0]])
CE_TARGET = torch.tensor([0, 2, 1, IGNORE])


def as_image(pixels: torch.Tensor) -> torch.Tensor:
    """(P, C) pixel logits -> (1, C, 1, P) image logits; (P,) labels -> (1, 1, P)."""
    return pixels.T[None, :, None, :] if pixels.dim() == 2 else pixels[None, None, :]


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


# Focal


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


# Shared properties


def all_losses():
    return {
        "cross_entropy": cross_entropy(class_weights=[1.0, 2.0, 0.5, 1.5], label_smoothing=0.1),
        "dice": SoftDiceLoss(num_classes=4),
        "focal": FocalLoss(gamma=2.0, alpha=[0.5, 1.0, 2.0, 1.0]),
        "combined": CombinedLoss({"ce": cross_entropy(), "dice": SoftDiceLoss(num_classes=4)}),
    }


@pytest.mark.parametrize("name", list(all_losses()))
def test_ignored_pixels_do_not_change_the_loss(name):
    loss_fn = all_losses()[name].double()  # float64 logits need float64 class weights
    logits, target = random_batch(seed=3)
    ignored = (target == IGNORE).unsqueeze(1).expand_as(logits)
    perturbed = logits + 50 * torch.randn_like(logits) * ignored
    assert not torch.equal(perturbed, logits)

    perturbed.requires_grad_()
    loss = loss_fn(perturbed, target)
    loss.backward()

    assert loss.item() == pytest.approx(loss_fn(logits, target).item(), rel=1e-12)
    assert perturbed.grad[ignored].abs().max().item() == 0.0
    assert perturbed.grad[~ignored].abs().max().item() > 0.0


# Combined


def test_combined_is_the_weighted_sum_of_its_parts():
    logits, target = random_batch(seed=4)
    ce, dice_loss = cross_entropy(), SoftDiceLoss(num_classes=4)
    combined = CombinedLoss({"ce": ce, "dice": dice_loss}, weights={"dice": 0.3})

    expected = 1.0 * ce(logits, target) + 0.3 * dice_loss(logits, target)
    assert combined(logits, target).item() == pytest.approx(expected.item(), rel=1e-12)
    terms = combined.terms(logits, target)
    assert terms["ce"].item() == pytest.approx(ce(logits, target).item(), rel=1e-12)
    assert terms["dice"].item() == pytest.approx(dice_loss(logits, target).item(), rel=1e-12)


def test_combined_rejects_unknown_weight_names():
    with pytest.raises(ValueError, match=r"\['dcie'\].*\['ce', 'dice'\]"):
        CombinedLoss(
            {"ce": cross_entropy(), "dice": SoftDiceLoss(num_classes=2)}, weights={"dcie": 1.0}
        )


def test_combined_instantiates_from_hydra_config():
    config = OmegaConf.create(
        {
            "_target_": "segexp.losses.combined.CombinedLoss",
            "losses": {
                "ce": {"_target_": "segexp.losses.cross_entropy.cross_entropy"},
                "dice": {"_target_": "segexp.losses.dice.SoftDiceLoss", "num_classes": 4},
            },
            "weights": {"ce": 1.0, "dice": 0.5},
        }
    )
    combined = instantiate(config)
    logits, target = random_batch(seed=5)
    expected = cross_entropy()(logits, target) + 0.5 * SoftDiceLoss(num_classes=4)(logits, target)
    assert combined(logits, target).item() == pytest.approx(expected.item(), rel=1e-12)
