"""What a run adds around training: the augmented-sample preview and `class_weights=auto`."""

import json

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segexp.data.class_weights import resolve_auto_class_weights
from segexp.data.scan import median_frequency_weights
from segexp.training.fit import fit
from segexp.visual.colours import palette
from segexp.visual.samples import overlay, sample_grid

from .conftest import TINY_RUN, compose_config
from .data_factory import make_split_folders


def test_overlay_blends_class_colours_and_whitens_ignore():
    image = np.full((1, 3, 1), 100, np.uint8)
    mask = np.array([[0, 1, 255]])
    colours = palette(2, ["background", "cell"]).numpy()
    out = overlay(image, mask, colours, alpha=0.5)
    assert out[0, 0].tolist() == [50, 50, 50]  # class 0 named background is black
    assert out[0, 1].tolist() == [int(100 * 0.5 + c * 0.5) for c in colours[1]]
    assert out[0, 2].tolist() == [177, 177, 177]  # (100 + 255) / 2, white for ignore


def test_sample_grid_shows_pairs_and_a_legend():
    data = [(torch.full((1, 8, 8), 50, dtype=torch.uint8), torch.ones(8, 8, dtype=torch.uint8))] * 3
    grid = sample_grid(data, ["bg", "fg"], num_samples=3, columns=3)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    assert grid.shape[1] == 3 * (256 + 4)  # 8x16 pairs enlarged to 128x256
    assert grid.shape[0] > 128 + 4  # room for the legend


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
