"""Whole runs on tiny data: what a user sees in the run folder and on the console."""

import json
import logging

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from segexp.data.class_weights import resolve_auto_class_weights
from segexp.data.scan import median_frequency_weights
from segexp.training.fit import fit
from tests.conftest import TINY, TINY_RUN, compose_config, run_cli
from tests.data_factory import make_split_folders
from tests.end_to_end.conftest import tensorboard_tags

pytestmark = pytest.mark.slow

METRIC_KEYS = {"mIoU", "mDice", "pixel_acc", "mean_class_acc", "per_class_iou", "per_class_dice"}

CLASS_NAMES = ["background", "disc", "ring", "bar", "thread"]


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


def test_folder_run_with_auto_weights_writes_preview(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGEXP_CACHE_DIR", str(tmp_path / "cache"))
    root = make_split_folders(tmp_path / "data", {"train": 4, "val": 2, "test": 2})
    overrides = [
        *TINY_RUN,
        "dataset=folder",
        f"dataset.root={root}",
        "dataset.num_workers=0",
        "dataset.cache=true",
        "trainer.epochs=1",
        "loss=ce",
        "loss.class_weights=auto",
    ]
    cfg = compose_config(overrides)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    summary = fit(cfg, run_dir)
    assert summary["status"] == "completed"

    masks = np.stack([np.asarray(Image.open(p)) for p in (root / "train" / "masks").iterdir()])
    pixels = [int((masks == c).sum()) for c in (0, 1)]
    presence = [sum(m.size for m in masks if (m == c).any()) for c in (0, 1)]
    expected = median_frequency_weights(pixels, presence)
    assert cfg.loss.class_weights == "auto"  # the config given is never changed...
    resolved = OmegaConf.load(run_dir / "resolved_config.yaml")  # ...the one used is stored
    assert list(resolved.loss.class_weights) == expected and expected != [1.0, 1.0]
    stored = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["config"]
    assert stored["loss"]["class_weights"] == expected
    cached = list((tmp_path / "cache").glob("class_weights-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["weights"] == expected

    # The cache is what the next run reads: doctor it and the weights follow.
    cached[0].write_text(json.dumps({"weights": [0.5, 2.0]}))
    again = resolve_auto_class_weights(compose_config(overrides))
    assert list(again.loss.class_weights) == [0.5, 2.0]

    preview = Image.open(run_dir / "previews" / "samples.png")
    assert preview.width >= 4 * 128
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert "visuals/train_augmented_samples" in events.Tags()["images"]


def test_final_test_pass_takes_tta_and_postprocessing_and_logs_confusion_images(tmp_path):
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from segexp.training.fit import fit
    from tests.conftest import TINY, compose_config

    overrides = [*TINY, "trainer.epochs=1", "test.inference.tta=ms_flip",
                 "test.inference.scales=[1.0,1.5]", "postprocess@test.postprocess=small_components",
                 "test.postprocess.min_size=4"]  # fmt: skip
    fit(compose_config(overrides), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    test = summary["test"]
    assert set(test["without_postprocess"]) >= {"mIoU", "mBF1", "per_class_bf1"}
    assert "mBF1" in test and "mBF1" in summary["val"]
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0}).Reload()
    images = set(events.Tags()["images"])
    assert {"visuals/val_confusion_matrix", "~final/test_confusion_matrix"} <= images
    assert {"val/mBF1", "~final/test_mBF1", "val_bf1/disc"} <= set(events.Tags()["scalars"])
    image = events.Images("visuals/val_confusion_matrix")[0]
    assert image.width > 100 and image.height > 100
    # the same numbers as segexp-evaluate with the same options: one path
    from tests.conftest import evaluate_tool

    again = evaluate_tool(
        f"run={tmp_path}", "inference.tta=ms_flip", "inference.scales=[1.0,1.5]",
        "postprocess=small_components", "postprocess.min_size=4", f"output={tmp_path / 'e'}",
    )  # fmt: skip
    assert again["mIoU"] == test["mIoU"]
    assert again["without_postprocess"]["mIoU"] == test["without_postprocess"]["mIoU"]
    assert "tta: ms_flip" in (tmp_path / "resolved_config.yaml").read_text()
