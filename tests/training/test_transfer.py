"""Freeze-then-fine-tune: frozen encoders keep weights and BatchNorm statistics."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from segexp.errors import SegexpError
from segexp.models.encoder_unet import EncoderUNet
from segexp.models.unet import UNet
from segexp.models.wrapper import SegmentationModel
from segexp.training.optim import build_optimizer
from segexp.training.transfer import freeze_schedule


class Recorder:
    def __init__(self):
        self.scalars, self.texts = [], []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_text(self, tag, text, step):
        self.texts.append((tag, text, step))


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, module: nn.Module, suffix: str) -> bool:
    after = module.state_dict()
    return any(not torch.equal(before[k], after[k]) for k in before if k.endswith(suffix))


def step(model, optimizer):
    model.train()
    x, y = torch.rand(2, 3, 32, 32), torch.randint(0, 2, (2, 32, 32))
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def test_freezing_stops_encoder_updates_and_bn_statistics_and_unfreezing_restarts_them():
    torch.manual_seed(0)
    model = SegmentationModel(
        EncoderUNet(3, 2, encoder="mobilenetv3_small_050", decoder_channels=(8,) * 5),
        size_multiple=32,
        freeze_encoder_epochs=2,
    )
    node = OmegaConf.create({"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-2})
    optimizer = build_optimizer(node, model)
    writer = Recorder()
    for epoch, frozen in ((1, True), (2, True), (3, False)):
        freeze_schedule(model, epoch, writer=writer)
        encoder, decoder = snapshot(model.net.encoder), snapshot(model.net.decoder)
        step(model, optimizer)
        assert changed(encoder, model.net.encoder, "weight") is not frozen
        assert changed(encoder, model.net.encoder, "running_mean") is not frozen
        assert changed(decoder, model.net.decoder, "weight")
        assert changed(decoder, model.net.decoder, "running_mean")
    assert [(t, v, s) for t, v, s in writer.scalars] == [
        ("train/encoder_frozen", 1.0, 1),
        ("train/encoder_frozen", 1.0, 2),
        ("train/encoder_frozen", 0.0, 3),
    ]
    assert writer.texts == [("schedule", "encoder unfrozen at epoch 3", 3)]


def test_freezing_a_model_without_an_encoder_is_a_clear_error():
    model = SegmentationModel(UNet(3, 2, depth=2, base_channels=4), freeze_encoder_epochs=1)
    with pytest.raises(SegexpError, match="freeze_encoder_epochs=0"):
        freeze_schedule(model, 1, writer=Recorder())
