"""Optimizers: the encoder's own learning rate, fused kernels, torch.compile."""

import pytest
import torch
from omegaconf import OmegaConf

from segexp.models.encoder_unet import EncoderUNet
from segexp.models.wrapper import SegmentationModel
from segexp.training.optim import build_optimizer, make_optimizer, maybe_compile


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


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_fused_optimizer_is_used_when_asked(tiny_config, name):
    cfg = tiny_config(f"optimizer={name}")
    model = SegmentationModel(torch.nn.Conv2d(1, 1, 1))
    assert build_optimizer(cfg.optimizer, model, True).defaults["fused"] is True
    assert build_optimizer(cfg.optimizer, model, "auto").defaults["fused"] is True  # CPU kernel
    assert not build_optimizer(cfg.optimizer, model, False).defaults["fused"]


def test_auto_fused_falls_back_where_torch_has_no_kernel(caplog):
    class NoFusedKernel(torch.optim.SGD):
        def __init__(self, params, lr=0.1, fused=None):
            if fused:
                raise RuntimeError("`fused=True` requires all the params to be on CUDA")
            super().__init__(params, lr=lr)

    params = [torch.nn.Parameter(torch.zeros(1))]
    assert isinstance(make_optimizer(NoFusedKernel, params, "auto"), NoFusedKernel)
    assert not caplog.records  # auto: quietly the plain implementation
    make_optimizer(NoFusedKernel, params, True)
    assert "requires all the params" in caplog.text  # asked for: said why not


def test_compile_keeps_the_state_dict_keys():
    model = torch.nn.Conv2d(1, 1, 1)
    compiled = maybe_compile(model, "eager")
    assert compiled is not model and maybe_compile(model, False) is model
    compiled(torch.zeros(1, 1, 2, 2))
    assert list(model.state_dict()) == ["weight", "bias"]
