"""Gradient accumulation, early stopping, EMA of the weights, the config tree, overfit mode."""

import json
import logging

import torch
from torch import nn

from segexp.config.trainer import trainer_settings
from segexp.models.wrapper import SegmentationModel
from segexp.storage.checkpoint import load_checkpoint
from segexp.training.epoch import train_one_epoch
from segexp.training.experiment import build_experiment, load_run, optimizer_steps
from segexp.training.fit import fit
from segexp.training.loggers.fanout import Writers

from .conftest import experiment_from_parts


def _net() -> SegmentationModel:
    torch.manual_seed(0)
    # No batch statistics: the gradient of a batch is then the mean of its samples' gradients.
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 1))
    return SegmentationModel(net, mean=(120.0,), std=(60.0,))


def _train(
    batches: list, accumulate: int, num_batches: int, wrap=lambda model: model
) -> tuple[nn.Module, int]:
    model = _net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    exp = experiment_from_parts(
        model, nn.CrossEntropyLoss(), optimizer, train_model=wrap(model),
        grad_clip_norm=None, log_every_n_steps=1, accumulate_grad_batches=accumulate,
    )  # fmt: skip
    trained = train_one_epoch(
        exp, batches, Writers([]), epoch=1, global_step=0, num_batches=num_batches
    )
    return model, trained.global_step


def micro_batches(size: int = 4, count: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 255, (size * count, 3, 8, 8), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, 4, (size * count, 8, 8), generator=generator)
    return [(images[i : i + size], masks[i : i + size]) for i in range(0, size * count, size)]


