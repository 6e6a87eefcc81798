"""The label audit: its numbers against independent computations, and the mistakes it names."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segexp.audit import audit, format_report
from segexp.data.checks import preflight
from segexp.data.scan import median_frequency_weights
from segexp.errors import SegexpError

from .conftest import REPO, compose_config, run_cli
from .data_factory import make_split_folders

ISBI = REPO.parent / "shared" / "data" / "isbi2012"
needs_isbi = pytest.mark.skipif(not ISBI.is_dir(), reason=f"ISBI 2012 data not found at {ISBI}")


def folder_cfg(root: Path, *overrides: str):
    return compose_config(["dataset=folder", f"dataset.root={root}", *overrides])


def test_median_frequency_weights_by_hand():
    # freq = [30/40, 10/20] = [0.75, 0.5]; median 0.625 -> [0.8333, 1.25]; class 2 absent -> 1
    assert median_frequency_weights([30, 10, 0], [40, 20, 0]) == [0.8333, 1.25, 1.0]


def test_audit_counts_values_frequencies_and_image_statistics(tmp_path):
    make_split_folders(tmp_path, {"train": 5, "val": 3, "test": 2}, size=(12, 16))
    report = audit(folder_cfg(tmp_path, "dataset.num_classes=2"))
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
    report = audit(folder_cfg(tmp_path))
    assert report["fatal"] and all("foreground stored as 255" in p for p in report["fatal"])
    assert all("mask_mode=binary" in p for p in report["fatal"])
    report = audit(folder_cfg(tmp_path, "dataset.ignore_index=-1"))  # 255 is then a bad value
    assert any("foreground stored as 255" in p for p in report["fatal"])
    assert audit(folder_cfg(tmp_path, "dataset.mask_mode=binary"))["fatal"] == []


def test_values_beyond_num_classes_and_ignore_clash_are_fatal(tmp_path):
    make_split_folders(tmp_path, {"train": 2, "val": 2, "test": 2})
    mask = tmp_path / "val" / "masks" / "val1.png"
    values = np.asarray(Image.open(mask)).copy()
    values[0, 0] = 7
    Image.fromarray(values).save(mask)
    report = audit(folder_cfg(tmp_path, "dataset.ignore_index=1"))
    fatal = " | ".join(report["fatal"])
    assert "ignore_index=1 is one of the classes" in fatal
    assert "values [7]" in fatal and "val1.png" in fatal
    with pytest.raises(SegexpError, match=r"label check failed.*values \[7\].*val1\.png"):
        preflight(folder_cfg(tmp_path))


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


@needs_isbi
def test_isbi2012_audit():
    cfg = compose_config(["dataset=isbi2012", f"dataset.root={ISBI}"])
    report = audit(cfg)
    assert report["fatal"] == []
    assert report["splits"]["train"]["samples"] == 24 and report["splits"]["val"]["samples"] == 6
    assert set(report["splits"]["train"]["mask_values"]) == {0, 1}
    membrane, cell = report["splits"]["train"]["class_pixels"]
    assert 0.15 < membrane / (membrane + cell) < 0.3  # thin membranes, large cell interiors
    assert report["class_weights"][0] > 1 > report["class_weights"][1]
    assert report["suggested_mean"][0] == pytest.approx(cfg.dataset.mean[0], abs=0.5)
    # The classic mistake on the very same files: 0/255 masks read as class indices.
    raw = audit(
        compose_config(["dataset=isbi2012", f"dataset.root={ISBI}", "dataset.mask_mode=index"])
    )
    assert any("foreground stored as 255" in p for p in raw["fatal"])
