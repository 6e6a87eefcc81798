"""Freeze-then-fine-tune: frozen encoders keep weights and BatchNorm statistics; lr multiplier."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from segexp.errors import SegexpError
from segexp.models.encoder_unet import EncoderUNet
from segexp.models.stats import model_stats
from segexp.models.unet import UNet
from segexp.models.wrapper import SegmentationModel
from segexp.training.fit import fit
from segexp.training.optim import build_optimizer
from segexp.training.transfer import freeze_schedule

from .conftest import TINY, compose_config
from .test_end_to_end import tensorboard_tags


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


def test_encoder_lr_mult_gives_the_encoder_its_own_learning_rate():
    model = SegmentationModel(
        EncoderUNet(3, 2, encoder="mobilenetv3_small_050", decoder_channels=(8,) * 5),
        size_multiple=32,
        encoder_lr_mult=0.1,
    )
    node = OmegaConf.create({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1})
    groups = build_optimizer(node, model).param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.01, 0.1])
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.net.encoder.parameters()}
    total = sum(len(g["params"]) for g in groups)
    assert total == len(list(model.parameters()))


def test_freezing_a_model_without_an_encoder_is_a_clear_error():
    model = SegmentationModel(UNet(3, 2, depth=2, base_channels=4), freeze_encoder_epochs=1)
    with pytest.raises(SegexpError, match="freeze_encoder_epochs=0"):
        freeze_schedule(model, 1, writer=Recorder())


def test_gflops_match_a_hand_count():
    conv = SegmentationModel(nn.Conv2d(3, 4, 3, padding=1, bias=False))
    stats = model_stats(conv, in_channels=3, size=(8, 8), device="cpu")
    assert stats["num_parameters"] == 4 * 3 * 9
    # multiply and add counted separately; summary.json keeps 4 significant digits
    assert stats["gflops"] == pytest.approx(2 * 4 * 3 * 9 * 8 * 8 / 1e9, rel=1e-3)


def test_fit_with_frozen_encoder_at_an_odd_size(tmp_path):
    overrides = [o for o in TINY if not o.startswith("model.")] + [
        "model=unet_pretrained",
        "model.net.encoder=mobilenetv3_small_050",
        "model.net.decoder_channels=[8,8,8,8,8]",
        "model.freeze_encoder_epochs=1",
        "model.encoder_lr_mult=0.1",
        "dataset.image_size=[45,61]",
        "logger=tensorboard",
    ]
    summary = fit(compose_config(overrides), tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "completed" and summary["gflops"] > 0
    assert on_disk["num_parameters"] == on_disk["trainable_parameters"] > 0
    assert on_disk["gflops_input_size"] == [45, 61]
    tags = tensorboard_tags(tmp_path)
    assert "train/encoder_frozen" in tags["scalars"]
    assert not [tag for tag in tags["scalars"] if tag.startswith("model/")]  # constants: text
    assert "model/text_summary" in tags["tensors"]