def test_accumulated_micro_batches_step_like_one_big_batch():
    micro = micro_batches()
    images, masks = torch.cat([b[0] for b in micro]), torch.cat([b[1] for b in micro])
    big = [(images[:8], masks[:8]), (images[8:], masks[8:])]  # 8 and a last batch of 4
    reference, big_steps = _train(big, accumulate=1, num_batches=2)
    # 3 micro-batches of 4, 2 per step: a step of 2 (= the batch of 8), then a step of 1 (= 4)
    accumulated, micro_steps = _train(micro, accumulate=2, num_batches=3)
    assert big_steps == micro_steps == 2
    for want, got in zip(reference.parameters(), accumulated.parameters(), strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    unaccumulated, _ = _train(micro, accumulate=1, num_batches=3)  # the test can fail
    assert not torch.allclose(next(unaccumulated.parameters()), next(reference.parameters()))


def test_schedule_counts_optimizer_steps(tiny_config):
    cfg = tiny_config("trainer.accumulate_grad_batches=3")  # 4 batches an epoch: steps of 3, 1
    assert optimizer_steps(trainer_settings(cfg.trainer), 4) == 2 * 2
    exp = build_experiment(cfg)
    factor = exp.scheduler.lr_lambdas[0]
    assert factor(4) == 0.0 and factor(3) > 0.0  # poly reaches 0 at the last optimizer step


def test_accumulation_trains_and_logs_optimizer_steps(tiny_config, tmp_path):
    summary = fit(tiny_config("trainer.accumulate_grad_batches=2", "logger=csv"), tmp_path)
    assert summary["status"] == "completed"
    steps = (tmp_path / "metrics_steps.csv").read_text().splitlines()
    assert steps[0].startswith("step,") and [r.split(",")[0] for r in steps[1:]] == ["2", "4"]


def test_early_stopping_stops_says_why_and_resumes_its_counter(tiny_config, tmp_path):
    # lr 1e-12 (0 is refused): nothing improves after epoch 1, so patience 2 stops at epoch 3
    stop = ["trainer.epochs=6", "optimizer.lr=1e-12", "trainer.early_stopping.patience=2"]
    summary = fit(tiny_config(*stop), tmp_path / "run")
    assert summary["epochs_run"] == 3 and summary["stopped_early"]["epoch"] == 3
    assert "val/mIoU did not improve" in summary["stopped_early"]["reason"]
    assert "at epoch 1" in summary["stopped_early"]["reason"]
    # Interrupted after epoch 2 (one epoch without improvement), resumed: stops at 3 again.
    part = fit(tiny_config(*stop[1:], "trainer.epochs=2"), tmp_path / "resumed")
    assert part["stopped_early"] is None
    state = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert state["progress"]["early_stopping"]["wait"] == 1
    resumed = fit(tiny_config(*stop), tmp_path / "resumed")
    assert resumed["stopped_early"]["epoch"] == 3 and resumed["epochs_run"] == 3
    later = fit(tiny_config(*stop, "trainer.early_stopping.min_epochs=5"), tmp_path / "later")
    assert later["stopped_early"]["epoch"] == later["epochs_run"] == 5


def test_ema_and_accumulation_resume_exactly(tiny_config, tmp_path):
    ema = ["trainer.ema.decay=0.9", "trainer.ema.warmup=2", "trainer.epochs=3", "loss=ce"]
    ema += ["trainer.deterministic=true", "scheduler=constant"]  # epochs=2 then 3: same lr
    ema += ["trainer.accumulate_grad_batches=3"]  # 4 batches an epoch: steps of 3 and 1
    reference = fit(tiny_config(*ema), tmp_path / "reference")
    assert reference["ema"] is True
    best = load_checkpoint(tmp_path / "reference" / "checkpoints" / "best.pt")
    raw, averaged = best["ema"]["training_weights"], best["model"]
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)
    # The test split was scored with the averaged weights: evaluate them again from best.pt.
    run = load_run(tmp_path / "reference")
    assert torch.equal(next(run.model.parameters()), next(iter(averaged.values())))
    # Interrupted after 2 epochs, resumed to 3: the same averaged weights and metrics.
    fit(tiny_config(*ema, "trainer.epochs=2"), tmp_path / "resumed")
    resumed = fit(tiny_config(*ema), tmp_path / "resumed")
    as_text = lambda d: json.dumps(d, sort_keys=True)  # noqa: E731  (NaN equals NaN as text)
    assert as_text(resumed["val"]) == as_text(reference["val"])
    assert as_text(resumed["test"]) == as_text(reference["test"])
    last = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    want = load_checkpoint(tmp_path / "reference" / "checkpoints" / "last.pt")
    assert int(last["ema"]["n_averaged"]) == int(want["ema"]["n_averaged"]) == 6
    for key, value in want["model"].items():
        assert torch.equal(last["model"][key], value), key


def test_config_tree_is_printed_with_run_folder_and_device(tiny_config, tmp_path, caplog):
    (tmp_path / "shown").mkdir()  # Hydra makes the run folder
    with caplog.at_level(logging.INFO, logger="segexp.training.fit"):
        fit(tiny_config("trainer.epochs=1", "logger=none"), tmp_path / "shown")
    tree = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("config\n"))
    assert f"run folder: {tmp_path / 'shown'}" in tree and "device: cpu" in tree
    assert "base_channels: 4" in tree and "image_size: [32, 32]" in tree
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="segexp.training.fit"):
        fit(tiny_config("trainer.epochs=1", "logger=none", "trainer.print_config=false"), tmp_path)
    assert not any(r.getMessage().startswith("config\n") for r in caplog.records)


def test_overfit_mode_uses_a_constant_lr_and_no_augmentation(tiny_config, tmp_path):
    cfg = tiny_config("trainer.overfit_batches=1", "aug=strong", "scheduler.warmup_steps=5")
    exp = build_experiment(cfg)
    assert exp.scheduler.lr_lambdas[0](0) == exp.scheduler.lr_lambdas[0](100) == 1.0
    assert exp.splits.train[0][0].shape[-2:] == (32, 32)
    first = build_experiment(cfg).splits.train[0][0]
    assert torch.equal(first, exp.splits.train[0][0])  # no random transform applied
    summary = json.dumps(fit(cfg, tmp_path))
    assert '"status": "completed"' in summary
