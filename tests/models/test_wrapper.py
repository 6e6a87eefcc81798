"""SegmentationModel: every model option trains a step in it and keeps the input's size."""

import pytest
import torch
from torch import nn

from segexp.config.build import build as build_node
from segexp.losses.auxiliary import WithAuxiliary
from segexp.models.wrapper import SegmentationModel
from tests.conftest import compose_config

# Small encoders: the options' code paths, not their capacity, are under test.
MODELS = {
    "unet": ["model.net.depth=2", "model.net.base_channels=4"],
    "unet_pretrained": [
        "model.net.encoder=mobilenetv3_small_050",
        "model.net.decoder_channels=[8,8,8,8,8]",
    ],
    "unet_pretrained_resnet": [
        "model=unet_pretrained",
        "model.net.encoder=resnet18",
        "model.net.decoder_channels=[8,8,8,8,8]",
    ],
    "smp_unet": ["model.net.encoder_name=resnet18", "+model.net.decoder_channels=[8,8,8,8,8]"],
    "smp_fpn": ["model.net.encoder_name=tu-mobilenetv3_small_050"],
    "smp_deeplabv3plus": ["model.net.encoder_name=tu-mobilenetv3_small_050"],
    "segformer": [],
    "deeplabv3": ["model.net.aux_loss=true"],
    "deeplabv3_resnet50": ["model=deeplabv3", "model.net.backbone=resnet50"],
}


def build(option: str) -> SegmentationModel:
    overrides = MODELS[option]
    if not any(o.startswith("model=") for o in overrides):
        overrides = [f"model={option}", *overrides]
    return build_node(compose_config(overrides).model)


# ResNet-50 (40 M parameters) takes the quick lane's time: `-m "not slow"` leaves it out.
SLOW_MODELS = {"deeplabv3_resnet50"}


@pytest.mark.parametrize(
    "option",
    [pytest.param(o, marks=pytest.mark.slow) if o in SLOW_MODELS else o for o in MODELS],
)
def test_every_model_trains_and_evaluates_at_tiny_and_odd_sizes(option):
    torch.manual_seed(0)
    model = build(option)
    loss_fn = WithAuxiliary(nn.CrossEntropyLoss(ignore_index=255), 0.4)
    # ResNet-50 (40 M parameters) only at the odd size, to keep the suite fast
    sizes = ((45, 61),) if option == "deeplabv3_resnet50" else ((32, 32), (45, 61))
    for height, width in sizes:
        model.train()
        out = model(torch.rand(2, 3, height, width))
        logits = out["out"] if isinstance(out, dict) else out
        assert logits.shape == (2, 5, height, width)
        model.zero_grad()
        loss_fn(out, torch.randint(0, 5, (2, height, width))).backward()
        without_grad = [n for n, p in model.named_parameters() if p.grad is None]
        assert not without_grad, without_grad[:5]
        model.eval()
        with torch.no_grad():
            assert model(torch.rand(1, 3, height, width)).shape == (1, 5, height, width)


class NeedsMultipleOf32(nn.Module):
    def forward(self, x):
        assert x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0, x.shape
        return x * 2


@pytest.mark.parametrize(("height", "width"), [(45, 61), (7, 9), (64, 32)])
def test_wrapper_pads_for_the_network_and_crops_back(height, width):
    x = torch.rand(1, 3, height, width)
    out = SegmentationModel(NeedsMultipleOf32(), size_multiple=32)(x)
    assert torch.equal(out, x * 2)  # padded on the bottom/right only: the crop is the input


def test_deeplab_aux_head_in_training_only_and_weighted_in_the_loss():
    model = build("deeplabv3")
    x, y = torch.rand(2, 3, 40, 40), torch.randint(0, 5, (2, 40, 40))
    torch.manual_seed(0)
    out = model.train()(x)
    assert set(out) == {"out", "aux"} and out["aux"].shape == (2, 5, 40, 40)
    ce = nn.CrossEntropyLoss()
    expected = ce(out["out"], y) + 0.4 * ce(out["aux"], y)
    assert torch.allclose(WithAuxiliary(ce, 0.4)(out, y), expected)
    assert isinstance(model.eval()(x), torch.Tensor)


def test_wrapper_keys_and_architecture_keys_live_in_their_own_nodes():
    cfg = compose_config(["model=smp_unet", "model.freeze_encoder_epochs=3"]).model
    model = build_node(cfg)  # smp.Unet would reject size_multiple / freeze_encoder_epochs
    assert (model.size_multiple, model.freeze_encoder_epochs) == (32, 3)
    assert type(model.net).__name__ == "Unet"
