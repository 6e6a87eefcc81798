"""Every option of every config group composes, builds, and unknown options fail clearly."""

from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from segexp.config.build import build
from segexp.config.paths import CONFIG_DIR
from segexp.models.wrapper import SegmentationModel
from segexp.training.optim import build_optimizer

from .conftest import TINY, TINY_RUN, compose_config

GROUPS = ["dataset", "model", "loss", "aug", "optimizer", "scheduler", "trainer", "logger"]
OPTIONS = [
    (group, path.stem)
    for group in GROUPS
    for path in sorted((Path(CONFIG_DIR) / group).glob("*.yaml"))
]


def test_every_group_has_options():
    assert {group for group, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_builds(group, option, tmp_path):
    overrides = [*TINY, f"{group}={option}"]
    if group == "model" and option != "unet":  # TINY's model.net.depth etc. are the U-Net's
        overrides = [o for o in overrides if not o.startswith("model.")]
    if group == "dataset" and not option.startswith("synthetic"):
        overrides = [*TINY_RUN, f"{group}={option}", f"dataset.root={tmp_path}"]
    cfg = compose_config(overrides)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    if group == "model":
        model = build(cfg.model)
        out = model(torch.rand(2, cfg.dataset.in_channels, 32, 32))
        assert out.shape == (2, cfg.dataset.num_classes, 32, 32)
    elif group == "loss":
        loss = build(cfg.loss)
        value = loss(torch.randn(2, cfg.dataset.num_classes, 8, 8), torch.randint(0, 5, (2, 8, 8)))
        assert value.ndim == 0 and torch.isfinite(value)
    elif group == "aug":
        transform = build(cfg.aug.train)
        image = torch.randint(0, 255, (40, 50, 3), dtype=torch.uint8).numpy()
        out = transform(image=image, mask=image[:, :, 0])
        assert out["image"].shape[:2] == tuple(cfg.dataset.image_size)
    elif group in ("optimizer", "scheduler"):
        optimizer = build_optimizer(cfg.optimizer, SegmentationModel(torch.nn.Conv2d(1, 1, 1)))
        build(cfg.scheduler)(optimizer=optimizer, total_steps=10)
    elif group == "logger":
        from segexp.training.loggers import open_writer

        open_writer(cfg.logger, tmp_path, None).close()


def test_class_settings_flow_from_the_dataset():
    cfg = compose_config(["name=test", "dataset.num_classes=7", "dataset.class_names=null"])
    assert cfg.model.net.num_classes == 7
    assert cfg.loss.losses.dice.num_classes == 7
    cfg = compose_config(["name=test", "dataset.ignore_index=99"])
    assert cfg.loss.losses.ce.ignore_index == 99


def test_unknown_option_lists_the_choices():
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["model=no_such_model"])
    assert "Available options" in str(err.value)
    assert "unet" in str(err.value)
