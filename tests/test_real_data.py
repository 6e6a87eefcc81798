"""Issue 13: resolution keys, class-imbalance tools, void-label advice, palettes and legends,
and a user's own named dataset config."""

import importlib
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from segexp.audit import audit, format_report
from segexp.data.loaders import build_splits, evaluation_transform, training_transform
from segexp.data.sampler import rare_class_weights, training_sampler
from segexp.data.synthetic import SyntheticSegmentation
from segexp.errors import SegexpError
from segexp.visual.colours import dataset_palette, palette, preview_grid

from .conftest import TINY, TINY_RUN, compose_config, evaluate_tool, predict_tool
from .data_factory import make_split_folders, write_sample


def _apply(transform, size=(40, 60)):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    mask = np.kron(rng.integers(0, 3, (size[0] // 10, size[1] // 10)), np.ones((10, 10), np.uint8))
    out = transform(image=image, mask=mask.astype(np.uint8))
    return out["image"], out["mask"], mask


def test_resize_keys_come_before_every_preset_and_evaluation():
    cfg = compose_config([*TINY, "aug=strong", "dataset.resize=0.5", "dataset.image_size=[8,8]"])
    image, mask, original = _apply(evaluation_transform(cfg))
    assert image.shape == (20, 30, 3)  # half size, no crop at evaluation
    assert np.array_equal(mask, original[::2, ::2])  # nearest: no new label values
    image, mask, _ = _apply(training_transform(cfg))
    assert image.shape == (8, 8, 3) and mask.shape == (8, 8)  # then the preset's crop
    cfg = compose_config([*TINY, "dataset.resize=[20,30]", "dataset.eval_resize=[10,12]"])
    assert _apply(evaluation_transform(cfg))[0].shape == (10, 12, 3)
    assert evaluation_transform(compose_config(TINY)) is None  # nothing asked, nothing added
    with pytest.raises(SegexpError, match=r"dataset.resize=.*\[height, width\]"):
        training_transform(compose_config([*TINY, "dataset.resize=[0,5]"]))


def test_imbalanced_preset_has_rare_classes_under_one_percent():
    cfg = compose_config(["dataset=synthetic_imbalanced"])
    data = SyntheticSegmentation(
        "train", 150, cfg.dataset.image_size, object_probs=cfg.dataset.object_probs
    )
    counts = sum(np.bincount(data.load(i)[1].ravel(), minlength=5) for i in range(len(data)))
    share = counts / counts.sum()
    assert 0 < share[2] < 0.01 and 0 < share[4] < 0.01  # ring, thread
    assert share[1] > 0.05 and share[3] > 0.05
    with pytest.raises(SegexpError, match="object_probs"):
        SyntheticSegmentation("train", 1, (8, 8), object_probs=[1, 2])


def test_rare_class_sampler_favours_rare_images_and_follows_its_generator():
    pixels = np.array([[100, 0], [100, 0], [99, 1], [100, 0]])
    weights = rare_class_weights(pixels)
    assert weights[2] == pytest.approx(1 + 4) and weights[0] == weights[1] == 1.0
    data = list(range(4))
    data_pixels = SyntheticSegmentation("train", 40, (32, 32), object_probs=[0.6, 0.04, 0.34, 0.02])
    gen = torch.Generator().manual_seed(3)
    sampler = training_sampler(data_pixels, "rare_class", 5, gen)
    state = gen.get_state()
    first, second = list(sampler), list(sampler)
    gen.set_state(state)  # what resume restores (the DataLoader's generator)
    assert list(sampler) == first and list(sampler) == second
    counts = np.bincount(first + second, minlength=40)
    rare = [i for i in range(40) if (np.isin(data_pixels.load(i)[1], [2, 4])).any()]
    assert counts[rare].mean() > counts.mean()
    assert training_sampler(data, "uniform", 2, gen) is None
    with pytest.raises(SegexpError, match=r"dataset\.sampler='often'"):
        training_sampler(data, "often", 2, gen)


def test_rare_class_sampler_draws_with_the_loader_generator_that_resume_saves():
    cfg = compose_config([*TINY, "dataset=synthetic_imbalanced", "dataset.sampler=rare_class"])
    splits = build_splits(cfg)
    assert splits.train.sampler.generator is splits.train.generator
    state = splits.train.generator.get_state()
    order = list(iter(splits.train.batch_sampler))
    splits.train.generator.set_state(state)
    assert list(iter(splits.train.batch_sampler)) == order


def _masks(root, masks, size=(20, 20)):
    for i, mask in enumerate(masks):
        write_sample(root / "train" / "images", root / "train" / "masks", f"t{i}", mask, seed=i)
        for split in ("val", "test"):
            write_sample(root / split / "images", root / split / "masks", f"{split}{i}", mask)


def test_audit_treats_a_value_above_the_classes_as_void_and_lists_every_value(tmp_path):
    mask = np.zeros((20, 20), np.uint8)
    mask[:10] = 1
    mask[10:, :5] = 2
    mask[0, :4] = 3  # void, one above the classes 0..2
    _masks(tmp_path, [mask, mask])
    cfg = ["dataset=folder", f"dataset.root={tmp_path}", "dataset.num_classes=3"]
    fatal = " | ".join(audit(compose_config(cfg))["fatal"])
    assert "looks like a void label: set dataset.ignore_index=3" in fatal
    assert fatal.index("ignore_index=3") < fatal.index("num_classes=4")
    report = audit(compose_config([*cfg, "dataset.ignore_index=3"]))
    assert report["fatal"] == []
    table = format_report(report)
    assert "    3                ignored" in table
    kinds = {line.split()[0]: line.split()[2] for line in table.splitlines() if " class " in line}
    assert kinds == {"0": "class", "1": "class", "2": "class"}


def test_audit_flags_imbalance_and_prints_the_overrides(tmp_path):
    mask = np.zeros((20, 20), np.uint8)
    mask[:10] = 1
    mask[19, 19] = 2  # 1 of 400 pixels
    _masks(tmp_path, [mask, mask])
    report = audit(
        compose_config(["dataset=folder", f"dataset.root={tmp_path}", "dataset.num_classes=3"])
    )
    warning = next(w for w in report["warnings"] if "class imbalance" in w)
    assert "2 0.25%" in warning
    assert (
        "loss.losses.ce.class_weights=auto" in warning and "dataset.sampler=rare_class" in warning
    )
    assert report["rare_classes"] == {"2": 0.0025}


def test_default_palette_shows_every_class_and_legends_name_them():
    assert (palette(3, ["sky", "road", "car"]).sum(1) > 0).all()  # no black class
    assert palette(3, ["background", "road", "car"])[0].tolist() == [0, 0, 0]
    cfg = compose_config([*TINY, "dataset.palette=[[1,2,3],[4,5,6],[7,8,9],[9,9,9],[0,0,9]]"])
    assert dataset_palette(cfg.dataset)[1].tolist() == [4, 5, 6]
    with pytest.raises(SegexpError, match=r"dataset\.palette has 1 entries"):
        dataset_palette(compose_config([*TINY, "dataset.palette=[[1,2,3]]"]).dataset)
    truth = torch.zeros(1, 8, 100, dtype=torch.long)
    plain = preview_grid(torch.zeros(1, 3, 8, 100, dtype=torch.uint8), truth, truth, palette(2))
    named = preview_grid(
        torch.zeros(1, 3, 8, 100, dtype=torch.uint8), truth, truth, palette(2), ["a", "b"]
    )
    assert named.shape[1] > plain.shape[1] and torch.equal(named[:, :8], plain)


MINE = """\
# A user's own dataset, kept outside segexp's conf/
defaults:
  - folder
  - _self_
name: mine
root: {root}
num_classes: 2
class_names: [sky, building]
resize: 0.5
palette: [[70, 130, 180], [200, 200, 0]]
"""


def _main(module: str, *args: str, monkeypatch) -> None:
    """``module``'s console script in-process: the same Hydra code path, no new interpreter."""
    monkeypatch.setattr(sys, "argv", [module, *args])
    try:
        importlib.import_module(module).main()
    except SystemExit as done:  # --help ends with status 0
        assert done.code in (0, None)


def test_own_named_dataset_config_with_config_dir(tmp_path, monkeypatch, capsys):
    root = make_split_folders(tmp_path / "data", {"train": 4, "val": 2, "test": 2}, size=(40, 48))
    (tmp_path / "myconf" / "dataset").mkdir(parents=True)
    (tmp_path / "myconf" / "dataset" / "mine.yaml").write_text(MINE.format(root=root))
    monkeypatch.chdir(tmp_path)
    _main("segexp.train", "--config-dir", "myconf", "--help", monkeypatch=monkeypatch)
    assert "dataset: folder, isbi2012, mine, synthetic" in capsys.readouterr().out
    _main("segexp.audit", "--config-dir", "myconf", "dataset=mine", "hydra.run.dir=audit",
          monkeypatch=monkeypatch)  # fmt: skip
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["fatal"] == []
    _main(
        "segexp.train", "--config-dir", "myconf", "dataset=mine", *TINY_RUN, "trainer.epochs=1",
        "dataset.image_size=[16,16]", "dataset.num_workers=0", "logger=none", "hydra.run.dir=run",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["choices"]["dataset"] == "mine"
    metrics = evaluate_tool(f"run={tmp_path / 'run'}", "split=val", f"output={tmp_path / 'ev'}")
    assert 0 <= metrics["mIoU"] <= 1
    written = predict_tool(
        f"run={tmp_path / 'run'}", f"input={root / 'test' / 'images'}", f"output={tmp_path / 'p'}"
    )
    mask = np.asarray(Image.open(written[0]))
    assert mask.shape == (40, 48)  # at the input's size, whatever the run's resize
