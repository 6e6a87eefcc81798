"""CombinedLoss: the weighted sum of its parts; and no loss sees an ignored pixel."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from segexp.losses.combined import CombinedLoss
from segexp.losses.cross_entropy import cross_entropy
from segexp.losses.dice import SoftDiceLoss
from segexp.losses.focal import FocalLoss
from tests.losses.conftest import IGNORE, random_batch


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
