"""Whole runs on tiny data: what a user sees in the run folder and on the console."""

import json
from pathlib import Path

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from segexp.training.fit import fit

from .conftest import TINY, run_cli

METRIC_KEYS = {"mIoU", "mDice", "pixel_acc", "mean_class_acc", "per_class_iou", "per_class_dice"}
CLASS_NAMES = ["background", "disc", "ring", "bar", "thread"]


def tensorboard_tags(run_dir: Path) -> dict[str, list[str]]:
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events.Tags()


def test_fit_writes_summary_checkpoints_and_tensorboard(tiny_config, tmp_path):
    summary = fit(tiny_config(), tmp_path, {"overrides": [], "choices": {"model": "unet"}})
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "completed"
    assert on_disk["choices"] == {"model": "unet"}
    assert on_disk["epochs"] == 2 and 1 <= on_disk["best_epoch"] <= 2
    assert on_disk["train_time_s"] > 0 and on_disk["images_per_s"] > 0
    assert on_disk["device"] == "cpu"
    for split in ("val", "test"):
        assert set(on_disk[split]) >= METRIC_KEYS
        assert list(on_disk[split]["per_class_iou"]) == CLASS_NAMES
        assert 0 <= on_disk[split]["pixel_acc"] <= 1
    assert on_disk["test"]["mIoU"] == summary["test"]["mIoU"]
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "checkpoints" / "last.pt").is_file()

    tags = tensorboard_tags(tmp_path)
    scalars = set(tags["scalars"])
    expected = {"train/loss", "train/lr", "val/loss", "val/mIoU", "val/mDice", "val/pixel_acc"}
    assert expected <= scalars
    assert {f"val_iou/{name}" for name in CLASS_NAMES} <= scalars
    assert "visuals/val_image_truth_prediction" in tags["images"]
    assert any("config" in tag for tag in tags["tensors"])
    # TensorBoard sorts groups by name and opens the first two: the curves, not one-value results
    assert sorted({tag.split("/")[0] for tag in scalars})[:2] == ["train", "val"]
    assert {"~final/val_mIoU", "~final/test_mIoU"} <= scalars
    # the run's own HParams experiment record: its settings, and six final metrics as columns
    content = EventAccumulator(str(tmp_path)).Reload().PluginTagToContent("hparams")
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {h.name for h in experiment.hparam_infos} == {"seed", "model"}
    assert [m.display_name for m in experiment.metric_infos] == [
        f"{split} {key}" for split in ("val", "test") for key in ("mIoU", "mDice", "pixel_acc")
    ]


def test_train_loss_is_logged_every_n_steps(tiny_config, tmp_path):
    fit(tiny_config("trainer.log_every_n_steps=2", "logger=tensorboard"), tmp_path)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == [2, 4, 6, 8]  # 16 samples / batch 4 = 4 steps per epoch, 2 epochs


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


def test_cli_run_folder_and_console(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(*TINY, "trainer=debug", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["choices"]["trainer"] == "debug" and summary["choices"]["model"] == "unet"
    assert "trainer=debug" in summary["overrides"]
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    console = result.stdout + result.stderr
    assert "mean" in console and "tensorboard --logdir" in console and str(run_dir) in console


def test_cli_missing_mask_fails_with_one_clear_line(tmp_path):
    for split in ("train", "val", "test"):
        for sub in ("images", "masks"):
            (tmp_path / "data" / split / sub).mkdir(parents=True)
        for stem in ("a", "b"):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(
                tmp_path / "data" / split / "images" / f"{stem}.png"
            )
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(
                tmp_path / "data" / split / "masks" / f"{stem}.png"
            )
    (tmp_path / "data" / "val" / "masks" / "b.png").unlink()
    run_dir = tmp_path / "run"
    result = run_cli(
        "dataset=folder",
        f"dataset.root={tmp_path / 'data'}",
        "dataset.batch_size=1",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    console = result.stdout + result.stderr
    assert "Traceback" not in console
    errors = [line for line in console.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "b.png" in errors[0] and "same file stem" in errors[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "b.png" in summary["reason"]
    assert not (run_dir / "checkpoints").exists()
