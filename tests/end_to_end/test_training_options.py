"""Training options and speed switches in whole runs on tiny data."""

import json

import pytest
import torch

from segexp.storage.checkpoint import load_checkpoint
from segexp.training.fit import fit
from tests.conftest import TINY, compose_config
from tests.end_to_end.conftest import tensorboard_tags


@pytest.mark.slow
def test_overfit_batches_learns_the_batch(tiny_config, tmp_path):
    cfg = tiny_config(
        "trainer.overfit_batches=1",
        "trainer.epochs=120",
        "optimizer.lr=0.01",
        "scheduler=constant",
        "model.net.base_channels=8",
        "logger=none",
    )
    summary = fit(cfg, tmp_path)
    assert summary["val"]["mIoU"] > 0.95  # a fresh model of this size scores about 0.2


@pytest.mark.slow
def test_accumulation_trains_and_logs_optimizer_steps(tiny_config, tmp_path):
    summary = fit(tiny_config("trainer.accumulate_grad_batches=2", "logger=csv"), tmp_path)
    assert summary["status"] == "completed"
    steps = (tmp_path / "metrics_steps.csv").read_text().splitlines()
    assert steps[0].startswith("step,") and [r.split(",")[0] for r in steps[1:]] == ["2", "4"]


@pytest.mark.slow
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


@pytest.mark.slow
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


SWITCHES = [
    ["trainer.precision=bf16"],
    ["trainer.precision=fp16"],  # GradScaler path
    ["trainer.channels_last=false"],
    ["trainer.fused_optimizer=true"],
    ["trainer.fused_optimizer=true", "optimizer=sgd"],
    ["trainer.compile=eager"],  # Dynamo graph capture; inductor's codegen is in the benchmark
    ["dataset.num_workers=2"],  # worker processes, persistent, each with its own aug stream
    ["trainer.cudnn_benchmark=false", "trainer.log_every_n_steps=1"],
]


# Those that take about half a second or more (worker processes, graph capture, the scaler).
SLOW_SWITCHES = {"trainer.precision=fp16", "trainer.compile=eager", "dataset.num_workers=2"}


@pytest.mark.parametrize(
    "switch",
    [pytest.param(s, marks=pytest.mark.slow) if SLOW_SWITCHES & set(s) else s for s in SWITCHES],
    ids=[" ".join(s) for s in SWITCHES],
)
def test_switch_trains_and_evaluates(tiny_config, tmp_path, switch):
    summary = fit(tiny_config("trainer.epochs=1", "logger=none", "aug=light", *switch), tmp_path)
    assert summary["status"] == "completed"
    assert 0 <= summary["val"]["mIoU"] <= 1 and summary["images_per_s"] > 0


def test_training_with_device_augmentation_saves_its_generator(tiny_config, tmp_path):
    summary = fit(tiny_config("trainer.epochs=1", "logger=none", "aug=strong_device"), tmp_path)
    assert summary["status"] == "completed" and summary["num_threads"] >= 1
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["rng"]["device_aug"].dtype == torch.uint8
