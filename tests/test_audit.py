"""The label audit: its numbers against independent computations, and the mistakes it names."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segexp.audit import format_report
from segexp.data.checks import preflight
from segexp.data.survey import survey
from segexp.errors import SegexpError
from tests.conftest import REPO, compose_config, run_cli
from tests.data_factory import make_split_folders, write_sample

ISBI = REPO.parent / "shared" / "data" / "isbi2012"

needs_isbi = pytest.mark.skipif(not ISBI.is_dir(), reason=f"ISBI 2012 data not found at {ISBI}")


def folder_cfg(root: Path, *overrides: str):
    return compose_config(["dataset=folder", f"dataset.root={root}", *overrides])


def test_audit_counts_values_frequencies_and_image_statistics(tmp_path):
    make_split_folders(tmp_path, {"train": 5, "val": 3, "test": 2}, size=(12, 16))
    report = survey(folder_cfg(tmp_path, "dataset.num_classes=2"))
    assert report["fatal"] == []
    assert {s: r["samples"] for s, r in report["splits"].items()} == {
        "train": 5,
        "val": 3,
        "test": 2,
    }

    masks = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "train" / "masks").iterdir())]
    images = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "train" / "images").iterdir())]
    train = report["splits"]["train"]
    values, counts = np.unique(np.stack(masks), return_counts=True)
    assert train["mask_values"] == dict(zip(values.tolist(), counts.tolist(), strict=True))
    assert train["class_pixels"] == [int((np.stack(masks) == c).sum()) for c in (0, 1)]
    presence = [sum(m.size for m in masks if (m == c).any()) for c in (0, 1)]
    freq = [train["class_pixels"][c] / presence[c] for c in (0, 1)]
    expected = [float(np.median(freq)) / f for f in freq]
    assert report["class_weights"] == pytest.approx(expected, abs=1e-4)
    pixels = np.concatenate([i.reshape(-1, 3) for i in images]).astype(np.float64)
    assert train["image_mean"] == pytest.approx(pixels.mean(0), abs=1e-3)
    assert train["image_std"] == pytest.approx(pixels.std(0), abs=1e-3)
    table = format_report(report)
    assert "no fatal problems" in table and "weight" in table


def test_255_instead_of_1_is_named(tmp_path):
    make_split_folders(tmp_path, {"train": 2, "val": 2, "test": 2}, mask_scale=255)
    report = survey(folder_cfg(tmp_path))
    assert report["fatal"] and all("foreground stored as 255" in p for p in report["fatal"])
    assert all("mask_mode=binary" in p for p in report["fatal"])
    report = survey(folder_cfg(tmp_path, "dataset.ignore_index=-1"))  # 255 is then a bad value
    assert any("foreground stored as 255" in p for p in report["fatal"])
    assert survey(folder_cfg(tmp_path, "dataset.mask_mode=binary"))["fatal"] == []


def test_values_beyond_num_classes_and_ignore_clash_are_fatal(tmp_path):
    make_split_folders(tmp_path, {"train": 2, "val": 2, "test": 2})
    mask = tmp_path / "val" / "masks" / "val1.png"
    values = np.asarray(Image.open(mask)).copy()
    values[0, 0] = 7
    Image.fromarray(values).save(mask)
    report = survey(folder_cfg(tmp_path, "dataset.ignore_index=1"))
    fatal = " | ".join(report["fatal"])
    assert "ignore_index=1 is one of the classes" in fatal
    assert "values [7]" in fatal and "val1.png" in fatal
    with pytest.raises(SegexpError, match=r"label check failed.*values \[7\].*val1\.png"):
        preflight(folder_cfg(tmp_path))


@pytest.mark.slow
def test_audit_cli_writes_json_and_exits_non_zero_on_fatal(tmp_path):
    make_split_folders(tmp_path / "data", {"train": 2, "val": 1, "test": 1}, mask_scale=255)
    run_dir = tmp_path / "audit"
    result = run_cli(
        "dataset=folder",
        f"dataset.root={tmp_path / 'data'}",
        f"hydra.run.dir={run_dir}",
        module="segexp.audit",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    console = result.stdout + result.stderr
    assert "Traceback" not in console and "FATAL" in console and "stored as 255" in console
    report = json.loads((run_dir / "audit.json").read_text())
    assert report["splits"]["train"]["samples"] == 2 and report["fatal"]


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
    fatal = " | ".join(survey(compose_config(cfg))["fatal"])
    assert (
        "looks like a void label: if 3 marks unlabelled pixels (1.00% of the train pixels): "
        "dataset.ignore_index=3; if it is a class: dataset.num_classes=4" in fatal
    )
    report = survey(compose_config([*cfg, "dataset.ignore_index=3"]))
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
    report = survey(
        compose_config(["dataset=folder", f"dataset.root={tmp_path}", "dataset.num_classes=3"])
    )
    warning = next(w for w in report["warnings"] if "class imbalance" in w)
    assert "2 0.25%" in warning
    assert (
        "loss.losses.ce.class_weights=auto" in warning and "dataset.sampler=rare_class" in warning
    )
    assert report["rare_classes"] == {"2": 0.0025}


@pytest.mark.slow
@needs_isbi
def test_isbi2012_audit():
    cfg = compose_config(["dataset=isbi2012", f"dataset.root={ISBI}"])
    report = survey(cfg)
    assert report["fatal"] == []
    assert report["splits"]["train"]["samples"] == 24 and report["splits"]["val"]["samples"] == 6
    assert set(report["splits"]["train"]["mask_values"]) == {0, 1}
    membrane, cell = report["splits"]["train"]["class_pixels"]
    assert 0.15 < membrane / (membrane + cell) < 0.3  # thin membranes, large cell interiors
    assert report["class_weights"][0] > 1 > report["class_weights"][1]
    assert report["suggested_mean"][0] == pytest.approx(cfg.dataset.mean[0], abs=0.5)
    # The classic mistake on the very same files: 0/255 masks read as class indices.
    raw = survey(
        compose_config(["dataset=isbi2012", f"dataset.root={ISBI}", "dataset.mask_mode=index"])
    )
    assert any("foreground stored as 255" in p for p in raw["fatal"])


def _street_scenes(root: Path, void_rows: int) -> float:
    """Masks of 11 classes 0..10 (in columns) with 11 for unlabelled pixels (the top rows of
    each mask, one more in each sample); returns the train split's share of 11, counted from
    the files."""
    for split, count in {"train": 3, "val": 2, "test": 2}.items():
        for i in range(count):
            mask = np.tile(np.arange(22) // 2, (20, 1)).astype(np.uint8)
            mask[: void_rows + i] = 11
            write_sample(root / split / "images", root / split / "masks", f"{split}{i}", mask)
    masks = np.stack([np.asarray(Image.open(p)) for p in (root / "train" / "masks").iterdir()])
    return float((masks == 11).mean())


def test_a_void_label_above_the_classes_is_advised_both_ways_before_num_classes_is_set(tmp_path):
    share = _street_scenes(tmp_path, void_rows=0)  # 0, 1 and 2 rows of 20: 5%
    assert share == pytest.approx(0.05)
    (train,) = [p for p in survey(folder_cfg(tmp_path))["fatal"] if p.startswith("train:")]
    assert train.startswith("train: mask values 2..11 are >= num_classes=2 and not ignore_index")
    assert train.endswith(
        f"it looks like a void label: if 11 marks unlabelled pixels ({100 * share:.2f}% of the "
        "train pixels): dataset.num_classes=11 dataset.ignore_index=11; if it is a class: "
        "dataset.num_classes=12"
    )
    with pytest.raises(SegexpError, match="if 11 marks unlabelled pixels"):
        preflight(folder_cfg(tmp_path))  # training refuses with the same advice
    following = survey(folder_cfg(tmp_path, "dataset.num_classes=11", "dataset.ignore_index=11"))
    assert following["fatal"] == [] and len(following["splits"]["train"]["class_pixels"]) == 11


def test_a_common_top_value_is_read_as_a_class_first_unless_named_void(tmp_path):
    share = _street_scenes(tmp_path, void_rows=4)  # 4, 5 and 6 rows of 20: 25%
    assert share == pytest.approx(0.25)
    (train,) = [p for p in survey(folder_cfg(tmp_path))["fatal"] if p.startswith("train:")]
    assert train.endswith(
        f"11 holds {100 * share:.2f}% of the train pixels, more than a void label usually does: "
        "if it is a class: dataset.num_classes=12; if it marks unlabelled pixels: "
        "dataset.num_classes=11 dataset.ignore_index=11"
    )
    names = "dataset.class_names=[" + ",".join(f"c{c}" for c in range(11)) + ",unlabelled]"
    fatal = survey(folder_cfg(tmp_path, names))["fatal"]
    (train,) = [p for p in fatal if p.startswith("train:")]
    assert train.endswith(
        f"it looks like a void label: if 11 marks unlabelled pixels ({100 * share:.2f}% of the "
        "train pixels, named 'unlabelled' in dataset.class_names): dataset.num_classes=11 "
        "dataset.ignore_index=11; if it is a class: dataset.num_classes=12"
    )
