"""Building an experiment: a schedule in optimizer steps, and overfit mode."""

import json

import pytest
import torch

from segexp.config.trainer import trainer_settings
from segexp.training.experiment import build_experiment, load_run, optimizer_steps
from segexp.training.fit import fit
from tests.conftest import REPO


def test_schedule_counts_optimizer_steps(tiny_config):
    cfg = tiny_config("trainer.accumulate_grad_batches=3")  # 4 batches an epoch: steps of 3, 1
    assert optimizer_steps(trainer_settings(cfg.trainer), 4) == 2 * 2
    exp = build_experiment(cfg)
    factor = exp.scheduler.lr_lambdas[0]
    assert factor(4) == 0.0 and factor(3) > 0.0  # poly reaches 0 at the last optimizer step


@pytest.mark.slow
def test_overfit_mode_uses_a_constant_lr_and_no_augmentation(tiny_config, tmp_path):
    cfg = tiny_config("trainer.overfit_batches=1", "aug=strong", "scheduler.warmup_steps=5")
    exp = build_experiment(cfg)
    assert exp.scheduler.lr_lambdas[0](0) == exp.scheduler.lr_lambdas[0](100) == 1.0
    assert exp.splits.train[0][0].shape[-2:] == (32, 32)
    first = build_experiment(cfg).splits.train[0][0]
    assert torch.equal(first, exp.splits.train[0][0])  # no random transform applied
    summary = json.dumps(fit(cfg, tmp_path))
    assert '"status": "completed"' in summary


LEGACY = REPO / "tests" / "fixtures" / "legacy_run_v0.1"


def test_load_run_takes_the_device_without_writing_it_into_the_config():
    run = load_run(LEGACY, device="cpu")
    assert run.dev.device.type == "cpu" and run.experiment.trainer.device == "cpu"
    assert run.cfg.trainer.device == "auto"  # the run's own record, as it trained
